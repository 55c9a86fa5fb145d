"""Rule seed_study_table: Table 1 per training seed, mean over seeds, interval, significant seeds."""

from ctpaper.runtime import rule_context
from ctpaper.studies.report import make_seed_study

with rule_context(snakemake) as log:  # noqa: F821 - injected by Snakemake's script directive
    smk = snakemake  # noqa: F821
    p, out = smk.params, smk.output   # params: the files; inputs: them or the directories holding them
    make_seed_study(list(p.ces), list(p.robustness), list(p.performance), out.csv, out.md,
                    out.json, smk.config)
