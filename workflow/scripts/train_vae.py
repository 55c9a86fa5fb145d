"""Rule train_vae: prepared dataset -> REVISE's VAE (only when train.generator is revise)."""

from pathlib import Path

from ctpaper.runtime import rule_context
from ctpaper.training import run_vae_training

with rule_context(snakemake) as log:  # noqa: F821 - injected by Snakemake's script directive
    smk = snakemake  # noqa: F821
    run_vae_training(Path(smk.input.meta).parent, smk.wildcards.dataset, smk.config,
                     smk.output[0])
