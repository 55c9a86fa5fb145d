"""Rule robustness: FGSM accuracy of the free models (BL, CT) over robust.eps_grid."""

from pathlib import Path

from ctpaper.evaluation.robustness import ROBUSTNESS_MODELS, run_robustness
from ctpaper.runtime import rule_context

with rule_context(snakemake) as log:  # noqa: F821 - injected by Snakemake's script directive
    smk = snakemake  # noqa: F821
    models = {label: smk.input[m] for label, m in ROBUSTNESS_MODELS.items()}
    run_robustness(Path(smk.input.meta).parent, models, smk.config, smk.wildcards.dataset,
                   int(smk.wildcards.seed), smk.output[0])
