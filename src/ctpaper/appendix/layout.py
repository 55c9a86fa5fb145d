"""What the appendix consists of for a config: its figures and tables, their names in the paper
build, labels and captions, in paper order (grids as in ``GRIDS``; data sets alphabetically by label,
the order of the original's Figures 6-65). No torch/matplotlib import: the workflow uses it while it
builds the DAG."""

from __future__ import annotations

from ctpaper.appendix import E_GRIDS, METRICS, PARAM_LABELS, TITLES, configured_grids, grid_datasets, grid_metrics
from ctpaper.names import LABELS


def ordered_datasets(config, grid: str) -> list[str]:
    """The grid's data sets in the run, alphabetically by label (the original's figure order)."""
    return sorted(grid_datasets(config, grid), key=lambda d: LABELS[d].lower())


def grids_run(config) -> list[str]:
    """The configured grids with at least one data set in the run (the others make no jobs)."""
    return [g for g in configured_grids(config) if ordered_datasets(config, g)]


def figure_kinds(grid: str) -> tuple[str, ...]:
    """The figures of each data set of ``grid``: box plots per metric, maturity curves for E grids."""
    return grid_metrics(grid) + (("maturity",) if grid in E_GRIDS else ())


def figures(config) -> list[tuple[str, str, str]]:
    """Every appendix figure as (grid, dataset, kind), in paper order (per grid: all data sets of
    one kind, then the next kind)."""
    out = []
    for grid in grids_run(config):
        for kind in figure_kinds(grid):
            out += [(grid, d, kind) for d in ordered_datasets(config, grid)]
    return out


def figure_name(grid: str, dataset: str, kind: str) -> str:
    """The figure's name in the paper build (``figures/<name>.png``)."""
    return f"appendix_{grid}_{dataset}_{kind}"


def figure_label(grid: str, dataset: str, kind: str) -> str:
    return f"fig-appx-{grid}-{dataset}-{kind}".replace("_", "-")


def table_name(grid: str) -> str:
    """The grid's performance table's name in the paper build (``tables/<name>.md``)."""
    return f"appendix_{grid}"


def caption(config, grid: str, dataset: str, kind: str) -> str:
    """The figure caption: what is plotted and how it is faceted (method 8)."""
    from ctpaper.appendix import grid_vary

    vary = grid_vary(config, grid)
    names = [PARAM_LABELS.get(v, v) for v in vary if v != "generator"]
    label = LABELS[dataset]
    if kind == "maturity":
        rows = [PARAM_LABELS.get(v, v) for v in vary if v != "lambda_reg"]
        return (f"{TITLES[grid]}, {label}: proportion of mature training counterfactuals per epoch, one "
                f"line per CT model; columns: {PARAM_LABELS['lambda_reg']}, rows: {', '.join(rows)}.")
    facets = f"x: {names[0]}" + (f", colour: {names[1]}" if len(names) > 1 else "")
    if grid in E_GRIDS:
        facets += f"; rows: {PARAM_LABELS['lam']}; boxes over evaluation runs"
    else:
        facets += (f", rows: {names[2]}" if len(names) > 2 else "") + "; columns: generator; boxes over " \
                   f"evaluation runs and {PARAM_LABELS['lam']} values"
    return (f"{TITLES[grid]}, {label}: change in {METRICS[kind]} of the CT models relative to BL "
            f"(%, negative = CT better; dashed line: no change); {facets}.")
