"""Helpers for the tests that run Snakemake as a user does (tests/test_dag.py, tests/test_slurm_cluster.py).

Every Snakemake run goes through ``run()``: the project root as the current directory (so that
``--profile profiles/...`` resolves as documented), ``--directory <tmp>`` so that ``.snakemake/``,
relative result paths and SLURM logs stay in a temporary directory, explicit ``--configfile``s
(config/config.yaml first, then overlays) and a hard ``timeout -k``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config" / "config.yaml"
SMOKE = ROOT / "config" / "smoke.yaml"
SLURM_PROFILE = "profiles/slurm"
TEST_PROFILE = "tests/slurm/profile"
CLUSTER_SH = ROOT / "tests" / "slurm" / "cluster.sh"

sys.path.insert(0, str(ROOT / "src"))
from ctpaper import config as C  # noqa: E402


def snakemake_cmd() -> list[str]:
    venv = ROOT / ".venv" / "bin" / "snakemake"
    if venv.exists():
        return [str(venv)]
    exe = Path(sys.executable).with_name("snakemake")
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-m", "snakemake"]


def write_overlay(path: Path, overlay: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(overlay, sort_keys=False))
    return path


def merged_config(*files: Path) -> dict:
    """The config Snakemake sees for these --configfile arguments (validated)."""
    return C.load(*files)


def run(args: list[str], workdir: Path, configfiles: list[Path] | None = None, *,
        timeout: int = 300, env: dict | None = None, background: bool = False):
    """Run snakemake ``args`` from the project root with ``--directory workdir``.

    Targets belong in ``args`` (they are placed before ``--configfile``, which takes several
    values). Returns a CompletedProcess with ``.output`` = stdout + stderr, or a Popen when
    ``background``.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = ["timeout", "-k", "10", str(timeout), *snakemake_cmd(), *args, "--directory", str(workdir)]
    if configfiles:
        cmd += ["--configfile", *map(str, configfiles)]
    full_env = {**os.environ, **(env or {})}
    # the user's own default profile (SNAKEMAKE_PROFILE) must not leak into the tests
    full_env.pop("SNAKEMAKE_PROFILE", None)
    if background:
        return subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    proc = subprocess.run(cmd, cwd=ROOT, env=full_env, capture_output=True, text=True)
    proc.output = proc.stdout + proc.stderr
    proc.cmd = " ".join(cmd)
    return proc


def check(proc, what: str = "snakemake"):
    assert proc.returncode == 0, f"{what} failed (exit {proc.returncode}):\n{proc.cmd}\n{proc.output[-6000:]}"
    return proc


# ---- parsing Snakemake's dry-run output ---------------------------------------------------------
_RULE = re.compile(r"^(?P<indent> *)(?P<local>local)?rule (?P<rule>\w+):$")
_GROUP = re.compile(r"Group job (?P<group>\S+) \(jobs in")


def job_stats(output: str) -> dict[str, int]:
    """{rule: number of jobs} from the first 'Job stats' table of a run or dry run."""
    text = output.replace("\r", "")
    m = re.search(r"Job stats:\njob\s+count\n-+\s+-+\n((?:\S+\s+\d+\n)+?)total\s+(\d+)", text)
    if not m:
        if re.search(r"Nothing to be done", text):
            return {}
        raise AssertionError(f"no 'Job stats' table in the output:\n{text[-4000:]}")
    stats = {}
    for line in m.group(1).splitlines():
        rule, count = line.split()
        stats[rule] = int(count)
    assert sum(stats.values()) == int(m.group(2)), "job stats do not add up"
    return stats


@dataclass
class Job:
    rule: str
    local: bool
    fields: dict[str, str] = field(default_factory=dict)
    group: int | None = None  # index of the group job it belongs to (dry-run order), if any

    @property
    def resources(self) -> dict[str, str]:
        out = {}
        for item in self.fields.get("resources", "").split(", "):
            if "=" in item:
                k, v = item.split("=", 1)
                out[k.strip()] = v.strip()
        return out

    @property
    def threads(self) -> int:
        return int(self.fields.get("threads", "1"))  # Snakemake prints threads only when > 1

    @property
    def wildcards(self) -> str:
        return self.fields.get("wildcards", "")


def jobs(output: str) -> list[Job]:
    """Every job block ('rule x:' / 'localrule x:' + indented 'key: value' lines) of a dry run,
    also the member jobs of a group job (indented under 'Group job <name> (jobs in ...):')."""
    out: list[Job] = []
    current: Job | None = None
    group, n_groups = None, 0
    for line in output.replace("\r", "").splitlines():
        if _GROUP.search(line):
            group, n_groups = n_groups, n_groups + 1
            current = None
            continue
        m = _RULE.match(line)
        if m:
            indent = m["indent"]
            current = Job(m["rule"], bool(m["local"]), group=group if indent else None)
            if not indent:
                group = None
            out.append(current)
            continue
        if current is not None and line.startswith(indent + "    ") and ": " in line:
            k, v = line.strip().split(": ", 1)
            current.fields[k] = v
        elif current is not None and not line.startswith(indent + "    "):
            current = None
    return out


def cluster_jobs(jobs_: list[Job], local_rules: set[str]) -> int:
    """SLURM jobs of a dry run: one per group job plus one per ungrouped job of a non-local rule."""
    groups = {j.group for j in jobs_ if j.group is not None}
    return len(groups) + sum(1 for j in jobs_ if j.group is None and j.rule not in local_rules)


def local_rules() -> set[str]:
    """Rules marked `localrule: True` in workflow/rules/*.smk (they run beside Snakemake)."""
    out = set()
    for path in (ROOT / "workflow" / "rules").glob("*.smk"):
        blocks = re.split(r"^\s*rule (\w+):$", path.read_text(), flags=re.M)
        out |= {name for name, body in zip(blocks[1::2], blocks[2::2])
                if re.search(r"^\s+localrule: True$", body, re.M)}
    return out


def list_rules(workdir: Path, configfiles: list[Path]) -> list[str]:
    proc = check(run(["--list-rules"], workdir, configfiles, timeout=120), "snakemake --list-rules")
    return [ln.strip() for ln in proc.stdout.splitlines() if re.fullmatch(r"\s*\w+\s*", ln)]


def profile(name: str) -> dict:
    with open(ROOT / name / "config.yaml") as fh:
        return yaml.safe_load(fh)


def have_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def apt_install(*packages: str, timeout: int = 600) -> tuple[bool, str]:
    """apt-get install ``packages`` (root only); (ok, message)."""
    if not have_root():
        return False, "not root"
    if not shutil.which("apt-get"):
        return False, "apt-get not available"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    base = ["timeout", "-k", "10", str(timeout), "apt-get", "-q", "-y", "-o", "DPkg::Lock::Timeout=300"]
    proc = subprocess.run([*base, "install", "--no-install-recommends", *packages], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        subprocess.run([*base, "update"], env=env, capture_output=True, text=True)
        proc = subprocess.run([*base, "install", "--no-install-recommends", *packages], env=env,
                              capture_output=True, text=True)
    return proc.returncode == 0, (proc.stdout + proc.stderr)[-2000:]


# ---- many dry runs, fast -------------------------------------------------------------------------
def _dry_run_child(args: list[str], out_path: str) -> None:
    """Run ``snakemake args`` in this (forked) process with stdout/stderr going to ``out_path``."""
    fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.environ.pop("SNAKEMAKE_PROFILE", None)
    os.chdir(ROOT)
    from snakemake.cli import main

    try:
        main(args)
    except SystemExit as exc:
        os._exit(int(exc.code or 0) if isinstance(exc.code, int) else 1)
    os._exit(0)


def forked_dry_runs(arg_lists: list[list[str]], out_dir: Path, processes: int = 2
                    ) -> list[tuple[int, str]]:
    """``[(exit code, output)]`` of ``snakemake -n`` for each argument list, run in processes
    forked from this one (Snakemake and the workflow's imports are loaded once, which makes a dry
    run ~4x cheaper than a fresh interpreter). At most ``processes`` run at a time."""
    import snakemake.cli  # noqa: F401 - imported before forking
    import ctpaper.training  # noqa: F401
    import ctpaper.evaluation.attributions  # noqa: F401

    out_dir.mkdir(parents=True, exist_ok=True)
    results: list[tuple[int, str] | None] = [None] * len(arg_lists)
    running: dict[int, tuple[int, Path]] = {}
    pending = list(enumerate(arg_lists))
    while pending or running:
        while pending and len(running) < processes:
            i, args = pending.pop(0)
            out = out_dir / f"dry{i}.log"
            pid = os.fork()
            if pid == 0:  # child
                try:
                    _dry_run_child(["-n", "--nolock", *args], str(out))
                finally:
                    os._exit(1)
            running[pid] = (i, out)
        pid, status = os.wait()
        if pid in running:
            i, out = running.pop(pid)
            results[i] = (os.waitstatus_to_exitcode(status), out.read_text())
    return results  # type: ignore[return-value]
