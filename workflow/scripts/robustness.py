"""Rule robustness: FGSM accuracy of the free models (BL, CT) over robust.eps_grid."""

from pathlib import Path

from ctpaper.evaluation.robustness import run_robustness
from ctpaper.runtime import rule_context

with rule_context(snakemake) as log:  # noqa: F821 - injected by Snakemake's script directive
    smk = snakemake  # noqa: F821
    run_robustness(Path(smk.input.meta).parent, {"BL": smk.input.bl, "CT": smk.input.ct},
                   smk.config, smk.wildcards.dataset, int(smk.wildcards.seed), smk.output[0])
