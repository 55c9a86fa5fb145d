"""Rule provenance: config hash, versions, git commit and per-rule compute from benchmarks/."""

from ctpaper.paper import provenance
from ctpaper.runtime import rule_context

with rule_context(snakemake) as log:  # noqa: F821 - injected by Snakemake's script directive
    smk = snakemake  # noqa: F821
    provenance.write(smk.config, smk.params.bench_dirs, smk.output[0], root=smk.params.project)
