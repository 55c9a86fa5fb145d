"""Small grid-result frames in the interface of issue 12 (scores, performance, maturity), built
from explicit formulas so that tests know the answers."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd


INT_COLUMNS = ("T", "nce", "n_epochs")   # nullable Int64 in the grid files (null for BL)


def _typed(df: pd.DataFrame, grid: str, dataset: str) -> pd.DataFrame:
    df = df.astype({c: "Int64" for c in INT_COLUMNS if c in df.columns})
    return df.assign(grid=grid, dataset=dataset)[["grid", "dataset", *df.columns]]


def cells(vary: dict) -> list[dict]:
    keys = list(vary)
    return [dict(zip(keys, vals)) for vals in itertools.product(*vary.values())]


def scores(grid: str, dataset: str, vary: dict, ct_value, bl_value=lambda run, lam: 1.0 + run,
           runs=(0, 1, 2), lams=(0.1, 1.0), bl_keys=()) -> pd.DataFrame:
    """ct_value(cell, run, lam) -> (ip, cost) ratio to BL; BL ip = cost = bl_value(run, lam).
    One BL per combination of the ``bl_keys`` values (e.g. n_epochs in D.4)."""
    rows = []
    bl_cells = cells({k: vary[k] for k in bl_keys}) if bl_keys else [{}]
    for bc in bl_cells:
        name = "bl" + "".join(f"_{k}{v}" for k, v in bc.items())
        for run, lam in itertools.product(runs, lams):
            b = bl_value(run, lam) * (1 + 0.1 * sum(float(v) for v in bc.values()) / 100)
            rows.append({"model": name, "objective": "vanilla", **{k: bc.get(k) for k in vary},
                         "run": run, "lam": lam, "ip": b, "cost": 2 * b, "validity": 1.0, "n_valid": 10})
    for i, cell in enumerate(cells(vary)):
        for run, lam in itertools.product(runs, lams):
            bc = {k: cell[k] for k in bl_keys}
            b = bl_value(run, lam) * (1 + 0.1 * sum(float(v) for v in bc.values()) / 100)
            r_ip, r_cost = ct_value(cell, run, lam)
            rows.append({"model": f"ct_{i:04d}", "objective": "full", **cell, "run": run, "lam": lam,
                         "ip": b * r_ip, "cost": 2 * b * r_cost, "validity": 1.0, "n_valid": 10})
    return _typed(pd.DataFrame(rows), grid, dataset)


def performance(grid: str, dataset: str, vary: dict, ct_acc, bl_acc=0.9, bl_keys=()) -> pd.DataFrame:
    """ct_acc(cell) -> accuracy; f1 = accuracy - 0.01."""
    rows = []
    for bc in (cells({k: vary[k] for k in bl_keys}) if bl_keys else [{}]):
        name = "bl" + "".join(f"_{k}{v}" for k, v in bc.items())
        rows.append({"model": name, "objective": "vanilla", **{k: bc.get(k) for k in vary},
                     "accuracy": bl_acc, "f1": bl_acc - 0.01, "n_pred_classes": 2})
    for i, cell in enumerate(cells(vary)):
        a = ct_acc(cell)
        rows.append({"model": f"ct_{i:04d}", "objective": "full", **cell, "accuracy": a, "f1": a - 0.01,
                     "n_pred_classes": 2})
    return _typed(pd.DataFrame(rows), grid, dataset)


def maturity(grid: str, dataset: str, vary: dict, prop, n_epochs=4) -> pd.DataFrame:
    """prop(cell, epoch) -> proportion of mature CEs (NaN allowed)."""
    rows = []
    for i, cell in enumerate(cells(vary)):
        for e in range(1, n_epochs + 1):
            rows.append({"model": f"ct_{i:04d}", **cell, "epoch": e, "prop_mature": prop(cell, e)})
    return _typed(pd.DataFrame(rows), grid, dataset)


VARY = {
    "generator": {"generator": ["ecco", "generic", "revise"], "T": [5, 25, 50],
                  "lambda_egy": [0.1, 0.5, 5.0, 10.0, 20.0], "tau": [0.75, 0.9, 0.95]},
    "penalties": {"generator": ["ecco", "generic", "revise"], "lambda_div": [0.01, 0.1, 1.0],
                  "lambda_adv": [0.1, 0.25, 1.0], "lambda_reg": [0.0, 0.01, 0.1, 0.25, 0.5]},
    "other": {"generator": ["ecco", "generic", "revise"], "burnin": [0.0, 0.5], "nce": [100, 1000],
              "n_epochs": [50, 100]},
    "tune": {"lambda_reg": [0.1, 0.25, 0.5], "tau": [0.5, 0.75, 0.9]},
    "tune_lr": {"eta_ce": [0.1, 0.5, 1.0], "lambda_reg": [0.01, 0.1, 0.5]},
}


def noisy(seed: int, effect, sd: float = 0.05):
    """A ct_value function: ratio = 1 + effect(cell) + N(0, sd) noise (deterministic in the seed)."""
    rng = np.random.default_rng(seed)
    cache = {}

    def f(cell, run, lam):
        key = (tuple(cell.items()), run, lam)
        if key not in cache:
            e = effect(cell)
            cache[key] = (1 + e + sd * rng.standard_normal(), 1 + e / 2 + sd * rng.standard_normal())
        return cache[key]
    return f
