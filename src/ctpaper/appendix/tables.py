"""Tables 4-6 (method 7.6): per grid, data set and objective, mean and SD over the grid's models of
test accuracy and macro-F1 (``performance.parquet`` of every data set of the grid)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

import pandas as pd

from ctpaper.appendix import SECTIONS, TITLES
from ctpaper.names import DATASET_NAMES as TABLE_ORDER, LABELS
from ctpaper.tables import fmt, markdown_table

OBJECTIVES = ("full", "vanilla")
OBJECTIVE_LABELS = {"full": "CT (full)", "vanilla": "BL (vanilla)"}
# Tables 4-6 of the original are the D grids; the E grids' tables follow them.
TABLE_NUMBERS = {"generator": 4, "penalties": 5, "other": 6}


def _sd(x: pd.Series) -> float:
    return float(x.std(ddof=1)) if len(x) > 1 else math.nan


def performance_table(perf: pd.DataFrame) -> pd.DataFrame:
    """One row per (data set, objective): number of models, mean and SD (ddof 1; NaN for a single
    model) of ``accuracy`` and ``f1`` over the models, fewest predicted classes of any model."""
    rows = []
    datasets = [d for d in TABLE_ORDER if d in set(perf["dataset"])]
    for d in datasets:
        for obj in OBJECTIVES:
            s = perf[(perf["dataset"] == d) & (perf["objective"] == obj)]
            if s.empty:
                continue
            rows.append({"dataset": d, "label": LABELS[d], "objective": obj, "n_models": len(s),
                         "accuracy_mean": float(s["accuracy"].mean()), "accuracy_sd": _sd(s["accuracy"]),
                         "f1_mean": float(s["f1"].mean()), "f1_sd": _sd(s["f1"]),
                         "min_pred_classes": int(s["n_pred_classes"].min())})
    return pd.DataFrame(rows, columns=["dataset", "label", "objective", "n_models", "accuracy_mean",
                                       "accuracy_sd", "f1_mean", "f1_sd", "min_pred_classes"])


def _mean_sd(mean: float, sd: float) -> str:
    return fmt(mean) if math.isnan(sd) else f"{fmt(mean)} ± {fmt(sd)}"


def table_label(grid: str) -> str:
    return f"tbl-grid-{grid.replace('_', '-')}"


def performance_markdown(pt: pd.DataFrame, grid: str) -> str:
    """The table as a pipe table with caption and label ``tbl-grid-<grid>``."""
    rows = [[r["label"], OBJECTIVE_LABELS[r["objective"]], str(r["n_models"]),
             _mean_sd(r["accuracy_mean"], r["accuracy_sd"]), _mean_sd(r["f1_mean"], r["f1_sd"])]
            for _, r in pt.iterrows()]
    header = ["Data", "Objective", "Models", "Accuracy", "Macro-F1"]
    single = bool((pt["min_pred_classes"] <= 1).any()) if len(pt) else False
    caption = (f"{TITLES[grid]} grid (appendix {SECTIONS[grid]}): test accuracy and macro-F1, mean ± "
               "SD over the grid's models per data set and objective (BL is trained once per data "
               "set, or once per number of epochs where the grid varies it, so a single BL has no SD)."
               + (" Some model predicts a single class on its test set." if single else ""))
    return markdown_table(rows, header, "llrrr", caption, table_label(grid))


def make(paths: Iterable[str], grid: str, csv_path: str | Path, md_path: str | Path) -> pd.DataFrame:
    """Rule ``appendix_table``: the grid's performance files -> CSV + Markdown."""
    from ctpaper.appendix.data import load
    from ctpaper.tables import _write

    pt = performance_table(load(paths))
    _write(pt, performance_markdown(pt, grid), csv_path, md_path)
    return pt
