"""Rule table_comparison: Tables 1 and 3 next to the original's published values."""

from ctpaper.comparison import context, make_comparison
from ctpaper.runtime import rule_context

with rule_context(snakemake) as log:  # noqa: F821 - injected by Snakemake's script directive
    smk = snakemake  # noqa: F821
    make_comparison(smk.input.table1, smk.input.table3, smk.input.original, context(smk.config),
                    smk.output.csv, smk.output.means, smk.output.md, smk.output.notes)
