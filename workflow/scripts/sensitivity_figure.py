"""Rule sensitivity_figure: per stated-setting difference, shift of each column average and flips."""

from ctpaper.runtime import rule_context
from ctpaper.studies.figures import make

with rule_context(snakemake) as log:  # noqa: F821 - injected by Snakemake's script directive
    smk = snakemake  # noqa: F821
    make("sensitivity", smk.input.csv, smk.output.png, smk.output.pdf)
