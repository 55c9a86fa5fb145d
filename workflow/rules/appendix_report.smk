# Appendix report (issue 12; method 7.6, 8, 9): grid results -> box plots, maturity curves, Tables 4-6,
# the verdicts on the original's appendix claims. The grid results
# ({results}/appendix/{grid}/{dataset}/{scores,performance,maturity}.parquet) come from the grid rules.
#   appendix_box       box plots of the % change of IP / cost vs BL, per grid, data set and metric
#   appendix_maturity  maturity curves per E grid and data set
#   appendix_table     Tables 4-6 (and the E grids' tables): accuracy / macro-F1 per data set, objective
#   appendix_claims    verdicts (a)-(i) with their numbers, the paper's appendix variables and blocks
# Targets: grid_generator, grid_penalties, grid_other, tune, tune_lr (both E.2 variants), appendix.
# Every figure is written with the CSV of what it draws. Each job takes seconds: localrules.
# Included before report.smk, whose render_paper rule takes APPENDIX_PAPER_* as inputs.

from ctpaper.appendix import GRIDS as APPENDIX_GRIDS  # noqa: E402
from ctpaper.appendix import layout as appendix_layout  # noqa: E402

APPENDIX_GRIDS_RUN = appendix_layout.grids_run(config)  # configured grids with data sets in the run
APPENDIX_DIR = f"{R}/appendix/{{grid}}/{{dataset}}"
APPENDIX_IN = {k: f"{APPENDIX_DIR}/{k}.parquet" for k in ("scores", "performance", "maturity")}
APPENDIX_FIG = f"{R}/figures/appendix/{{grid}}/{{dataset}}_{{kind}}"
APPENDIX_TABLE = f"{R}/tables/appendix/{{grid}}"
APPENDIX_CLAIMS = f"{R}/tables/appendix/claims.json"
APPENDIX_CODE = ["appendix/__init__.py", "appendix/data.py"]


# per grid: its figures (png, pdf and the csv of what they draw) and its table
APPENDIX_GRID_FILES = {
    g: [
        f"{APPENDIX_FIG}.{ext}".format(grid=g, dataset=d, kind=k)
        for gg, d, k in appendix_layout.figures(config)
        if gg == g
        for ext in ("png", "pdf", "csv")
    ]
    + [f"{APPENDIX_TABLE}.{ext}".format(grid=g) for ext in ("csv", "md")]
    for g in APPENDIX_GRIDS_RUN
}
# the grid results by kind and grid (all data sets of the grid in the run)
APPENDIX_INPUTS = {
    kind: {
        g: [pattern.format(grid=g, dataset=d) for d in appendix_layout.ordered_datasets(config, g)]
        for g in APPENDIX_GRIDS_RUN
    }
    for kind, pattern in APPENDIX_IN.items()
}
APPENDIX_FILES = [f for g in APPENDIX_GRIDS_RUN for f in APPENDIX_GRID_FILES[g]] + (
    [APPENDIX_CLAIMS] if APPENDIX_GRIDS_RUN else []
)
# what the paper includes, by name (ctpaper.appendix.layout): {table: md}, {figure: [png, pdf]}
APPENDIX_PAPER_TABLES = {
    appendix_layout.table_name(g): f"{APPENDIX_TABLE}.md".format(grid=g) for g in APPENDIX_GRIDS_RUN
}
APPENDIX_PAPER_FIGURES = {
    appendix_layout.figure_name(g, d, k): [
        f"{APPENDIX_FIG}.{e}".format(grid=g, dataset=d, kind=k) for e in ("png", "pdf")
    ]
    for g, d, k in appendix_layout.figures(config)
}


rule appendix_box:
    input:
        scores=APPENDIX_IN["scores"],
        code=code("figures/appendix.py", "figures/style.py", *APPENDIX_CODE),
    output:
        png=report(
            f"{APPENDIX_FIG}.png",
            caption="../report/appendix_box.rst",
            category="Appendix grids",
            subcategory="{grid}",
            labels={"grid": "{grid}", "dataset": "{dataset}", "figure": "{kind}"},
        ),
        pdf=f"{APPENDIX_FIG}.pdf",
        csv=f"{APPENDIX_FIG}.csv",
    log:
        f"{LOGS}/appendix_box/{{grid}}/{{dataset}}_{{kind}}.log",
    benchmark:
        f"{BENCH}/appendix_box/{{grid}}/{{dataset}}_{{kind}}.tsv"
    wildcard_constraints:
        grid="|".join(APPENDIX_GRIDS),
        kind="ip|cost",
    localrule: True
    conda:
        "../envs/ctpaper.yaml"
    threads: 1
    resources:
        mem_mb=retried(800),
        runtime=retried(5),
    params:
        config_reads=reads("appendix_box"),
    script:
        "../scripts/appendix_box.py"


rule appendix_maturity:
    input:
        maturity=APPENDIX_IN["maturity"],
        code=code("figures/appendix.py", "figures/style.py", *APPENDIX_CODE),
    output:
        png=report(
            f"{R}/figures/appendix/{{grid}}/{{dataset}}_maturity.png",
            caption="../report/appendix_maturity.rst",
            category="Appendix grids",
            subcategory="{grid}",
            labels={"grid": "{grid}", "dataset": "{dataset}", "figure": "maturity"},
        ),
        pdf=f"{R}/figures/appendix/{{grid}}/{{dataset}}_maturity.pdf",
        csv=f"{R}/figures/appendix/{{grid}}/{{dataset}}_maturity.csv",
    log:
        f"{LOGS}/appendix_maturity/{{grid}}/{{dataset}}.log",
    benchmark:
        f"{BENCH}/appendix_maturity/{{grid}}/{{dataset}}.tsv"
    wildcard_constraints:
        grid="|".join(APPENDIX_GRIDS),
    localrule: True
    conda:
        "../envs/ctpaper.yaml"
    threads: 1
    resources:
        mem_mb=retried(800),
        runtime=retried(5),
    params:
        config_reads=reads("appendix_maturity"),
    script:
        "../scripts/appendix_maturity.py"


rule appendix_table:
    input:
        performance=lambda wc: APPENDIX_INPUTS["performance"][wc.grid],
        code=code("appendix/tables.py", "tables.py", *APPENDIX_CODE),
    output:
        csv=report(
            f"{APPENDIX_TABLE}.csv",
            caption="../report/appendix_table.rst",
            category="Appendix grids",
            subcategory="{grid}",
            labels={"grid": "{grid}", "table": "performance"},
        ),
        md=f"{APPENDIX_TABLE}.md",
    log:
        f"{LOGS}/appendix_table/{{grid}}.log",
    benchmark:
        f"{BENCH}/appendix_table/{{grid}}.tsv"
    wildcard_constraints:
        grid="|".join(APPENDIX_GRIDS),
    localrule: True
    conda:
        "../envs/ctpaper.yaml"
    threads: 1
    resources:
        mem_mb=retried(500),
        runtime=retried(5),
    params:
        config_reads=reads("appendix_table"),
    script:
        "../scripts/appendix_table.py"


rule appendix_claims:
    input:
        scores=[p for ps in APPENDIX_INPUTS["scores"].values() for p in ps],
        performance=[p for ps in APPENDIX_INPUTS["performance"].values() for p in ps],
        maturity=[p for ps in APPENDIX_INPUTS["maturity"].values() for p in ps],
        code=code("appendix/claims.py", "appendix/layout.py", "appendix/paper.py", *APPENDIX_CODE),
    output:
        report(APPENDIX_CLAIMS, caption="../report/appendix_claims.rst", category="Appendix grids"),
    log:
        f"{LOGS}/appendix_claims/claims.log",
    benchmark:
        f"{BENCH}/appendix_claims/claims.tsv"
    localrule: True
    conda:
        "../envs/ctpaper.yaml"
    threads: 1
    resources:
        mem_mb=retried(1000),
        runtime=retried(5),
    params:
        config_reads=reads("appendix_claims"),
    script:
        "../scripts/appendix_claims.py"


rule grid_generator:
    input:
        APPENDIX_GRID_FILES.get("generator", []),


rule grid_penalties:
    input:
        APPENDIX_GRID_FILES.get("penalties", []),


rule grid_other:
    input:
        APPENDIX_GRID_FILES.get("other", []),


rule tune:
    input:
        APPENDIX_GRID_FILES.get("tune", []),


rule tune_lr:
    input:
        APPENDIX_GRID_FILES.get("tune_lr", []) + APPENDIX_GRID_FILES.get("tune_lr_applied", []),


rule appendix:
    input:
        APPENDIX_FILES,
