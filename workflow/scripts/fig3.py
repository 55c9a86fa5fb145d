"""Rule figure_fig3: Figure 3, robust accuracy vs FGSM eps (method 8)."""

from ctpaper.figures import fig3
from ctpaper.runtime import rule_context

with rule_context(snakemake) as log:  # noqa: F821 - injected by Snakemake's script directive
    smk = snakemake  # noqa: F821
    fig3.make(list(smk.input.scores), smk.output.png, smk.output.pdf)
