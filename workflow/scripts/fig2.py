"""Rule figure_fig2: Figure 2, MNIST CEs and IG maps of the protected models (method 8)."""

from pathlib import Path

from ctpaper.figures import fig2
from ctpaper.runtime import rule_context

with rule_context(snakemake) as log:  # noqa: F821 - injected by Snakemake's script directive
    smk = snakemake  # noqa: F821
    bl, ct = fig2.ROLES
    fig2.make(str(Path(smk.input.meta).parent), {bl.tag: smk.input.bl, ct.tag: smk.input.ct},
              smk.input.ig_maps, smk.config, smk.output.png, smk.output.pdf, smk.output.stats)
