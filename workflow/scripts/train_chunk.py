"""A grid chunk: prepared dataset -> one model.pt + log.parquet per member, in one process
(``ctpaper.stack.chunk.run_chunk``; params.members holds each member's complete settings)."""

from pathlib import Path

from ctpaper.runtime import rule_context
from ctpaper.stack.chunk import run_chunk

with rule_context(snakemake) as log:  # noqa: F821 - injected by Snakemake's script directive
    smk = snakemake  # noqa: F821
    # the appendix's chunk rules have no wildcards (one rule per chunk): they name the data set in params
    dataset = smk.params.get("dataset") or smk.wildcards.dataset
    run_chunk(Path(smk.input.meta).parent, dataset, smk.params.members,
              list(smk.output.models), list(smk.output.logs), vae_path=smk.input.get("vae"),
              mode=smk.params.get("mode", "auto"))
