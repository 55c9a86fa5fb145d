# The appendix grids' plan (ctpaper.grids.plan) as paths and input functions for appendix.smk
# (kept apart from the rules: `snakemake --lint` objects to functions mixed with rules).
#   {results}/appendix/models/{dataset}/{chunk}/       one train_chunk job's directory (chunk = hash of
#                                        its member names), holding per member (= hash of its settings,
#                                        shared by every grid cell that trains it) model.pt, log.parquet
#   {results}/appendix/{grid}/{dataset}/scores|performance|maturity.parquet

from ctpaper.grids import plan as grid_plan  # noqa: E402

GRID_IDS = grid_plan.grid_ids(config)
APPENDIX = f"{R}/appendix"
GRID_CHUNK_DIR = f"{APPENDIX}/models/{{dataset}}/{{chunk}}"
GRID_DIR = f"{APPENDIX}/{{grid}}/{{dataset}}"
GRID_OUTPUTS = {k: f"{GRID_DIR}/{k}.parquet" for k in ("scores", "performance", "maturity")}
# the chunks of every data set, computed once per DAG
GRID_CHUNKS = {d: grid_plan.dataset_chunks(config, d) for d in grid_plan.appendix_datasets(config)}
GRID_CHUNK_IDS = sorted({c["id"] for chunks in GRID_CHUNKS.values() for c in chunks})
GRID_FILES = [
    p.format(grid=g, dataset=d)
    for g in GRID_IDS
    for d in grid_plan.grid_datasets(config, g)
    for p in GRID_OUTPUTS.values()
]
# Resources from the benchmarks of the smoke and one-chunk runs (README "Appendix budget").
GRID_TRAIN_RESOURCES = {
    "synthetic": {"mem_mb": 1500, "runtime": 30},
    "tabular": {"mem_mb": 1500, "runtime": 40},
    "image": {"mem_mb": 2000, "runtime": 60},
}
GRID_EVAL_RESOURCES = {
    "synthetic": {"mem_mb": 1500, "runtime": 30},
    "tabular": {"mem_mb": 1500, "runtime": 30},
    "image": {"mem_mb": 2000, "runtime": 60},
}


def _grid_chunk(wildcards):
    for chunk in GRID_CHUNKS.get(wildcards.dataset, []):
        if chunk["id"] == wildcards.chunk:
            return chunk
    raise WorkflowError(f"{wildcards.dataset} has no grid chunk {wildcards.chunk} in this config")


def _chunk_inputs(wildcards):
    files = {k: v.format(dataset=wildcards.dataset) for k, v in DATA_IN.items()}
    if _grid_chunk(wildcards)["vae"]:
        files["vae"] = VAE.format(dataset=wildcards.dataset)
    return files


def _chunk_members(wildcards):
    return _grid_chunk(wildcards)["members"]


def _grid_rows(wildcards):
    """The grid's models: id, objective, cell values, and where the model lies (chunk, member)."""
    where = grid_plan.chunk_of(config, wildcards.dataset)
    return [
        {k: r[k] for k in ("model", "objective", "values")}
        | {"member": r["member"]["name"], "chunk": where[r["member"]["name"]]}
        for r in grid_plan.grid_models(config, wildcards.grid, wildcards.dataset)
    ]


def _grid_chunk_dirs(wildcards):
    return sorted(
        {GRID_CHUNK_DIR.format(dataset=wildcards.dataset, chunk=r["chunk"]) for r in _grid_rows(wildcards)}
    )


def _grid_vary(wildcards):
    return list(config["grids"][wildcards.grid]["vary"])


def _grid_res(table, key):
    return lambda wc: table[dataset_kind(wc.dataset)][key]
