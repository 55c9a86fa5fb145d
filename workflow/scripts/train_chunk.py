"""A grid chunk: prepared dataset -> one model.pt + log.parquet per member, in one process
(``ctpaper.stack.chunk.run_chunk``; params.members holds each member's complete settings). Outputs:
either the lists ``models`` and ``logs`` or one directory (the appendix's chunks: <dir>/<name>/...)."""

from pathlib import Path

from ctpaper.runtime import rule_context
from ctpaper.stack.chunk import run_chunk

with rule_context(snakemake) as log:  # noqa: F821 - injected by Snakemake's script directive
    smk = snakemake  # noqa: F821
    members = smk.params.members
    if "models" in smk.output.keys():       # one output per member file
        models, logs = list(smk.output.models), list(smk.output.logs)
    else:                                   # the appendix: one directory per chunk, a folder per member
        out = Path(smk.output[0])
        models = [out / m["name"] / "model.pt" for m in members]
        logs = [out / m["name"] / "log.parquet" for m in members]
    run_chunk(Path(smk.input.meta).parent, smk.wildcards.dataset, members, models, logs,
              vae_path=smk.input.get("vae"), mode=smk.params.get("mode", "auto"))
