# The appendix grids' plan (ctpaper.grids.plan) as paths and input functions for appendix.smk
# (kept apart from the rules: `snakemake --lint` objects to functions mixed with rules).
#   {results}/appendix/models/{dataset}/{member}/model.pt, log.parquet   one model (member = hash of
#                                        its settings: shared by every grid cell that trains it)
#   {results}/appendix/{grid}/{dataset}/scores|performance|maturity.parquet

from ctpaper.grids import plan as grid_plan  # noqa: E402

GRID_IDS = grid_plan.grid_ids(config)
APPENDIX = f"{R}/appendix"
GRID_MODEL_DIR = f"{APPENDIX}/models/{{dataset}}/{{member}}"
GRID_MODEL = f"{GRID_MODEL_DIR}/model.pt"
GRID_LOG = f"{GRID_MODEL_DIR}/log.parquet"
GRID_DIR = f"{APPENDIX}/{{grid}}/{{dataset}}"
GRID_OUTPUTS = {k: f"{GRID_DIR}/{k}.parquet" for k in ("scores", "performance", "maturity")}
# the chunks of every data set, computed once per DAG
GRID_CHUNKS = {d: grid_plan.dataset_chunks(config, d) for d in grid_plan.appendix_datasets(config)}
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
    "mnist": {"mem_mb": 2000, "runtime": 60},
}
GRID_EVAL_RESOURCES = {
    "synthetic": {"mem_mb": 1500, "runtime": 30},
    "tabular": {"mem_mb": 1500, "runtime": 30},
    "mnist": {"mem_mb": 2000, "runtime": 60},
}


def grid_chunk_files(dataset, chunk, name):
    """The model and log files of one chunk (name: model.pt | log.parquet)."""
    return [f"{GRID_MODEL_DIR}/{name}".format(dataset=dataset, member=m["name"]) for m in chunk["members"]]


def grid_chunk_inputs(dataset, chunk):
    files = {k: v.format(dataset=dataset) for k, v in DATA_IN.items()}
    if chunk["vae"]:
        files["vae"] = VAE.format(dataset=dataset)
    return files


def _grid_rows(wildcards):
    return [
        {k: r[k] for k in ("model", "objective", "values")} | {"member": r["member"]["name"]}
        for r in grid_plan.grid_models(config, wildcards.grid, wildcards.dataset)
    ]


def _grid_files(name):
    def files(wildcards):
        return [
            f"{GRID_MODEL_DIR}/{name}".format(dataset=wildcards.dataset, member=r["member"])
            for r in _grid_rows(wildcards)
        ]

    return files


def _grid_vary(wildcards):
    return list(config["grids"][wildcards.grid]["vary"])


def _grid_res(table, key):
    return lambda wc: table[dataset_kind(wc.dataset)][key]


def _grid_group(wildcards):
    return int(config["grids"]["eval"]["group"][dataset_kind(wildcards.dataset)])
