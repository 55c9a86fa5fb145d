"""The paper: shortcode expansion, source/output checks, cross-references, provenance, computed values,
and a full render of paper/paper.qmd from small synthetic pipeline outputs."""

from __future__ import annotations

import copy
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ctpaper import comparison, tables
from ctpaper.comparison import CLASS_TEXT
from ctpaper.paper import provenance, render, values

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
PAPER_DIR = REPO / "paper"
PUBLISHED = REPO / "config" / "published.yaml"


# --------------------------------------------------------------------------------------------------
# shortcodes and checks


def test_expand_shortcodes_vars_and_nested_includes(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "inner.md").write_text("inner {{< var a.b >}}\n")
    (tmp_path / "outer.md").write_text("outer\n{{< include /sub/inner.md >}}\n")
    text = "x {{< var n >}}\n{{< include outer.md >}}\nend"
    out = render.expand_shortcodes(text, {"n": 3, "a": {"b": "deep"}}, tmp_path)
    assert out == "x 3\nouter\ninner deep\nend"
    with pytest.raises(render.RenderError, match="a.c"):
        render.expand_shortcodes("{{< var a.c >}}", {"a": {"b": 1}}, tmp_path)
    with pytest.raises(render.RenderError, match="does not exist"):
        render.expand_shortcodes("{{< include nope.md >}}", {}, tmp_path)
    with pytest.raises(render.RenderError, match="unsupported"):
        render.expand_shortcodes("{{< meta title >}}", {}, tmp_path)


BIB = "@article{known2020, title={T}, author={A, B}, journal={J}, year={2020}}\n"


def _doc(body: str) -> str:
    return "---\ntitle: t\n---\n\n" + body


def test_check_source_reports_every_problem(tmp_path):
    (tmp_path / "r.bib").write_text(BIB)
    (tmp_path / "f.png").write_bytes(b"\x89PNG fake")
    good = _doc("See @fig-a and @tbl-b [@known2020].\n\n![c](f.png){#fig-a}\n\n| x |\n|---|\n| 1 |\n\n"
                ": cap {#tbl-b}\n")
    summary = render.check_source(good, tmp_path / "r.bib", tmp_path)
    assert summary["figures"] == ["fig-a"] and summary["tables"] == ["tbl-b"]
    assert summary["citations"] == ["known2020"]
    bad = _doc("See @fig-zz and [@unknown2001].\n\n![c](missing.png){#fig-a}\n")
    with pytest.raises(render.RenderError) as err:
        render.check_source(bad, tmp_path / "r.bib", tmp_path)
    msg = str(err.value)
    assert "fig-zz" in msg and "unknown2001" in msg and "missing.png" in msg
    assert "never referenced" in msg     # fig-a is defined but not referenced


def _tiny_paper(tmp_path, body: str):
    paper = tmp_path / "paper"
    (paper / "filters").mkdir(parents=True)
    (paper / "sections").mkdir()
    (paper / "typst").mkdir()
    shutil.copy2(PAPER_DIR / "typst" / "header.typ", paper / "typst")
    shutil.copy2(PAPER_DIR / "filters" / "crossref.lua", paper / "filters")
    shutil.copy2(PAPER_DIR / "filters" / "html.lua", paper / "filters")
    shutil.copytree(PAPER_DIR / "html", paper / "html")
    (paper / "references.bib").write_text(BIB)
    (paper / "_quarto.yml").write_text("project:\n  type: default\n")
    # the author as a mapping, as in paper/paper.qmd
    (paper / "paper.qmd").write_text("---\ntitle: t\nauthor:\n  - name: Pipeline\n---\n\n" + body)
    return paper


def _producers(tables, figures, values_json):
    """A made-up DAG's answer for ``render(producers=...)``: rule make_<name>, module <name>.py."""
    out = {str(values_json): {"rule": "paper_values", "modules": ["src/ctpaper/paper/values.py"]}}
    for n, p in tables.items():
        out[str(p)] = {"rule": f"make_{n}", "modules": [f"src/ctpaper/{n}.py"]}
    for n, paths in figures.items():
        out[str(paths[0])] = {"rule": f"make_{n}", "modules": [f"src/ctpaper/{n}.py", "style.py"]}
    return out


def _provenance_json(path, commit="0123456789abcdef0123", dirty=False):
    path.write_text(json.dumps({"git_commit": commit, "git_dirty": dirty, "date": "2026-01-02"}))
    return path


def _plot(path_png, path_pdf):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1, 2], [1, 0, 2])
    fig.savefig(path_png, dpi=60)
    fig.savefig(path_pdf)
    plt.close(fig)


def test_render_tiny_document_numbers_and_links(tmp_path):
    body = ("# Intro {#sec-intro}\n\n::: figure-index\n:::\n\n"
            "Value {{< var v >}}. See @fig-b, then @fig-a, @tbl-t and @sec-intro [@known2020].\n\n"
            "![First.](figures/a.png){#fig-a}\n\n![Second.](figures/b.png){#fig-b}\n\n"
            "{{< include tables/t.md >}}\n\nTyped: @tbl-typed.\n\n| q |\n|---|\n| 9 |\n\n"
            ": Typed. {#tbl-typed}\n\n# References {.unnumbered}\n\n::: {#refs}\n:::\n")
    paper = _tiny_paper(tmp_path, body)
    inputs = tmp_path / "in"
    inputs.mkdir()
    figs = {}
    for n in ("a", "b"):
        _plot(inputs / f"{n}.png", inputs / f"{n}.pdf")
        figs[n] = [inputs / f"{n}.png", inputs / f"{n}.pdf"]
    (inputs / "t.md").write_text(tables.markdown_table([["1.00"]], ["x"], "r", "Cap.", "tbl-t"))
    (inputs / "values.json").write_text(json.dumps({"vars": {"v": 42}, "blocks": {}}))
    html, pdf = tmp_path / "out" / "p.html", tmp_path / "out" / "p.pdf"
    tbls = {"t": inputs / "t.md"}
    summary = render.render(paper, tmp_path / "build", inputs / "values.json", tbls,
                            figs, html, pdf, engine="pandoc",
                            provenance_json=_provenance_json(inputs / "prov.json", dirty=True),
                            producers=_producers(tbls, figs, inputs / "values.json"))
    assert summary["figures"] == ["fig-a", "fig-b"] and summary["tables"] == ["tbl-t", "tbl-typed"]
    h = html.read_text()
    # title block: the author's name (not pandoc's 'true' for a mapping), date, short commit
    assert re.search(r'<p class="author">Pipeline</p>', h) and ">true<" not in h
    assert "2026-01-02" in h and "<code>0123456789ab</code>" in h
    # every figure and table names its rule, module and the commit, from `producers`
    prov = re.findall(r'<div class="provenance" data-rule="(\w+)" data-of="([\w-]+)">(.*?)</div>',
                      h, flags=re.S)
    assert sorted((r, of) for r, of, _ in prov) == [("make_a", "fig-a"), ("make_b", "fig-b"),
                                                    ("make_t", "tbl-t")]
    assert all("0123456789ab" in text and "uncommitted" in text for *_, text in prov)
    assert "<code>src/ctpaper/a.py</code>, <code>style.py</code>" in h
    assert re.search(r'<div class="provenance" data-source="paper/paper.qmd" data-of="tbl-typed">'
                     r'\s*Written in <code>paper/paper.qmd</code>, commit <code>0123456789ab</code>', h)
    assert re.search(r'<div id="tbl-t" class="table-wrap">\s*<div class="table-caption">', h)
    # the figure index lists the section's figures in order, by number, with their captions
    index = re.search(r'<div class="figure-index".*?</div>', h, flags=re.S).group(0)
    assert re.findall(r'<a href="#(fig-\w)">Figure (\d)</a>: (\w+)', index) == [
        ("fig-a", "1", "First"), ("fig-b", "2", "Second")]
    assert 'href="#fig-b">Figure\u00a02</a>' in h and 'href="#fig-a">Figure\u00a01</a>' in h
    assert 'href="#tbl-t">Table\u00a01</a>' in h and 'href="#sec-intro">Section\u00a01</a>' in h
    assert "Value 42." in render.html_text(h)
    assert h.count('src="data:image/png;base64') == 2
    typ = (tmp_path / "build" / "paper.typ").read_text()
    assert "#ref(<fig-b>);" in typ and 'image("figures/a.pdf"' in typ   # vector figures in print
    text = render.pdf_text(pdf)
    if text is not None:
        assert "Figure 1: First." in text and "Figure 2: Second." in text
        assert "see figure 2, then figure 1, table 1" in " ".join(text.split()).lower()
        assert "??" not in text


def test_render_fails_on_undefined_reference(tmp_path):
    paper = _tiny_paper(tmp_path, "See @fig-nothere.\n")
    (tmp_path / "v.json").write_text(json.dumps({"vars": {}, "blocks": {}}))
    with pytest.raises(render.RenderError, match="fig-nothere"):
        render.render(paper, tmp_path / "b", tmp_path / "v.json", {}, {}, tmp_path / "o.html",
                      tmp_path / "o.pdf", engine="pandoc",
                      provenance_json=_provenance_json(tmp_path / "prov.json"), producers={})
    assert not (tmp_path / "o.html").exists()


def test_every_figure_and_table_needs_its_producer(tmp_path):
    """Provenance comes from the DAG: a figure or table the producers do not cover stops the render."""
    build = tmp_path / "b"
    (build / "tables").mkdir(parents=True)
    (build / "generated").mkdir()
    (build / "tables" / "t.md").write_text("| x |\n|---|\n| 1 |\n\n: Cap. {#tbl-t}\n")
    (build / "generated" / "g.md").write_text("| y |\n|---|\n| 2 |\n\n: Gen. {#tbl-g}\n")
    (build / "sections").mkdir()
    (build / "paper.qmd").write_text("Text.\n")
    (build / "sections" / "s.qmd").write_text("| z |\n|---|\n| 3 |\n\n: Typed. {#tbl-s}\n")
    tables, figures = {"t": tmp_path / "t.md"}, {"a": [tmp_path / "a.png", tmp_path / "a.pdf"]}
    made = _producers(tables, figures, tmp_path / "v.json")
    out = render.element_producers(build, tmp_path / "v.json", tables, figures, made)
    assert out == {"figures": {"figures/a.png": made[str(tmp_path / "a.png")]},
                   "tables": {"tbl-t": made[str(tmp_path / "t.md")],
                              "tbl-g": made[str(tmp_path / "v.json")],
                              "tbl-s": {"source": "paper/sections/s.qmd"}}}
    del made[str(tmp_path / "a.png")]
    with pytest.raises(render.RenderError, match="a.png"):
        render.element_producers(build, tmp_path / "v.json", tables, figures, made)


def test_title_block_commit_and_date():
    meta = render.title_metadata({"git_commit": "0123456789abcdef", "git_dirty": False, "date": "d"})
    assert meta == {"date": "d", "commit": "0123456789ab", "commit-note": ""}
    meta = render.title_metadata({"git_commit": "0123456789abcdef", "git_dirty": True, "date": "d"})
    assert meta["commit-note"] == "uncommitted changes in the working tree"
    meta = render.title_metadata({"git_commit": None, "git_dirty": None, "date": "d"})
    assert meta == {"date": "d", "commit": "unknown", "commit-note": "not run from a git checkout"}


def test_lua_filter_rejects_undefined_label_directly(tmp_path):
    """Even past the source check, pandoc with the filter fails on a dangling reference."""
    import subprocess

    (tmp_path / "d.md").write_text("See @fig-x.\n")
    out = subprocess.run([render.pandoc_path(), "d.md", "--lua-filter",
                          str(PAPER_DIR / "filters" / "crossref.lua"), "-t", "html"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode != 0 and "fig-x" in out.stderr


def test_check_outputs_flags_unresolved_and_external(tmp_path):
    html = tmp_path / "p.html"
    html.write_text('<html><body><p>See ?? and @fig-a</p><img src="figures/a.png"></body></html>')
    pdf = tmp_path / "p.pdf"
    pdf.write_bytes(b"")
    with pytest.raises(render.RenderError) as err:
        render.check_outputs(html, pdf, {"figures": ["fig-a"], "tables": [], "images": ["x"]})
    msg = str(err.value)
    assert "self-contained" in msg and "??" in msg and "@fig-a" in msg and "anchor" in msg


# --------------------------------------------------------------------------------------------------
# provenance and values


def test_provenance_aggregates_benchmarks(tmp_path, base_config):
    b = tmp_path / "benchmarks"
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    for rule, job, s, rss, cpu in (("train_model", "ls_bl", 10.0, 300.0, 9.5),
                                   ("train_model", "ls_ct", 30.0, 500.0, 29.0),
                                   ("prepare_data", "ls", 2.0, "NA", 1.0)):
        (b / rule).mkdir(parents=True, exist_ok=True)
        (b / rule / f"{job}.tsv").write_text(header + f"{s}\t0:00:10\t{rss}\t1\t1\t1\t0\t0\t50\t{cpu}\n")
    prov = provenance.collect(base_config, {r: b / r for r in ("train_model", "prepare_data", "other")})
    rules = {r["rule"]: r for r in prov["rules"]}
    assert rules["train_model"] == {"rule": "train_model", "jobs": 2, "wall_s_total": 40.0,
                                    "wall_s_max": 30.0, "max_rss_mb": 500.0, "cpu_s_total": 38.5}
    assert np.isnan(rules["prepare_data"]["max_rss_mb"])
    assert prov["total_cpu_s"] == pytest.approx(39.5) and prov["total_wall_s"] == pytest.approx(42.0)
    assert prov["n_jobs"] == 3 and prov["peak_rss_mb"] == 500.0
    assert prov["rules"][0]["rule"] == "train_model"          # sorted by wall time
    assert len(prov["config_hash"]) == 16 and "torch" in prov["packages"]
    block = values.compute_table(prov)
    assert block.rstrip().endswith("{#tbl-compute}")
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in block.splitlines()
             if line.startswith("|")]
    assert ["train\\_model", "2", "40.0", "30.0", "500", "38.5"] in cells
    assert cells[-1] == ["**total**", "3", "42.0", "", "500", "39.5"]
    text = _worded("benchmarked jobs", {"prov": values.provenance_values(prov)})
    assert text.startswith("The pipeline's 3 benchmarked jobs took 40 s of CPU time and 42 s of "
                           "summed wall time; the largest resident memory of a single job was 500 MB.")
    dirty = {**prov, "git_commit": "abc", "git_dirty": True}
    assert ("at git commit `abc` (with uncommitted or untracked changes in the working tree), with "
            "Python") in _worded("configuration hash", {"prov": values.provenance_values(dirty)})
    no_git = {**prov, "git_commit": None, "git_dirty": None}
    assert "at git commit `unknown (not a git checkout)`, with" in _worded(
        "configuration hash", {"prov": values.provenance_values(no_git)})


def _worded(marker: str, tree: dict, source: str = "paper.qmd") -> str:
    """The paragraph of the paper source ``source`` containing ``marker``, expanded with the values
    ``tree`` as the render step does (variables, then the conditional spans chosen by the flags
    among them), whitespace collapsed: the wording the paper prints for these values."""
    text = (PAPER_DIR / source).read_text()
    paragraph = next(p for p in text.split("\n\n") if marker in p)
    vars_, flags = values.split_flags(tree)
    out = render.expand_shortcodes(paragraph, vars_, PAPER_DIR, meta={"flags": flags})
    return " ".join(out.split())


def test_verdict_rule():
    assert values.verdict(5, 9, 10.0) == "supports"
    assert values.verdict(4, 9, 10.0) == "partly"   # not more than half
    assert values.verdict(1, 9, 0.5) == "partly"
    assert values.verdict(6, 9, -1.0) == "not"      # worse on average
    assert values.verdict(0, 9, 30.0) == "not"
    assert values.verdict(0, 0, math.nan) == "cannot"


@pytest.mark.parametrize("key, words", [("supports", "supports"), ("partly", "partly supports"),
                                        ("not", "does not support"), ("cannot", "cannot assess")])
def test_paper_words_each_verdict(key, words):
    robust = {"n_better": 2, "n": 3, "avg_gain_pp": "1.5", "verdicts": values.verdict_flags(key)}
    text = _worded("**Robustness.**", {"robust": robust})
    assert text.endswith(f"This reproduction {words} the claim (CT ahead on 2 of 3 datasets, 1.5 "
                         "points on average).")


def test_table1_values_counts():
    t1 = pd.DataFrame({
        "dataset": ["ls", "moon", "adult", "avg"], "label": ["LS", "Moon", "Adult", "Avg"],
        **{f"{m}_value": [50.0, -10.0, 20.0, 20.0] for m in ("ip", "ip_star", "cost")},
        **{f"{m}_significant": [True, True, False, False] for m in ("ip", "ip_star", "cost")},
    })
    v = values.table1_values(t1)["ip"]
    assert (v["n"], v["n_better"], v["n_sig_better"], v["n_sig_worse"]) == (3, 2, 1, 1)
    assert v["best"] == "LS" and v["worst"] == "Moon" and v["avg"] == "20.00"
    assert v["sig_better_list"] == "LS" and v["sig_worse_list"] == "Moon"
    assert v["verdict"] == "partly" and v["verdicts"] == {"supports": False, "partly": True,
                                                         "not": False, "cannot": False}


def test_robustness_values():
    rows = []
    for d, gap in (("ls", 0.1), ("moon", -0.05), ("adult", 0.2)):
        for e in (0.0, 0.05, 0.1):
            rows.append({"dataset": d, "model": "BL", "eps": e, "accuracy": 0.9 - e})
            rows.append({"dataset": d, "model": "CT", "eps": e, "accuracy": 0.9 - e + (gap if e else 0)})
    v = values.robustness_values(pd.DataFrame(rows))
    assert v["n"] == 3 and v["n_better"] == 2 and v["better_list"] == "LS and Adult"
    assert v["avg_gain_pp"] == "8.3" and v["max_gap_label"] == "Adult" and v["verdict"] == "supports"
    assert v["eps_min"] == "0.05" and v["eps_max"] == "0.1" and v["clean_gap_pp"] == "0.0"


def _ces_groups(spec):
    """ces rows from {(dataset, model): {(lambda_egy, run): (n, n_valid, n_mature)}}."""
    rows = []
    for (d, model), groups in spec.items():
        for (lam, run), (n, n_valid, n_mature) in groups.items():
            rows += [{"dataset": d, "seed": 1, "model": model, "lambda_egy": lam, "run": run,
                      "valid": i < n_valid, "mature": i < n_mature} for i in range(n)]
    return pd.DataFrame(rows)


def _same(n, n_valid, n_mature):
    return {(lam, run): (n, n_valid, n_mature) for lam in (0.5, 5.0) for run in (0, 1)}


def _validity_text(v: dict) -> str:
    return _worded("validity.mature_text", {"validity": v, "run": {"eval_T": 50, "eval_tau": 0.95}})


def test_validity_values_shares_lists_and_sentences():
    spec = {
        ("ls", "CT"): _same(10, 10, 10), ("ls", "BL"): _same(10, 10, 5),
        ("ol", "CT"): _same(10, 8, 0), ("ol", "BL"): _same(100, 90, 3),
        # unequal groups: shares are averaged over (lambda_egy, run) groups, not pooled
        ("credit", "CT"): {(0.5, 0): (50, 40, 1), (0.5, 1): (50, 40, 1),
                           (5.0, 0): (10, 5, 0), (5.0, 1): (10, 5, 0)},
        ("credit", "BL"): _same(10, 10, 10),
    }
    v = values.validity_values(_ces_groups(spec))
    nb, sl = "\u00a0", "\u2060/\u2060"    # no line break inside 'LS 100/100'
    assert v["valid_text"] == f"LS{nb}100{sl}100, OL{nb}80{sl}90 and Cred{nb}65{sl}100"   # pooled: 75
    assert v["mature_text"] == f"LS{nb}100{sl}50, OL{nb}0{sl}3 and Cred{nb}1{sl}100"
    assert (v["valid_ct_avg"], v["valid_bl_avg"], v["mature_ct_avg"], v["mature_bl_avg"]) == \
        ("82", "97", "34", "51")
    assert (v["n_ct_low"], v["ct_low_list"], v["n_bl_low"], v["bl_low_list"]) == (2, "OL and Cred", 1, "OL")
    text = _validity_text(v)
    assert ("over datasets. On OL and Cred, fewer than 5% of CT's counterfactuals are mature (none at "
            "all on OL); on OL, fewer than 5% of BL's counterfactuals are mature. In these") in text
    # immature share of the valid CEs: CT OL 100%, CT Cred 88/90, BL OL 348/360 -> at least 96%
    assert ("mature. In these cases, at least 96% of the valid counterfactuals over which the scores "
            "are averaged stopped at the budget of 50 steps with a target probability below 0.95. This "
            "is consistent with") in text
    assert text.endswith("valid counterfactuals for 65–90% of the factuals in these cases.")

    # only CT rarely mature, and only with exact zeros
    ct_only = values.validity_values(_ces_groups({
        ("ls", "CT"): _same(10, 10, 10), ("ls", "BL"): _same(10, 10, 10),
        ("ol", "CT"): _same(10, 7, 0), ("ol", "BL"): _same(10, 9, 1)}))
    text = _validity_text(ct_only)
    assert ("over datasets. On OL, none of CT's counterfactuals is mature, whereas at least 5% of BL's "
            "counterfactuals are mature on every dataset. In this case, all of the valid") in text
    assert text.endswith("for 70% of the factuals in this case.")

    # only BL rarely mature, on one of two datasets with none at all
    bl_only = values.validity_values(_ces_groups({
        ("ls", "CT"): _same(10, 10, 10), ("ls", "BL"): _same(100, 90, 2),
        ("ol", "CT"): _same(10, 9, 9), ("ol", "BL"): _same(10, 9, 0)}))
    assert ("over datasets. On LS and OL, fewer than 5% of BL's counterfactuals are mature (none at all "
            "on OL), whereas at least 5% of CT's counterfactuals are mature on every dataset. In these "
            "cases, at least 97% of the valid") in _validity_text(bl_only)

    # nothing below 5%: the sentence adapts and no consequence is stated
    none = values.validity_values(_ces_groups({
        ("ls", "CT"): _same(20, 20, 1), ("ls", "BL"): _same(10, 10, 10)}))
    assert _validity_text(none).endswith(
        "over datasets. On every dataset, at least 5% of the counterfactuals of both CT and BL are "
        "mature, so the step budget does not keep either model's counterfactuals from reaching the "
        "threshold altogether.")
    assert none["ct_low_list"] == "none"
    assert none["mature_text"] == "LS\u00a05\u2060/\u2060100"


def test_pct_ends_are_exact():
    assert [values.pct(x) for x in (0.0, 0.004, 0.006, 0.5, 0.994, 0.996, 1.0)] == \
        ["0", "<1", "1", "50", "99", ">99", "100"]


def _repro_notes(config: dict, metas: dict) -> str:
    """paper/sections/repro_notes.qmd expanded with the values of ``config`` (one line per note)."""
    datasets = [d for d in tables.TABLE_ORDER if d in config["datasets"]]
    t1 = pd.DataFrame({f"{m}_n_runs": [5] for m in ("ip", "ip_star", "cost")})
    tree = {"run": values.run_values(config, t1, {"config_hash": "x", "total_cpu_s": 1.0}, datasets),
            **values.published_values(config, values.load_published(PUBLISHED))}
    tree["repro"].update(values.repro_run_values(config, metas))
    vars_, flags = values.split_flags(tree)
    text = render.expand_shortcodes((PAPER_DIR / "sections" / "repro_notes.qmd").read_text(), vars_,
                                    PAPER_DIR, meta={"flags": flags})
    return re.sub(r"\n   ", " ", text)   # list items' continuation lines joined


def test_repro_notes_cover_section_10_1_and_follow_config(base_config):
    metas = {"ls": {"n_test": 900, "n_pool": 3600}, "credit": {"n_test": 2654, "n_pool": 10618}}
    notes = _repro_notes(base_config, metas)
    items = re.findall(r"^(\d+)\. \*\*", notes, flags=re.M)
    assert items == [str(i) for i in range(1, 20)]
    assert "Original: 0.25 in the text (Notes 1 and 2); 0.1 in the published results" in notes
    assert "Original: 0.5 in the text; 5.0 in the published results." in notes
    assert "`ce.lr` = 0.1 (as in the published results)" in notes
    assert "`data.synthetic.rng` = julia, seeds 42 / 2025, 100,000 points (as in the published" in notes
    # the protected family's settings (method 6.2) and their two sources; IP per counterfactual
    assert "`eval.families.protected`: τ = 0.5 (Adult 0.95), T = 50, 50 runs × 100 / 100 / 50 " \
        "individuals per λ_egy (synthetic / tabular / MNIST)" in notes
    assert "τ = 0.95 in Note 2" in notes and "caption of Table 1" in notes
    assert "mutability/mlp/<dataset>/evaluation/evaluation_{1..5}/eval_config.toml" in notes
    assert "an inference" in notes
    assert "`eval.ip.reference` = per_ce with `eval.ip.n_balanced` = 1000 and `eval.ip.n_ref` = " \
        "1000 (as in the published results)" in notes
    assert "`free` family: 100 runs × 250 / 100 / 25 (as in the published results)" in notes
    assert "LS 900 and Cred 2654; Credit pool 10618." in notes
    assert "actually used: LS 900.\n" in _repro_notes(base_config, {"ls": metas["ls"]})
    changed = copy.deepcopy(base_config)
    changed["ce"]["lr"] = 0.25
    changed["train"]["adv_label"] = "true"
    changed["eval"]["mmd"]["length_scale"] = 1.0
    changed["eval"]["n_runs"] = 5
    changed["eval"]["n_individuals"] = {"synthetic": 100, "tabular": 100, "image": 100}
    notes2 = _repro_notes(changed, metas)
    assert "`ce.lr` = 0.25 (as in the paper text)" in notes2
    assert "`train.adv_label` = true (as in the paper text)" in notes2
    assert "`eval.mmd.length_scale` = 1 (differs from both)" in notes2
    assert "`free` family: 5 runs × 100 / 100 / 100 (as in the paper text)" in notes2
    for key, value in (("rng", "numpy"), ("centers", [[1.0, 1.0], [2.0, 2.0]])):
        other = copy.deepcopy(base_config)
        other["data"]["synthetic"][key] = value
        text = _repro_notes(other, metas)
        assert "(differs from the published results): the points are not the original's" in text
        assert ("numpy's generator gives other blob centres" in text) == (value == "numpy")


def test_resolve_conditionals_keeps_and_drops_nested_spans():
    meta = {"flags": {"a": True, "g": {"b": False}}, "n": 3}
    text = ('x [one[s]{.content-visible when-meta="flags.g.b"} [in]{.content-visible '
            'unless-meta="flags.g.b"}]{.content-visible when-meta="flags.a"}[gone]{.content-visible '
            'when-meta="flags.missing"} [@ref]{.cls} y')
    assert render.resolve_conditionals(text, meta) == "x one in [@ref]{.cls} y"
    with pytest.raises(render.RenderError, match="not a boolean"):
        render.resolve_conditionals('[t]{.content-visible when-meta="n"}', meta)
    with pytest.raises(render.RenderError, match="no opening bracket"):
        render.resolve_conditionals('t]{.content-visible when-meta="n"}', meta)


# --------------------------------------------------------------------------------------------------
# the real paper.qmd rendered from synthetic pipeline outputs


def _synthetic_results(root: Path, config: dict, datasets: list[str]) -> dict:
    """Minimal results tree for the report stage: tables, figures (plain plots), values inputs."""
    rng = np.random.default_rng(0)
    (root / "tables").mkdir(parents=True)
    (root / "figures").mkdir()
    ces_paths, perf, rob, metas = [], [], [], []
    logs = {}  # {(dataset, seed, model): log.parquet}
    for d in datasets:
        for fam in ("free", "protected"):
            rows = []
            for run in range(4):
                for lam in (0.5, 5.0):
                    for model, scale in (("CT", 0.7), ("BL", 1.0)):
                        v = scale * (1 + 0.1 * rng.standard_normal(6)) + 0.01 * run
                        mature = not (d == "credit" and model == "CT")   # CT never mature on Cred
                        rows += [{"dataset": d, "family": fam, "seed": 2025, "model": model,
                                  "lambda_egy": lam, "run": run, "valid": True, "mature": mature,
                                  "ip": x, "ip_star": x / 100, "cost": 2 * x} for x in v]
            p = root / "eval" / d / "seed2025" / fam / "ces.parquet"
            p.parent.mkdir(parents=True, exist_ok=True)
            pd.DataFrame(rows).to_parquet(p)
            ces_paths.append(str(p))
        for m, acc in (("BL", 0.9), ("CT_free", 0.88), ("CT_protected", 0.87)):
            perf.append({"dataset": d, "seed": 2025, "model": m, "accuracy": acc, "f1": acc - 0.01,
                         "n_pred_classes": 2})
        for e in np.linspace(0, 0.1, 4):
            rob += [{"dataset": d, "seed": 2025, "model": "BL", "eps": e, "accuracy": 0.9 - 3 * e},
                    {"dataset": d, "seed": 2025, "model": "CT", "eps": e, "accuracy": 0.88 - e}]
        for m in ("ct_free", "ct_protected"):
            p = root / "models" / d / "seed2025" / m / "log.parquet"
            p.parent.mkdir(parents=True)
            pd.DataFrame({"epoch": [1, 2, 3], "prop_mature": [0.3, 0.6, 0.8]}).to_parquet(p)
            logs[(d, "2025", m)] = str(p)
        meta = root / "data" / d / "meta.json"
        meta.parent.mkdir(parents=True)
        meta.write_text(json.dumps({"dataset": d, "n_pool": 100, "n_train": 90, "n_val": 10,
                                    "n_test": 40}))
        metas.append(str(meta))
    perf_p = root / "eval" / "performance.parquet"
    pd.DataFrame(perf).to_parquet(perf_p)
    rob_p = root / "eval" / "robustness.parquet"
    pd.DataFrame(rob).to_parquet(rob_p)
    T = root / "tables"
    for name, inputs in (("table1", ces_paths), ("table3", ces_paths), ("table2", metas),
                         ("performance", [str(perf_p)])):
        tables.make_table(name, inputs, str(T / f"{name}.csv"), str(T / f"{name}.md"), config)
    names = ["fig1", "fig3", "maturity"] + (["fig2", "fig4", "fig5"] if "mnist" in datasets else [])
    figs = {}
    for n in names:
        _plot(root / "figures" / f"{n}.png", root / "figures" / f"{n}.pdf")
        figs[n] = [root / "figures" / f"{n}.png", root / "figures" / f"{n}.pdf"]
    stats = {}
    f1 = {k: {"train_acc": 0.99, "valid_share": 0.5, "dist_class1": 1.2, "cost": 3.0, "n_ces": 20}
          for k in "abcd"}
    stats["fig1_stats_json"] = root / "figures" / "fig1_stats.json"
    stats["fig1_stats_json"].write_text(json.dumps(f1))
    ig = []
    if "mnist" in datasets:
        stats["fig2_stats_json"] = root / "figures" / "fig2_stats.json"
        stats["fig2_stats_json"].write_text(json.dumps({"BL": {"n_valid": 3},
                                                        "CT_protected": {"n_valid": 4}}))
        for n, k in (("fig4", 80), ("fig5", 70)):
            stats[f"{n}_stats_json"] = root / "figures" / f"{n}_stats.json"
            stats[f"{n}_stats_json"].write_text(json.dumps({"n_valid": k, "n_pairs": 90}))
        igp = root / "eval" / "ig_summary.parquet"
        pd.DataFrame([{"dataset": "mnist", "seed": 2025, "model": m, "source": "class_maps",
                       "n_groups": 10, "n_rows": 100, "n_protected": 280, "mean": v, "sd": 0.01}
                      for m, v in (("BL", 0.2), ("CT_protected", 0.1))]).to_parquet(igp)
        ig.append(str(igp))
    bench = root / "benchmarks" / "train_model"
    bench.mkdir(parents=True)
    (bench / "ls.tsv").write_text("s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\t"
                                  "mean_load\tcpu_time\n12.5\t0:00:12\t321.0\t1\t1\t1\t0\t0\t90\t11.0\n")
    provenance.write(config, {"train_model": bench}, root / "paper" / "provenance.json")
    comparison.make_comparison(T / "table1.csv", T / "table3.csv",
                               REPO / "config" / "original_results.yaml", comparison.context(config),
                               T / "comparison.csv", T / "comparison_means.csv",
                               T / "comparison.md", T / "comparison_notes.md")
    inputs = values.PaperInputs(
        table1=T / "table1.csv", performance=T / "performance.csv", table2=T / "table2.csv",
        comparison=T / "comparison.csv", comparison_means=T / "comparison_means.csv",
        robustness=(rob_p,), logs=logs, ig=tuple(ig), provenance=root / "paper" / "provenance.json",
        ces=tuple(p for p in ces_paths if "/free/" in p), published=REPO / "config" / "published.yaml",
        **{k.replace("_json", ""): v for k, v in stats.items()})
    values.write(config, root / "paper" / "values.json", inputs)
    return {"tables": {n: T / f"{n}.md" for n in ("table1", "table2", "table3", "performance",
                                                  "comparison", "comparison_notes")},
            "figures": figs}


@pytest.mark.parametrize("datasets", [["ls", "moon", "adult", "mnist"], ["ls", "credit"]])
def test_full_paper_renders_from_synthetic_outputs(tmp_path, base_config, datasets):
    config = copy.deepcopy(base_config)
    config["datasets"] = datasets
    res = _synthetic_results(tmp_path / "results", config, datasets)
    html, pdf = tmp_path / "paper.html", tmp_path / "paper.pdf"
    vals = tmp_path / "results" / "paper" / "values.json"
    summary = render.render(PAPER_DIR, tmp_path / "build", vals, res["tables"], res["figures"], html,
                            pdf, engine="pandoc",
                            provenance_json=tmp_path / "results" / "paper" / "provenance.json",
                            producers=_producers(res["tables"], res["figures"], vals))
    mnist = "mnist" in datasets
    assert len(summary["figures"]) == (6 if mnist else 3)
    # table1, the two comparisons with the original, table2, table3, performance, compute
    assert summary["tables"] == ["tbl-table1", "tbl-comparison", "tbl-comparison3", "tbl-table2",
                                 "tbl-table3", "tbl-performance", "tbl-compute"]
    expected = ["fig-fig1", "fig-fig2", "fig-fig3", "fig-fig4", "fig-fig5", "fig-maturity"]
    assert summary["figures"] == (expected if mnist else ["fig-fig1", "fig-fig3", "fig-maturity"])
    assert len(summary["citations"]) >= 10
    text = render.html_text(html.read_text())
    assert "CT is better than the baseline on " + str(len(datasets)) + " of " in " ".join(text.split())
    assert ("MNIST is not part of this run" in text) != mnist
    flat = " ".join(text.split()).replace("\u2019", "'")
    # CT's scores are 0.7 x BL's (+-10% noise, the same run offsets) in every run of every dataset and
    # its robust accuracy falls 1/3 as fast: every claim is supported, and no other verdict is printed
    n = len(datasets)
    for claim in ("Measured by IP, this reproduction supports the claim (average reduction",
                  f"significant improvements on {n} of {n} datasets); measured by IP*, it supports the claim",
                  "This reproduction supports the claim (average reduction",
                  f"This reproduction supports the claim (CT ahead on {n} of {n} datasets"):
        assert claim in flat, claim
    assert not re.search(r"partly supports the|does not support the|cannot assess the", flat)
    if "credit" in datasets:
        assert ("On Cred, none of CT's counterfactuals is mature, whereas at least 5% of BL's "
                "counterfactuals are mature on every dataset." in flat)
        assert "In this case, all of the valid counterfactuals" in flat
    else:
        assert "On every dataset, at least 5% of the counterfactuals of both CT and BL" in flat
    # the comparison with the original: counts in the text, one note per disagreeing cell
    c1 = pd.read_csv(tmp_path / "results" / "tables" / "comparison.csv")
    assert len(c1) == 3 * len(datasets)
    assert (f"agrees with the original's for {int(c1['agree'].sum())} of {len(c1)} cells"
            in flat)
    for _, r in c1[~c1["agree"]].iterrows():
        assert f"{r['label']}, {r['metric_label']} : {CLASS_TEXT[r['ours_class']]} here" in flat
    ptxt = render.pdf_text(pdf)
    if ptxt is not None:
        n_fig = 6 if mnist else 3
        assert f"Figure {n_fig}:" in ptxt and f"Figure {n_fig + 1}:" not in ptxt
        assert "Table 7:" in ptxt and "Table 8:" not in ptxt
        assert "??" not in ptxt and "@fig-" not in ptxt and "@tbl-" not in ptxt
