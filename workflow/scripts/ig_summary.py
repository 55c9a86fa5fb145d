"""Rule ig_summary: protected-feature IG summary of BL and CT_protected for one dataset and seed."""

from pathlib import Path

from ctpaper.evaluation.attributions import IG_MODELS, run_ig_summary
from ctpaper.runtime import rule_context

with rule_context(snakemake) as log:  # noqa: F821 - injected by Snakemake's script directive
    smk = snakemake  # noqa: F821
    models = {label: smk.input[m] for label, m in IG_MODELS.items()}
    run_ig_summary(Path(smk.input.meta).parent, models, smk.config, smk.wildcards.dataset,
                   int(smk.wildcards.seed), smk.output[0], maps_path=smk.input.get("maps"))
