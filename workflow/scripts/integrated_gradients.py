"""Rule integrated_gradients: MNIST class-average IG maps of BL and CT_protected (Figure 2)."""

from pathlib import Path

from ctpaper.evaluation.attributions import IG_MODELS, run_ig_maps
from ctpaper.runtime import rule_context

with rule_context(snakemake) as log:  # noqa: F821 - injected by Snakemake's script directive
    smk = snakemake  # noqa: F821
    models = {label: smk.input[m] for label, m in IG_MODELS.items()}
    run_ig_maps(Path(smk.input.meta).parent, models, smk.config, int(smk.wildcards.seed),
                smk.output[0])
