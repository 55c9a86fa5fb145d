"""`snakemake --report` of the smoke run: every table and figure is in the self-contained HTML.

Uses the session's smoke run (conftest.smoke_run) and builds its report the way `make report`
does (`snakemake --report <file>.html` with the run's config files).
"""

from __future__ import annotations

import base64
import re

import pytest

from conftest import smoke_snakemake

FIGURES = ["fig1", "fig3", "maturity"]
MNIST_FIGURES = ["fig2", "fig4", "fig5"]
TABLES = ["table1", "table2", "table3", "performance"]
CATEGORIES = ["Main results", "Robustness", "MNIST", "Appendix", "Compute"]


@pytest.fixture(scope="module")
def report_html(smoke_run, tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "report.html"
    out = smoke_snakemake(["--report", str(path)], smoke_run["overlay"], smoke_run["env"], timeout=900)
    assert out.returncode == 0, f"snakemake --report failed:\n{out.stderr[-4000:]}"
    return path


@pytest.mark.slow
def test_report_holds_every_table_and_figure(smoke_run, report_html):
    R = smoke_run["results"]
    html = report_html.read_text()
    figures = FIGURES + (MNIST_FIGURES if "mnist" in smoke_run["config"]["datasets"] else [])
    files = [R / "figures" / f"{n}.png" for n in figures] + [R / "tables" / f"{n}.csv" for n in TABLES]
    files.append(R / "paper" / "provenance.json")
    missing = [str(f.relative_to(R)) for f in files
               if base64.b64encode(f.read_bytes()).decode()[:2000] not in html]
    assert not missing, f"not embedded in the report: {missing}"
    for category in CATEGORIES:
        assert category in html, category
    # captions name the producing rule and its library modules (from the DAG, not typed)
    for rule, module in [("table_scores", "tables.py"), ("figure_fig3", "figures/fig3.py"),
                         ("figure_fig45", "figures/fig45.py"), ("provenance", "paper/provenance.py")]:
        assert re.search(rf"{rule}.{{0,400}}{re.escape(module)}", html), (rule, module)
    # the workflow description and the per-job runtimes
    assert "Counterfactual" in html and "runtime" in html.lower()
    print(f"\nreport: {report_html.stat().st_size / 1e6:.1f} MB, {len(files)} results embedded")
