"""The appendix's part of the paper: the generated block that lists, per configured grid, its
section text (``paper/sections/appendix_<grid>.qmd``), its table and its figures, and the variables
of the claims text (``paper/sections/appendix_claims.qmd``). The prose lives in those .qmd files;
this module only lays out which figures and tables the run has."""

from __future__ import annotations

from ctpaper.appendix import SECTIONS, TITLES
from ctpaper.appendix import layout
from ctpaper.names import LABELS

KIND_TEXT = {"ip": "IP", "cost": "cost", "maturity": "maturity"}


def grid_block(config, grid: str) -> str:
    """One grid's subsection: heading, its prose, its table, a line referencing every figure, the figures."""
    figs = [(d, k) for g, d, k in layout.figures(config) if g == grid]
    lines = [f"## Grid {SECTIONS[grid]}: {TITLES[grid]} {{#sec-appx-{grid.replace('_', '-')}}}", "",
             f"{{{{< include /sections/appendix_{grid}.qmd >}}}}", "",
             f"{{{{< include tables/{layout.table_name(grid)}.md >}}}}", ""]
    refs = []
    for kind in layout.figure_kinds(grid):
        labels = [f"@{layout.figure_label(grid, d, k)} ({LABELS[d]})" for d, k in figs if k == kind]
        if labels:
            refs.append(f"{KIND_TEXT[kind]}: " + ", ".join(labels))
    if refs:
        lines += ["Figures per data set, " + "; ".join(refs) + ".", ""]
    for d, k in figs:
        lines += [f"![{layout.caption(config, grid, d, k)}](figures/{layout.figure_name(grid, d, k)}.png)"
                  f"{{#{layout.figure_label(grid, d, k)} index=\"{LABELS[d]}\" width=100%}}", ""]
    return "\n".join(lines)


def appendix_block(config) -> str:
    """The whole generated appendix part: every configured grid, then the claims section."""
    grids = layout.grids_run(config)
    if not grids:
        return ""
    parts = [grid_block(config, g) for g in grids]
    parts.append("## The original's appendix claims {#sec-appx-claims}\n\n"
                 "{{< include /sections/appendix_claims.qmd >}}\n")
    return "\n".join(parts)


def grid_vars(config) -> dict:
    """Per configured grid: its data sets in the run (labels) and their number."""
    return {g: {"datasets": ", ".join(LABELS[d] for d in layout.ordered_datasets(config, g)),
                "n_datasets": str(len(layout.ordered_datasets(config, g)))} for g in layout.grids_run(config)}
