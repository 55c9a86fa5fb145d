"""Rule prepare_data: raw files (re-verified) -> train.parquet, test.parquet, meta.json of one dataset."""

from ctpaper.data.prepare import prepare_dataset
from ctpaper.runtime import rule_context

with rule_context(snakemake) as log:  # noqa: F821 - injected by Snakemake's script directive
    smk = snakemake  # noqa: F821
    prepare_dataset(smk.wildcards.dataset, smk.config, smk.input.get("manifest"),
                    smk.output.train, smk.output.test, smk.output.meta)
