"""End to end: the smoke config from raw data to the rendered paper (the suite's expensive test).

Uses the session's smoke run (``smoke_run`` in conftest.py: ``snakemake paper`` with
config/config.yaml + config/smoke.yaml, results in a temporary directory), then checks the figures, the PDF (figure/table captions, no
unresolved references) and the self-contained HTML, and that a figure target reruns only its chain.
"""

from __future__ import annotations

import os
import re

import pytest

from ctpaper.paper.render import html_text, pdf_text

from conftest import smoke_snakemake

def _figure_names(config):
    return ["fig1", "fig3", "maturity"] + (["fig2", "fig4", "fig5"] if "mnist" in config["datasets"]
                                            else [])


@pytest.mark.slow
def test_smoke_figures_and_tables_exist(smoke_run):
    R = smoke_run["results"]
    for name in _figure_names(smoke_run["config"]):
        for ext in ("png", "pdf"):
            f = R / "figures" / f"{name}.{ext}"
            assert f.is_file() and f.stat().st_size > 1000, f
    for name in ("table1", "table2", "table3", "performance", "comparison"):
        for ext in ("csv", "md"):
            f = R / "tables" / f"{name}.{ext}"
            assert f.is_file() and f.stat().st_size > 100, f
    assert (R / "paper" / "provenance.json").is_file()
    # captions state the runs per column: the families' own run counts (smoke.yaml)
    from ctpaper.config import eval_settings

    cfg = smoke_run["config"]
    n = {f: eval_settings(cfg, cfg["datasets"][0], f)["n_runs"] for f in ("free", "protected")}
    t1 = (R / "tables" / "table1.md").read_text()
    assert f"IP and IP\\*: {n['free']} runs; Cost: {n['protected']} runs per cell" in t1
    # every Table-1 cell of the run is compared with the original's
    import pandas as pd

    c1 = pd.read_csv(R / "tables" / "comparison.csv")
    assert len(c1) == 3 * len(cfg["datasets"])
    assert set(c1["ours_class"]) <= {"better", "worse", "n.s."}
    assert (c1["agree"] == (c1["ours_class"] == c1["original_class"])).all()


@pytest.mark.slow
def test_smoke_pdf_has_every_figure_and_table(smoke_run):
    R = smoke_run["results"]
    n_fig = len(_figure_names(smoke_run["config"]))
    n_tbl = 7  # Tables 1-3, the two comparisons with the original, predictive performance, compute
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
    assert html.count('src="data:image/png;base64,') == len(_figure_names(smoke_run["config"]))
    text = html_text(html)
    assert "??" not in text and "@fig-" not in text and "@tbl-" not in text
    assert re.search(r"Figure\s1:", text) and re.search(r"Table\s1:", text)


@pytest.mark.slow
def test_smoke_figure_target_reruns_only_its_chain(smoke_run):
    R = smoke_run["results"]
    fig3 = R / "figures" / "fig3.png"
    kept = fig3.read_bytes()
    fig3.unlink()
    try:
        out = smoke_snakemake(["-n", "fig3"], smoke_run["overlay"], smoke_run["env"], timeout=300)
    finally:        # the smoke run is shared by later tests (the report embeds this figure)
        fig3.write_bytes(kept)
        os.utime(fig3, (fig3.stat().st_atime, (R / "figures" / "fig3.pdf").stat().st_mtime))
    assert out.returncode == 0, out.stderr[-3000:]
    jobs = re.findall(r"^(?:local)?rule (\w+):", out.stdout + out.stderr, flags=re.M)
    assert set(jobs) == {"figure_fig3", "fig3"}, jobs
