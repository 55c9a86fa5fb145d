# ctpaper: Counterfactual Training (Altmeyer et al., 2025) regenerated from raw data.
#
#   raw data --fetch_raw--> verified raw files --prepare_data--> results/data/{dataset}/
#     --train_model--> results/models/{dataset}/seed{seed}/{model}/   (model = bl | ct_free | ct_protected)
#     --evaluate_ces / robustness / performance / integrated_gradients--> results/eval/{dataset}/seed{seed}/
#     --tables / figures--> results/tables/, results/figures/  --render_paper--> results/paper/
#
# Targets: all (= paper), data, train, evaluate, tables, figures, fig1 ... fig5, maturity, paper;
# appendix (= grid_generator, grid_penalties, grid_other, tune, tune_lr; workflow/rules/appendix_report.smk);
# seed_study, sensitivity, studies (the robustness studies; part of paper).
# Target rules (input only) always run where Snakemake runs, also in a module: no localrules list.
# Settings: config/config.yaml (the paper), overlays such as config/smoke.yaml via --configfile.

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/appendix_report.smk"
include: "workflow/rules/studies_common.smk"
include: "workflow/rules/studies.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/appendix_plan.smk"
include: "workflow/rules/appendix.smk"


rule all:
    default_target: True
    input:
        PAPER_FILES,


rule data:
    input:
        DATA_FILES,


rule train:
    input:
        MODEL_FILES,


rule evaluate:
    input:
        EVAL_FILES,
        EVAL_EXTRA_FILES,


rule tables:
    input:
        TABLE_FILES,


rule figures:
    input:
        FIGURE_FILES,


rule fig1:
    input:
        figure_files("fig1"),


rule fig2:
    input:
        figure_files("fig2"),


rule fig3:
    input:
        figure_files("fig3"),


rule fig4:
    input:
        figure_files("fig4"),


rule fig5:
    input:
        figure_files("fig5"),


rule maturity:
    input:
        figure_files("maturity"),


rule seed_study:
    input:
        STUDY_TABLES["seed_study"],
        STUDY_FIGURES["seed_study"],


rule sensitivity:
    input:
        STUDY_TABLES["paper_text"],
        STUDY_FIGURES["sensitivity"],


rule studies:
    input:
        rules.seed_study.input,
        rules.sensitivity.input,


rule paper:
    input:
        PAPER_FILES,
