"""Fault injection: bad settings, corrupt or truncated intermediates, broken models, moved checkouts.

Each case of issue 9 must end in a clear message naming the file or key (never a traceback, never a
silently wrong paper) or, for a moved checkout, in nothing to do. The fast tests exercise the
library; the ``slow`` ones run Snakemake over the session's smoke run: dry runs directly over it
(never changing it), real runs over a private copy of its results.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent / "slurm"))
import smk  # noqa: E402  (tests/slurm/smk.py)

from ctpaper import runtime  # noqa: E402
from ctpaper.models import build_model, load_model, model_spec, save_model  # noqa: E402
from ctpaper.runtime import IntegrityError, read_parquet, write_parquet  # noqa: E402

REPO = smk.ROOT
SMOKE_FILES = [str(REPO / "config" / "config.yaml"), str(REPO / "config" / "smoke.yaml")]


def _flip_byte(path: Path, offset: int | None = None) -> None:
    """Flip one byte in the middle of ``path``, keeping its mtime (a silent disk error)."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _truncate(path: Path) -> None:
    st = path.stat()
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


# ---- integrity of intermediates (library) ---------------------------------------------------------
def test_every_write_records_a_checksum_and_reads_verify_it(tmp_path):
    f = tmp_path / "x.parquet"
    write_parquet(pd.DataFrame({"a": range(100)}), f)
    assert runtime.checksum_path(f).read_text().split()[0] == runtime.sha256_file(f)
    assert read_parquet(f)["a"].sum() == 4950
    _flip_byte(f)
    with pytest.raises(IntegrityError, match=rf"{f}: corrupt \(sha256 .* recorded in "
                                             rf"x.parquet.sha256 .*\); delete it .* rerun"):
        read_parquet(f)


def test_truncated_file_without_checksum_is_refused_by_name(tmp_path):
    f = tmp_path / "y.parquet"
    pd.DataFrame({"a": range(1000)}).to_parquet(f)   # written outside the pipeline: no checksum
    _truncate(f)
    with pytest.raises(IntegrityError, match=rf"{f}: cannot be read as Parquet .* corrupt or "
                                             "truncated: delete it"):
        read_parquet(f)


def _model_file(tmp_path, fill=None) -> Path:
    model = build_model("mlp", 2, 2, seed=0)
    if fill is not None:
        with torch.no_grad():
            model.fc1.weight.fill_(fill)
    path = tmp_path / "model.pt"
    save_model(model, path, model_spec("mlp", 2, 2, hidden=32))
    return path


def test_flipped_byte_in_model_is_refused(tmp_path):
    path = _model_file(tmp_path)
    load_model(path)
    _flip_byte(path)
    with pytest.raises(IntegrityError, match=r"model.pt: corrupt .*delete it"):
        load_model(path)


def test_model_with_nan_weights_is_refused(tmp_path):
    path = _model_file(tmp_path, fill=float("nan"))
    with pytest.raises(IntegrityError, match=r"model.pt: model parameters fc1.weight are "
                                             r"non-finite .* lower model.lr"):
        load_model(path)


def test_user_errors_end_the_job_with_a_message_not_a_traceback(tmp_path, capsys):
    class Smk:  # the parts of Snakemake's script object that rule_context uses
        log = [str(tmp_path / "job.log")]
        rule, wildcards, threads, config = "performance", {}, 1, {}

    with pytest.raises(SystemExit) as exc:
        with runtime.rule_context(Smk()):
            raise IntegrityError("results/x.parquet: corrupt; delete it and rerun")
    assert exc.value.code == 1
    text = (tmp_path / "job.log").read_text()
    assert "rule performance failed: results/x.parquet: corrupt" in text
    assert "Traceback" not in text and "Traceback" not in capsys.readouterr().err


def test_single_class_model_is_flagged_in_the_paper_values():
    from ctpaper.paper.values import performance_values

    row = {"label": "Adult", **{f"{m}_{k}": 0.8 for m in ("BL", "CT_free", "CT_protected")
                                for k in ("accuracy", "f1")}}
    ok = pd.DataFrame([{**row, **{f"{m}_min_pred_classes": 2 for m in
                                  ("BL", "CT_free", "CT_protected")}}])
    assert performance_values(ok)["single_class"] is False      # the paper: "Every model predicts more"
    bad = performance_values(ok.assign(CT_free_min_pred_classes=1))
    assert bad["single_class"] is True and bad["single_class_one"] is True   # the paper's warning
    assert bad["single_class_list"] == "CT (`free`) on Adult"
    wording = (Path(__file__).parents[1] / "paper" / "paper.qmd").read_text()
    assert 'when-meta="flags.perf.single_class"' in wording and "**Warning:**" in wording


# ---- the workflow ---------------------------------------------------------------------------------
def _run(args, cwd=REPO, timeout=900, env=None):
    cmd = ["timeout", "-k", "10", str(timeout), *smk.snakemake_cmd(), *args]
    full_env = {**os.environ, **(env or {})}
    full_env.pop("SNAKEMAKE_PROFILE", None)
    proc = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True)
    proc.output = proc.stdout + proc.stderr
    return proc


def _overlay(path: Path, base: Path, **changes) -> Path:
    data = yaml.safe_load(base.read_text())
    for key, value in changes.items():
        node = data
        *head, last = key.split(".")
        for part in head:
            node = node.setdefault(part, {})
        node[last] = value
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("key, value, message", [
    ("eval.n_runs", 1_000_000_000, "config key eval.n_runs: 1000000000 is greater than the maximum"),
    ("eval.tau", 1.0, "config key eval.tau: 1.0 is greater than or equal to the maximum of 1"),
    ("eval.lambda_egy_grid", [0.5, 0.5], "config key eval.lambda_egy_grid: [0.5, 0.5] has non-unique"),
    ("data.synthetic.n_generate", 4000, "config key data.synthetic: n_pool + n_test = "),
    ("model.lr", 1e6, "config key model.lr: 1000000.0 is greater than the maximum of 1"),
    ("model.lr", 1e30, "config key model.lr"),
    ("model.lr", 1e38, "config key model.lr"),
])
def test_impossible_settings_fail_the_dry_run_naming_the_key(smoke_run, tmp_path, key, value,
                                                             message):
    overlay = _overlay(tmp_path / "bad.yaml", smoke_run["overlay"], **{key: value})
    proc = _run(["-n", "paper", "--configfile", *SMOKE_FILES, str(overlay)], timeout=300)
    assert proc.returncode != 0
    assert message in proc.output, proc.output[-2000:]
    assert "Traceback" not in proc.output


# Config files on the command line: Snakemake reads them before the workflow's code runs, so the
# workflow profile's preflight (ctpaper.preflight) checks them; one line naming the file, exit 1.
def _messages(output: str) -> list[str]:
    """The output's lines except Snakemake's note on the profiles it uses."""
    return [ln for ln in output.splitlines() if ln.strip() and not ln.startswith("Using ")]


@pytest.mark.parametrize("case", ["missing", "missing-relative", "yaml-syntax", "not-a-mapping",
                                  "schema", "schema-via-config", "schema-several-keys"])
def test_bad_config_file_on_the_command_line_is_one_line_naming_the_file(tmp_path, case):
    bad = tmp_path / "bad.yaml"
    extra: list[str] = []
    if case == "missing":
        expected = f"ctpaper: config file {bad} not found (looked for {bad})"
    elif case == "missing-relative":
        bad = Path("no_such_dir/overlay.yaml")
        expected = (f"ctpaper: config file {bad} not found (looked for {tmp_path / bad})")
    elif case == "yaml-syntax":
        bad.write_text("eval:\n  n_runs: [1\n  tau: 0.5\n")
        expected = (f"ctpaper: config file {bad}, line 3, column 6: invalid YAML "
                    "(expected ',' or ']', but got ':')")
    elif case == "not-a-mapping":
        bad.write_text("- eval\n")
        expected = f"ctpaper: config file {bad}: expected a mapping of config keys, got list"
    elif case == "schema":
        bad.write_text("eval:\n  tau: 1.5\n")
        expected = ("ctpaper: config key eval.tau: 1.5 is greater than or equal to the maximum of 1 "
                    f"(set in {bad})")
    elif case == "schema-via-config":
        bad.write_text("eval:\n  tau: 0.5\n")
        extra = ["--config", "datasets=[ls,lsat]"]
        expected = "ctpaper: config key datasets.1: 'lsat' is not one of"
    else:
        bad.write_text("eval:\n  tau: 1.5\nmodel:\n  n_epochs: ten\n")
        expected = (f"ctpaper: config key eval.tau: 1.5 is greater than or equal to the maximum of 1 "
                    f"(set in {bad}); config key model.n_epochs: 'ten' is not of type 'integer' "
                    f"(set in {bad})")
    files = [str(REPO / "config" / "config.yaml"), str(REPO / "config" / "smoke.yaml"), str(bad)]
    # from another working directory (-s/-d), as a relative --configfile is resolved there
    proc = _run(["-n", "paper", "-s", str(REPO / "Snakefile"), "-d", str(REPO), "--workflow-profile",
                 str(REPO / "profiles" / "default"), "--configfile", *files, *extra],
                cwd=tmp_path, timeout=120)
    assert proc.returncode == 1, proc.output[-3000:]
    lines = _messages(proc.output)
    assert len(lines) == 1 and lines[0].startswith(expected), proc.output[-3000:]
    if case == "schema-via-config":
        assert lines[0].endswith("(set in --config)")


def test_bad_config_without_the_workflow_profile_still_names_the_file(tmp_path):
    """With the workflow profile switched off the Snakefile's own validation reports the key and
    the file that set it (Snakemake's WorkflowError, no traceback)."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("eval:\n  tau: 1.5\n")
    proc = _run(["-n", "paper", "--workflow-profile", "none", "--cores", "1",
                 "--configfile", *SMOKE_FILES, str(bad)], timeout=120)
    assert proc.returncode == 1
    assert ("config key eval.tau: 1.5 is greater than or equal to the maximum of 1 "
            f"(set in {bad})") in proc.output, proc.output[-3000:]
    assert "Traceback" not in proc.output


def _copy_checkout(dest: Path) -> Path:
    """The checkout's files (mtimes kept) and its Snakemake metadata, without results or git."""
    skip = {".git", ".venv", "results", ".snakemake", "__pycache__", ".pytest_cache", "data"}
    shutil.copytree(REPO, dest, ignore=lambda d, names: [n for n in names if n in skip])
    shutil.copytree(REPO / ".snakemake" / "metadata", dest / ".snakemake" / "metadata")
    return dest


@pytest.mark.slow
def test_copied_checkout_and_other_directory_schedule_nothing(smoke_run, tmp_path):
    """Inputs are recorded relative to the working directory: a copy of the checkout (with the
    results' metadata), or running it from elsewhere with -s/-d, finds everything up to date."""
    copy = _copy_checkout(tmp_path / "moved" / "ctpaper")
    files = [str(copy / "config" / "config.yaml"), str(copy / "config" / "smoke.yaml"),
             str(smoke_run["overlay"])]
    here = _run(["-n", "paper", "--configfile", *files], cwd=copy, timeout=300)
    assert here.returncode == 0 and "Nothing to be done" in here.output, here.output[-3000:]
    elsewhere = _run(["-n", "paper", "-s", str(copy / "Snakefile"), "-d", str(copy),
                      "--configfile", *files], cwd=tmp_path, timeout=300)
    assert elsewhere.returncode == 0 and "Nothing to be done" in elsewhere.output, \
        elsewhere.output[-3000:]


@pytest.mark.slow
def test_whitespace_in_the_checkout_path_is_refused_up_front(tmp_path):
    copy = tmp_path / "my project"
    shutil.copytree(REPO, copy, ignore=lambda d, names: [n for n in names if n in {
        ".git", ".venv", "results", ".snakemake", "__pycache__", "data"}])
    proc = _run(["-n", "paper", "--cores", "1"], cwd=copy, timeout=300)
    assert proc.returncode != 0
    assert "contains whitespace" in proc.output and "without spaces" in proc.output, proc.output
    assert "Traceback" not in proc.output


@pytest.fixture
def private_results(smoke_run, tmp_path_factory):
    """A copy of the smoke run's results (mtimes kept, 33 MB) with its own overlay and working
    directory, one per test: a test may break and rebuild files here without changing what the
    next test sees."""
    root = tmp_path_factory.mktemp("faults")
    results = root / "results"
    shutil.copytree(smoke_run["results"], results)
    overlay = _overlay(root / "overlay.yaml", smoke_run["overlay"], **{"paths.results": str(results)})
    return {"root": root, "results": results, "overlay": overlay}


def _private_run(private, targets, *extra, timeout=900):
    return smk.run([*targets, "--cores", "1", *extra], private["root"] / "wd",
                   [*map(Path, SMOKE_FILES), private["overlay"]], timeout=timeout)


@pytest.mark.slow
def test_corrupt_model_is_refused_by_name_then_rebuilt(private_results):
    R = private_results["results"]
    model = R / "models" / "ls" / "seed2025" / "bl" / "model.pt"
    perf = R / "eval" / "ls" / "seed2025" / "performance.parquet"
    _flip_byte(model)
    perf.unlink()
    proc = _private_run(private_results, [str(perf)])
    assert proc.returncode != 0
    assert f"{model}: corrupt (sha256" in proc.output and "delete it" in proc.output, \
        proc.output[-3000:]
    assert "Traceback" not in proc.output and not perf.exists()
    # the message's advice works: delete the file, rerun, and the chain is rebuilt
    model.unlink()
    proc = _private_run(private_results, [str(perf)])
    assert proc.returncode == 0, proc.output[-3000:]
    assert load_model(model)[1]["model"] == "bl"
    assert read_parquet(perf)["n_pred_classes"].min() >= 2


@pytest.mark.slow
def test_truncated_parquet_and_nan_model_are_never_used(private_results):
    R = private_results["results"]
    ces = R / "eval" / "ls" / "seed2025" / "free" / "ces.parquet"
    table = R / "tables" / "table1.csv"
    _truncate(ces)
    table.unlink()
    proc = _private_run(private_results, [str(table)])
    assert proc.returncode != 0 and not table.exists()
    assert f"{ces}: corrupt" in proc.output and "Traceback" not in proc.output, proc.output[-3000:]
    # a model whose weights are NaN (recorded with a valid checksum) is refused too
    model = R / "models" / "ls" / "seed2025" / "ct_free" / "model.pt"
    net, spec = load_model(model)
    with torch.no_grad():
        net.fc2.weight.fill_(float("nan"))
    save_model(net, model, spec)
    perf = R / "eval" / "ls" / "seed2025" / "performance.parquet"
    perf.unlink()
    proc = _private_run(private_results, [str(perf)])
    assert proc.returncode != 0 and not perf.exists()
    assert f"{model}: model parameters fc2.weight are non-finite" in proc.output, proc.output[-3000:]
    assert "Traceback" not in proc.output


def test_a_bad_key_is_attributed_to_the_file_whose_value_is_used():
    """The file named for a bad key is the last one that sets that key, not one that only sets a
    sibling in the same section."""
    from ctpaper.preflight import key_source

    sources = [("config.yaml", {"eval": {"tau": 1.5, "T": 10}, "datasets": ["ls"]}),
               ("overlay.yaml", {"eval": {"T": 5}}), ("--config", {"datasets": ["ls", "lsat"]})]
    assert key_source("eval.tau", sources) == "config.yaml"
    assert key_source("eval.T", sources) == "overlay.yaml"
    assert key_source("eval", sources) == "overlay.yaml"
    assert key_source("datasets.1", sources) == "--config"
    assert key_source("model.lr", sources) is None
