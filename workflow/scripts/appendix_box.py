"""Rule appendix_box: box plot of the % change of IP or cost vs BL for one grid and data set (method 8)."""

from ctpaper.appendix import grid_vary
from ctpaper.names import LABELS
from ctpaper.figures.appendix import make_boxes
from ctpaper.runtime import rule_context

with rule_context(snakemake) as log:  # noqa: F821 - injected by Snakemake's script directive
    smk = snakemake  # noqa: F821
    wc, out = smk.wildcards, smk.output
    stats = make_boxes(smk.input.scores, wc.grid, grid_vary(smk.config, wc.grid), wc.kind,
                       LABELS[wc.dataset], out.png, out.pdf, out.csv)
    log.info("%s %s %s: %d boxes", wc.grid, wc.dataset, wc.kind, len(stats))
