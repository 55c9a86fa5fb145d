"""Percentage changes vs BL (method 8) and the maturity frames of the grid results.

Input frames follow the interface of issue 12: ``scores.parquet`` (one row per model, run and test-time
lambda ``lam``, per-run means ``ip``/``cost`` over valid CEs), ``maturity.parquet`` (one row per CT model
and epoch). BL rows have ``objective == "vanilla"``, CT rows ``"full"``.
"""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np
import pandas as pd

from ctpaper.runtime import read_parquet


def load(paths: Iterable[str]) -> pd.DataFrame:
    """Concatenation of grid result files (checked reads)."""
    frames = [read_parquet(p) for p in paths]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def bl_keys(bl: pd.DataFrame, vary: list[str]) -> list[str]:
    """The varied parameters the BL models depend on: vary columns with a value in some BL row
    (e.g. ``n_epochs`` in D.4); BL does not depend on the others (their BL values are null)."""
    return [v for v in vary if v in bl.columns and bl[v].notna().any()]


def pct_change(scores: pd.DataFrame, vary: list[str], metric: str) -> pd.DataFrame:
    """pct(h, r, lam) = 100 * (m_CT(h, r, lam) - m_BL(r, lam)) / m_BL(r, lam) for every CT cell h
    (method 8), BL matched by (run, lam) and by every varied parameter BL depends on (``bl_keys``).

    Returns one row per (CT model, run, lam) with the vary columns, ``ct``, ``bl`` and ``pct``; rows
    where either mean is missing (no valid CE) or BL's mean is 0 are dropped."""
    ct = scores[scores["objective"] == "full"]
    bl = scores[scores["objective"] == "vanilla"]
    keys = bl_keys(bl, vary)
    on = ["run", "lam", *keys]
    if bl.duplicated(on).any():
        raise ValueError(f"BL rows are not unique by {on}: cannot match CT cells to one BL")
    base = bl[on + [metric]].rename(columns={metric: "bl"})
    cols = ["model", *vary, "run", "lam", metric]
    merged = ct[cols].rename(columns={metric: "ct"}).merge(base, on=on, how="inner", validate="m:1")
    merged = merged[merged["ct"].notna() & merged["bl"].notna() & (merged["bl"] != 0)]
    merged = merged.assign(pct=100.0 * (merged["ct"] - merged["bl"]) / merged["bl"])
    return merged.sort_values(["model", "run", "lam"]).reset_index(drop=True)


def median_by(pct: pd.DataFrame, by: str | list[str]) -> pd.Series:
    """Median of ``pct`` per value of ``by`` (over cells, runs and lambdas)."""
    return pct.groupby(by)["pct"].median()


def iqr(x) -> float:
    """Interquartile range (numpy linear quantiles); NaN for an empty sample."""
    x = np.asarray(x, dtype=float)
    x = x[~np.isnan(x)]
    if not len(x):
        return math.nan
    q1, q3 = np.quantile(x, [0.25, 0.75])
    return float(q3 - q1)


def final_maturity(maturity: pd.DataFrame, vary: list[str]) -> pd.DataFrame:
    """Per CT model: the proportion of mature CEs in its last epoch with a value (epochs without
    CEs, e.g. during a burn-in, have none) and its mean over all epochs with a value."""
    m = maturity.dropna(subset=["prop_mature"]).sort_values(["model", "epoch"])
    rows = []
    for model, g in m.groupby("model", sort=True):
        row = {"model": model, **{v: g[v].iloc[0] for v in vary if v in g.columns}}
        row.update(final=float(g["prop_mature"].iloc[-1]), mean=float(g["prop_mature"].mean()))
        rows.append(row)
    return pd.DataFrame(rows, columns=["model", *[v for v in vary if v in m.columns], "final", "mean"])
