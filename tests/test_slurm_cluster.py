"""The data stage on a real one-node SLURM cluster, through `--profile profiles/slurm`.

tests/slurm/cluster.sh installs (apt) and starts slurmctld + slurmd + munge on this machine. The
cluster has no accounting storage, so the test profile tests/slurm/profile switches the plugin's
status queries to squeue (with sacct the plugin would wait forever). Each DAG level costs ~20 s of
status polling: the workflow is kept to the data stage of two datasets (one generated, one real).
Skipped only when not root or when slurm/munge cannot be installed with apt.
"""

from __future__ import annotations

import contextlib
import fcntl
import filecmp
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ctpaper.data.raw import MIRROR_ENV

sys.path.insert(0, str(Path(__file__).resolve().parent / "slurm"))
import smk  # noqa: E402  (tests/slurm/smk.py)
from smk import CLUSTER_SH, CONFIG, SLURM_PROFILE, SMOKE, TEST_PROFILE  # noqa: E402

pytestmark = pytest.mark.slurm

# Held by the session that uses the cluster; tests/slurm/cluster.sh stop refuses to stop it meanwhile.
LOCK = Path(os.environ.get("CTPAPER_SLURM_LOCK", "/run/lock/ctpaper-slurm-tests.lock"))
DATASETS = ["ls", "adult"]  # one generated dataset, one that needs fetch_raw: two DAG levels


def cluster(cmd: str, timeout: int = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "CTPAPER_SLURM_LOCK": str(LOCK), "CTPAPER_SLURM_LOCK_HELD": "1"}
    return subprocess.run(["timeout", "-k", "10", str(timeout), "bash", str(CLUSTER_SH), cmd],
                          capture_output=True, text=True, env=env)


@contextlib.contextmanager
def exclusive(lock_path: Path, timeout: float):
    """One test session at a time uses (and may start and stop) the machine's test cluster."""
    with open(lock_path, "w") as fh:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"another test session held {lock_path} for {timeout:.0f} s")
                time.sleep(2)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def slurm_cluster():
    if not smk.have_root():
        pytest.skip("the one-node SLURM cluster needs root (daemons, munge key, /etc/slurm)")
    inst = cluster("install", timeout=900)
    if inst.returncode != 0:
        pytest.skip(f"slurm/munge could not be installed with apt: {(inst.stdout + inst.stderr)[-500:]}")
    with exclusive(LOCK, timeout=900):
        yield from _running_cluster()


def _running_cluster():
    started = False
    if cluster("status", timeout=30).returncode != 0:
        start = cluster("start", timeout=180)
        assert start.returncode == 0, f"cluster.sh start failed:\n{start.stdout}{start.stderr}"
        started = True
    # squeue only sees finished jobs for MinJobAge seconds; the plugin falls back to sacct (and hangs
    # without accounting storage) unless MinJobAge >= 3x its first status-check delay
    conf = subprocess.run(["timeout", "-k", "5", "30", "scontrol", "show", "config"],
                          capture_output=True, text=True).stdout
    min_job_age = int(re.search(r"MinJobAge\s*=\s*(\d+)", conf).group(1))
    init = smk.profile(TEST_PROFILE)["slurm-init-seconds-before-status-checks"]
    assert min_job_age >= 3 * init, (min_job_age, init)
    yield
    if started:
        stop = cluster("stop", timeout=120)
        assert stop.returncode == 0, stop.stderr


def _overlay(wd: Path, **paths) -> Path:
    # relative paths: the SLURM run and the local run see the same config (same config hashes)
    return smk.write_overlay(wd / "overlay.yaml", {
        "datasets": DATASETS,
        "paths": {"results": "results", "raw_dir": "raw", "download": False, **paths}})


def _slurm_job(job_id: str) -> dict[str, str]:
    out = subprocess.run(["timeout", "-k", "5", "30", "scontrol", "show", "job", job_id],
                         capture_output=True, text=True).stdout
    return dict(re.findall(r"(\w+)=(\S+)", out))


def _first_log_lines(results: Path) -> dict[str, str]:
    logs = sorted((results / "logs").rglob("*.log"))
    return {str(p.relative_to(results)): (p.read_text().splitlines() or [""])[0] for p in logs}


def test_data_stage_on_slurm_matches_local_run(slurm_cluster, raw_mirror, tmp_path):
    env = {MIRROR_ENV: str(raw_mirror)}
    on_slurm, local = tmp_path / "slurm", tmp_path / "local"
    files_slurm = [CONFIG, SMOKE, _overlay(on_slurm)]
    files_local = [CONFIG, SMOKE, _overlay(local)]
    # the local reference runs while the SLURM run polls
    proc_slurm = smk.run(["data", "--profile", SLURM_PROFILE, "--profile", TEST_PROFILE], on_slurm,
                         files_slurm, timeout=420, env=env, background=True)
    proc_local = smk.run(["data", "--profile", "profiles/default", "--cores", "1"], local,
                         files_local, timeout=420, env=env)
    out_slurm = proc_slurm.communicate()[0]
    smk.check(proc_local, "local run")
    assert proc_slurm.returncode == 0, f"SLURM run failed:\n{out_slurm[-6000:]}"

    # every job ran as a SLURM job: first log line has a real job id that SLURM ran to completion
    stats = smk.job_stats(out_slurm)
    expected_jobs = {r: n for r, n in stats.items() if r != "data"}
    first = _first_log_lines(on_slurm / "results")
    assert len(first) == sum(expected_jobs.values()), (first, stats)
    submitted = set(re.findall(r"submitted with SLURM jobid (\d+)", out_slurm))
    for log, line in first.items():
        m = re.search(r"slurm_job_id=(\S+)", line)
        assert m and m.group(1) != "none", f"{log} did not run under SLURM: {line!r}"
        job_id = m.group(1)
        assert job_id in submitted, f"{log}: job {job_id} was not submitted by this run"
        info = _slurm_job(job_id)
        assert info.get("JobState") == "COMPLETED", (log, info)
        assert info.get("Partition") == smk.profile(TEST_PROFILE)["default-resources"]["slurm_partition"]
    for log in _first_log_lines(local / "results").values():
        assert "slurm_job_id=none" in log

    # byte-identical outputs (no field legitimately differs for the data stage)
    def outputs(root: Path):
        return sorted(str(p.relative_to(root)) for sub in ("raw", "data")
                      for p in (root / sub).rglob("*") if p.is_file())

    got, want = outputs(on_slurm / "results"), outputs(local / "results")
    assert got == want and got, (got, want)
    assert any(f.endswith(".parquet") for f in got) and any(f.endswith(".json") for f in got)
    _, mismatch, errors = filecmp.cmpfiles(on_slurm / "results", local / "results", got, shallow=False)
    assert not mismatch and not errors, f"outputs differ between SLURM and local runs: {mismatch + errors}"


def test_failing_job_is_reported_and_leaves_no_output(slurm_cluster, raw_mirror, tmp_path):
    """A corrupted raw file: fetch_raw fails on SLURM, Snakemake exits non-zero, nothing is left."""
    bad_mirror = tmp_path / "mirror"
    shutil.copytree(raw_mirror / "adult", bad_mirror / "adult")
    target = bad_mirror / "adult" / "adult.data"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    wd = tmp_path / "wd"
    (wd / "raw").mkdir(parents=True)  # the project raw dir exists and is empty
    overlay = smk.write_overlay(wd / "overlay.yaml", {
        "datasets": ["adult"], "paths": {"results": "results", "raw_dir": "raw", "download": False}})
    proc = smk.run(["data", "--profile", SLURM_PROFILE, "--profile", TEST_PROFILE], wd,
                   [CONFIG, SMOKE, overlay], timeout=300, env={MIRROR_ENV: str(bad_mirror)})
    assert proc.returncode != 0, proc.output[-4000:]
    assert "Error in rule fetch_raw" in proc.output, proc.output[-4000:]
    results = wd / "results"
    assert not (results / "data" / "adult").exists()
    assert not (results / "raw" / "adult" / "manifest.json").exists()
    log = (results / "logs" / "fetch_raw" / "adult.log").read_text()
    job_id = re.search(r"slurm_job_id=(\S+)", log.splitlines()[0]).group(1)
    assert job_id != "none"
    assert _slurm_job(job_id).get("JobState") == "FAILED"
    assert "adult.data" in log and "sha256 mismatch" in log, log
    # only fetch_raw was submitted: prepare_data never started on a failed input
    assert len(re.findall(r"submitted with SLURM jobid", proc.output)) == 1, proc.output[-4000:]
