# Training stage (method sections 3-5): prepared data -> trained classifiers.
#   train_model  one job per dataset, seed and model: bl (objective vanilla; serves both families),
#                ct_free and ct_protected (train.objective under that family's mutability).
#                Writes model.pt (state_dict + spec) and log.parquet (one row per epoch).
#   train_vae    REVISE's VAE per dataset; only requested when train.generator == revise.
# Params hold the settings each model depends on, so changing a CT-only setting re-trains the CT
# models but never BL.

# Sized from the full-config run (results/benchmarks/train_model/*.tsv): peak RSS synthetic 405 MB,
# tabular <= 505 MB, MNIST <= 850 MB; wall time per job <= 1 min (synthetic, tabular) and <= 3.5 min
# (MNIST CT) on a heavily shared 2-core machine. mem_mb ~ 2x the peak, runtime (minutes) >= 5x.
# One thread everywhere, MNIST included: a CT epoch on MNIST is 1.6x faster with 2 threads, but torch's
# reductions may depend on the thread count, and Snakemake lowers threads to --cores, so the bytes of a
# model would depend on where it was trained. Parallelism comes from running jobs side by side.
TRAIN_RESOURCES = {
    "synthetic": {"mem_mb": 800, "runtime": 10},
    "tabular": {"mem_mb": 1000, "runtime": 10},
    "image": {"mem_mb": 1700, "runtime": 20},
}


rule train_model:
    input:
        unpack(_train_inputs),
        code=code("models.py", "search/", "training.py"),
    output:
        model=MODEL_PT,
        log=MODEL_LOG,
    log:
        f"{LOGS}/train_model/{{dataset}}/seed{{seed}}/{{model}}.log",
    benchmark:
        f"{BENCH}/train_model/{{dataset}}-seed{{seed}}-{{model}}.tsv"
    conda:
        "../envs/ctpaper.yaml"
    threads: 1
    resources:
        mem_mb=retried(_train_res("mem_mb")),
        runtime=retried(_train_res("runtime")),
    params:
        config_reads=reads("train_model"),
    script:
        "../scripts/train_model.py"


rule train_vae:
    input:
        **DATA_IN,
        code=code("vae.py"),
    output:
        VAE,
    log:
        f"{LOGS}/train_vae/{{dataset}}.log",
    benchmark:
        f"{BENCH}/train_vae/{{dataset}}.tsv"
    conda:
        "../envs/ctpaper.yaml"
    threads: 1
    resources:
        mem_mb=retried(1000),
        runtime=retried(lambda wc: 30 if dataset_kind(wc.dataset) != "synthetic" else 10),
    params:
        config_reads=reads("train_vae"),
    script:
        "../scripts/train_vae.py"
