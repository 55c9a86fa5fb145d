"""Figure 3 (method 8): robust accuracy under FGSM vs eps, one panel per dataset, CT vs BL (`free`).

Input: ``robustness.parquet`` files (dataset, seed, model, eps, accuracy; model BL | CT). With several
training seeds the line is the mean over seeds and a band shows the range over seeds.
"""

from __future__ import annotations

import pandas as pd

from ctpaper import names
from ctpaper.names import DATASET_NAMES as TABLE_ORDER, LABELS
from ctpaper.runtime import read_parquet

# BL and CT (`free` family) under the labels of robustness.parquet
ROLES = (names.BL, names.ct_role("free"))
MODEL_ORDER = tuple(r.label for r in ROLES)


def load(paths) -> pd.DataFrame:
    df = pd.concat([read_parquet(p) for p in paths], ignore_index=True)
    return df[df["model"].isin(MODEL_ORDER)]


def plot(df: pd.DataFrame):
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    from ctpaper.figures import style

    style.setup()
    datasets = [d for d in TABLE_ORDER if d in set(df["dataset"])]
    n = len(datasets)
    fig, axes = plt.subplots(1, n, figsize=(style.TEXT_WIDTH, 1.75), sharey=True, squeeze=False)
    axes = axes[0]
    eps_max = float(df["eps"].max())
    for ax, d in zip(axes, datasets):
        sub = df[df["dataset"] == d]
        for r in ROLES:
            g = sub[sub["model"] == r.label].groupby("eps")["accuracy"]
            if g.ngroups == 0:
                continue
            mean, lo, hi = g.mean(), g.min(), g.max()
            ax.plot(mean.index, mean.to_numpy(), marker=r.marker, ms=2.5, lw=1.0,
                    color=r.colour, label=r.label)
            if sub["seed"].nunique() > 1:
                ax.fill_between(mean.index, lo.to_numpy(), hi.to_numpy(), color=r.colour,
                                alpha=0.2, lw=0)
        ax.set_title(LABELS[d])
        ax.set_ylim(-0.02, 1.02)
        if eps_max > 0:
            ax.set_xlim(-0.06 * eps_max, 1.06 * eps_max)
            ax.set_xticks([0, eps_max / 2, eps_max])
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
        ax.tick_params(axis="x", labelsize=6.5)
        ax.set_xlabel("ε", labelpad=1)
        ax.grid(alpha=0.3, lw=0.4)
    axes[0].set_ylabel("robust accuracy")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=2, frameon=False, bbox_to_anchor=(0.5, 1.07))
    fig.tight_layout(rect=(0, 0, 1, 0.94), w_pad=0.25)
    return fig


def make(paths, out_png: str, out_pdf: str) -> pd.DataFrame:
    from ctpaper.figures import style

    df = load(paths)
    if df.empty:
        raise ValueError("no BL/CT rows in the robustness files")
    style.save(plot(df), out_png, out_pdf)
    return df
