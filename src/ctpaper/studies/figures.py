"""Figures of the robustness studies (issue 13).

``seed_figure``: one panel per Table-1 column; per data set, every training seed's % reduction with
its run interval (value +- the table's pm: ``tables.pm_rule`` of the per-run CT/BL ratios; filled
marker = significant), and the mean over seeds with its t interval over seeds (black).
``sensitivity_figure``: one row per method-10.1 difference (and all at once), one panel per claim:
the shift of the column average from the published settings (bar), with the data sets whose
sign-and-significance class flips written beside the bar.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ctpaper.names import DATASET_NAMES as TABLE_ORDER, LABELS
from ctpaper.runtime import read_csv
from ctpaper.studies.report import CLAIM_TEXT, COLUMN_LABELS, COLUMNS

SHIFT_UNITS = {"ip": "% points", "ip_star": "% points", "cost": "% points", "robust": "acc. points",
               "accuracy": "acc. points"}


def seed_figure(long: pd.DataFrame):
    """The seed-study figure from the seed-study CSV (see module doc)."""
    import matplotlib.pyplot as plt

    from ctpaper.figures import style

    style.setup()
    datasets = [d for d in TABLE_ORDER if d in set(long["dataset"])]
    seeds = sorted(long["seed"].unique())
    fig, axes = plt.subplots(1, len(COLUMNS), figsize=(style.TEXT_WIDTH, 2.4), squeeze=False)
    cmap = plt.get_cmap("viridis")
    width = 0.7
    for ax, m in zip(axes[0], COLUMNS):
        sub = long[long["metric"] == m]
        for j, seed in enumerate(seeds):
            s = sub[sub["seed"] == seed].set_index("dataset").reindex(datasets)
            x = np.arange(len(datasets)) - width / 2 + width * (j + 0.5) / len(seeds)
            colour = cmap(j / max(1, len(seeds) - 1) * 0.85)
            ax.errorbar(x, s["value"], yerr=s["pm"], fmt="none", ecolor=colour, elinewidth=0.6, alpha=0.7)
            sig = s["significant"].fillna(False).astype(bool).to_numpy()
            ax.scatter(x[sig], s["value"].to_numpy()[sig], s=7, color=colour, zorder=3,
                       label=f"seed {seed}")
            ax.scatter(x[~sig], s["value"].to_numpy()[~sig], s=7, facecolor="white", edgecolor=colour,
                       lw=0.6, zorder=3)
        summ = sub.drop_duplicates("dataset").set_index("dataset").reindex(datasets)
        xs = np.arange(len(datasets))
        ax.hlines(summ["mean"], xs - width / 2, xs + width / 2, color="black", lw=1.0, zorder=4)
        ax.vlines(xs + width / 2 + 0.08, summ["lb"], summ["ub"], color="black", lw=1.2, zorder=4)
        ax.axhline(0, color="grey", lw=0.5)
        # axes fit the seeds' values and run intervals; a wider interval over seeds (few seeds: large
        # t quantile) is clipped at the axes
        span = pd.concat([sub["value"] - sub["pm"].fillna(0), sub["value"] + sub["pm"].fillna(0)])
        if span.notna().any():
            lo, hi = float(span.min()), float(span.max())
            pad = 0.1 * max(hi - lo, 1.0)
            ax.set_ylim(min(lo, 0) - pad, max(hi, 0) + pad)
        ax.set_xticks(xs, [LABELS[d] for d in datasets], rotation=60, fontsize=6.5)
        ax.set_title(f"{COLUMN_LABELS[m]}: % reduction CT vs BL")
        ax.grid(axis="y", alpha=0.3, lw=0.4)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(seeds), frameon=False,
               bbox_to_anchor=(0.5, 1.04))
    fig.tight_layout(rect=(0, 0, 1, 0.93), w_pad=0.4)
    return fig


def _flip_text(rows: pd.DataFrame) -> str:
    flipped = rows[rows["flipped"].astype(bool)]
    return ", ".join(LABELS[d] for d in flipped["dataset"])


def sensitivity_figure(long: pd.DataFrame):
    """The sensitivity figure from the sensitivity CSV (see module doc)."""
    import matplotlib.pyplot as plt

    from ctpaper.figures import style

    style.setup()
    variants = [v for v in dict.fromkeys(long["variant"]) if v != "base"]
    claims = list(dict.fromkeys(long["metric"]))
    labels = long.drop_duplicates("variant").set_index("variant")["variant_label"]
    fig, axes = plt.subplots(1, len(claims), figsize=(style.TEXT_WIDTH, 0.9 + 0.22 * len(variants)),
                             sharey=True, squeeze=False)
    y = np.arange(len(variants))[::-1]
    for ax, c in zip(axes[0], claims):
        sub = long[long["metric"] == c]
        shifts = [float(sub[sub["variant"] == v]["avg_shift"].iloc[0]) for v in variants]
        colours = ["#4C72B0" if s >= 0 else "#C44E52" for s in shifts]
        ax.barh(y, np.nan_to_num(shifts), color=colours, height=0.6)
        lim = max([abs(s) for s in shifts if not np.isnan(s)] + [1.0]) * 1.15
        for yi, v in zip(y, variants):
            text = _flip_text(sub[(sub["variant"] == v) & (sub["dataset"] != "avg")])
            if text:
                ax.text(0, yi + 0.32, text, fontsize=5, ha="center", va="bottom", color="black")
        ax.axvline(0, color="grey", lw=0.5)
        ax.set_xlim(-lim, lim)
        ax.set_title(CLAIM_TEXT[c], fontsize=7)
        ax.set_xlabel(f"Δ average ({SHIFT_UNITS[c]})", fontsize=6)
        ax.tick_params(axis="x", labelsize=5.5)
        ax.grid(axis="x", alpha=0.3, lw=0.4)
    axes[0][0].set_yticks(y, [labels[v] for v in variants], fontsize=6)
    fig.tight_layout(w_pad=0.3)
    return fig


def make(kind: str, csv_path: str, out_png: str, out_pdf: str) -> None:
    """Rule seed_study_figure (``kind`` seeds) / sensitivity_figure (``kind`` sensitivity)."""
    from ctpaper.figures import style

    df = read_csv(csv_path)
    fig = seed_figure(df) if kind == "seeds" else sensitivity_figure(df)
    style.save(fig, out_png, out_pdf)
