"""Rule train_model: prepared dataset -> model.pt + log.parquet of bl, ct_free or ct_protected."""

from pathlib import Path

from ctpaper.runtime import rule_context
from ctpaper.training import run_training

with rule_context(snakemake) as log:  # noqa: F821 - injected by Snakemake's script directive
    smk = snakemake  # noqa: F821
    run_training(Path(smk.input.meta).parent, smk.wildcards.dataset, int(smk.wildcards.seed),
                 smk.wildcards.model, smk.config, smk.output.model, smk.output.log,
                 vae_path=smk.input.get("vae"))
