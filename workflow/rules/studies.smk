# Robustness studies (issue 13): do the conclusions survive other training seeds and the paper's
# stated settings? Paths and input functions: studies_common.smk.
#   study_prepare_data  prepare_data under a variant whose data differ (the domain's n_sigma)
#   study_train         per variant and data set, every model of the variant's tree in one process
#                       (the extra seeds' bl/ct_free/ct_protected, a training variant's CT models):
#                       a chunk (ctpaper.stack.chunk, model stacks on synthetic data) whose params
#                       hold each member's complete settings under the variant's config
#   study_evaluate      per variant and data set, every evaluation of its tree (evaluate_ces per
#                       seed and family, robustness and performance per seed) in one process, the
#                       stage functions of evaluate.smk under the variant's config
#                       (runtime.rule_context). Only stages whose settings (or inputs) differ under
#                       the variant run; the rest are the main results' files. A ces evaluation
#                       redone only for the variant's CT models takes the BL's rows from the main file.
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


# Per training member of a synthetic data set a few seconds in a model stack, a tabular model
# about 10 s and an MNIST model about 50 s alone (full-config benchmarks); runtime (minutes) per
# member leaves >= 3x, as the per-batch CE variants (ce_frequency, paper_text) train one at a time.
STUDY_TRAIN_MINUTES = {"synthetic": 3, "tabular": 3, "image": 5}
STUDY_EVAL_MINUTES = {"synthetic": 2, "tabular": 2, "image": 3}
# peak RSS as the grid chunks' (<= 0.9 GB) and the main evaluations' (<= 2 GB: MMD against every
# training row of Adult under the mmd_reference variant)
STUDY_TRAIN_MEM = {"synthetic": 1500, "tabular": 1500, "image": 2000}


rule study_train:
    input:
        unpack(_study_train_input),
        code=code("stack/", "training.py", "search/", "models.py"),
    output:
        directory(S_MODELS),
    log:
        f"{LOGS}/study_train/{{variant}}/{{dataset}}.log",
    benchmark:
        f"{BENCH}/study_train/{{variant}}-{{dataset}}.tsv"
    conda:
        "../envs/ctpaper.yaml"
    threads: 1
    resources:
        mem_mb=retried(lambda wc: STUDY_TRAIN_MEM[dataset_kind(wc.dataset)]),
        runtime=retried(_study_res(STUDY_TRAIN_MINUTES, _study_members)),
    params:
        members=_study_members,
        config_reads=reads("study_train"),
    script:
        "../scripts/train_chunk.py"


rule study_evaluate:
    input:
        unpack(_study_eval_input),
        code=sorted(
            {*rules.evaluate_ces.input.code, *rules.robustness.input.code, *rules.performance.input.code}
        ),
    output:
        directory(S_EVALS),
    log:
        f"{LOGS}/study_evaluate/{{variant}}/{{dataset}}.log",
    benchmark:
        f"{BENCH}/study_evaluate/{{variant}}-{{dataset}}.tsv"
    conda:
        "../envs/ctpaper.yaml"
    threads: 1
    resources:
        mem_mb=retried(_mem_mb(2000, 2000)),
        runtime=retried(_study_res(STUDY_EVAL_MINUTES, _study_tasks)),
    params:
        tasks=_study_tasks,
        config_reads=reads("study_evaluate"),
    script:
        "../scripts/study_evaluate.py"


rule seed_study_table:
    input:
        evals=_inputs(*(_seed_eval_files(s) for s in EVAL_STAGES)),
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
        ces=_flat(_paths(_seed_eval_files("ces"))),
        robustness=_flat(_paths(_seed_eval_files("robustness"))),
        performance=_flat(_paths(_seed_eval_files("performance"))),
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
        evals=_inputs(*(_variant_eval_files(s) for s in EVAL_STAGES)),
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
        ces=_paths(_variant_eval_files("ces")),
        robustness=_paths(_variant_eval_files("robustness")),
        performance=_paths(_variant_eval_files("performance")),
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
