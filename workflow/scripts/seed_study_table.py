"""Rule seed_study_table: Table 1 per training seed, mean over seeds, interval, significant seeds."""

from ctpaper.runtime import rule_context
from ctpaper.studies.report import make_seed_study

with rule_context(snakemake) as log:  # noqa: F821 - injected by Snakemake's script directive
    smk = snakemake  # noqa: F821
    inp, out = smk.input, smk.output
    make_seed_study(list(inp.ces), list(inp.robustness), list(inp.performance), out.csv, out.md,
                    out.json, smk.config)
