"""Rules table_scores / table_settings / table_performance: one table as CSV + Markdown (method 7)."""

from ctpaper.runtime import rule_context
from ctpaper.tables import make_table

with rule_context(snakemake) as log:  # noqa: F821 - injected by Snakemake's script directive
    smk = snakemake  # noqa: F821
    inputs = smk.input.get("scores") or smk.input.get("meta")  # score files, or meta.json for Table 2
    make_table(smk.wildcards.name, [str(p) for p in inputs], smk.output.csv, smk.output.md, smk.config)
