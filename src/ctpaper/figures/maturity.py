"""Maturity curves (method 8): proportion of mature training counterfactuals per epoch.

From the CT models' ``log.parquet`` (column ``prop_mature``), one panel per dataset with one line
per CT model (``ct_free``, ``ct_protected``). Epochs without counterfactuals (NaN) are not drawn.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

import pandas as pd

from ctpaper import names
from ctpaper.names import DATASET_NAMES as TABLE_ORDER, LABELS
from ctpaper.runtime import read_parquet

CT_ROLES = (names.ROLES["ct_free"], names.ROLES["ct_protected"])


def load(logs: Mapping[tuple[str, str, str], str | Path]) -> pd.DataFrame:
    """The training logs ``{(dataset, seed, model): log.parquet}`` in one frame, with the columns
    dataset, seed and model taken from the keys (the caller knows them; paths are not parsed)."""
    frames = [read_parquet(Path(p)).assign(model=model, seed=str(seed), dataset=dataset)
              for (dataset, seed, model), p in logs.items()]
    return pd.concat(frames, ignore_index=True)


def plot(df: pd.DataFrame):
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from ctpaper.figures import style

    style.setup()
    datasets = [d for d in TABLE_ORDER if d in set(df["dataset"])]
    n = len(datasets)
    ncols = min(n, 5)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(style.TEXT_WIDTH, 1.45 * nrows + 0.35),
                             sharey=True, squeeze=False)
    for ax, d in zip(axes.ravel(), datasets):
        sub = df[df["dataset"] == d]
        for r in CT_ROLES:
            g = sub[sub["model"] == r.key].groupby("epoch")["prop_mature"].mean().dropna()
            if len(g):
                ax.plot(g.index, g.to_numpy(), lw=1.0, marker="." if len(g) < 15 else None, ms=3,
                        color=r.colour, label=r.legend_label)
        ax.set_title(LABELS[d])
        ax.set_ylim(-0.02, 1.02)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
        ax.set_xlabel("epoch", labelpad=1)
        ax.grid(alpha=0.3, lw=0.4)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("prop. mature")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=2, frameon=False,
               bbox_to_anchor=(0.5, 1.0 + 0.06 / nrows))
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.06 / nrows), w_pad=0.3, h_pad=0.4)
    return fig


def make(logs: Mapping[tuple[str, str, str], str | Path], out_png: str, out_pdf: str) -> pd.DataFrame:
    """Figure (png, pdf) of the CT models' logs ``{(dataset, seed, model): path}``; returns the data."""
    from ctpaper.figures import style

    df = load(logs)
    style.save(plot(df), out_png, out_pdf)
    return df
