"""Robust accuracy under FGSM (method 6.8): the whole test set, no clamping, BL and CT_free."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ctpaper import names
from ctpaper.evaluation.metrics import predict
from ctpaper.evaluation.roles import ROBUSTNESS_MODELS  # noqa: F401 (re-exported)

log = logging.getLogger("ctpaper.evaluation")

ROBUSTNESS_COLUMNS = ["dataset", "seed", "model", "eps", "accuracy"]


def fgsm_direction(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                   chunk: int = 65536) -> torch.Tensor:
    """sign(grad_x CE(M(x), y)) per row.

    The per-row gradient of the *summed* cross-entropy is each row's own gradient, so the sign is
    exactly that of the per-sample loss (a mean would only rescale it, but could underflow).
    """
    out = torch.empty_like(x)
    for i in range(0, len(x), chunk):
        xv = x[i:i + chunk].detach().clone().requires_grad_(True)
        loss = F.cross_entropy(model(xv), y[i:i + chunk], reduction="sum")
        (g,) = torch.autograd.grad(loss, xv)
        out[i:i + chunk] = g.sign()
    return out


def _accuracy(model, x, y) -> float:
    return int((predict(model, x) == y).sum()) / len(x)


def fgsm_accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                  eps_grid: Sequence[float]) -> list[float]:
    """Accuracy on x_adv = x + eps * sign(grad_x CE(M(x), y)) for every eps (no clamping)."""
    model.eval()
    direction = fgsm_direction(model, x, y)
    return [_accuracy(model, x + float(eps) * direction, y) for eps in eps_grid]


def robustness_frame(models: dict[str, torch.nn.Module], x: torch.Tensor, y: torch.Tensor,
                     eps_grid: Sequence[float], dataset: str, seed: int) -> pd.DataFrame:
    rows = []
    for label, model in models.items():
        for eps, acc in zip(eps_grid, fgsm_accuracy(model, x, y, eps_grid)):
            rows.append((dataset, int(seed), label, float(eps), float(acc)))
        log.info("FGSM %s: clean %.4f, eps=%g -> %.4f", label, rows[-len(eps_grid)][4],
                 eps_grid[-1], rows[-1][4])
    df = pd.DataFrame(rows, columns=ROBUSTNESS_COLUMNS)
    return df.astype({"seed": np.int64, "eps": np.float64, "accuracy": np.float64})


def run_robustness(data_dir: str | Path, model_paths: dict[str, str | Path], config: dict,
                   dataset: str, seed: int, out_path: str | Path) -> pd.DataFrame:
    """Rule ``robustness``: ``model_paths`` maps BL/CT to model files; writes robustness.parquet."""
    from ctpaper.config import eps_grid
    from ctpaper.data.io import load_dataset
    from ctpaper.models import load_models
    from ctpaper.runtime import write_parquet

    ds = load_dataset(data_dir)
    models = load_models(model_paths)
    df = robustness_frame(models, ds.X_test, ds.y_test, eps_grid(config), dataset, seed)
    write_parquet(df, out_path)
    return df
