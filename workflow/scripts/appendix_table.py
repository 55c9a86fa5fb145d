"""Rule appendix_table: a grid's predictive-performance table (Tables 4-6, method 7.6)."""

from ctpaper.appendix.tables import make
from ctpaper.runtime import rule_context

with rule_context(snakemake) as log:  # noqa: F821 - injected by Snakemake's script directive
    smk = snakemake  # noqa: F821
    table = make(list(smk.input.performance), smk.wildcards.grid, smk.output.csv, smk.output.md)
    log.info("%s: %d rows", smk.wildcards.grid, len(table))
