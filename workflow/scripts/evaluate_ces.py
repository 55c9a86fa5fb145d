"""Rule evaluate_ces: test-time CEs of CT (ct_{family}) and BL for one dataset, seed and family."""

from pathlib import Path

from ctpaper.evaluation.protocol import run_evaluate_ces
from ctpaper.runtime import rule_context

with rule_context(snakemake) as log:  # noqa: F821 - injected by Snakemake's script directive
    smk = snakemake  # noqa: F821
    wc = smk.wildcards
    run_evaluate_ces(Path(smk.input.meta).parent, smk.input.ct, smk.input.bl, smk.config,
                     wc.dataset, wc.family, int(wc.seed), smk.output.ces, smk.output.mmd)
