"""Rule figure_fig1: Figure 1, the linear-model proof of concept (method 8)."""

from ctpaper.figures import fig1
from ctpaper.runtime import rule_context

with rule_context(snakemake) as log:  # noqa: F821 - injected by Snakemake's script directive
    smk = snakemake  # noqa: F821
    fig1.make(smk.config, smk.output.png, smk.output.pdf, smk.output.stats)
