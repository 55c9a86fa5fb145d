"""End to end: the smoke config from raw data to the rendered paper (the suite's expensive test).

Uses the session's smoke run (``smoke_run`` in conftest.py: ``snakemake paper`` with
config/config.yaml + config/smoke.yaml, results in a temporary directory), then checks the figures, the PDF (figure/table captions, no
unresolved references) and the self-contained HTML, and that a figure target reruns only its chain.
"""

from __future__ import annotations

import re

import pytest

from ctpaper.paper.render import html_text, pdf_text

from conftest import smoke_snakemake

def _figure_names(config):
    """The body's figures (files under figures/), plus the robustness studies' two."""
    return (["fig1", "fig3", "maturity"] + (["fig2", "fig4", "fig5"] if "mnist" in config["datasets"]
                                             else []) + ["seed_study", "sensitivity"])


def _appendix_figures(config):
    """The appendix grids' figures as paths under figures/ (ctpaper.appendix.layout order)."""
    from ctpaper.appendix.layout import figures

    return [f"appendix/{grid}/{dataset}_{kind}" for grid, dataset, kind in figures(config)]


def _n_tables(config):
    """Tables 1-3, the two comparisons with the original, predictive performance, compute; the two
    tables of the robustness studies; one predictive-performance table per appendix grid run."""
    from ctpaper.appendix.layout import grids_run

    return 7 + 2 + len(grids_run(config))


@pytest.mark.slow
def test_smoke_tables_hold_the_configured_rows_and_runs(smoke_run):
    """Every table has one row per configured dataset (table order; Table 1 plus the average), the
    run counts of Table 1 are the families' configured runs times the seeds, Table 2 prints the test
    sets the data stage wrote, and every figure of the run exists in both formats."""
    import json

    import pandas as pd

    from ctpaper.config import eval_settings
    from ctpaper.names import DATASET_NAMES as TABLE_ORDER

    R, cfg = smoke_run["results"], smoke_run["config"]
    datasets = [d for d in TABLE_ORDER if d in cfg["datasets"]]
    n_seeds = len(cfg["train"]["seeds"])
    t1 = pd.read_csv(R / "tables" / "table1.csv")
    assert t1["dataset"].tolist() == datasets + ["avg"]
    for _, r in t1[t1["dataset"] != "avg"].iterrows():
        for metric, family in (("ip", "free"), ("ip_star", "free"), ("cost", "protected")):
            runs = eval_settings(cfg, r["dataset"], family)["n_runs"] * n_seeds
            assert r[f"{metric}_n_runs"] + r[f"{metric}_n_dropped"] == runs, (r["dataset"], metric)
    t2 = pd.read_csv(R / "tables" / "table2.csv")
    assert t2["dataset"].tolist() == datasets
    for _, r in t2.iterrows():
        meta = json.loads((R / "data" / r["dataset"] / "meta.json").read_text())
        assert (r["n_pool"], r["n_test"]) == (meta["n_pool"], meta["n_test"])
        assert r["batch_size"] == cfg["train"]["per_dataset"][r["dataset"]]["batch_size"]
    perf = pd.read_csv(R / "tables" / "performance.csv")
    assert perf["dataset"].tolist() == datasets and (perf["n_seeds"] == n_seeds).all()
    for name in _figure_names(cfg) + _appendix_figures(cfg):
        for ext in ("png", "pdf"):
            assert (R / "figures" / f"{name}.{ext}").stat().st_size > 0, name
    # captions state the runs per column: the families' own run counts (smoke.yaml)
    n = {f: eval_settings(cfg, cfg["datasets"][0], f)["n_runs"] for f in ("free", "protected")}
    md = (R / "tables" / "table1.md").read_text()
    assert f"IP and IP\\*: {n['free']} runs; Cost: {n['protected']} runs per cell" in md
    # every Table-1 cell of the run is compared with the original's
    c1 = pd.read_csv(R / "tables" / "comparison.csv")
    assert len(c1) == 3 * len(cfg["datasets"])
    assert set(c1["ours_class"]) <= {"better", "worse", "n.s."}
    assert (c1["agree"] == (c1["ours_class"] == c1["original_class"])).all()


@pytest.mark.slow
def test_smoke_pdf_has_every_figure_and_table(smoke_run):
    R = smoke_run["results"]
    n_fig = len(_figure_names(smoke_run["config"])) + len(_appendix_figures(smoke_run["config"]))
    n_tbl = _n_tables(smoke_run["config"])
    typ = (R / "paper" / "build" / "paper.typ").read_text()
    assert len(re.findall(r"^<fig-[\w-]+>$", typ, flags=re.M)) == n_fig
    assert len(re.findall(r"^<tbl-[\w-]+>$", typ, flags=re.M)) == n_tbl
    text = pdf_text(R / "paper" / "paper.pdf")
    if text is None:
        pytest.skip("pdftotext (Debian poppler-utils) is missing and could not be installed "
                    "(needs root and apt): PDF text not checked")
    figs = sorted({int(n) for n in re.findall(r"Figure (\d+):", text)})
    tbls = sorted({int(n) for n in re.findall(r"Table (\d+):", text)})
    assert figs == list(range(1, n_fig + 1))
    assert tbls == list(range(1, n_tbl + 1))
    assert "??" not in text and "@fig-" not in text and "@tbl-" not in text and "#ref(" not in text


@pytest.mark.slow
def test_smoke_html_is_self_contained(smoke_run):
    html = (smoke_run["results"] / "paper" / "paper.html").read_text()
    srcs = re.findall(r"""\ssrc\s*=\s*["']([^"']*)["']""", html)
    assert srcs and all(s.startswith("data:") for s in srcs)
    assert html.count('src="data:image/png;base64,') == (len(_figure_names(smoke_run["config"]))
                                                          + len(_appendix_figures(smoke_run["config"])))
    text = html_text(html)
    assert "??" not in text and "@fig-" not in text and "@tbl-" not in text
    assert re.search(r"Figure\s1:", text) and re.search(r"Table\s1:", text)


@pytest.mark.slow
def test_smoke_figure_target_reruns_only_its_chain(smoke_run):
    """Rerunning the job that draws Figure 3 (forced, so the shared smoke run is left untouched)
    schedules that job and the figure's target, nothing upstream or elsewhere."""
    R = smoke_run["results"]
    before = {p: p.stat().st_mtime_ns for p in (R / "figures").iterdir()}
    out = smoke_snakemake(["-n", "fig3", "--forcerun", "figure_fig3"], smoke_run["overlay"],
                          smoke_run["env"], timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    jobs = re.findall(r"^(?:local)?rule (\w+):", out.stdout + out.stderr, flags=re.M)
    assert sorted(jobs) == ["fig3", "figure_fig3"], jobs
    assert {p: p.stat().st_mtime_ns for p in (R / "figures").iterdir()} == before


@pytest.mark.slow
def test_deleted_grid_figure_reruns_only_its_rule(smoke_run):
    """Issue 12's acceptance: with one grid figure gone, its grid's target schedules the one job
    that draws it (and the target), no training, evaluation or other figure (a dry run; the file is
    moved aside and back, so the shared smoke run is left as it was)."""
    R = smoke_run["results"]
    png = R / "figures" / "appendix" / "generator" / "ls_ip.png"
    aside = png.with_name("ls_ip.png.aside")
    png.rename(aside)
    try:
        out = smoke_snakemake(["-n", "grid_generator"], smoke_run["overlay"], smoke_run["env"],
                              timeout=300)
    finally:
        aside.rename(png)
    assert out.returncode == 0, out.stderr[-3000:]
    jobs = re.findall(r"^(?:local)?rule (\w+):", out.stdout + out.stderr, flags=re.M)
    assert sorted(jobs) == ["appendix_box", "grid_generator"], jobs
    assert re.search(r"wildcards: .*dataset=ls", out.stdout + out.stderr)


@pytest.mark.slow
def test_smoke_paper_names_only_defined_flags(smoke_run):
    """Every flag that a conditional span of the paper source names (after the includes) is defined
    by the run's values: an absent flag counts as false, so a misspelt one would silently drop or
    keep text (a verdict worded by four spans would vanish)."""
    import yaml

    from ctpaper.paper.render import COND_RE, expand_shortcodes

    build = smoke_run["results"] / "paper" / "build"
    meta = yaml.safe_load((build / "_metadata.yml").read_text())
    variables = yaml.safe_load((build / "_variables.yml").read_text())
    text = expand_shortcodes((build / "paper.qmd").read_text(), variables, build)
    keys = {m.group(2) for m in COND_RE.finditer(text)}

    def defined(key: str) -> bool:
        node = meta
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return isinstance(node, bool)

    assert len(keys) > 20, keys
    assert not sorted(k for k in keys if not defined(k))
    assert any(k.startswith("flags.studies.") for k in keys)
    assert any(k.startswith("flags.appendix.") for k in keys)
