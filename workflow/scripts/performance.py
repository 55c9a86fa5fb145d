"""Rule performance: test accuracy and macro-F1 of bl, ct_free and ct_protected."""

from pathlib import Path

from ctpaper.evaluation.performance import PERFORMANCE_MODELS, run_performance
from ctpaper.runtime import rule_context

with rule_context(snakemake) as log:  # noqa: F821 - injected by Snakemake's script directive
    smk = snakemake  # noqa: F821
    models = {label: smk.input[m] for label, m in PERFORMANCE_MODELS.items()}
    run_performance(Path(smk.input.meta).parent, models, smk.wildcards.dataset,
                    int(smk.wildcards.seed), smk.output[0])
