"""Speed of model stacks and grid chunks (issue 15; not a test; prints ratios from one run).

1. LS: a stack of 64 CT models with mixed settings (random cells of the appendix grids: generator
   ECCo/Generic/REVISE, T, tau, lambda_egy, lambda_div/adv/reg, nce, burn-in, number of epochs) vs
   the same 64 models trained one after another in this process with ``ctpaper.training.train``.
   Also checks that the members equal their single runs.
2. Hand-batched layers (``StackedMLP``, baddbmm) vs ``torch.func.vmap`` + ``functional_call``:
   forward + backward of 64 MLPs on (1000, 2) inputs each.
3. Grid chunks of 9 CH and 9 MNIST models (the E.1 key-parameter grid: tau x lambda_reg) in one
   process (``python -m ctpaper.stack.chunk``) vs 9 separate processes, start-up included; the
   start-up alone is timed with an empty chunk. Peak RSS of every job.
4. MNIST search throughput (useful GEMM flops per second of ``ctpaper.search.search``) vs plain
   ``torch.mm`` of the same shapes on the same thread.

Usage: .venv/bin/python bench/bench_stack.py [--epochs 3] [--chunk-epochs 20] [--skip-chunks]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from bench_engine import data_dir, mnist_search_problem, present_datasets  # noqa: E402
from ctpaper import config as C  # noqa: E402
from ctpaper.data.io import load_dataset  # noqa: E402
from ctpaper.search import CompactingSearch, search, tune_allocator  # noqa: E402
from ctpaper.stack.mlp import StackedMLP  # noqa: E402
from ctpaper.stack.training import MemberSpec, train_stack  # noqa: E402
from ctpaper.training import model_settings, search_config, train  # noqa: E402

TARGET_LS, TARGET_CHUNK, TARGET_MM, MAX_RSS_MB = 10.0, 1.5, 0.5, 2048

GRID = {"generator": ["ecco", "generic", "revise"], "T": [5, 25, 50], "tau": [0.75, 0.9, 0.95],
        "lambda_egy": [0.1, 0.5, 5.0, 10.0, 20.0], "lambda_div": [0.01, 0.1, 1.0],
        "lambda_adv": [0.1, 0.25, 1.0], "lambda_reg": [0.0, 0.01, 0.1, 0.25, 0.5],
        "nce": [100, 1000], "burnin": [0.0, 0.5]}


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def ls_members(config: dict, K: int, epochs: int, seed: int) -> list[MemberSpec]:
    """K CT members on LS, each a random cell of the grids of method 9 (seeded)."""
    rng = np.random.default_rng(seed)
    base = model_settings(config, "ls")
    members = []
    for k in range(K):
        cell = {key: values[rng.integers(len(values))] for key, values in GRID.items()}
        cell = {key: (v.item() if hasattr(v, "item") else v) for key, v in cell.items()}
        cell["n_epochs"] = int(epochs - rng.integers(2))          # epochs - 1 or epochs
        members.append(MemberSpec({**base, **cell}, "full", "free", seed + k))
    return members


def ls_vae(config: dict, ds, seed: int):
    path = ROOT / config["paths"]["results"] / "models" / "ls" / "vae" / "model.pt"
    if path.exists():
        from ctpaper.vae import load_vae

        return load_vae(path)[0]
    from ctpaper.vae import train_vae

    return train_vae(ds.X_train, seed=seed)[0]


@contextlib.contextmanager
def _timed(module, name: str, totals: dict, key: str):
    """Add the wall time of every call of ``module.name`` to ``totals[key]`` while active."""
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            totals[key] += time.perf_counter() - t0

    setattr(module, name, wrapper)
    try:
        yield
    finally:
        setattr(module, name, original)


def bench_ls(config: dict, K: int, epochs: int, seed: int) -> None:
    print(f"== 1. LS: stack of {K} mixed CT models vs {K} sequential runs ({epochs - 1}-{epochs} "
          "epochs) ==")
    d = data_dir(config, "ls")
    if d is None:
        print("   results/data/ls missing: run `.venv/bin/snakemake --cores 2 data` first")
        return
    ds = load_dataset(d)
    vae = ls_vae(config, ds, seed)
    members = ls_members(config, K, epochs, seed)
    kinds = {g: sum(m.settings["generator"] == g for m in members) for g in GRID["generator"]}
    print(f"   generators {kinds}, nce {sorted({m.settings['nce'] for m in members})}, "
          f"T {sorted({m.settings['T'] for m in members})}")
    import ctpaper.stack.training as stack_training
    import ctpaper.training as training

    searching = {"stack": 0.0, "sequential": 0.0}
    t0, c0 = time.perf_counter(), time.process_time()
    with _timed(stack_training, "_search_members", searching, "stack"):
        stacked = train_stack(ds, members, vae=vae)
    t_stack, c_stack = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    with _timed(training, "search", searching, "sequential"):
        alone = [train(ds, m.settings, m.objective, m.family, m.seed, vae=vae) for m in members]
    t_seq, c_seq = time.perf_counter() - t0, time.process_time() - c0
    rel = max(float((a - b).abs().max() / b.abs().max())
              for (ms, _), (m1, _) in zip(stacked, alone)
              for a, b in zip(ms.state_dict().values(), m1.state_dict().values()))
    same_steps = sum(ls["mean_steps"].equals(l1["mean_steps"])
                     for (_, ls), (_, l1) in zip(stacked, alone))
    print(f"   stack {t_stack:.2f} s, sequential {t_seq:.2f} s; members vs alone: max relative "
          f"parameter difference {rel:.1e}, same search steps {same_steps}/{K}")
    rest = {"stack": t_stack - searching["stack"], "sequential": t_seq - searching["sequential"]}
    print(f"   CE searches: stack {searching['stack']:.2f} s, sequential {searching['sequential']:.2f} s "
          f"({searching['sequential'] / searching['stack']:.1f}x); everything else: stack "
          f"{rest['stack']:.2f} s, sequential {rest['sequential']:.2f} s "
          f"({rest['sequential'] / rest['stack']:.1f}x)")
    print(f"   CPU time (robust to other load on the machine): stack {c_stack:.2f} s, sequential "
          f"{c_seq:.2f} s: {c_seq / c_stack:.1f}x")
    ratio = t_seq / t_stack
    print(f"   RATIO stack/sequential LS K={K} = {ratio:.1f}x  (target >= {TARGET_LS:.0f}x: "
          f"{_verdict(ratio >= TARGET_LS)})")


def bench_vmap(K: int = 64, n: int = 1000, reps: int = 50) -> None:
    print(f"\n== 2. stacked layers: baddbmm vs torch.func.vmap (K={K}, {n} rows, fwd+bwd) ==")
    from torch.func import functional_call, stack_module_state, vmap

    from ctpaper.models import build_model

    models = [build_model("mlp", 2, 2, seed=k) for k in range(K)]
    net = StackedMLP.from_models(models)
    x = torch.randn(K, n, 2, generator=torch.Generator().manual_seed(0))
    params, buffers = stack_module_state(models)
    template = models[0]

    def one(p, b, xk):
        return functional_call(template, (p, b), (xk,))

    def run_bmm():
        xv = x.clone().requires_grad_(True)
        torch.autograd.grad(net(xv).logsumexp(2).sum(), [xv, net.W1, net.W2])

    def run_vmap():
        xv = x.clone().requires_grad_(True)
        out = vmap(one)(params, buffers, xv)
        torch.autograd.grad(out.logsumexp(2).sum(), [xv, params["fc1.weight"], params["fc2.weight"]])

    times = {}
    for name, fn in (("bmm", run_bmm), ("vmap", run_vmap)):
        fn()
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        times[name] = (time.perf_counter() - t0) / reps
    print(f"   baddbmm {times['bmm'] * 1e3:.2f} ms, vmap {times['vmap'] * 1e3:.2f} ms per step")
    print(f"   RATIO vmap/bmm = {times['vmap'] / times['bmm']:.2f}x")


def chunk_members(config: dict, dataset: str, epochs: int, seed: int) -> list[dict]:
    """The E.1 key-parameter grid (tau x lambda_reg, CT half): 9 members."""
    base = {**model_settings(config, dataset), "n_epochs": epochs}
    return [{"name": f"tau{tau}_reg{reg}", "objective": "full", "family": "free", "seed": seed,
             "settings": {**base, "tau": tau, "lambda_reg": reg}}
            for tau in (0.5, 0.75, 0.9) for reg in (0.1, 0.25, 0.5)]


def _run_chunk(d: Path, members: list[dict], out: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one chunk process."""
    out.mkdir(parents=True, exist_ok=True)
    spec = out / "chunk.json"
    spec.write_text(json.dumps(members))
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-c", "import resource, sys; from ctpaper.stack.chunk import main; "
           "main(sys.argv[1:]); print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)",
           str(d), str(spec), str(out)]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-3000:])
    return wall, int(res.stdout.split()[-1]) / 1024


def bench_chunks(config: dict, datasets: list[str], epochs: int, seed: int) -> None:
    print(f"\n== 3. grid chunks of 9 models ({epochs} epochs each): one process vs 9 processes ==")
    for name, d in present_datasets(config, datasets):
        members = chunk_members(config, name, epochs, seed)
        with tempfile.TemporaryDirectory() as tmp:
            t_start, rss_start = _run_chunk(d, [], Path(tmp) / "empty")
            t_one, rss_one = _run_chunk(d, members, Path(tmp) / "one")
            singles = [_run_chunk(d, [m], Path(tmp) / f"single{i}") for i, m in enumerate(members)]
        t_sep = sum(t for t, _ in singles)
        rss = max([rss_one] + [r for _, r in singles])
        per_model = (t_one - t_start) / len(members)
        ratio = t_sep / t_one
        print(f"   {name}: start-up + data loading {t_start:.1f} s ({rss_start:.0f} MB); one process "
              f"{t_one:.1f} s ({per_model:.1f} s per model); 9 processes {t_sep:.1f} s; peak RSS "
              f"{rss:.0f} MB (target < {MAX_RSS_MB} MB: {_verdict(rss < MAX_RSS_MB)})")
        full = (9 * (t_start + per_model * 100 / epochs)) / (t_start + 9 * per_model * 100 / epochs)
        print(f"   RATIO 9 processes/one process {name} = {ratio:.2f}x  (target >= "
              f"{TARGET_CHUNK}x: {_verdict(ratio >= TARGET_CHUNK)}; projected for 100 epochs from "
              f"these timings: {full:.2f}x)")


def _mm_seconds(n: int, D: int, H: int, reps: int = 20) -> float:
    a, w = torch.randn(n, D), torch.randn(D, H)
    go, wt = torch.randn(n, H), torch.randn(H, D)
    torch.mm(a, w), torch.mm(go, wt)
    t0 = time.perf_counter()
    for _ in range(reps):
        torch.mm(a, w)
        torch.mm(go, wt)
    return (time.perf_counter() - t0) / reps


def bench_mm(config: dict, n: int, seed: int) -> None:
    print(f"\n== 4. MNIST search throughput vs torch.mm ({n} factuals, training generator) ==")
    problem = mnist_search_problem(config, n, seed)
    if problem is None:
        return
    ds, model, what, x, t, _ = problem
    for p in model.parameters():
        p.requires_grad_(False)
    cfg = search_config(model_settings(config, "mnist"))
    search(model, x, t, cfg, ds.lower, ds.upper)
    t0 = time.perf_counter()
    res = search(model, x, t, cfg, ds.lower, ds.upper)
    t_search = time.perf_counter() - t0
    D, H, K = ds.n_features, model.fc1.out_features, ds.n_classes
    row_passes = float((res.steps + 1).sum())             # forward (+ backward) per row and check
    flops = row_passes * 2 * 2 * H * (D + K)               # both layers, forward and input gradient
    t_mm = _mm_seconds(n, D, H)
    mm_rate = 2 * 2 * n * D * H / t_mm
    ratio = flops / t_search / mm_rate
    print(f"   model: {what}; search {t_search:.3f} s, mean steps {res.steps.float().mean():.1f}: "
          f"{flops / t_search / 1e9:.1f} GFLOP/s useful; torch.mm ({n}x{D}x{H} and {n}x{H}x{D}): "
          f"{mm_rate / 1e9:.1f} GFLOP/s")
    parts = {"forward": 0.0, "step": 0.0}     # what bounds it: the search's phases, timed in a rerun
    t0 = time.perf_counter()
    with _timed(CompactingSearch, "forward", parts, "forward"), \
            _timed(CompactingSearch, "step", parts, "step"):
        search(model, x, t, cfg, ds.lower, ds.upper)
    total = time.perf_counter() - t0
    rest = total - parts["forward"] - parts["step"]
    print(f"   phases: forward (matmuls, log-softmax) {parts['forward'] / total:.0%}, step (the "
          f"element-wise chain over the {n} x {D} states) {parts['step'] / total:.0%}, gradient "
          f"and bookkeeping {rest / total:.0%}")
    print(f"   RATIO search/mm throughput MNIST = {ratio:.2f}  (target >= {TARGET_MM}: "
          f"{_verdict(ratio >= TARGET_MM)})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--K", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=3, help="epochs of the LS members (some one less)")
    ap.add_argument("--chunk-epochs", type=int, default=20)
    ap.add_argument("--chunk-datasets", nargs="+", default=["ch", "mnist"])
    ap.add_argument("--n", type=int, default=5000, help="MNIST factuals in the throughput search")
    ap.add_argument("--skip-ls", action="store_true")
    ap.add_argument("--skip-chunks", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    tuned = tune_allocator()
    config = C.load()
    seed = int(config["seed"]["global"])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread, allocator tuned: {tuned}")
    if not args.skip_ls:
        bench_ls(config, args.K, args.epochs, seed)
    bench_vmap(args.K)
    if not args.skip_chunks:
        bench_chunks(config, args.chunk_datasets, args.chunk_epochs, seed)
    bench_mm(config, args.n, seed)
    print(f"   (this process: peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")


if __name__ == "__main__":
    main()
