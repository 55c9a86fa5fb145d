"""Appendix figures (method 8): box plots of the percentage change vs BL and maturity curves.

Box plots (Figures 6-38, 48-56), one figure per grid, data set and metric: x = first varied CT
parameter, colour = second, rows = third (D grids, boxes over runs x lambda) or rows = test-time lambda
(E grids, boxes over runs), columns = CE generator where the grid varies it; reference line at 0.
Maturity curves (Figures 39-47, 57-65): proportion of mature CEs per epoch, one line per CT model,
columns = lambda_reg, rows = the grid's other varied parameter (tau or eta_ce).

Every figure is written with a CSV of exactly what it draws (box statistics, or the curves' points),
so tests can check the picture against the data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ctpaper.appendix import D_GRIDS, GENERATOR_LABELS, METRICS, PARAM_LABELS
from ctpaper.appendix.data import pct_change

BOX_COLUMNS = ["col", "row", "x", "hue", "n", "med", "q1", "q3", "whislo", "whishi", "n_fliers"]
# Okabe-Ito colours for up to five values of the colour parameter, then a grey ramp.
HUE_COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442", "#000000")


def _fmt_value(v) -> str:
    """Tick/legend text of a parameter value (generator ids by their names; 5.0 as 5)."""
    if isinstance(v, str):
        return GENERATOR_LABELS.get(v, v)
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return f"{v:g}" if isinstance(v, (float, np.floating)) else str(v)


def box_facets(grid: str, vary: list[str]) -> dict:
    """Which column of the pct frame goes to columns, rows, x and colour (method 8)."""
    keys = [v for v in vary if v != "generator"]
    col = "generator" if "generator" in vary else None
    x, hue = (keys + [None, None])[:2]
    row = (keys[2] if len(keys) > 2 else None) if grid in D_GRIDS else "lam"
    return {"col": col, "row": row, "x": x, "hue": hue}


def _levels(frame: pd.DataFrame, key: str | None) -> list:
    vals = [] if key is None else frame[key].dropna().unique().tolist()
    return sorted(vals, key=_sort_key) if vals else [None]


def _sort_key(v):
    order = list(GENERATOR_LABELS)
    return (0, order.index(v), "") if v in order else (1, 0, str(v)) if isinstance(v, str) else (1, v, "")


def box_stats(pct: pd.DataFrame, facets: dict) -> pd.DataFrame:
    """One row per box: facet values and the Tukey box statistics (quartiles by numpy's linear
    method, whiskers at the most extreme points within 1.5 IQR, matplotlib's ``boxplot_stats``)."""
    from matplotlib.cbook import boxplot_stats

    keys = {k: v for k, v in facets.items() if v is not None}
    rows = []
    for vals, g in pct.groupby(list(keys.values()), sort=True, dropna=False):
        vals = vals if isinstance(vals, tuple) else (vals,)
        st = boxplot_stats(g["pct"].to_numpy(dtype=float))[0]
        row = {k: None for k in ("col", "row", "x", "hue")}
        row.update(dict(zip(keys, vals)))
        row.update(n=len(g), med=st["med"], q1=st["q1"], q3=st["q3"], whislo=st["whislo"],
                   whishi=st["whishi"], n_fliers=len(st["fliers"]), fliers=st["fliers"])
        rows.append(row)
    return pd.DataFrame(rows, columns=BOX_COLUMNS + ["fliers"])


def _grid_axes(n_rows: int, n_cols: int, row_height: float):
    import matplotlib.pyplot as plt

    from ctpaper.figures import style

    style.setup()
    return plt.subplots(n_rows, n_cols, figsize=(style.TEXT_WIDTH, row_height * n_rows + 0.55),
                        sharex=True, sharey="row", squeeze=False)


def _facet_label(key: str | None, value) -> str:
    if key is None:
        return ""
    if key == "generator":
        return _fmt_value(value)
    # short facet strip text (the caption says that lam is the test-time lambda_egy)
    name = PARAM_LABELS["lambda_egy"] if key == "lam" else PARAM_LABELS.get(key, key)
    return f"{name} = {_fmt_value(value)}"


def _draw_boxes(ax, stats: pd.DataFrame, xs: list, hues: list) -> None:
    width = 0.8 / len(hues)
    for _, b in stats.iterrows():
        i = xs.index(b["x"]) if b["x"] is not None else 0
        j = hues.index(b["hue"]) if b["hue"] is not None else 0
        pos = i - 0.4 + width * (j + 0.5)
        st = {k: b[k] for k in ("med", "q1", "q3", "whislo", "whishi", "fliers")}
        color = HUE_COLORS[j % len(HUE_COLORS)]
        ax.bxp([st], positions=[pos], widths=width * 0.85, patch_artist=True, manage_ticks=False,
               boxprops={"facecolor": color, "alpha": 0.55, "lw": 0.5, "edgecolor": color},
               medianprops={"color": "black", "lw": 0.8, "gid": "median"}, whiskerprops={"lw": 0.5, "color": color},
               capprops={"lw": 0.5, "color": color},
               flierprops={"marker": ".", "ms": 1.5, "mec": color, "mfc": color, "alpha": 0.6})


def plot_boxes(stats: pd.DataFrame, facets: dict, metric: str, dataset_label: str):
    """The box-plot figure of one grid, data set and metric from ``box_stats``."""
    cols, rows = _levels(stats, "col"), _levels(stats, "row")
    xs, hues = _levels(stats, "x"), _levels(stats, "hue")
    fig, axes = _grid_axes(len(rows), len(cols), 1.05 if len(rows) > 2 else 1.4)
    for r, rv in enumerate(rows):
        for c, cv in enumerate(cols):
            ax = axes[r, c]
            sel = stats[(stats["col"].isna() if cv is None else stats["col"] == cv)
                        & (stats["row"].isna() if rv is None else stats["row"] == rv)]
            ax.axhline(0.0, color="0.3", lw=0.6, ls="--", zorder=0)
            _draw_boxes(ax, sel, xs, hues)
            ax.set_xlim(-0.5, len(xs) - 0.5)
            ax.set_xticks(range(len(xs)), [_fmt_value(v) for v in xs])
            ax.grid(axis="y", alpha=0.3, lw=0.4)
            if r == 0 and cv is not None:
                ax.set_title(_facet_label("generator", cv), fontsize=8)
            if c == len(cols) - 1 and rv is not None:
                ax.text(1.02, 0.5, _facet_label(facets["row"], rv), transform=ax.transAxes,
                        rotation=270, va="center", ha="left", fontsize=7)
        axes[r, 0].set_ylabel(f"Δ {METRICS[metric]} (%)")
    for ax in axes[-1]:
        ax.set_xlabel(PARAM_LABELS.get(facets["x"], facets["x"] or ""), labelpad=1)
    _box_legend(fig, hues, facets["hue"], dataset_label, metric, len(rows))
    return fig


def _box_legend(fig, hues, hue_key, dataset_label, metric, n_rows) -> None:
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=HUE_COLORS[j % len(HUE_COLORS)], alpha=0.55, label=_fmt_value(h))
               for j, h in enumerate(hues) if h is not None]
    top = 1 - 0.42 / fig.get_figheight()      # room for the title and the legend (0.42 in)
    fig.tight_layout(rect=(0, 0, 0.97, top), w_pad=0.4, h_pad=0.5)
    title = f"{dataset_label}: change in {METRICS[metric]} vs BL"
    if handles:
        fig.legend(handles=handles, loc="upper right", ncol=len(handles), frameon=False,
                   title=PARAM_LABELS.get(hue_key, hue_key), title_fontsize=7,
                   bbox_to_anchor=(0.98, 1.0), columnspacing=0.8, handlelength=1.2)
    fig.text(0.01, 0.995, title, ha="left", va="top", fontsize=8, weight="bold")


def maturity_facets(vary: list[str]) -> dict:
    """Columns = lambda_reg, rows = the other varied parameter (tau in E.1, eta_ce in E.2)."""
    col = "lambda_reg" if "lambda_reg" in vary else (vary[1] if len(vary) > 1 else None)
    others = [v for v in vary if v != col]
    return {"col": col, "row": others[0] if others else None}


def maturity_points(maturity: pd.DataFrame, facets: dict) -> pd.DataFrame:
    """The plotted points: one row per (model, epoch) with a proportion (epochs without CEs left out)."""
    m = maturity.dropna(subset=["prop_mature"])
    out = pd.DataFrame({"col": m[facets["col"]] if facets["col"] else None,
                        "row": m[facets["row"]] if facets["row"] else None,
                        "model": m["model"], "epoch": m["epoch"].astype(int),
                        "prop_mature": m["prop_mature"].astype(float)})
    return out.sort_values(["row", "col", "model", "epoch"]).reset_index(drop=True)


def plot_maturity(points: pd.DataFrame, facets: dict, dataset_label: str):
    """The maturity-curve figure of one grid and data set from ``maturity_points``."""
    from matplotlib.ticker import MaxNLocator

    cols, rows = _levels(points, "col"), _levels(points, "row")
    fig, axes = _grid_axes(len(rows), len(cols), 1.15)
    for r, rv in enumerate(rows):
        for c, cv in enumerate(cols):
            ax = axes[r, c]
            sel = points[(points["col"] == cv if cv is not None else True)
                         & (points["row"] == rv if rv is not None else True)]
            for k, (model, g) in enumerate(sel.groupby("model", sort=True)):
                ax.plot(g["epoch"], g["prop_mature"], lw=0.9, color=HUE_COLORS[k % len(HUE_COLORS)],
                        marker="." if len(g) < 15 else None, ms=3, label=model)
            ax.set_ylim(-0.03, 1.03)
            ax.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
            ax.grid(alpha=0.3, lw=0.4)
            if r == 0 and cv is not None:
                ax.set_title(_facet_label(facets["col"], cv), fontsize=8)
            if c == len(cols) - 1 and rv is not None:
                ax.text(1.03, 0.5, _facet_label(facets["row"], rv), transform=ax.transAxes,
                        rotation=270, va="center", ha="left", fontsize=7)
        axes[r, 0].set_ylabel("prop. mature")
    for ax in axes[-1]:
        ax.set_xlabel("epoch", labelpad=1)
    fig.tight_layout(rect=(0, 0, 0.97, 1 - 0.3 / fig.get_figheight()), w_pad=0.4, h_pad=0.5)
    fig.text(0.01, 0.995, f"{dataset_label}: proportion of mature training counterfactuals",
             ha="left", va="top", fontsize=8, weight="bold")
    return fig


def _write_csv(df: pd.DataFrame, path: str | Path) -> None:
    from ctpaper.runtime import atomic_path

    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.17g")


def make_boxes(scores_path: str, grid: str, vary: list[str], metric: str, dataset_label: str,
               png: str, pdf: str, csv: str) -> pd.DataFrame:
    """Rule ``appendix_box``: read the grid's scores, compute pct (method 8), draw and write."""
    from ctpaper.figures import style
    from ctpaper.runtime import UserError, read_parquet

    pct = pct_change(read_parquet(scores_path), vary, metric)
    if pct.empty:
        raise UserError(f"{scores_path}: no CT cell has a {metric} value matched to BL: nothing to plot")
    facets = box_facets(grid, vary)
    stats = box_stats(pct, facets)
    style.save(plot_boxes(stats, facets, metric, dataset_label), png, pdf)
    _write_csv(stats.drop(columns="fliers"), csv)
    return stats


def make_maturity(maturity_path: str, vary: list[str], dataset_label: str, png: str, pdf: str,
                  csv: str) -> pd.DataFrame:
    """Rule ``appendix_maturity``: read the grid's maturity log, draw and write."""
    from ctpaper.figures import style
    from ctpaper.runtime import UserError, read_parquet

    facets = maturity_facets(vary)
    points = maturity_points(read_parquet(maturity_path), facets)
    if points.empty:
        raise UserError(f"{maturity_path}: no epoch has a proportion of mature CEs: nothing to plot")
    style.save(plot_maturity(points, facets, dataset_label), png, pdf)
    _write_csv(points, csv)
    return points
