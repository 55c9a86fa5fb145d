"""Rule figure_fig45: Figure 4 (CT) or 5 (BL), the 10 x 10 MNIST CE grid (method 8)."""

from pathlib import Path

from ctpaper.figures import fig45
from ctpaper.runtime import rule_context

with rule_context(snakemake) as log:  # noqa: F821 - injected by Snakemake's script directive
    smk = snakemake  # noqa: F821
    fig45.make(smk.wildcards.name, str(Path(smk.input.meta).parent), smk.input.model, smk.config,
               smk.output.png, smk.output.pdf, smk.output.stats)
