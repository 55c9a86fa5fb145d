"""CPU time of the robustness studies per part, from a run's Snakemake benchmark files (issue 13).

Parts: the seed study (variant ``base``: the extra training seeds at the published settings) and
every sensitivity variant, each split into data / training / evaluation; for comparison the main
results' training and evaluation (train_model, evaluate_ces, robustness, performance). Prints CPU
seconds (the benchmark's ``cpu_time``; wall time is meaningless on a shared machine), the peak RSS
and the ratio of each part to the main results, which is what extrapolates to another config:
a part's full-config CPU ~ its ratio x the main results' full-config CPU.

Usage: .venv/bin/python bench/bench_studies.py results/smoke/benchmarks
"""

from __future__ import annotations

import csv
import sys
from collections import defaultdict
from pathlib import Path

STAGES = {"prepare_data": "data", "train_model": "train", "evaluate_ces": "eval", "robustness": "eval",
          "performance": "eval",
          "train": "train", "evaluate": "eval"}   # study_train / study_evaluate: one job per variant x data set


def read(path: Path) -> tuple[float, float]:
    """(cpu seconds, peak RSS MB) of one benchmark file (its last repetition)."""
    with open(path) as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    r = rows[-1]
    return float(r["cpu_time"]), float(r["max_rss"]) if r["max_rss"] not in ("", "-") else 0.0


def collect(bench: Path) -> dict:
    """{(part, stage): [cpu_s, max_rss_mb, n_jobs]} over the benchmark directory."""
    out: dict = defaultdict(lambda: [0.0, 0.0, 0])
    for rule_dir in sorted(bench.iterdir()):
        rule = rule_dir.name
        base = rule.removeprefix("study_")
        if base not in STAGES:
            continue
        for f in rule_dir.glob("*.tsv"):
            part = f.stem.split("-", 1)[0] if rule.startswith("study_") else "main"
            cpu, rss = read(f)
            acc = out[(part, STAGES[base])]
            acc[0] += cpu
            acc[1] = max(acc[1], rss)
            acc[2] += 1
    return out


def main(argv: list[str]) -> None:
    bench = Path(argv[0] if argv else "results/benchmarks")
    data = collect(bench)
    parts = sorted({p for p, _ in data}, key=lambda p: (p != "main", p != "base", p))
    main_cpu = sum(v[0] for (p, _), v in data.items() if p == "main" and _ != "data")
    print(f"{'part':<18}{'data s':>9}{'train s':>9}{'eval s':>9}{'total s':>9}{'x main':>8}{'jobs':>6}{'max MB':>8}")
    totals = 0.0
    for p in parts:
        cells = {s: data.get((p, s), [0.0, 0.0, 0]) for s in ("data", "train", "eval")}
        tot = sum(c[0] for c in cells.values())
        if p != "main":
            totals += tot
        print(f"{p:<18}" + "".join(f"{cells[s][0]:9.1f}" for s in ("data", "train", "eval"))
              + f"{tot:9.1f}{tot / main_cpu if main_cpu else float('nan'):8.2f}"
              + f"{sum(c[2] for c in cells.values()):6d}{max(c[1] for c in cells.values()):8.0f}")
    print(f"studies total: {totals:.1f} CPU s = {totals / main_cpu if main_cpu else float('nan'):.2f} x "
          f"the main results' training + evaluation ({main_cpu:.1f} CPU s)")


if __name__ == "__main__":
    main(sys.argv[1:])
