"""Provenance and compute of a pipeline run, for the paper's appendix.

``collect`` records the config hash, package versions, the git commit (and whether the working tree
had uncommitted changes), the date of the run (UTC; the paper's title block shows it), the
Python/platform, and aggregates the Snakemake benchmark files under
``{results}/benchmarks/{rule}/...tsv`` per rule: number of jobs, summed and maximum wall time,
peak resident memory (max_rss, MB) and summed CPU time. A benchmark file holds the most recent run of
its job, so the totals describe the run that produced the current outputs (jobs rerun several times
count once). Jobs that run after the provenance rule (the paper's own values/rendering) are not
included.
"""

from __future__ import annotations

import logging
import math
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping

import pandas as pd

from ctpaper.config import config_hash
from ctpaper.runtime import git_commit, package_versions

log = logging.getLogger(__name__)

EXTRA_PACKAGES = ("pypandoc_binary", "typst", "pyyaml", "jsonschema")


def _git_dirty(root: Path) -> bool | None:
    try:
        out = subprocess.run(["git", "-C", str(root), "status", "--porcelain"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return bool(out.stdout.strip()) if out.returncode == 0 else None


def versions() -> dict[str, str]:
    out = package_versions(EXTRA_PACKAGES)
    try:
        import pypandoc

        out["pandoc"] = pypandoc.get_pandoc_version()
    except Exception:  # noqa: BLE001 - pandoc missing is recorded, not fatal here
        out["pandoc"] = "absent"
    return dict(sorted(out.items()))


def _num(x) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return math.nan
    return v


def read_benchmarks(bench_dirs: Mapping[str, str | Path]) -> pd.DataFrame:
    """One row per benchmark file (and repeat) of ``{rule: directory of its benchmark files}``
    (the caller says which rule a directory belongs to; a missing directory has no rows): rule,
    job (rule/file name without .tsv), wall_s, max_rss_mb, cpu_s."""
    rows = []
    for rule, bench_dir in sorted(bench_dirs.items()):
        rows += _benchmark_rows(rule, Path(bench_dir))
    return pd.DataFrame(rows, columns=["rule", "job", "wall_s", "max_rss_mb", "cpu_s"])


def _benchmark_rows(rule: str, bench_dir: Path) -> list[dict]:
    """The rows of :func:`read_benchmarks` for one rule's benchmark directory."""
    rows = []
    for path in sorted(bench_dir.rglob("*.tsv")) if bench_dir.is_dir() else []:
        rel = path.relative_to(bench_dir)
        try:
            df = pd.read_csv(path, sep="\t")
        except (pd.errors.EmptyDataError, pd.errors.ParserError) as err:
            log.warning("unreadable benchmark file %s: %s", path, err)
            continue
        for _, r in df.iterrows():
            rows.append({"rule": rule, "job": f"{rule}/{rel.with_suffix('')}", "wall_s": _num(r.get("s")),
                         "max_rss_mb": _num(r.get("max_rss")), "cpu_s": _num(r.get("cpu_time"))})
    return rows


def aggregate(bench: pd.DataFrame) -> list[dict]:
    """Per rule: jobs, total and max wall time, peak max_rss, total CPU time (sorted by wall time)."""
    out = []
    for rule, g in bench.groupby("rule"):
        out.append({"rule": rule, "jobs": int(g["job"].nunique()),
                    "wall_s_total": float(g["wall_s"].sum()),
                    "wall_s_max": float(g["wall_s"].max()),
                    "max_rss_mb": float(g["max_rss_mb"].max()) if g["max_rss_mb"].notna().any()
                    else math.nan,
                    "cpu_s_total": float(g["cpu_s"].sum())})
    return sorted(out, key=lambda r: -r["wall_s_total"])


def collect(config: dict, bench_dirs: Mapping[str, str | Path], root: str | Path | None = None) -> dict:
    """Provenance of a run: config hash, git commit of ``root`` (the checkout; default: the one
    holding this module), versions, and the compute of ``bench_dirs`` ({rule: benchmark dir})."""
    root = Path(root) if root else Path(__file__).resolve().parents[3]
    bench = read_benchmarks(bench_dirs)
    rules = aggregate(bench)
    return {
        "config_hash": config_hash(config),
        "git_commit": git_commit(root),
        "git_dirty": _git_dirty(root),
        "date": datetime.now(timezone.utc).date().isoformat(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions(),
        "rules": rules,
        "n_jobs": int(len(bench)),
        "total_cpu_s": float(bench["cpu_s"].sum()) if len(bench) else 0.0,
        "total_wall_s": float(bench["wall_s"].sum()) if len(bench) else 0.0,
        "peak_rss_mb": float(bench["max_rss_mb"].max()) if bench["max_rss_mb"].notna().any()
        else math.nan,
    }


def write(config: dict, bench_dirs: Mapping[str, str | Path], out_path: str | Path,
          root: str | Path | None = None) -> dict:
    """:func:`collect` written to ``out_path`` (JSON)."""
    from ctpaper.runtime import write_json

    prov = collect(config, bench_dirs, root)
    write_json(prov, out_path)
    log.info("provenance: %d benchmarked jobs in %d rules, %.0f s CPU", prov["n_jobs"],
             len(prov["rules"]), prov["total_cpu_s"])
    return prov
