"""Rule sensitivity_table: Table 1 of every study variant, the all-at-once Table 1, the values."""

from ctpaper.runtime import rule_context
from ctpaper.studies.report import make_sensitivity

with rule_context(snakemake) as log:  # noqa: F821 - injected by Snakemake's script directive
    smk = snakemake  # noqa: F821
    p, out = smk.params, smk.output   # params: {variant: files}; inputs: them or the directories holding them
    make_sensitivity(dict(p.ces), dict(p.robustness), dict(p.performance), out.csv, out.md, out.json,
                     smk.config)
