"""Rule evaluate_grid: the models of one grid and data set -> scores, performance and maturity.parquet
(``ctpaper.grids.eval.run_grid_evaluation``)."""

from pathlib import Path

from ctpaper.grids.eval import run_grid_evaluation
from ctpaper.runtime import rule_context

with rule_context(snakemake) as log:  # noqa: F821 - injected by Snakemake's script directive
    smk = snakemake  # noqa: F821
    rows = smk.params.rows
    dirs = {Path(d).name: Path(d) for d in smk.input.chunks}   # chunk id -> its directory
    where = {r["model"]: dirs[r["chunk"]] / r["member"] for r in rows}
    run_grid_evaluation(
        Path(smk.input.meta).parent, smk.wildcards.grid, smk.wildcards.dataset, rows, list(smk.params.vary),
        {m: d / "model.pt" for m, d in where.items()}, {m: d / "log.parquet" for m, d in where.items()},
        smk.config, {k: smk.output[k] for k in ("scores", "performance", "maturity")},
        seed=int(smk.params.seed))
