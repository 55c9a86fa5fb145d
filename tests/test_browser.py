"""The HTML paper as a reader sees it: the smoke paper opened in headless Chromium.

Debian's ``chromium`` (installed with apt when missing, as the SLURM tests install slurm) is driven by
Playwright at a desktop and a phone width. Checked on both: no console errors, no request leaves the
file, every internal link and cross-reference lands on an element, every figure has loaded at a
useful resolution, nothing overflows the page sideways, the title block holds only its own values,
equations are rendered, every figure and table names the rule (one that ran), the modules and the
commit that made it, the contents follow the reader, a figure opens at full resolution. Screenshots
go to ``results/browser/`` for a person to look at. Skipped, with the reason, only when Chromium can
neither be found nor installed.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SHOTS = REPO / "results" / "browser"
VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
MIN_NATURAL_WIDTH = 800   # px: every figure is saved at print resolution, well above a screen column


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of the system Chromium, installed with apt (root on Debian) when missing."""
    exe = shutil.which("chromium")
    if exe is None:
        from slurm.smk import apt_install

        ok, msg = apt_install("chromium")
        exe = shutil.which("chromium")
        if exe is None:
            pytest.skip(f"Chromium is not installed and apt could not install it ({msg[-300:]}): "
                        "the HTML paper was not checked in a browser")
    return exe


@pytest.fixture(scope="module")
def browser(chromium):
    import os

    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        # Chromium's sandbox refuses to run as root (containers, CI runners)
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        b = pw.chromium.launch(executable_path=chromium, headless=True, args=args)
        yield b
        b.close()


@pytest.fixture(scope="module")
def paper(smoke_run) -> dict:
    R = smoke_run["results"]
    front = (REPO / "paper" / "paper.qmd").read_text().split("\n---", 1)[0]
    return {"html": R / "paper" / "paper.html", "results": R,
            "meta": yaml.safe_load(front.lstrip("-")),
            "prov": json.loads((R / "paper" / "provenance.json").read_text())}


def _open(browser, html: Path, viewport: str):
    """A page of ``html`` at ``viewport``; every request other than the file itself is aborted and
    recorded, and so are console errors and uncaught exceptions."""
    phone = viewport == "phone"
    ctx = browser.new_context(viewport=VIEWPORTS[viewport], is_mobile=phone, has_touch=phone,
                              device_scale_factor=1)
    url = html.resolve().as_uri()
    seen = {"requests": [], "errors": []}

    def route(r):
        if r.request.url == url:
            r.continue_()
        else:
            seen["requests"].append(r.request.url)
            r.abort()

    ctx.route("**/*", route)
    page = ctx.new_page()
    page.on("request", lambda req: req.url in (url,) or req.url.startswith("data:")
            or seen["requests"].append(req.url))
    page.on("console", lambda m: m.type == "error" and seen["errors"].append(m.text))
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.goto(url, wait_until="load")
    page.wait_for_function("Array.from(document.images).every(i => i.complete)")
    return ctx, page, seen


# JavaScript run in the page; each returns a list of problems (empty = fine)
BROKEN_LINKS = """() => Array.from(document.querySelectorAll('a[href^="#"]'))
  .map(a => a.getAttribute('href'))
  .filter(h => h.length < 2 || !document.getElementById(decodeURIComponent(h.slice(1))))"""

IMAGES = """() => Array.from(document.querySelectorAll('main img')).map(i => ({
  id: (i.closest('figure') || {}).id, complete: i.complete, natural: i.naturalWidth,
  grouped: !!i.closest('.figure-group'),
  shown: i.getBoundingClientRect().width, column: i.closest('main').clientWidth,
  data: i.src.startsWith('data:image/')}))"""

# elements sticking out to the right of the viewport, unless a scroll box around them clips them
OVERFLOW = """() => {
  const W = document.documentElement.clientWidth, bad = [];
  const clipped = el => { for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      if (getComputedStyle(p).overflowX !== 'visible') return true; } return false; };
  for (const el of document.querySelectorAll('body *')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || getComputedStyle(el).position === 'fixed') continue;
    if ((r.right > W + 1 || r.left < -1) && !clipped(el))
      bad.push(el.tagName + (el.id ? '#' + el.id : '') + '.' + el.className + ' ' +
               Math.round(r.left) + '..' + Math.round(r.right));
  }
  return {bad: bad.slice(0, 20), scroll: document.documentElement.scrollWidth, width: W};
}"""

PROVENANCE = """() => Array.from(document.querySelectorAll('figure[id^="fig-"], [id^="tbl-"]'))
  .map(el => { const p = el.querySelector(':scope .provenance');
    return {id: el.id, rule: p && p.dataset.rule, source: p && p.dataset.source,
            text: p ? p.textContent : null,
            modules: p ? Array.from(p.querySelectorAll('code')).map(c => c.textContent) : []}; })"""

MATH = """() => Array.from(document.querySelectorAll('math')).map(m => {
  const r = m.getBoundingClientRect(); return [r.width, r.height, m.getAttribute('display')]; })"""


@pytest.mark.slow
@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_html_paper_in_chromium(browser, paper, viewport):
    ctx, page, seen = _open(browser, paper["html"], viewport)
    try:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{viewport}-top.png"))
        page.screenshot(path=str(SHOTS / f"{viewport}-full.png"), full_page=True)
        page.locator("#fig-fig3").screenshot(path=str(SHOTS / f"{viewport}-fig3.png"))
        page.locator("#tbl-table1").screenshot(path=str(SHOTS / f"{viewport}-table1.png"))

        assert page.evaluate(BROKEN_LINKS) == []
        n_links = page.evaluate("() => document.querySelectorAll('a[href^=\"#fig-\"], "
                                "a[href^=\"#tbl-\"], a[href^=\"#sec-\"]').length")
        assert n_links >= 10, "the text should cross-reference its figures, tables and sections"

        images = page.evaluate(IMAGES)
        assert len(images) >= 3
        for im in images:
            assert im["complete"] and im["data"], im
            assert im["natural"] >= MIN_NATURAL_WIDTH, im
            assert im["shown"] <= im["column"] + 1, im
            # figures span the column (the MNIST grids are set at 85%); grouped ones share a row
            assert im["shown"] >= (0.4 if im["grouped"] else 0.8) * im["column"] - 1, im

        over = page.evaluate(OVERFLOW)
        assert over["bad"] == [] and over["scroll"] <= over["width"], over

        # title block: title, subtitle, the author's name, date, commit, nothing else
        meta, prov = paper["meta"], paper["prov"]
        byline = page.locator("#title-block-header .byline p").all_inner_texts()
        assert byline == [meta["author"][0]["name"], f"Generated {prov['date']}",
                          f"Commit {prov['git_commit'][:12]}"
                          + (" (uncommitted changes in the working tree)" if prov["git_dirty"] else "")
                          ], byline
        assert page.locator("h1.title").inner_text() == meta["title"]
        assert page.locator("p.subtitle").inner_text() == meta["subtitle"]
        head = page.locator("#title-block-header").inner_text()
        assert not re.search(r"\b(true|false|None|null|undefined|NaN)\b", head), head

        maths = page.evaluate(MATH)
        assert len(maths) >= 20 and all(w > 0 and h > 0 for w, h, _ in maths)
        assert any(d == "block" for *_, d in maths)
        text = page.locator("main").inner_text()
        assert "\\frac" not in text and "\\lambda" not in text and "$" not in text

        # every figure and table: the rule that made it (it ran: it has a log), modules, commit
        elements = page.evaluate(PROVENANCE)
        assert len([e for e in elements if e["id"].startswith("fig-")]) >= 3
        tables = set(re.findall(r'id="(tbl-[\w-]+)"', paper["html"].read_text()))
        assert {e["id"] for e in elements if e["id"].startswith("tbl-")} == tables
        for e in elements:
            assert prov["git_commit"][:12] in (e["text"] or ""), e
            if e["source"]:     # a table typed into the paper's sources
                assert e["id"].startswith("tbl-") and (REPO / e["source"]).is_file(), e
                continue
            assert e["rule"], f"{e['id']} does not name the rule that made it"
            assert (paper["results"] / "logs" / e["rule"]).is_dir(), e
            modules = [m for m in e["modules"] if m.startswith("src/")]
            assert modules and all((REPO / m).is_file() for m in modules), e

        assert seen["errors"] == [], seen["errors"]
        assert seen["requests"] == [], seen["requests"]
    finally:
        ctx.close()


@pytest.mark.slow
def test_contents_follow_the_reader_and_figures_open_full_size(browser, paper):
    ctx, page, seen = _open(browser, paper["html"], "desktop")
    try:
        toc = page.locator("#TOC")
        assert page.locator("#toc-details").evaluate("d => d.open")
        # scroll to the appendix: the contents stay in view and mark the section being read
        target = page.locator("section#sec-validity")
        target.scroll_into_view_if_needed()
        page.evaluate("() => window.scrollBy(0, 40)")
        page.wait_for_function("() => document.querySelector('#TOC a.active')")
        active = page.locator("#TOC a.active").get_attribute("href")
        assert active == "#sec-validity", active
        vh = page.viewport_size["height"]
        assert abs(toc.bounding_box()["y"]) <= 1       # sticky: still at the top of the window
        link = page.locator("#TOC a.active").bounding_box()
        assert 0 <= link["y"] and link["y"] + link["height"] <= vh, link

        # a click on Figure 3 shows it at its natural size in the dialog; Escape closes it
        fig = page.locator("#fig-fig3 img")
        natural = fig.evaluate("i => i.naturalWidth")
        fig.click()
        dialog = page.locator("#lightbox")
        assert dialog.evaluate("d => d.open")
        big = dialog.locator("img")
        assert big.evaluate("i => [i.naturalWidth, Math.round(i.getBoundingClientRect().width)]") \
            == [natural, natural]
        page.screenshot(path=str(SHOTS / "desktop-lightbox.png"))
        page.keyboard.press("Escape")
        assert not dialog.evaluate("d => d.open")

        # print: contents and viewer hidden
        page.emulate_media(media="print")
        assert toc.evaluate("t => getComputedStyle(t).display") == "none"
        assert seen["errors"] == [] and seen["requests"] == []
    finally:
        ctx.close()

    ctx, page, seen = _open(browser, paper["html"], "phone")
    try:
        # phone: the contents start collapsed and stay at the top while reading
        assert not page.locator("#toc-details").evaluate("d => d.open")
        page.locator("#sec-discussion").scroll_into_view_if_needed()
        assert abs(page.locator("#TOC").bounding_box()["y"]) <= 1
        page.locator("#TOC summary").click()
        page.locator("#TOC a[href='#sec-method']").click()
        assert not page.locator("#toc-details").evaluate("d => d.open")
        assert seen["errors"] == [] and seen["requests"] == []
    finally:
        ctx.close()


GRIDS = ("Generator", "Penalty", "Learning rate")
DATASETS = ("LS", "Circ", "Moon", "OL", "Adult", "CH", "Credit", "GMSC", "MNIST")


def _appendix_of_many_figures(tmp_path, grids=GRIDS, datasets=DATASETS) -> Path:
    """A paper whose appendix holds one figure per grid and dataset, grouped by grid, with an index
    (the layout the appendix grids are to use), rendered like the real paper."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ctpaper.paper import render
    from test_paper import _producers, _provenance_json, _tiny_paper

    src = tmp_path / "in"
    src.mkdir()
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot([0, 1, 2], [1, 0, 2])
    fig.savefig(src / "p.png", dpi=150)     # 900 px wide, as the pipeline's figures
    fig.savefig(src / "p.pdf")
    plt.close(fig)
    figures, parts, refs = {}, ["# Appendix {#sec-appendix}\n\n::: figure-index\n:::\n"], []
    for g, grid in enumerate(grids):
        parts.append(f"## {grid} grid\n\n::: figure-group")
        for d, ds in enumerate(datasets):
            name = f"g{g}d{d}"
            figures[name] = [src / "p.png", src / "p.pdf"]
            parts.append(f"![{grid} grid on {ds}. More text.](figures/{name}.png)"
                         f'{{#fig-{name} index="{ds}"}}\n')
            refs.append(f"@fig-{name}")
        parts.append(":::\n")
    body = "# Intro\n\nThe grids: " + ", ".join(refs) + ".\n\n" + "\n".join(parts)
    paper = _tiny_paper(tmp_path, body)
    (src / "values.json").write_text(json.dumps({"vars": {}, "blocks": {}}))
    html = tmp_path / "many.html"
    render.render(paper, tmp_path / "build", src / "values.json", {}, figures, html,
                  tmp_path / "many.pdf", engine="pandoc",
                  provenance_json=_provenance_json(src / "prov.json"),
                  producers=_producers({}, figures, src / "values.json"))
    return html


def test_an_appendix_of_many_figures_stays_navigable(browser, tmp_path):
    html = _appendix_of_many_figures(tmp_path)
    grids, datasets = GRIDS, DATASETS
    SHOTS.mkdir(parents=True, exist_ok=True)
    for viewport, per_row in (("desktop", 2), ("phone", 1)):
        ctx, page, seen = _open(browser, html, viewport)
        try:
            page.screenshot(path=str(SHOTS / f"many-figures-{viewport}.png"))
            # the index: one line per grid, one link per dataset, every link lands on its figure
            lines = page.locator(".figure-index p").all_inner_texts()
            assert lines == [f"{g} grid: " + " · ".join(datasets) for g in grids], lines
            links = page.locator(".figure-index a").evaluate_all(
                "as => as.map(a => [a.hash, a.title])")
            assert links == [[f"#fig-g{g}d{d}", f"Figure {9 * g + d + 1}"]
                             for g in range(3) for d in range(9)]
            assert page.evaluate(BROKEN_LINKS) == []
            # grouped figures: two abreast on a wide screen, one per row on a phone, no overflow
            lefts = page.locator(".figure-group").first.locator("figure").evaluate_all(
                "fs => fs.map(f => Math.round(f.getBoundingClientRect().left))")
            assert len(set(lefts)) == per_row, lefts
            over = page.evaluate(OVERFLOW)
            assert over["bad"] == [] and over["scroll"] <= over["width"], over
            # every figure still opens at full resolution
            page.locator("#fig-g2d8 img").click()
            assert page.locator("#lightbox").evaluate("d => d.open")
            assert seen["errors"] == [] and seen["requests"] == []
        finally:
            ctx.close()
