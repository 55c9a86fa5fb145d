"""Rule fetch_raw: locate and verify the raw files of one dataset, write its manifest."""

from ctpaper.data.raw import fetch_dataset
from ctpaper.runtime import rule_context

with rule_context(snakemake) as log:  # noqa: F821 - injected by Snakemake's script directive
    fetch_dataset(snakemake.wildcards.dataset, snakemake.config, snakemake.output[0])  # noqa: F821
