"""Rules table_scores / table_settings / table_performance: one table as CSV + Markdown (method 7)."""

from ctpaper.runtime import rule_context
from ctpaper.tables import make_table

with rule_context(snakemake) as log:  # noqa: F821 - injected by Snakemake's script directive
    smk = snakemake  # noqa: F821
    make_table(smk.wildcards.name, [str(p) for p in smk.input], smk.output.csv, smk.output.md,
               smk.config)
