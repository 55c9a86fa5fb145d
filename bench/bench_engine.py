"""Speed of the counterfactual engine and of counterfactual training (not a test; prints ratios).

1. Batched search vs a per-sample Python loop over the same counterfactuals: MNIST factuals (784
   features), the training generator of MNIST (ECCo, tau 0.5, T 30, eta 0.1). The loop is timed on a
   random subset of the factuals and extrapolated per sample (said in the output). Also: the batched
   search with and without working-set compaction (results must be identical).
2. CT/BL epoch-time ratio on LS, Adult and MNIST with the full config's settings: a few epochs of
   BL (objective vanilla) and CT (objective full, free family) in the same process, median epoch time.

All ratios are measured within one run (the machine may be shared). Usage:
    .venv/bin/python bench/bench_engine.py [--n 5000] [--loop-subset 200] [--epochs 4] [--threads 1]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ctpaper import config as C  # noqa: E402
from ctpaper.data.io import load_dataset  # noqa: E402
from ctpaper.models import load_model  # noqa: E402
from ctpaper.search import search, tune_allocator  # noqa: E402
from ctpaper.training import model_settings, search_config, train  # noqa: E402

TARGET_SEARCH = 100.0
TARGET_EPOCH = 5.0


def data_dir(config: dict, dataset: str) -> Path | None:
    d = ROOT / config["paths"]["results"] / "data" / dataset
    return d if (d / "meta.json").exists() else None


def present_datasets(config: dict, names: list[str]):
    """(name, prepared data directory) of every dataset in ``names`` whose data stage has run."""
    for name in names:
        d = data_dir(config, name)
        if d is None:
            print(f"   {name}: results/data/{name} missing: run `.venv/bin/snakemake --cores 2 data`")
            continue
        yield name, d


def mnist_model(config: dict, ds, seed: int):
    """The trained MNIST BL if the train stage has run, else a BL trained for 3 epochs here."""
    path = ROOT / config["paths"]["results"] / "models" / "mnist" / f"seed{seed}" / "bl" / "model.pt"
    if path.exists():
        return load_model(path)[0], f"trained BL ({path.relative_to(ROOT)})"
    s = model_settings(config, "mnist")
    s["n_epochs"] = 3
    return train(ds, s, "vanilla", "free", seed)[0], "BL trained for 3 epochs in this run"


def mnist_search_problem(config: dict, n: int, seed: int):
    """(dataset, model, what the model is, n training factuals, targets, generator) for the MNIST
    search benchmarks, or None when the data stage has not run."""
    d = data_dir(config, "mnist")
    if d is None:
        print("   results/data/mnist missing: run `.venv/bin/snakemake --cores 2 data` first")
        return None
    ds = load_dataset(d)
    model, what = mnist_model(config, ds, seed)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(ds.X_train.shape[0], generator=g)[:n]
    x = ds.X_train[idx]
    with torch.no_grad():
        yhat = model(x).argmax(1)
    t = (yhat + torch.randint(1, ds.n_classes, (len(x),), generator=g)) % ds.n_classes
    return ds, model, what, x, t, g


def bench_search(config: dict, n: int, subset: int, seed: int) -> None:
    print("== 1. batched search vs per-sample loop (MNIST) ==")
    problem = mnist_search_problem(config, n, seed)
    if problem is None:
        return
    ds, model, what, x, t, g = problem
    cfg = search_config(model_settings(config, "mnist"))
    lo, hi = ds.lower, ds.upper
    print(f"   model: {what}; {len(x)} factuals x {x.shape[1]} features; {cfg}")

    def timed(compact: bool):
        best, res = math.inf, None
        for _ in range(3):   # best of 3 (the first call also pays for first-touch page faults)
            t0 = time.perf_counter()
            res = search(model, x, t, cfg, lo, hi, compact=compact)
            best = min(best, time.perf_counter() - t0)
        return best, res

    t_batch, batched = timed(True)
    t_masked, masked = timed(False)
    same = all(torch.equal(getattr(batched, f), getattr(masked, f))
               for f in ("x_cf", "x_adv", "mature", "steps"))
    print(f"   batched search (best of 3): {t_batch:.3f} s  (mean steps {batched.steps.float().mean():.2f}, "
          f"mature {batched.mature.float().mean():.3f})")
    print(f"   batched without compaction: {t_masked:.3f} s  -> compaction speed-up "
          f"{t_masked / t_batch:.2f}x, identical results: {same}")

    sub = torch.randperm(len(x), generator=g)[:min(subset, len(x))]
    t0 = time.perf_counter()
    singles = [search(model, x[i:i + 1], t[i:i + 1], cfg, lo, hi) for i in sub.tolist()]
    t_loop_sub = time.perf_counter() - t0
    per_sample = t_loop_sub / len(sub)
    t_loop = per_sample * len(x)
    steps_equal = all(int(r.steps[0]) == int(batched.steps[i]) for r, i in zip(singles, sub.tolist()))
    max_diff = max(float((r.x_cf[0] - batched.x_cf[i]).abs().max())
                   for r, i in zip(singles, sub.tolist()))
    print(f"   per-sample loop: timed {len(sub)} random single searches = {t_loop_sub:.2f} s, "
          f"{per_sample * 1e3:.2f} ms/sample, extrapolated to {len(x)} samples: {t_loop:.1f} s")
    print(f"   singles vs batch: equal steps {steps_equal}, max |x_cf diff| {max_diff:.2e} "
          "(GEMM kernels for 1-row inputs round differently)")
    ratio = t_loop / t_batch
    print(f"   RATIO loop/batched = {ratio:.0f}x  (target >= {TARGET_SEARCH:.0f}x: "
          f"{'met' if ratio >= TARGET_SEARCH else 'NOT met'})")


def full_run_ratio(config: dict, dataset: str, seed: int) -> str | None:
    """CT/BL over the whole training from the train_model logs, if the train stage has run (separate
    jobs, possibly under different machine load: informational only)."""
    base = ROOT / config["paths"]["results"] / "models" / dataset / f"seed{seed}"
    logs = {m: base / m / "log.parquet" for m in ("bl", "ct_free")}
    if not all(p.exists() for p in logs.values()):
        return None
    import pandas as pd

    sec = {m: pd.read_parquet(p)["seconds"] for m, p in logs.items()}
    steps = pd.read_parquet(logs["ct_free"])["mean_steps"]
    return (f"(pipeline logs, all {len(sec['bl'])} epochs: BL {sec['bl'].sum():.1f} s, CT_free "
            f"{sec['ct_free'].sum():.1f} s -> {sec['ct_free'].sum() / sec['bl'].sum():.1f}x; "
            f"mean search steps first/last epoch {steps.iloc[0]:.1f}/{steps.iloc[-1]:.1f})")


def bench_epochs(config: dict, datasets: list[str], epochs: int, seed: int) -> None:
    print(f"\n== 2. CT/BL epoch time ({epochs} epochs each, median of epochs 2..{epochs}) ==")
    for name, d in present_datasets(config, datasets):
        ds = load_dataset(d)
        s = model_settings(config, name)
        s["n_epochs"] = epochs
        times, steps = {}, None
        for label, objective in (("BL", "vanilla"), ("CT", "full")):
            _, log = train(ds, s, objective, "free", seed)
            sec = log["seconds"].tolist()
            times[label] = statistics.median(sec[1:] if len(sec) > 1 else sec)
            if objective == "full":
                steps = log["mean_steps"].tolist()
        ratio = times["CT"] / times["BL"]
        full = full_run_ratio(config, name, seed)
        nb = -(-ds.X_train.shape[0] // s["batch_size"])
        print(f"   {name:6s} batches/epoch {nb:4d}, nce {max(s['nce'], nb)}: BL {times['BL']:.3f} s, "
              f"CT {times['CT']:.3f} s (mean search steps {[round(v, 1) for v in steps]}) -> "
              f"RATIO CT/BL = {ratio:.1f}x (target <= {TARGET_EPOCH:.0f}x: "
              f"{'met' if ratio <= TARGET_EPOCH else 'NOT met'})")
        if full:
            print(f"          {full}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=5000, help="MNIST factuals in the batched search")
    ap.add_argument("--loop-subset", type=int, default=200, help="single searches actually timed")
    ap.add_argument("--epochs", type=int, default=4, help="epochs per model in the epoch benchmark")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--datasets", nargs="+", default=["ls", "adult", "mnist"])
    ap.add_argument("--skip-search", action="store_true")
    ap.add_argument("--skip-epochs", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tuned = tune_allocator()   # as in the train_model jobs
    config = C.load()
    seed = int(config["seed"]["global"])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), allocator tuned: {tuned}")
    if not args.skip_search:
        bench_search(config, args.n, args.loop_subset, seed)
    if not args.skip_epochs:
        bench_epochs(config, args.datasets, args.epochs, seed)


if __name__ == "__main__":
    main()
