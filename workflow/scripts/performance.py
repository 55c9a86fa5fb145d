"""Rule performance: test accuracy and macro-F1 of bl, ct_free and ct_protected."""

from pathlib import Path

from ctpaper.evaluation.performance import run_performance
from ctpaper.runtime import rule_context

with rule_context(snakemake) as log:  # noqa: F821 - injected by Snakemake's script directive
    smk = snakemake  # noqa: F821
    models = {"BL": smk.input.bl, "CT_free": smk.input.ct_free,
              "CT_protected": smk.input.ct_protected}
    run_performance(Path(smk.input.meta).parent, models, smk.wildcards.dataset,
                    int(smk.wildcards.seed), smk.output[0])
