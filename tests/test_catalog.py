"""The workflow as the Snakemake ecosystem expects it: catalog layout, `module` use, format check.

The catalog's "standardized usage" needs workflow/Snakefile, config/README.md,
.snakemake-workflow-catalog.yml and a license; users deploy the workflow as a Snakemake module
(snakedeploy writes `module ...: snakefile: github(...)`), tested here with a local path.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent / "slurm"))
import smk  # noqa: E402  (tests/slurm/smk.py)
from smk import CONFIG, ROOT, SMOKE  # noqa: E402
from test_dag import expected_jobs  # noqa: E402


def test_catalog_layout():
    # workflow/Snakefile is the same workflow as the top-level Snakefile users run from the root
    assert 'include: "../Snakefile"' in (ROOT / "workflow" / "Snakefile").read_text()
    assert (ROOT / "config" / "README.md").is_file() and (ROOT / "config" / "config.yaml").is_file()
    usage = yaml.safe_load((ROOT / ".snakemake-workflow-catalog.yml").read_text())["usage"]
    assert set(usage) >= {"mandatory-flags", "software-stack-deployment", "report"}
    assert any(usage["software-stack-deployment"].values())
    assert usage["report"] is True
    # the license file says what pyproject.toml declares
    assert 'license = {text = "MIT"}' in (ROOT / "pyproject.toml").read_text()
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


MODULE_SNAKEFILE = """\
    configfile: "{config}"

    module ctpaper:
        snakefile: "{snakefile}"
        config: config

    use rule * from ctpaper as ctpaper_*
"""


def test_workflow_runs_as_a_module(tmp_path, raw_mirror):
    """A user's workflow in another directory uses ours as a module: the whole DAG resolves with
    prefixed rule names and the same job counts, and a real job (scripts, library, logs) runs."""
    user = tmp_path / "user"
    user.mkdir()
    (user / "Snakefile").write_text(textwrap.dedent(MODULE_SNAKEFILE).format(
        config=CONFIG, snakefile=ROOT / "workflow" / "Snakefile"))
    overlay = smk.write_overlay(user / "overlay.yaml", {"datasets": ["ls", "adult"]})
    configs = [CONFIG, SMOKE, overlay]

    def run(*args, timeout=300):
        cmd = ["timeout", "-k", "10", str(timeout), *smk.snakemake_cmd(), *args, "--cores", "1",
               "--configfile", *map(str, configs)]
        proc = subprocess.run(cmd, cwd=user, capture_output=True, text=True,
                              env={**smk.os.environ, "CTPAPER_RAW_MIRROR": str(raw_mirror)})
        proc.output = proc.stdout + proc.stderr
        proc.cmd = " ".join(cmd)
        return smk.check(proc, "snakemake (module)")

    dry = run("ctpaper_all", "-n")
    assert "not present in the Snakefile" not in dry.output, dry.output[-3000:]
    want = expected_jobs(smk.merged_config(*configs), "all")
    assert smk.job_stats(dry.output) == {f"ctpaper_{r}": n for r, n in want.items()}

    run("results/smoke/data/adult/meta.json", timeout=600)
    results = user / "results" / "smoke"
    assert (results / "data" / "adult" / "meta.json").is_file()
    assert (results / "raw" / "adult" / "manifest.json").is_file()
    assert "rule=ctpaper_prepare_data" in (results / "logs" / "prepare_data" / "adult.log").read_text()


def test_snakefmt_check():
    """Every Snakemake file is formatted as snakefmt (pinned in requirements.txt) formats it."""
    exe = Path(sys.executable).with_name("snakefmt")
    if not exe.exists():
        pytest.fail("snakefmt is not installed: pip install -r requirements.txt -c constraints.txt")
    proc = subprocess.run(["timeout", "-k", "5", "120", str(exe), "--check", "--diff", "."], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, (f"snakefmt would reformat files; run `snakefmt .`:\n"
                                  f"{(proc.stdout + proc.stderr)[-4000:]}")


def test_config_readme_is_current():
    """config/README.md is what workflow/config_readme.py generates from the schema and defaults,
    so every config key (and only those) is documented with its current default."""
    sys.path.insert(0, str(ROOT / "workflow"))
    import config_readme

    schema = yaml.safe_load(config_readme.SCHEMA.read_text())
    config = yaml.safe_load(config_readme.CONFIG.read_text())
    text = config_readme.render(schema, config)  # fails naming keys without a description
    assert (ROOT / "config" / "README.md").read_text() == text, \
        f"config/README.md is not current: run `{config_readme.COMMAND}` (or `make config-docs`)"
    for path, *_ in config_readme.keys(schema, config):
        assert f"`{path}`" in text


def test_config_readme_names_undocumented_keys():
    sys.path.insert(0, str(ROOT / "workflow"))
    import config_readme

    schema = yaml.safe_load(config_readme.SCHEMA.read_text())
    schema["properties"]["eval"]["properties"]["new_key"] = {"type": "integer"}
    with pytest.raises(ValueError, match=r"eval\.new_key.*python workflow/config_readme\.py"):
        config_readme.render(schema, yaml.safe_load(config_readme.CONFIG.read_text()))


def test_ci_definition_passes_actionlint_and_runs_the_checks():
    """.github/workflows/ci.yml is valid for GitHub Actions (actionlint, pinned in requirements.txt)
    and runs the full-config dry run through the SLURM profile, the lint, the format check, the
    config/README.md check and `make test-fast`."""
    ci = ROOT / ".github" / "workflows" / "ci.yml"
    exe = Path(sys.executable).with_name("actionlint")
    if not exe.exists():
        pytest.fail("actionlint is not installed: pip install -r requirements.txt -c constraints.txt")
    proc = subprocess.run(["timeout", "-k", "5", "120", str(exe), "-no-color", str(ci)], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, f"actionlint:\n{proc.stdout}{proc.stderr}"
    steps = [s for job in yaml.safe_load(ci.read_text())["jobs"].values() for s in job["steps"]]
    runs = "\n".join(s.get("run", "") for s in steps)
    for command in ("snakemake -n --profile profiles/slurm --configfile config/config.yaml",
                    "snakemake --lint", "snakefmt --check .", "workflow/config_readme.py --check",
                    "make test-fast", "make env"):
        assert command in runs, f"ci.yml does not run `{command}`"


def test_actionlint_rejects_a_broken_workflow(tmp_path):
    """The check above can fail: actionlint flags an unknown key and a bad expression."""
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    stepz: []\n")
    proc = subprocess.run([str(Path(sys.executable).with_name("actionlint")), "-no-color", str(bad)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "stepz" in proc.stdout, proc.stdout
