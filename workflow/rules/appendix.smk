# The appendix grids (method 9; ctpaper.grids): training chunks and grid evaluations.
#   <dataset>_<chunk>_train_chunk  one job per chunk of a data set's distinct grid models (a model
#                       shared by several grids is trained once): one model.pt + log.parquet per
#                       member (ctpaper.stack.chunk: model stacks on synthetic data, one process
#                       otherwise). One rule per chunk, since a chunk's outputs are its members' files.
#   evaluate_grid       one job per grid and data set: CEs on the pool for every model of the grid
#                       (BL included), test metrics and training maturity -> scores, performance and
#                       maturity.parquet (the appendix figures' and tables' inputs).
# The target rules (grid_generator, ..., appendix) live with the appendix figures.

TRAIN_CHUNK_CODE = code(
    "stack/chunk.py",
    "stack/training.py",
    "stack/search.py",
    "stack/mlp.py",
    "stack/adam.py",
    "stack/revise.py",
    "training.py",
    "search.py",
    "models.py",
)

for _dataset, _chunks in GRID_CHUNKS.items():
    for _chunk in _chunks:

        rule:
            name:
                f"{_dataset}_{_chunk['id']}_train_chunk"
            input:
                **grid_chunk_inputs(_dataset, _chunk),
                code=TRAIN_CHUNK_CODE,
            output:
                models=grid_chunk_files(_dataset, _chunk, "model.pt"),
                logs=grid_chunk_files(_dataset, _chunk, "log.parquet"),
            log:
                f"{LOGS}/train_chunk/{_dataset}/{_chunk['id']}.log",
            benchmark:
                f"{BENCH}/train_chunk/{_dataset}-{_chunk['id']}.tsv"
            conda:
                "../envs/ctpaper.yaml"
            threads: 1
            resources:
                mem_mb=GRID_TRAIN_RESOURCES[dataset_kind(_dataset)]["mem_mb"],
                runtime=GRID_TRAIN_RESOURCES[dataset_kind(_dataset)]["runtime"],
            params:
                dataset=_dataset,
                members=_chunk["members"],
                config_reads=reads("train_chunk"),
            script:
                "../scripts/train_chunk.py"


rule evaluate_grid:
    input:
        **DATA_IN,
        models=_grid_files("model.pt"),
        logs=_grid_files("log.parquet"),
        code=code(
            "grids/eval.py",
            "evaluation/stacked.py",
            "evaluation/protocol.py",
            "evaluation/metrics.py",
            "evaluation/performance.py",
            "stack/search.py",
            "search.py",
        ),
    output:
        **GRID_OUTPUTS,
    log:
        f"{LOGS}/evaluate_grid/{{grid}}_{{dataset}}.log",
    benchmark:
        f"{BENCH}/evaluate_grid/{{grid}}_{{dataset}}.tsv"
    wildcard_constraints:
        grid="|".join(GRID_IDS) or "no_grid",
    conda:
        "../envs/ctpaper.yaml"
    threads: 1
    resources:
        mem_mb=_grid_res(GRID_EVAL_RESOURCES, "mem_mb"),
        runtime=_grid_res(GRID_EVAL_RESOURCES, "runtime"),
    params:
        rows=_grid_rows,
        vary=_grid_vary,
        group=_grid_group,
        seed=SEEDS[0],
        config_reads=reads("evaluate_grid"),
    script:
        "../scripts/evaluate_grid.py"
