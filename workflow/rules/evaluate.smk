# Evaluation stage (method section 6): trained models -> per-dataset evaluation files.
#   evaluate_ces          one job per dataset, seed and family: test-time CEs of CT (ct_{family}) and
#                         BL (bl) with every lambda_egy; ces.parquet (one row per CE) + mmd.parquet.
#   robustness            FGSM accuracy of the free models (BL, CT) on the whole test set.
#   performance           test accuracy and macro-F1 of bl, ct_free, ct_protected.
#   integrated_gradients  MNIST class-average IG maps of the protected models (Figure 2).
#   ig_summary            protected-feature IG summary of BL and CT_protected (+ MNIST map statistic).
# Resources are sized from the full-config benchmarks (results/benchmarks/<rule>/, 1 thread, 2-core
# machine): peak RSS <= 0.56 GB (non-MNIST) and <= 0.93 GB (MNIST); wall time <= 15 s per job except
# ig_summary/mnist (~60 s, ~110 s under load). The whole stage (47 jobs) takes ~2.5 min on 2 cores.

from ctpaper.evaluation.roles import IG_MODELS, PERFORMANCE_MODELS, ROBUSTNESS_MODELS  # noqa: E402

# IG outputs that are not in common.smk's EVAL_FILES; the `evaluate` target should include them.
EVAL_EXTRA_FILES = [IG_SUMMARY.format(dataset=d, seed=s) for d in DATASETS for s in SEEDS] + (
    [IG_MAPS.format(seed=s) for s in SEEDS] if "mnist" in DATASETS else []
)


rule evaluate_ces:
    input:
        **DATA_IN,
        code=code("search/", "evaluation/protocol.py", "evaluation/metrics.py"),
        ct=_model_file("ct_{family}"),
        bl=_model_file("bl"),
    output:
        ces=CES,
        mmd=MMD,
    log:
        f"{LOGS}/evaluate_ces/{{dataset}}_seed{{seed}}_{{family}}.log",
    benchmark:
        f"{BENCH}/evaluate_ces/{{dataset}}_seed{{seed}}_{{family}}.tsv"
    conda:
        "../envs/ctpaper.yaml"
    threads: 1
    resources:
        mem_mb=retried(_mem_mb(1500, 2000)),
        runtime=retried(15),
    params:
        config_reads=reads("evaluate_ces"),
    script:
        "../scripts/evaluate_ces.py"


rule robustness:
    input:
        **DATA_IN,
        **_model_files(ROBUSTNESS_MODELS),
        code=code("evaluation/robustness.py", "evaluation/metrics.py"),
    output:
        ROBUSTNESS,
    log:
        f"{LOGS}/robustness/{{dataset}}_seed{{seed}}.log",
    benchmark:
        f"{BENCH}/robustness/{{dataset}}_seed{{seed}}.tsv"
    conda:
        "../envs/ctpaper.yaml"
    threads: 1
    resources:
        mem_mb=retried(_mem_mb(1000, 1500)),
        runtime=retried(5),
    params:
        config_reads=reads("robustness"),
    script:
        "../scripts/robustness.py"


rule performance:
    input:
        **DATA_IN,
        **_model_files(PERFORMANCE_MODELS),
        code=code("evaluation/performance.py", "evaluation/metrics.py"),
    output:
        PERFORMANCE,
    log:
        f"{LOGS}/performance/{{dataset}}_seed{{seed}}.log",
    benchmark:
        f"{BENCH}/performance/{{dataset}}_seed{{seed}}.tsv"
    conda:
        "../envs/ctpaper.yaml"
    threads: 1
    resources:
        mem_mb=retried(_mem_mb(1000, 1500)),
        runtime=retried(5),
    params:
        config_reads=reads("performance"),
    script:
        "../scripts/performance.py"


if "mnist" in DATASETS:

    rule integrated_gradients:
        input:
            **{k: v.replace("{dataset}", "mnist") for k, v in DATA_IN.items()},
            **_model_files(IG_MODELS, "mnist"),
            code=code("evaluation/attributions.py", "evaluation/protocol.py"),
        output:
            IG_MAPS,
        log:
            f"{LOGS}/integrated_gradients/mnist_seed{{seed}}.log",
        benchmark:
            f"{BENCH}/integrated_gradients/mnist_seed{{seed}}.tsv"
        conda:
            "../envs/ctpaper.yaml"
        threads: 1
        resources:
            mem_mb=retried(1500),
            runtime=retried(10),
        params:
            config_reads=reads("integrated_gradients"),
        script:
            "../scripts/integrated_gradients.py"


rule ig_summary:
    input:
        unpack(_ig_summary_maps),
        **DATA_IN,
        **_model_files(IG_MODELS),
        code=code("evaluation/attributions.py", "evaluation/protocol.py"),
    output:
        IG_SUMMARY,
    log:
        f"{LOGS}/ig_summary/{{dataset}}_seed{{seed}}.log",
    benchmark:
        f"{BENCH}/ig_summary/{{dataset}}_seed{{seed}}.tsv"
    conda:
        "../envs/ctpaper.yaml"
    threads: 1
    resources:
        mem_mb=retried(_mem_mb(1000, 2000)),
        runtime=retried(15),
    params:
        config_reads=reads("ig_summary"),
    script:
        "../scripts/ig_summary.py"
