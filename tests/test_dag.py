"""The workflow's DAG, its SLURM profile and bad input, checked through Snakemake itself.

Offline, no cluster: `snakemake -n --profile profiles/slurm` validates the profile and the plugin's
options and prints every job with its threads and resources. Expectations are derived from the
config (``expected_jobs``), never typed in, so a config change or a new rule that the map does not
know fails here until the map is extended.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "slurm"))
import smk  # noqa: E402  (tests/slurm/smk.py)
from smk import C, CONFIG, ROOT, SLURM_PROFILE, SMOKE, TEST_PROFILE  # noqa: E402

# Target rules of the Snakefile: they only collect files and run on the submitting host.
TARGET_RULES = {"all", "data", "train", "evaluate", "tables", "figures", "fig1", "fig2", "fig3", "fig4",
                "fig5", "maturity", "paper", "appendix", "grid_generator", "grid_penalties", "grid_other",
                "tune", "tune_lr", "seed_study", "sensitivity", "studies"}
# The Snakefile's targets by stage: what each one pulls in.
STAGES = ("data", "train", "evaluate", "report")
TARGET_STAGE = {"data": "data", "train": "train", "evaluate": "evaluate", "all": "report",
                "paper": "report"}


def study_jobs(cfg: dict) -> dict[str, int]:
    """Jobs of the robustness studies (part of the paper): one study_train job per variant and
    data set that retrains a model (the extra seeds retrain all at the published settings, the
    domain variant re-prepares the data and so retrains all, a training variant its CT models), one
    study_evaluate job per variant and data set with an evaluation of its own (every variant
    evaluates the CEs of every data set; robustness and performance, which read none of the
    variants' keys, are redone only where a model they read was retrained)."""
    from ctpaper.studies import variants as V

    datasets, families = cfg["datasets"], cfg["families"]
    models = ["bl"] + [f"ct_{f}" for f in families]
    extra = [s for s in cfg["studies"]["seeds"] if s not in cfg["train"]["seeds"]]
    variants = V.study_variants(cfg)
    sets = ([V.BASE] if extra else []) + variants
    return {
        "study_prepare_data": sum(V.data_tree(cfg, v, d) == v for v in variants for d in datasets),
        "study_train": sum(bool(V.trained_models(cfg, v, d, models)) for v in sets for d in datasets),
        "study_evaluate": len(sets) * len(datasets),
        "seed_study_table": 1, "seed_study_figure": 1, "sensitivity_table": 1, "sensitivity_figure": 1,
    }


def expected_jobs(cfg: dict, target: str = "all") -> dict[str, int]:
    """Jobs per rule that ``snakemake <target>`` runs from scratch for config ``cfg``.

    One entry per rule of the workflow; extend it when a rule is added (a rule in the DAG that is
    missing here fails test_job_counts). Rules with 0 jobs are left out of the result.
    """
    datasets, seeds, families = cfg["datasets"], cfg["train"]["seeds"], cfg["families"]
    n_d, n_s, n_f = len(datasets), len(seeds), len(families)
    real = [d for d in datasets if C.dataset_kind(d) != "synthetic"]
    mnist = "mnist" in datasets
    models = 1 + n_f  # bl + ct_<family>
    from ctpaper.appendix.layout import figures as appendix_figures, grids_run

    appx = [k for _, _, k in appendix_figures(cfg)]  # the appendix figures' kinds (ip, cost, maturity)
    appx_grids = grids_run(cfg)
    from ctpaper.grids.plan import job_counts as grid_job_counts

    grid_jobs = grid_job_counts(cfg)
    revise = cfg["train"]["generator"] == "revise"
    upto = STAGES.index(TARGET_STAGE[target])
    per_stage = {
        "data": {
            "fetch_raw": len(real),          # one per real dataset (synthetic ones are generated)
            "prepare_data": n_d,
        },
        "train": {
            "train_model": n_d * n_s * models,
            # REVISE's VAE, one per dataset (shared by seeds), only for CT training with REVISE
            "train_vae": n_d if revise else 0,
        },
        "evaluate": {  # every dataset x seed (x family)
            "evaluate_ces": n_d * n_s * n_f,
            "robustness": n_d * n_s,
            "performance": n_d * n_s,
            "ig_summary": n_d * n_s,
            "integrated_gradients": n_s if mnist else 0,  # MNIST class-average IG maps per seed
        },
        "report": {
            "table_scores": 2,               # table1, table3
            "table_settings": 1,             # table2
            "table_performance": 1,
            "table_comparison": 1,           # Tables 1 and 3 next to the original's
            "figure_fig1": 1,
            "figure_fig3": 1,
            "figure_maturity": 1,
            "figure_fig2": 1 if mnist else 0,
            "figure_fig45": 2 if mnist else 0,  # fig4, fig5
            "provenance": 1,
            "paper_values": 1,
            "render_paper": 1,
            # the appendix report: a box plot per grid, data set and metric, maturity curves per E grid
            # and data set, a table per grid, one claims file
            "appendix_box": sum(k != "maturity" for k in appx),
            "appendix_maturity": sum(k == "maturity" for k in appx),
            "appendix_table": len(appx_grids),
            "appendix_claims": 1 if appx_grids else 0,
            # the appendix grids: chunks of models, one evaluation per grid and data set, and the
            # VAE of every data set with REVISE members (one per data set, shared with the body)
            "train_chunk": grid_jobs["train_chunk"],
            "evaluate_grid": grid_jobs["evaluate_grid"],
            "train_vae": n_d if revise else grid_jobs["train_vae"],
            **study_jobs(cfg),
        },
    }
    counts: dict[str, int] = {target: 1}  # the target rule itself
    for stage in STAGES[: upto + 1]:
        counts.update(per_stage[stage])
    return {rule: n for rule, n in counts.items() if n}


# ---- dry runs (module scope: each is a few seconds) ----------------------------------------------
@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("dag")


def _dry(work: Path, name: str, target: str, configfiles, *extra: str) -> dict:
    wd = work / name
    proc = smk.check(smk.run([target, "-n", *extra], wd, configfiles, timeout=300), f"dry run {name}")
    return {"name": name, "target": target, "config": smk.merged_config(*configfiles),
            "output": proc.output, "stats": smk.job_stats(proc.output), "jobs": smk.jobs(proc.output)}


@pytest.fixture(scope="module")
def paper_dry(work):
    """The paper's full config with the SLURM profile."""
    return _dry(work, "paper", "all", [CONFIG], "--profile", SLURM_PROFILE)


@pytest.fixture(scope="module")
def smoke_site_dry(work):
    """Smoke config, SLURM profile + a site profile (the test cluster's overlay)."""
    return _dry(work, "smoke_site", "all", [CONFIG, SMOKE], "--profile", SLURM_PROFILE,
                "--profile", TEST_PROFILE)


@pytest.fixture(scope="module")
def variant_dry(work):
    """Two seeds, REVISE for training, the `evaluate` target, account/partition on the command line."""
    overlay = smk.write_overlay(work / "variant.yaml", {
        "datasets": ["ls", "adult", "mnist"],
        "train": {"seeds": [1, 2], "generator": "revise"}})
    return _dry(work, "variant", "evaluate", [CONFIG, SMOKE, overlay], "--profile", SLURM_PROFILE,
                "--default-resources", "slurm_account=acct_x", "slurm_partition=part_x")


@pytest.fixture(scope="module")
def local_dry(work):
    """The paper's config without the SLURM profile: the threads and resources the rules declare."""
    return _dry(work, "local", "all", [CONFIG])


@pytest.fixture(scope="module")
def smoke_local_dry(work):
    return _dry(work, "smoke_local", "all", [CONFIG, SMOKE])


@pytest.fixture(scope="module")
def variant_local_dry(work, variant_dry):
    return _dry(work, "variant_local", "evaluate", [CONFIG, SMOKE, work / "variant.yaml"])


DRY_RUNS = ("paper_dry", "smoke_site_dry", "variant_dry")
# each SLURM dry run and the local dry run of the same config and target
LOCAL_OF = {"paper_dry": "local_dry", "smoke_site_dry": "smoke_local_dry", "variant_dry": "variant_local_dry"}


# ---- profiles ------------------------------------------------------------------------------------
def test_profiles_merge_as_documented():
    """profiles/default is loaded as the workflow profile on every run and overrides other profiles
    key by key: with --profile profiles/slurm the executor must still be slurm."""
    slurm = smk.profile(SLURM_PROFILE)
    default = smk.profile("profiles/default")
    assert not {"executor", "latency-wait", "jobs", "keep-going", "restart-times", "default-resources",
                "set-resources", "set-threads"} & set(default), \
        "profiles/default/config.yaml overrides the SLURM profile: keep it executor-neutral"
    code = ("import sys; from snakemake.cli import parse_args; _, a = parse_args(sys.argv[1:]); "
            "print(a.executor, a.latency_wait, a.jobs, a.retries, a.slurm_status_command)")
    out = subprocess.run(["timeout", "-k", "5", "120", *_python(), "-c", code, "--profile", SLURM_PROFILE,
                          "--profile", TEST_PROFILE], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    executor, latency, jobs, restarts, status = out.stdout.split()
    test = smk.profile(TEST_PROFILE)
    assert executor == "slurm"
    assert int(latency) == test["latency-wait"] and int(jobs) == test["jobs"]
    assert int(restarts) == test["restart-times"] and status == "squeue"



def _python() -> list[str]:
    venv = ROOT / ".venv" / "bin" / "python"
    return [str(venv if venv.exists() else sys.executable)]


# ---- job counts ----------------------------------------------------------------------------------
@pytest.mark.parametrize("dry", DRY_RUNS)
def test_job_counts(dry, request):
    run = request.getfixturevalue(dry)
    expected = expected_jobs(run["config"], run["target"])
    got = run["stats"]
    print(f"\n{run['name']} ({run['target']}): " + ", ".join(f"{r}={n}" for r, n in sorted(got.items())))
    unknown = sorted(set(got) - set(expected))
    assert not unknown, (f"rules {unknown} are in the DAG but unknown to expected_jobs() in "
                         f"tests/test_dag.py: add them (with a count derived from the config)")
    assert got == expected


# ---- per-job threads, resources and logs ---------------------------------------------------------
def _cluster_jobs(run):
    """Jobs with cluster resources: all but the Snakefile's target rules (localrules and grouped jobs
    keep their profile resources; test_slurm_jobs_are_dataset_groups checks what is submitted)."""
    return [j for j in run["jobs"] if j.rule not in TARGET_RULES]


def _requests(run) -> dict[tuple[str, str], tuple[int, int, int]]:
    """{(rule, wildcards): (threads, mem_mb, runtime)} of a dry run's cluster jobs."""
    return {(j.rule, j.wildcards): (j.threads, int(j.resources["mem_mb"]), int(j.resources["runtime"]))
            for j in _cluster_jobs(run)}


@pytest.mark.parametrize("dry", DRY_RUNS)
def test_every_job_has_log_threads_and_resources(dry, request):
    run = request.getfixturevalue(dry)
    problems = []
    for job in _cluster_jobs(run):
        where = f"{job.rule}[{job.wildcards}]"
        problems += [f"{where}: no log"] if "log" not in job.fields else []
        problems += [f"{where}: no {key}" for key in ("mem_mb", "runtime") if key not in job.resources]
    assert not problems, "\n".join(problems)
    assert _cluster_jobs(run), "no cluster jobs in the dry run"


def test_resources_are_declared_only_in_the_rules():
    """Threads, mem_mb and runtime live in the rules; the SLURM profile (and a site profile such as
    the test cluster's) only groups jobs and adds account/partition."""
    for name in (SLURM_PROFILE, TEST_PROFILE, "profiles/default"):
        prof = smk.profile(name)
        assert not {"set-resources", "set-threads", "resources"} & set(prof), name
        assert not {"mem_mb", "runtime", "threads"} & set(prof.get("default-resources") or {}), name


@pytest.mark.parametrize("dry", DRY_RUNS)
def test_slurm_jobs_request_what_the_rules_declare(dry, request):
    """Every job of a SLURM dry run requests exactly the threads, mem_mb and runtime of the same job
    in a local dry run (same config, same target): the cluster cannot diverge from the rules."""
    slurm, local = _requests(request.getfixturevalue(dry)), _requests(request.getfixturevalue(LOCAL_OF[dry]))
    assert slurm.keys() == local.keys()
    differ = {k: (slurm[k], local[k]) for k in slurm if slurm[k] != local[k]}
    assert not differ, f"(threads, mem_mb, runtime) SLURM vs local: {differ}"


@pytest.mark.parametrize("dry", ["paper_dry", "smoke_site_dry"])
def test_slurm_jobs_are_dataset_groups(dry, request):
    """Through profiles/slurm only the dataset groups are SLURM jobs: every job of a grouped rule is
    in a group job, a group job covers `group-components` whole datasets, and everything else is a
    localrule (seconds each), a target rule or an appendix grid job (a chunk of models, minutes
    each, sized by ctpaper.grids.plan, or a group job of `group-components` grid evaluations, one
    grid on one data set each). So the full config sends ceil(chains / 3) jobs plus the appendix's."""
    run = request.getfixturevalue(dry)
    prof = smk.profile(SLURM_PROFILE)
    grouped = {r for r, g in prof["groups"].items() if g == "dataset"}
    per_job = prof["group-components"]["dataset"]
    local = smk.local_rules() | TARGET_RULES
    grid_rules = {"train_chunk", "evaluate_grid"}
    members: dict[int, set[str]] = {}
    for job in run["jobs"]:
        if job.rule in grouped:
            assert job.group is not None, f"{job.rule}[{job.wildcards}] is not in a group job"
            dataset = re.search(r"/(?:data|models|eval)/(\w+)(?:/|$|,)", job.fields["output"]).group(1)
            members.setdefault(job.group, set()).add(dataset)
        elif job.rule not in grid_rules:
            assert job.group is None and job.rule in local, f"{job.rule} would be its own SLURM job"
    datasets = run["config"]["datasets"]
    # a dataset's chains: the main one (with the seed study and the variants that reuse its data)
    # and one per study variant that re-prepares the data (ctpaper.studies.variants.data_tree)
    from ctpaper.studies import variants as V

    own_data = [v for v in V.study_variants(run["config"]) if V.data_tree(run["config"], v, datasets[0]) == v]
    chains = len(datasets) * (1 + len(own_data))
    assert sorted({d for ds in members.values() for d in ds}) == sorted(datasets)
    assert all(len(ds) <= per_job for ds in members.values())
    n_slurm = smk.cluster_jobs(run["jobs"], local)
    print(f"\n{run['name']}: {len(run['jobs'])} jobs, {n_slurm} SLURM jobs: "
          + "; ".join(" ".join(sorted(ds)) for ds in members.values()))
    from ctpaper.grids.plan import job_counts

    counts = job_counts(run["config"])
    per_eval_job = prof["group-components"][prof["groups"]["evaluate_grid"]]
    assert all(job.group is not None for job in run["jobs"] if job.rule == "evaluate_grid")
    n_grid = counts["train_chunk"] + -(-counts["evaluate_grid"] // per_eval_job)
    assert n_slurm == -(-chains // per_job) + n_grid


def test_account_and_partition_from_the_command_line(variant_dry):
    """`--default-resources slurm_account=.. slurm_partition=..` replaces the profile's
    default-resources (the profiles set none), and every rule keeps its own mem_mb/runtime/threads."""
    for job in _cluster_jobs(variant_dry):
        assert job.resources.get("slurm_account") == "acct_x", job
        assert job.resources.get("slurm_partition") == "part_x", job


def test_site_profile_adds_partition(smoke_site_dry):
    part = smk.profile(TEST_PROFILE)["default-resources"]["slurm_partition"]
    for job in _cluster_jobs(smoke_site_dry):
        assert job.resources.get("slurm_partition") == part, job


def test_every_rule_is_exercised_and_the_profile_names_only_real_rules(work, paper_dry, smoke_site_dry,
                                                                       variant_dry):
    """Every non-target rule of the workflow is in one of the dry runs above (so its declared
    resources are checked) and profiles/slurm groups no rule that does not exist."""
    rules = set(smk.list_rules(work / "list_rules", [CONFIG]))
    assert rules, "snakemake --list-rules listed nothing"
    prof = smk.profile(SLURM_PROFILE)
    job_rules = {j.rule for run in (paper_dry, smoke_site_dry, variant_dry) for j in _cluster_jobs(run)}
    stale = sorted(set(prof["groups"]) - rules)
    unexercised = sorted(rules - TARGET_RULES - job_rules)
    assert not stale, f"profiles/slurm groups rules that do not exist: {stale}"
    assert not unexercised, f"rules never in a tested DAG (add a dry run that needs them): {unexercised}"


@pytest.mark.parametrize("families", [["free"], ["protected"]], ids=["free-only", "protected-only"])
def test_single_family_config_is_rejected(work, families):
    """Both families are part of the paper (the schema requires each), so a config with one family
    is rejected before any DAG is built, with a message naming `families` and the missing family;
    never a missing-input crash."""
    missing = ({"free", "protected"} - set(families)).pop()
    name = "family_" + "_".join(families)
    overlay = smk.write_overlay(work / f"{name}.yaml", {"families": families})
    proc = smk.run(["all", "-n", "--profile", SLURM_PROFILE], work / name, [CONFIG, SMOKE, overlay],
                   timeout=300)
    assert proc.returncode != 0, f"a one-family config built a DAG:\n{proc.output[-2500:]}"
    assert f"config key families: must include '{missing}'" in proc.output, proc.output[-2500:]
    assert "MissingInputException" not in proc.output


# ---- building the DAG needs neither torch nor matplotlib ----------------------------------------
# A sitecustomize.py first on PYTHONPATH that makes the named packages unimportable and records every
# attempt (also one that the importing code catches), so the test sees any import, not only a crash.
_BLOCK_IMPORTS = """
import os, sys
class _Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "matplotlib"):
            with open(os.environ["CTPAPER_BLOCKED_LOG"], "a") as fh:
                fh.write(name + "\\n")
            raise ImportError(f"{name} is blocked by the test (the DAG must not import it)")
        return None
sys.meta_path.insert(0, _Blocked())
"""


def test_dry_run_imports_neither_torch_nor_matplotlib(work):
    """`snakemake -n` of the paper's full config, with torch and matplotlib unimportable: it builds
    the whole DAG and nothing tried to import either (Snakefile, rule files and the library modules
    they load stay light)."""
    shim, log = work / "block_imports", work / "block_imports.log"
    shim.mkdir(exist_ok=True)
    (shim / "sitecustomize.py").write_text(_BLOCK_IMPORTS)
    log.unlink(missing_ok=True)
    env = {"PYTHONPATH": os.pathsep.join([str(shim), str(ROOT / "src")]),
           "CTPAPER_BLOCKED_LOG": str(log)}
    probe = subprocess.run([*_python(), "-c", "import torch"], env={**os.environ, **env},
                           capture_output=True, text=True)
    assert probe.returncode != 0 and log.read_text() == "torch\n", "the import blocker does not work"
    log.unlink()
    proc = smk.check(smk.run(["all", "-n"], work / "no_torch", [CONFIG], env=env), "dry run without torch")
    assert smk.job_stats(proc.output) == expected_jobs(smk.merged_config(CONFIG), "all")
    tried = sorted(set(log.read_text().split())) if log.exists() else []
    assert not tried, f"building the DAG imported {tried}"


# ---- rule graph ----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def dot():
    if not shutil.which("dot"):
        ok, msg = smk.apt_install("graphviz")
        if not ok:
            pytest.skip(f"graphviz's `dot` is missing and could not be installed with apt: {msg[-300:]}")
    return shutil.which("dot")


def test_rulegraph_renders_with_dot(work, dot, paper_dry):
    proc = smk.check(smk.run(["all", "--rulegraph"], work / "rulegraph", [CONFIG], timeout=300),
                     "snakemake --rulegraph")
    svg = subprocess.run(["timeout", "-k", "5", "120", dot, "-Tsvg"], input=proc.stdout,
                         capture_output=True, text=True)
    assert svg.returncode == 0, svg.stderr
    assert "<svg" in svg.stdout
    for rule in paper_dry["stats"]:
        assert f">{rule}<" in svg.stdout, f"rule {rule} missing from the rule graph"


# ---- lint ----------------------------------------------------------------------------------------
def parse_lint(text: str) -> list[tuple[str, str]]:
    """[(where, title)] from `snakemake --lint` text output."""
    findings, where = [], None
    for line in text.splitlines():
        if line.startswith("Lints for "):
            where = line[len("Lints for "):].rstrip(":")
        elif where and line.startswith("    * "):
            findings.append((where, line[6:].rstrip(":")))
    return findings


@pytest.mark.parametrize("snakefile", ["Snakefile", "workflow/Snakefile"])
def test_lint(work, snakefile):
    """`snakemake --lint` is clean (exit 0, no finding) from the top-level Snakefile and from
    workflow/Snakefile (what the workflow catalog and `module` users run)."""
    proc = smk.run(["--lint", "--snakefile", str(ROOT / snakefile)], work / "lint", [CONFIG],
                   timeout=120)
    findings = parse_lint(proc.output)
    assert proc.returncode == 0 and not findings, (
        "snakemake --lint findings:\n  " + "\n  ".join(f"{w}: {t}" for w, t in findings)
        + f"\n{proc.output[-3000:]}")


# ---- bad input -----------------------------------------------------------------------------------
@pytest.mark.parametrize("overlay, expected", [
    ({"datasets": ["ls", "lsat"]}, ["datasets", "lsat"]),
    ({"model": {"n_epochs": "ten"}}, ["model.n_epochs", "ten", "integer"]),
    ({"train": {"lamda_egy": 1.0}}, ["train.lamda_egy", "unknown key"]),
], ids=["unknown-dataset", "wrong-type", "unknown-key"])
def test_bad_config_fails_the_dry_run(work, overlay, expected):
    name = "bad_" + "_".join(overlay)
    path = smk.write_overlay(work / f"{name}.yaml", overlay)
    proc = smk.run(["all", "-n", "--profile", SLURM_PROFILE], work / name, [CONFIG, path], timeout=120)
    assert proc.returncode != 0
    for word in expected:
        assert word in proc.output, f"{word!r} not in the error message:\n{proc.output[-3000:]}"
    assert "Traceback" not in proc.output, "a config error should be a message, not a traceback"


def test_missing_raw_file_fails_fetch_raw_naming_the_file(work):
    """A real (local) run of fetch_raw for adult with no copy anywhere: the job fails, the message
    names the file and where it was looked for, and no manifest is left behind."""
    wd = work / "missing_raw"
    empty = wd / "empty_mirror"
    empty.mkdir(parents=True)
    overlay = smk.write_overlay(wd / "overlay.yaml", {
        "datasets": ["adult"], "paths": {"results": "results", "raw_dir": "raw", "download": False,
                                         "raw_mirror": str(empty)}})
    proc = smk.run(["results/raw/adult/manifest.json", "--profile", "profiles/default", "--cores", "1"],
                   wd, [CONFIG, SMOKE, overlay], timeout=300, env={"CTPAPER_RAW_MIRROR": str(empty)})
    assert proc.returncode != 0
    assert "Error in rule fetch_raw" in proc.output
    for word in ("adult.data", "download: disabled", str(empty)):
        assert word in proc.output, f"{word!r} not in the output:\n{proc.output[-4000:]}"
    assert not (wd / "results" / "raw" / "adult" / "manifest.json").exists()
