"""Rule integrated_gradients: MNIST class-average IG maps of BL and CT_protected (Figure 2)."""

from pathlib import Path

from ctpaper.evaluation.attributions import run_ig_maps
from ctpaper.runtime import rule_context

with rule_context(snakemake) as log:  # noqa: F821 - injected by Snakemake's script directive
    smk = snakemake  # noqa: F821
    run_ig_maps(Path(smk.input.meta).parent, {"BL": smk.input.bl, "CT_protected": smk.input.ct},
                smk.config, int(smk.wildcards.seed), smk.output[0])
