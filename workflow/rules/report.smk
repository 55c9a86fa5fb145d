# Report stage (method sections 7 and 8): evaluation outputs -> tables, figures, the rendered paper.
#   table_scores       Table 1 / Table 3 (wildcard name = table1 | table3) from every ces.parquet
#   table_settings     Table 2 (+ the shared Note-1/Note-2 settings) from the config and meta.json
#   table_performance  test accuracy / macro-F1 table from every performance.parquet
#   table_comparison   every Table-1 cell and Table-3 mean next to the original's published values
#   figure_fig1        Figure 1: its own linear-model experiment (no upstream inputs)
#   figure_fig2        Figure 2: MNIST CEs of the protected models + IG maps (only with mnist)
#   figure_fig45       Figures 4/5 (wildcard name = fig4 | fig5): MNIST CE grids, CT / BL (only with mnist)
#   figure_fig3        Figure 3: robust accuracy from every robustness.parquet
#   figure_maturity    maturity curves from the CT models' training logs
#   provenance         config hash, versions, git commit, per-rule compute from benchmarks/
#   paper_values       the numbers and generated blocks the paper's text quotes (values.json)
#   render_paper       paper/ (Quarto project) -> paper.html + paper.pdf (quarto, else pandoc + typst)
# Every rule here is a localrule: each job takes seconds (full config: <= 8 s, <= 1.3 GB), so on a
# cluster they run beside Snakemake instead of waiting for a SLURM slot (profiles/slurm/README.md).
# Rule names differ from the Snakefile's target rules (tables, figures, fig1..fig5, maturity, paper).
# Figures use the first training seed's models (FIG_SEED); tables, Figure 3 and the maturity curves
# use every configured seed (seeds x runs are the runs of a comparison).

PAPER_DIR = project_path("paper")
PAPER_SOURCES = sorted(
    os.path.join(dp, f)
    for sub in ("", "filters", "html", "sections", "typst")
    for dp in [os.path.join(PAPER_DIR, sub)]
    if os.path.isdir(dp)
    for f in os.listdir(dp)
    if os.path.isfile(os.path.join(dp, f)) and not f.startswith(".")
)
HAS_MNIST = "mnist" in DATASETS  # Figures 2, 4 and 5 (MNIST_FIGURES) exist only then
FIG_STATS = f"{FIGURE}_stats.json"
PROVENANCE = f"{R}/paper/provenance.json"
PAPER_VALUES = f"{R}/paper/values.json"
# the original's published tables (facts for the comparison table, not settings)
ORIGINAL_RESULTS = project_path("config", "original_results.yaml")
# the original's paper-text vs published settings (the reproduction notes; method 10.1)
PUBLISHED = project_path("config", "published.yaml")


# training logs and who they belong to: (dataset, seed, model) in the order of the inputs, passed to
# the scripts as params so that the library never reads these out of the paths
TRAIN_LOG_IDS = [(d, s, m) for d in DATASETS for s in SEEDS for m in MODELS]
CT_LOG_IDS = [i for i in TRAIN_LOG_IDS if i[2].startswith("ct_")]
CT_LOGS = [MODEL_LOG.format(dataset=d, seed=s, model=m) for d, s, m in CT_LOG_IDS]
TRAIN_LOGS = [MODEL_LOG.format(dataset=d, seed=s, model=m) for d, s, m in TRAIN_LOG_IDS]
IG_SUMMARIES = _all(IG_SUMMARY)
MNIST_DATA = {k: v.format(dataset="mnist") for k, v in DATA_IN.items()}


# ---- tables ---------------------------------------------------------------------------------------


rule table_scores:
    input:
        scores=_all(CES),
        code=code("tables.py"),
    output:
        csv=report(
            f"{TABLE}.csv",
            caption="../report/table_scores.rst",
            category="Main results",
            labels={"table": "{name}"},
        ),
        md=f"{TABLE}.md",
    log:
        f"{LOGS}/table_scores/{{name}}.log",
    benchmark:
        f"{BENCH}/table_scores/{{name}}.tsv"
    wildcard_constraints:
        name="table1|table3",
    localrule: True
    conda:
        "../envs/ctpaper.yaml"
    threads: 1
    resources:
        mem_mb=retried(2000),
        runtime=retried(15),
    params:
        config_reads=reads("table_scores"),
    script:
        "../scripts/table.py"


rule table_settings:
    input:
        meta=[DATA["meta.json"].format(dataset=d) for d in DATASETS],
        code=code("tables.py"),
    output:
        csv=report(
            f"{TABLE}.csv",
            caption="../report/table_settings.rst",
            category="Appendix",
            labels={"table": "{name}"},
        ),
        md=f"{TABLE}.md",
    log:
        f"{LOGS}/table_settings/{{name}}.log",
    benchmark:
        f"{BENCH}/table_settings/{{name}}.tsv"
    wildcard_constraints:
        name="table2",
    localrule: True
    conda:
        "../envs/ctpaper.yaml"
    threads: 1
    resources:
        mem_mb=retried(500),
        runtime=retried(5),
    params:
        config_reads=reads("table_settings"),
    script:
        "../scripts/table.py"


rule table_performance:
    input:
        scores=_all(PERFORMANCE),
        code=code("tables.py"),
    output:
        csv=report(
            f"{TABLE}.csv",
            caption="../report/table_performance.rst",
            category="Appendix",
            labels={"table": "{name}"},
        ),
        md=f"{TABLE}.md",
    log:
        f"{LOGS}/table_performance/{{name}}.log",
    benchmark:
        f"{BENCH}/table_performance/{{name}}.tsv"
    wildcard_constraints:
        name="performance",
    localrule: True
    conda:
        "../envs/ctpaper.yaml"
    threads: 1
    resources:
        mem_mb=retried(500),
        runtime=retried(5),
    params:
        config_reads=reads("table_performance"),
    script:
        "../scripts/table.py"


rule table_comparison:
    input:
        table1=f"{R}/tables/table1.csv",
        table3=f"{R}/tables/table3.csv",
        original=ORIGINAL_RESULTS,
        code=code("comparison.py", "tables.py"),
    output:
        csv=report(
            f"{TABLE}.csv",
            caption="../report/table_comparison.rst",
            category="Main results",
            labels={"table": "{name}"},
        ),
        md=f"{TABLE}.md",
        means=f"{R}/tables/{{name}}_means.csv",
        notes=f"{R}/tables/{{name}}_notes.md",
    log:
        f"{LOGS}/table_comparison/{{name}}.log",
    benchmark:
        f"{BENCH}/table_comparison/{{name}}.tsv"
    wildcard_constraints:
        name="comparison",
    localrule: True
    conda:
        "../envs/ctpaper.yaml"
    threads: 1
    resources:
        mem_mb=retried(500),
        runtime=retried(5),
    params:
        config_reads=reads("table_comparison"),
    script:
        "../scripts/comparison.py"


# ---- figures --------------------------------------------------------------------------------------


rule figure_fig1:
    input:
        code=code(
            "figures/fig1.py",
            "figures/style.py",
            "training.py",
            "search/",
            "models.py",
            "data/io.py",
            "data/synthetic.py",
            "data/splits.py",
        ),
    output:
        png=report(
            f"{R}/figures/fig1.png",
            caption="../report/figure_fig1.rst",
            category="Main results",
            labels={"figure": "fig1"},
        ),
        pdf=f"{R}/figures/fig1.pdf",
        stats=FIG_STATS.format(name="fig1"),
    log:
        f"{LOGS}/figure_fig1/fig1.log",
    benchmark:
        f"{BENCH}/figure_fig1/fig1.tsv"
    localrule: True
    conda:
        "../envs/ctpaper.yaml"
    threads: 1
    resources:
        mem_mb=retried(1000),
        runtime=retried(15),
    params:
        config_reads=reads("figure_fig1"),
    script:
        "../scripts/fig1.py"


if HAS_MNIST:

    rule figure_fig2:
        input:
            **MNIST_DATA,
            code=code("figures/fig2.py", "figures/style.py", "search/"),
            bl=_fig_model("mnist", "bl"),
            ct=_fig_model("mnist", "ct_protected"),
            ig_maps=IG_MAPS.format(seed=FIG_SEED),
        output:
            png=report(
                f"{R}/figures/fig2.png",
                caption="../report/figure_fig2.rst",
                category="MNIST",
                labels={"figure": "fig2"},
            ),
            pdf=f"{R}/figures/fig2.pdf",
            stats=FIG_STATS.format(name="fig2"),
        log:
            f"{LOGS}/figure_fig2/fig2.log",
        benchmark:
            f"{BENCH}/figure_fig2/fig2.tsv"
        localrule: True
        conda:
            "../envs/ctpaper.yaml"
        threads: 1
        resources:
            mem_mb=retried(1500),
            runtime=retried(20),
        params:
            config_reads=reads("figure_fig2"),
        script:
            "../scripts/fig2.py"

    rule figure_fig45:
        input:
            **MNIST_DATA,
            code=code("figures/fig45.py", "figures/style.py", "search/"),
            model=lambda wc: _fig_model("mnist", "ct_free" if wc.name == "fig4" else "bl"),
        output:
            png=report(
                f"{FIGURE}.png",
                caption="../report/figure_fig45.rst",
                category="MNIST",
                labels={"figure": "{name}"},
            ),
            pdf=f"{FIGURE}.pdf",
            stats=FIG_STATS,
        log:
            f"{LOGS}/figure_fig45/{{name}}.log",
        benchmark:
            f"{BENCH}/figure_fig45/{{name}}.tsv"
        wildcard_constraints:
            name="fig4|fig5",
        localrule: True
        conda:
            "../envs/ctpaper.yaml"
        threads: 1
        resources:
            mem_mb=retried(1500),
            runtime=retried(15),
        params:
            config_reads=reads("figure_fig45"),
        script:
            "../scripts/fig45.py"


rule figure_fig3:
    input:
        scores=_all(ROBUSTNESS),
        code=code("figures/fig3.py", "figures/style.py"),
    output:
        png=report(
            f"{R}/figures/fig3.png",
            caption="../report/figure_fig3.rst",
            category="Robustness",
            labels={"figure": "fig3"},
        ),
        pdf=f"{R}/figures/fig3.pdf",
    log:
        f"{LOGS}/figure_fig3/fig3.log",
    benchmark:
        f"{BENCH}/figure_fig3/fig3.tsv"
    localrule: True
    conda:
        "../envs/ctpaper.yaml"
    threads: 1
    resources:
        mem_mb=retried(800),
        runtime=retried(5),
    params:
        config_reads=reads("figure_fig3"),
    script:
        "../scripts/fig3.py"


rule figure_maturity:
    input:
        logs=CT_LOGS,
        code=code("figures/maturity.py", "figures/style.py"),
    output:
        png=report(
            f"{R}/figures/maturity.png",
            caption="../report/figure_maturity.rst",
            category="Appendix",
            labels={"figure": "maturity"},
        ),
        pdf=f"{R}/figures/maturity.pdf",
    log:
        f"{LOGS}/figure_maturity/maturity.log",
    benchmark:
        f"{BENCH}/figure_maturity/maturity.tsv"
    localrule: True
    conda:
        "../envs/ctpaper.yaml"
    threads: 1
    resources:
        mem_mb=retried(800),
        runtime=retried(5),
    params:
        log_ids=CT_LOG_IDS,
        config_reads=reads("figure_maturity"),
    script:
        "../scripts/maturity.py"


# ---- the paper ------------------------------------------------------------------------------------

FIG_STATS_FILES = {
    f"{n}_stats": FIG_STATS.format(name=n) for n in ["fig1"] + (MNIST_FIGURES if HAS_MNIST else [])
}
# what the paper includes, by name: {table: its .md file}, {figure: [png, pdf]}
# (+ the appendix's and the robustness studies' tables and figures: appendix_report.smk, studies_common.smk)
# the tables' Markdown, and the notes printed under the comparison with the original
PAPER_TABLES = (
    {n: table_files(n)[1] for n in TABLE_NAMES}
    | {"comparison_notes": f"{R}/tables/comparison_notes.md"}
    | APPENDIX_PAPER_TABLES
    | STUDY_TABLES
)
PAPER_FIGURES = {n: figure_files(n) for n in FIGURE_NAMES} | APPENDIX_PAPER_FIGURES | STUDY_FIGURES


rule provenance:
    input:
        code=code("paper/provenance.py"),
        # everything the paper reports, so that the benchmarks of all upstream jobs exist
        tables=TABLE_FILES,
        figures=FIGURE_FILES,
        ig=IG_SUMMARIES,
        appendix=APPENDIX_FILES,
        studies=[*STUDY_TABLES.values(), *_flat(STUDY_FIGURES)],
    output:
        report(PROVENANCE, caption="../report/provenance.rst", category="Compute"),
    log:
        f"{LOGS}/provenance/provenance.log",
    benchmark:
        f"{BENCH}/provenance/provenance.tsv"
    localrule: True
    conda:
        "../envs/ctpaper.yaml"
    threads: 1
    resources:
        mem_mb=retried(500),
        runtime=retried(5),
    params:
        bench_dirs=benchmark_dirs,
        project=lambda wildcards: project_path(),  # the checkout (relative), for the git state
        config_reads=reads("provenance"),
    script:
        "../scripts/provenance.py"


rule paper_values:
    input:
        **FIG_STATS_FILES,
        **STUDY_VALUES,
        code=code("paper/values.py", "tables.py", "figures/maturity.py", "studies/report.py"),
        table1=f"{R}/tables/table1.csv",
        table2=f"{R}/tables/table2.csv",
        performance=f"{R}/tables/performance.csv",
        comparison=f"{R}/tables/comparison.csv",
        comparison_means=f"{R}/tables/comparison_means.csv",
        robustness=_all(ROBUSTNESS),
        # the free family's counterfactuals: shares of valid and mature CEs per dataset and model
        ces=[p for p in _all(CES) if os.path.basename(os.path.dirname(p)) == "free"],
        logs=CT_LOGS,
        train_logs=TRAIN_LOGS,  # skipped updates
        ig=IG_SUMMARIES,
        provenance=PROVENANCE,
        published=PUBLISHED,
    output:
        PAPER_VALUES,
    log:
        f"{LOGS}/paper_values/values.log",
    benchmark:
        f"{BENCH}/paper_values/values.tsv"
    localrule: True
    conda:
        "../envs/ctpaper.yaml"
    threads: 1
    resources:
        mem_mb=retried(800),
        runtime=retried(5),
    params:
        log_ids=CT_LOG_IDS,
        train_log_ids=TRAIN_LOG_IDS,
        config_reads=reads("paper_values"),
    script:
        "../scripts/paper_values.py"


rule render_paper:
    input:
        code=code("paper/render.py"),
        values=PAPER_VALUES,
        provenance=PROVENANCE,
        tables=list(PAPER_TABLES.values()),
        figures=FIGURE_FILES,
        appendix_figures=[f for fs in APPENDIX_PAPER_FIGURES.values() for f in fs],
        appendix=APPENDIX_CLAIMS if APPENDIX_GRIDS_RUN else [],
        study_figures=_flat(STUDY_FIGURES),
        sources=PAPER_SOURCES,
        qmd=os.path.join(PAPER_DIR, "paper.qmd"),
    output:
        html=PAPER_FILES[0],
        pdf=PAPER_FILES[1],
    log:
        f"{LOGS}/render_paper/paper.log",
    benchmark:
        f"{BENCH}/render_paper/paper.tsv"
    localrule: True
    conda:
        "../envs/ctpaper.yaml"
    threads: 1
    resources:
        mem_mb=retried(1500),
        runtime=retried(20),
    params:
        build_dir=f"{R}/paper/build",
        config_reads=reads("render_paper"),
        tables=PAPER_TABLES,
        figures=PAPER_FIGURES,
        # rule and modules behind every table, figure and generated block, printed under each
        producers=producers([*PAPER_TABLES.values(), *(f[0] for f in PAPER_FIGURES.values()), PAPER_VALUES]),
    script:
        "../scripts/render_paper.py"
