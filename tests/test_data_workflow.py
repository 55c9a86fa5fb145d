"""The data stage through Snakemake: smoke config end to end, and a corrupt mirror failing cleanly."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from ctpaper.config import ROOT as REPO
from ctpaper.data.raw import MIRROR_ENV

SMOKE_SIZES = {"ls": (3600, 900), "adult": (26049, 6512), "mnist": (11000, 10000)}
ADULT_SHA = "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d"


def snakemake_data(workdir, mirror, *extra_args):
    """Run the ``data`` target of the smoke config in ``workdir`` (its own results and .snakemake)."""
    overlay = workdir / "overlay.yaml"
    overlay.write_text(yaml.safe_dump({"paths": {"raw_dir": str(workdir / "raw"), "download": False}}))
    env = dict(os.environ, **{MIRROR_ENV: str(mirror)}, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--cores", "2", *extra_args, "data", "--configfile", str(REPO / "config" / "config.yaml"),
           str(REPO / "config" / "smoke.yaml"), str(overlay)]
    return subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_smoke_data_stage(smoke_run):
    """The data stage of the session's smoke run (conftest.smoke_run): sizes, logs, benchmarks,
    raw files from the mirror, and nothing left to do for the ``data`` target."""
    from conftest import smoke_snakemake

    results = smoke_run["results"]
    for dataset, (n_pool, n_test) in SMOKE_SIZES.items():
        meta = json.loads((results / "data" / dataset / "meta.json").read_text())
        assert (meta["n_pool"], meta["n_test"]) == (n_pool, n_test)
        assert (results / "benchmarks" / "prepare_data" / f"{dataset}.tsv").exists()
        assert "slurm_job_id=" in (results / "logs" / "prepare_data" / f"{dataset}.log").read_text()
    for dataset in ("adult", "mnist"):
        manifest = json.loads((results / "raw" / dataset / "manifest.json").read_text())
        assert {e["source"] for e in manifest.values()} == {"mirror"}
    assert not (results / "raw" / "ls").exists()  # synthetic data has no raw files
    again = smoke_snakemake(["-n", "data"], smoke_run["overlay"], smoke_run["env"], timeout=300)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.slow
def test_corrupt_mirror_fails_cleanly(tmp_path, raw_mirror):
    mirror = tmp_path / "mirror"
    (mirror / "adult").mkdir(parents=True)
    (mirror / "adult" / "adult.data").write_bytes(
        (raw_mirror / "adult" / "adult.data").read_bytes().replace(b"State-gov", b"State-Gov", 1))
    (mirror / "mnist").symlink_to(raw_mirror / "mnist")
    work = tmp_path / "work"
    work.mkdir()
    run = snakemake_data(work, mirror)
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert "adult/adult.data" in output and ADULT_SHA in output and "sha256 mismatch" in output
    assert str(mirror / "adult" / "adult.data") in output
    assert not (work / "results" / "smoke" / "data" / "adult").exists()
    assert not (work / "results" / "smoke" / "raw" / "adult" / "manifest.json").exists()
