"""Rule appendix_claims: the verdicts on the original's appendix claims (issue 12 item 4)."""

from pathlib import Path

from ctpaper.appendix.claims import make
from ctpaper.runtime import rule_context

with rule_context(snakemake) as log:  # noqa: F821 - injected by Snakemake's script directive
    smk = snakemake  # noqa: F821
    paths = {}
    for kind in ("scores", "performance", "maturity"):
        for p in smk.input[kind]:
            grid = Path(p).parents[1].name   # {results}/appendix/{grid}/{dataset}/{kind}.parquet
            paths.setdefault(grid, {}).setdefault(kind, []).append(str(p))
    out = make(paths, smk.config, smk.output[0])
    log.info("verdicts: %s", {k: v["verdict"] for k, v in out["claims"].items()})
