"""Speed of the Julia-stream synthetic data (not a test; prints times and ratios from one run).

1. Generating the four synthetic data sets with ``data.synthetic.rng: julia`` (the full config's
   100,000 points each, pool and test selection included), in one process; target: < 5 s in total.
   The first data set also pays for the cached jump-ahead matrices.
2. The 8-lane bulk path: jump-ahead sub-streams (``lane_outputs``) vs the lane-by-lane reference loop
   (``lane_outputs_sequential``) for the 25,000 blocks of a 200,000-element ``randn``.

Usage:
    .venv/bin/python bench/bench_julia_rng.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ctpaper import config as C  # noqa: E402
from ctpaper.data.julia_rng import Xoshiro, lane_outputs, lane_outputs_sequential  # noqa: E402
from ctpaper.data.synthetic import prepare_synthetic  # noqa: E402

TARGET_TOTAL_S = 5.0


def bench_datasets(config: dict) -> None:
    print("== 1. the four synthetic data sets, rng julia ==")
    config["data"]["synthetic"]["rng"] = "julia"
    total = cpu_total = 0.0
    for name in ("ls", "ol", "circ", "moon"):
        t0, c0 = time.perf_counter(), time.process_time()
        prep = prepare_synthetic(name, config)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        total, cpu_total = total + dt, cpu_total + dc
        print(f"   {name:5s} {dt:6.2f} s wall, {dc:6.2f} s CPU  pool {len(prep.y_pool)}  test {len(prep.y_test)}")
    print(f"   total {total:.2f} s wall, {cpu_total:.2f} s CPU (target < {TARGET_TOTAL_S:g} s): "
          f"{'met' if total < TARGET_TOTAL_S else 'NOT met'}")


def bench_lanes(n_blocks: int = 25_000) -> None:
    print(f"== 2. bulk lanes, {n_blocks} blocks of 8 ==")
    lanes = np.array([Xoshiro(s).rand_u64_array(4) for s in range(8)], dtype=np.uint64).T
    t0 = time.perf_counter()
    fast = lane_outputs(lanes, n_blocks)
    t_fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = lane_outputs_sequential(lanes, n_blocks)
    t_ref = time.perf_counter() - t0
    assert np.array_equal(fast, ref)
    print(f"   jump-ahead {t_fast:.3f} s, sequential {t_ref:.3f} s: {t_ref / t_fast:.1f}x (identical output)")


if __name__ == "__main__":
    bench_datasets(C.load(C.DEFAULT_CONFIG))
    bench_lanes()
