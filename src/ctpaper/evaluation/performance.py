"""Predictive performance (method 6.10): test accuracy and macro-F1 of bl, ct_free, ct_protected."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ctpaper import names
from ctpaper.evaluation.metrics import predict
from ctpaper.evaluation.roles import PERFORMANCE_MODELS  # noqa: F401 (re-exported)

log = logging.getLogger("ctpaper.evaluation")

# n_pred_classes: distinct predicted classes on the test set (1 = a degenerate, single-class model)
PERFORMANCE_COLUMNS = ["dataset", "seed", "model", "accuracy", "f1", "n_pred_classes"]


def accuracy_f1(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor
                ) -> tuple[float, float, int]:
    """(accuracy, macro-F1, number of distinct predicted classes) of the arg-max predictions; F1
    over the classes present in y or yhat."""
    from sklearn.metrics import f1_score   # imported here: the workflow imports this module

    yhat = predict(model, x).numpy()
    y_np = y.numpy()
    return (float((yhat == y_np).mean()), float(f1_score(y_np, yhat, average="macro", zero_division=0)),
            int(len(np.unique(yhat))))


def performance_frame(models: dict[str, torch.nn.Module], x: torch.Tensor, y: torch.Tensor,
                      dataset: str, seed: int) -> pd.DataFrame:
    rows = []
    for label, model in models.items():
        acc, f1, n_pred = accuracy_f1(model, x, y)
        log.info("%s: accuracy %.4f, macro-F1 %.4f, %d predicted classes", label, acc, f1, n_pred)
        if n_pred < 2:
            log.warning("%s on %s (seed %s) predicts a single class on the whole test set", label,
                        dataset, seed)
        rows.append((dataset, int(seed), label, acc, f1, n_pred))
    df = pd.DataFrame(rows, columns=PERFORMANCE_COLUMNS)
    return df.astype({"seed": np.int64, "accuracy": np.float64, "f1": np.float64,
                      "n_pred_classes": np.int64})


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
