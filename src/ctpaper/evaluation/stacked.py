"""The test-time protocol (method 6.2-6.7) over a stack of models: one batched search per lambda.

``evaluate_stack`` evaluates any number of MLPs of one data set (e.g. the CT models of a grid chunk
and their BL) with the sampling protocol of ``ctpaper.evaluation.protocol``: the same (f_i, t_i)
pairs per lambda, factuals drawn per model and run from the generators the protocol derives from the
model's label, the same IP reference sets. The searches of all models for one lambda_egy run as one
``stacked_search`` (bit-identical per model to ``ctpaper.search.search``), so a model's rows equal
what ``evaluate_counterfactuals`` gives it (tests/test_stack_evaluation.py). Scope: data sets
without one-hot blocks (the stacked search does no categorical reconstruction; Adult and Credit
use the single path) and the per-CE metrics validity, IP, cost, redundancy, steps and maturity;
IP* (MMD, per group) stays with ``evaluate_counterfactuals`` (the appendix grids report IP and
cost only), so ``ip_star`` is NaN here.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
import torch

from ctpaper.evaluation import metrics
from ctpaper.evaluation.protocol import (CES_COLUMNS, EvalSettings, _ip, choose_factuals,
                                         draw_pairs, numpy_rng, shared_ip_references)
from ctpaper.stack.mlp import StackedMLP
from ctpaper.stack.search import stacked_search

log = logging.getLogger("ctpaper.evaluation")


def _factuals(preds: dict[str, np.ndarray], s: EvalSettings, key: tuple, li: int, K: int):
    """Per model: test rows, factual classes and targets of all runs (protocol 6.3)."""
    shared = None if s.redraw_pairs_per_run else draw_pairs(
        s.n_individuals, K, numpy_rng(s.seed_global, *key, "pairs", li))
    out = {}
    for m, pred in preds.items():
        rows, fs, ts = [], [], []
        for r in range(s.n_runs):
            f, t = shared if shared is not None else draw_pairs(
                s.n_individuals, K, numpy_rng(s.seed_global, *key, "pairs", li, r))
            idx, f, t = choose_factuals(pred, f, t, K,
                                        numpy_rng(s.seed_global, *key, "factuals", m, li, r))
            rows.append(idx)
            fs.append(f)
            ts.append(t)
        out[m] = tuple(np.concatenate(v) for v in (rows, fs, ts))
    return out


def _frame(model, label: str, x: torch.Tensor, x_cf: torch.Tensor, res_mature, res_steps,
           drawn, refs, ds, s: EvalSettings, key: tuple, li: int, lam: float):
    dataset, family, seed = key
    idx, f, t = drawn
    target = torch.from_numpy(t)
    return pd.DataFrame({
        "dataset": dataset, "family": family, "seed": np.int64(seed), "model": label,
        "lambda_egy": np.float64(lam),
        "run": np.repeat(np.arange(s.n_runs, dtype=np.int64), s.n_individuals),
        "individual": np.tile(np.arange(s.n_individuals, dtype=np.int64), s.n_runs),
        "factual_index": idx.astype(np.int64), "factual_class": f.astype(np.int64),
        "target": t.astype(np.int64),
        "valid": metrics.validity(model, x_cf, target).numpy(),
        "mature": res_mature.numpy().astype(bool), "steps": res_steps.numpy().astype(np.int64),
        "ip": _ip(x_cf, target, refs, ds, s, key, label, li), "cost": metrics.cost(x_cf, x).numpy(),
        "redundancy": metrics.redundancy(x_cf, x, s.redundancy_tol).numpy(),
        "ip_star": np.full(len(idx), np.nan),
    })


def evaluate_stack(ds, models: dict[str, torch.nn.Module], config: dict, dataset: str,
                   family: str, seed: int) -> pd.DataFrame:
    """The ces frame (columns ``CES_COLUMNS``) of every model in ``models`` (label -> MLP), in the
    order lambda, then model; ``seed`` is the training seed of the evaluation key, as in
    ``evaluate_counterfactuals``."""
    if ds.categorical_blocks:
        raise ValueError(f"{dataset} has one-hot blocks: evaluate it with evaluate_counterfactuals")
    if family not in ("free", "protected"):
        raise ValueError(f"unknown family {family!r}")
    s = EvalSettings.from_config(config, dataset, family)
    K = ds.n_classes
    X = ds.X_test
    key = (dataset, family, int(seed))
    refs = shared_ip_references(ds, s, dataset, seed)
    labels = list(models)
    for model in models.values():
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
    net = StackedMLP.from_models([models[m] for m in labels])
    net.requires_grad_(False)
    preds = {m: metrics.predict(models[m], X).numpy() for m in labels}
    mut = ds.mutability(family)
    mut = None if bool((mut == 0).all()) else mut
    frames = []
    for li, lam in enumerate(s.lambda_egy_grid):
        t0 = time.perf_counter()
        drawn = _factuals(preds, s, key, li, K)
        x = torch.stack([X[torch.from_numpy(drawn[m][0])] for m in labels])
        target = torch.stack([torch.from_numpy(drawn[m][2]) for m in labels])
        res = stacked_search(net, x, target, torch.ones(target.shape, dtype=torch.bool),
                             [s.search_config(lam)] * len(labels), ds.lower, ds.upper,
                             mutability=[mut] * len(labels))
        for i, m in enumerate(labels):
            frames.append(_frame(models[m], m, x[i], res.x_cf[i], res.mature[i], res.steps[i],
                                 drawn[m], refs, ds, s, key, li, lam))
        log.info("family=%s lambda_egy=%g: %d models x %d CEs in one search (%.1f s)", family, lam,
                 len(labels), x.shape[1], time.perf_counter() - t0)
    return pd.concat(frames, ignore_index=True)[CES_COLUMNS]
