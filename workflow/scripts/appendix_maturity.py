"""Rule appendix_maturity: proportion of mature training CEs per epoch for one grid and data set."""

from ctpaper.appendix import grid_vary
from ctpaper.names import LABELS
from ctpaper.figures.appendix import make_maturity
from ctpaper.runtime import rule_context

with rule_context(snakemake) as log:  # noqa: F821 - injected by Snakemake's script directive
    smk = snakemake  # noqa: F821
    wc, out = smk.wildcards, smk.output
    points = make_maturity(smk.input.maturity, grid_vary(smk.config, wc.grid), LABELS[wc.dataset],
                           out.png, out.pdf, out.csv)
    log.info("%s %s: %d points", wc.grid, wc.dataset, len(points))
