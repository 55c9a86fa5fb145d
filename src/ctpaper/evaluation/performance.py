"""Predictive performance (method 6.10): test accuracy and macro-F1 of bl, ct_free, ct_protected."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ctpaper.evaluation.metrics import predict

log = logging.getLogger("ctpaper.evaluation")

PERFORMANCE_COLUMNS = ["dataset", "seed", "model", "accuracy", "f1"]
# model label in performance.parquet -> model directory name
PERFORMANCE_MODELS = {"BL": "bl", "CT_free": "ct_free", "CT_protected": "ct_protected"}


def accuracy_f1(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(accuracy, macro-F1) of the arg-max predictions; F1 over the classes present in y or yhat."""
    from sklearn.metrics import f1_score   # imported here: the workflow imports this module

    yhat = predict(model, x).numpy()
    y_np = y.numpy()
    return float((yhat == y_np).mean()), float(f1_score(y_np, yhat, average="macro", zero_division=0))


def performance_frame(models: dict[str, torch.nn.Module], x: torch.Tensor, y: torch.Tensor,
                      dataset: str, seed: int) -> pd.DataFrame:
    rows = []
    for label, model in models.items():
        acc, f1 = accuracy_f1(model, x, y)
        log.info("%s: accuracy %.4f, macro-F1 %.4f", label, acc, f1)
        rows.append((dataset, int(seed), label, acc, f1))
    df = pd.DataFrame(rows, columns=PERFORMANCE_COLUMNS)
    return df.astype({"seed": np.int64, "accuracy": np.float64, "f1": np.float64})


def run_performance(data_dir: str | Path, model_paths: dict[str, str | Path], dataset: str,
                    seed: int, out_path: str | Path) -> pd.DataFrame:
    """Rule ``performance``: ``model_paths`` maps BL/CT_free/CT_protected to model files."""
    from ctpaper.data.io import load_dataset
    from ctpaper.models import load_models
    from ctpaper.runtime import write_parquet

    ds = load_dataset(data_dir)
    models = load_models(model_paths)
    df = performance_frame(models, ds.X_test, ds.y_test, dataset, seed)
    write_parquet(df, out_path)
    return df
