# The appendix grids (method 9; ctpaper.grids): training chunks and grid evaluations.
#   train_chunk         one job per chunk of a data set's distinct grid models (a model shared by
#                       several grids is trained once): a directory with one model.pt + log.parquet
#                       per member (ctpaper.stack.chunk: model stacks on synthetic data, one process
#                       otherwise); the chunk id hashes its members, so it reruns when they change.
#   evaluate_grid       one job per grid and data set: CEs on the pool for every model of the grid
#                       (BL included), test metrics and training maturity -> scores, performance and
#                       maturity.parquet (the appendix figures' and tables' inputs).
# The target rules (grid_generator, ..., appendix) live with the appendix figures.


rule train_chunk:
    input:
        unpack(_chunk_inputs),
        code=code(
            "stack/chunk.py",
            "stack/training.py",
            "stack/search.py",
            "stack/mlp.py",
            "stack/adam.py",
            "stack/revise.py",
            "training.py",
            "search/",
            "models.py",
        ),
    output:
        directory(GRID_CHUNK_DIR),
    log:
        f"{LOGS}/train_chunk/{{dataset}}/{{chunk}}.log",
    benchmark:
        f"{BENCH}/train_chunk/{{dataset}}-{{chunk}}.tsv"
    wildcard_constraints:
        chunk="|".join(GRID_CHUNK_IDS) or "no_chunk",
    conda:
        "../envs/ctpaper.yaml"
    threads: 1
    resources:
        mem_mb=retried(_grid_res(GRID_TRAIN_RESOURCES, "mem_mb")),
        runtime=retried(_grid_res(GRID_TRAIN_RESOURCES, "runtime")),
    params:
        members=_chunk_members,
        config_reads=reads("train_chunk"),
    script:
        "../scripts/train_chunk.py"


rule evaluate_grid:
    input:
        **DATA_IN,
        chunks=_grid_chunk_dirs,
        code=code(
            "grids/eval.py",
            "evaluation/stacked.py",
            "evaluation/protocol.py",
            "evaluation/metrics.py",
            "evaluation/performance.py",
            "stack/search.py",
            "search/",
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
        mem_mb=retried(_grid_res(GRID_EVAL_RESOURCES, "mem_mb")),
        runtime=retried(_grid_res(GRID_EVAL_RESOURCES, "runtime")),
    params:
        rows=_grid_rows,
        vary=_grid_vary,
        seed=SEEDS[0],
        config_reads=reads("evaluate_grid"),
    script:
        "../scripts/evaluate_grid.py"
