# Robustness studies (issue 13): do the conclusions survive other training seeds and the paper's
# stated settings? Paths and input functions: studies_common.smk.
#   study_prepare_data / study_train_model / study_evaluate_ces / study_robustness / study_performance
#       the stage rules of data.smk, train.smk and evaluate.smk (same scripts, resources, code inputs),
#       run under a study variant: params hash the variant's config (ctpaper.studies.variants), and
#       runtime.rule_context gives the script that config. Only stages whose settings (or inputs)
#       differ under the variant run; the rest are the main results' files.
#   seed_study_table    per data set and Table-1 column the value of every training seed, the mean
#                       over seeds, its interval, significant seeds per direction (+ values json)
#   seed_study_figure   per-seed % reductions with their run intervals, one panel per column
#   sensitivity_table   Table 1 of every variant; the all-at-once Table 1 beside the published one
#   sensitivity_figure  per difference: shift of each column's average and the data sets whose class flips
# Targets: seed_study, sensitivity, studies (both; part of paper).


wildcard_constraints:
    variant="|".join([V.BASE, *STUDY_VARIANTS]),


use rule prepare_data as study_prepare_data with:
    input:
        unpack(_study_prepare_input),
        code=rules.prepare_data.input.code,
    output:
        train=S_DATA["train.parquet"],
        test=S_DATA["test.parquet"],
        meta=S_DATA["meta.json"],
    log:
        f"{LOGS}/study_prepare_data/{{variant}}/{{dataset}}.log",
    benchmark:
        f"{BENCH}/study_prepare_data/{{variant}}-{{dataset}}.tsv"
    params:
        config_reads=reads("study_prepare_data"),


use rule train_model as study_train_model with:
    input:
        unpack(_study_train_input),
        code=rules.train_model.input.code,
    output:
        model=f"{S_MODEL_DIR}/model.pt",
        log=f"{S_MODEL_DIR}/log.parquet",
    log:
        f"{LOGS}/study_train_model/{{variant}}/{{dataset}}/seed{{seed}}/{{model}}.log",
    benchmark:
        f"{BENCH}/study_train_model/{{variant}}-{{dataset}}-seed{{seed}}-{{model}}.tsv"
    params:
        config_reads=reads("study_train_model"),


use rule evaluate_ces as study_evaluate_ces with:
    input:
        unpack(_study_eval_input),
        code=rules.evaluate_ces.input.code,
    output:
        ces=S_CES,
        mmd=S_MMD,
    log:
        f"{LOGS}/study_evaluate_ces/{{variant}}/{{dataset}}_seed{{seed}}_{{family}}.log",
    benchmark:
        f"{BENCH}/study_evaluate_ces/{{variant}}-{{dataset}}_seed{{seed}}_{{family}}.tsv"
    params:
        config_reads=reads("study_evaluate_ces"),


use rule robustness as study_robustness with:
    input:
        unpack(_study_models_input(ROBUSTNESS_MODELS)),
        code=rules.robustness.input.code,
    output:
        S_ROBUSTNESS,
    log:
        f"{LOGS}/study_robustness/{{variant}}/{{dataset}}_seed{{seed}}.log",
    benchmark:
        f"{BENCH}/study_robustness/{{variant}}-{{dataset}}_seed{{seed}}.tsv"
    params:
        config_reads=reads("study_robustness"),


use rule performance as study_performance with:
    input:
        unpack(_study_models_input(PERFORMANCE_MODELS)),
        code=rules.performance.input.code,
    output:
        S_PERFORMANCE,
    log:
        f"{LOGS}/study_performance/{{variant}}/{{dataset}}_seed{{seed}}.log",
    benchmark:
        f"{BENCH}/study_performance/{{variant}}-{{dataset}}_seed{{seed}}.tsv"
    params:
        config_reads=reads("study_performance"),


rule seed_study_table:
    input:
        ces=_flat(_seed_eval_files("ces")),
        robustness=_flat(_seed_eval_files("robustness")),
        performance=_flat(_seed_eval_files("performance")),
        code=code("studies/stats.py", "studies/report.py", "tables.py"),
    output:
        csv=f"{R}/tables/seed_study.csv",
        md=STUDY_TABLES["seed_study"],
        json=STUDY_VALUES["study_seed_study"],
    log:
        f"{LOGS}/seed_study_table/seed_study.log",
    benchmark:
        f"{BENCH}/seed_study_table/seed_study.tsv"
    localrule: True
    conda:
        "../envs/ctpaper.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        config_reads=reads("seed_study_table"),
        seeds=STUDY_SEEDS,
    script:
        "../scripts/seed_study_table.py"


rule seed_study_figure:
    input:
        csv=f"{R}/tables/seed_study.csv",
        code=code("studies/figures.py", "figures/style.py"),
    output:
        png=STUDY_FIGURES["seed_study"][0],
        pdf=STUDY_FIGURES["seed_study"][1],
    log:
        f"{LOGS}/seed_study_figure/seed_study.log",
    benchmark:
        f"{BENCH}/seed_study_figure/seed_study.tsv"
    localrule: True
    conda:
        "../envs/ctpaper.yaml"
    threads: 1
    resources:
        mem_mb=800,
        runtime=5,
    params:
        config_reads=reads("seed_study_figure"),
    script:
        "../scripts/seed_study_figure.py"


rule sensitivity_table:
    input:
        ces=_flat(_variant_eval_files("ces")),
        robustness=_flat(_variant_eval_files("robustness")),
        performance=_flat(_variant_eval_files("performance")),
        code=code("studies/stats.py", "studies/report.py", "studies/variants.py", "tables.py"),
    output:
        csv=f"{R}/tables/sensitivity.csv",
        md=STUDY_TABLES["paper_text"],
        json=STUDY_VALUES["study_sensitivity"],
    log:
        f"{LOGS}/sensitivity_table/sensitivity.log",
    benchmark:
        f"{BENCH}/sensitivity_table/sensitivity.tsv"
    localrule: True
    conda:
        "../envs/ctpaper.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        config_reads=reads("sensitivity_table"),
        variants=[V.BASE, *STUDY_VARIANTS],
        ces=_variant_eval_files("ces"),
        robustness=_variant_eval_files("robustness"),
        performance=_variant_eval_files("performance"),
    script:
        "../scripts/sensitivity_table.py"


rule sensitivity_figure:
    input:
        csv=f"{R}/tables/sensitivity.csv",
        code=code("studies/figures.py", "figures/style.py"),
    output:
        png=STUDY_FIGURES["sensitivity"][0],
        pdf=STUDY_FIGURES["sensitivity"][1],
    log:
        f"{LOGS}/sensitivity_figure/sensitivity.log",
    benchmark:
        f"{BENCH}/sensitivity_figure/sensitivity.tsv"
    localrule: True
    conda:
        "../envs/ctpaper.yaml"
    threads: 1
    resources:
        mem_mb=800,
        runtime=5,
    params:
        config_reads=reads("sensitivity_figure"),
    script:
        "../scripts/sensitivity_figure.py"
