"""Rule seed_study_figure: per-seed % reductions with their run intervals, one panel per column."""

from ctpaper.runtime import rule_context
from ctpaper.studies.figures import make

with rule_context(snakemake) as log:  # noqa: F821 - injected by Snakemake's script directive
    smk = snakemake  # noqa: F821
    make("seeds", smk.input.csv, smk.output.png, smk.output.pdf)
