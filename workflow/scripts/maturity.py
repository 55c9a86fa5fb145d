"""Rule figure_maturity: proportion of mature training CEs per epoch (method 8)."""

from ctpaper.figures import maturity
from ctpaper.runtime import rule_context

with rule_context(snakemake) as log:  # noqa: F821 - injected by Snakemake's script directive
    smk = snakemake  # noqa: F821
    logs = dict(zip(smk.params.log_ids, smk.input.logs, strict=True))  # {(dataset, seed, model): path}
    maturity.make(logs, smk.output.png, smk.output.pdf)
