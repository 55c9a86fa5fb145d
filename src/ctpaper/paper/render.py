"""Render the paper (Quarto project in ``paper/``) to a self-contained HTML and a PDF.

Mechanism (works with Quarto and with the pandoc fallback):

* The render step assembles a *build directory* next to the outputs: ``paper.qmd``, ``_quarto.yml``,
  ``references.bib`` and ``filters/`` copied from ``paper/``; ``_variables.yml`` holding the values
  computed from the run (``vars`` of ``values.json``, see ``ctpaper.paper.values``); ``generated/*.md``
  (prose blocks computed from the run, ``blocks`` of ``values.json``); ``tables/*.md`` and
  ``figures/*.{png,pdf}`` copied from the pipeline's outputs.
* ``paper.qmd`` uses Quarto's shortcodes ``{{< var key >}}`` and ``{{< include path >}}``. Quarto
  resolves them natively; the fallback expands them textually (``expand_shortcodes``) before pandoc.
* Wording that depends on results (verdicts, "none"/"some" variants of a sentence) is written in the
  paper source as Quarto conditional spans, ``[text]{.content-visible when-meta="flags.k"}`` (or
  ``unless-meta``), one span per variant; the run decides through the booleans ``flags`` of
  ``values.json``, written to the build's ``_metadata.yml`` (read by Quarto) and resolved textually by
  the fallback (``resolve_conditionals``).
* Before rendering, ``check_source`` verifies on the expanded text that every ``@fig-``/``@tbl-``
  reference has a label, every citation key is in the bibliography and every image file exists.
  After rendering, ``check_outputs`` verifies the HTML is self-contained and that no ``??`` or raw
  ``@fig-``/``@tbl-`` remains in the HTML or the PDF text.
* Fallback: pandoc 3 (``pypandoc.get_pandoc_path()``) with ``filters/crossref.lua`` and ``--citeproc``
  writes typst, ``typst.compile`` makes the PDF; pandoc writes HTML with ``--embed-resources``, the
  page template, style and script in ``html/`` and ``filters/html.lua`` (table boxes, figure index,
  provenance lines).
* Provenance: ``_provenance.json`` in the build directory names, for every figure (by image file) and
  table (by label), the rule that made it and the library modules that rule runs (``producers``, read
  from the DAG by the rule), with the run's commit; the HTML prints it under each figure and table.
"""

from __future__ import annotations

import json
import html as html_lib
import logging
import re
import shutil
import subprocess
from pathlib import Path

import yaml

log = logging.getLogger(__name__)

PAPER_SOURCES = ("paper.qmd", "_quarto.yml", "references.bib")
PAPER_DIRS = ("filters", "html", "sections", "typst")
VAR_RE = re.compile(r"\{\{<\s*var\s+([A-Za-z0-9_.\-]+)\s*>\}\}")
INCLUDE_RE = re.compile(r"^[ \t]*\{\{<\s*include\s+(\S+?)\s*>\}\}[ \t]*$", re.M)
SHORTCODE_RE = re.compile(r"\{\{<.*?>\}\}")
COND_RE = re.compile(r'\]\{\.content-visible\s+(when|unless)-meta="([A-Za-z0-9_.\-]+)"\s*\}')
# Pandoc citation syntax: '@key' not preceded by a word character (so e-mail addresses do not count).
CITE_RE = re.compile(r"(?<![\w@/])@([A-Za-z0-9_][A-Za-z0-9_:.#$%&\-+?<>~/]*)")
LABEL_RE = re.compile(r"\{#((?:fig|tbl|sec)-[A-Za-z0-9_\-]+)[\s}]")
IMAGE_RE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)[^)]*\)")
BIB_KEY_RE = re.compile(r"@\w+\s*\{\s*([^,\s]+)\s*,")


class RenderError(RuntimeError):
    """The paper cannot be rendered consistently (missing label, citation, image, or tool failure)."""


# --------------------------------------------------------------------------------------------------
# Build directory and shortcode expansion


def _lookup(variables: dict, key: str):
    node = variables
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise RenderError(f"paper variable {{{{< var {key} >}}}} is not defined by the run's values")
        node = node[part]
    if isinstance(node, dict):
        raise RenderError(f"paper variable {key} is a mapping, not a value")
    return node


def _flag(meta: dict, key: str) -> bool:
    """The boolean at dotted ``key`` of ``meta``; an absent key is false (as in Quarto)."""
    node = meta
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    if not isinstance(node, bool):
        raise RenderError(f"conditional content on {key}, which is not a boolean flag")
    return node


def resolve_conditionals(text: str, meta: dict) -> str:
    """Keep or drop every span ``[...]{.content-visible when-meta="k"}`` (``unless-meta``) by the
    boolean ``k`` of ``meta``, as Quarto does; spans may nest (the first closing one is innermost)."""
    while (m := COND_RE.search(text)) is not None:
        depth, j = 1, m.start() - 1
        while j >= 0:
            depth += {"]": 1, "[": -1}.get(text[j], 0)
            if depth == 0:
                break
            j -= 1
        if j < 0:
            raise RenderError(f"conditional span on {m.group(2)} has no opening bracket")
        keep = _flag(meta, m.group(2)) == (m.group(1) == "when")
        text = text[:j] + (text[j + 1:m.start()] if keep else "") + text[m.end():]
    return text


def expand_shortcodes(text: str, variables: dict, base_dir: str | Path, _depth: int = 0,
                      meta: dict | None = None) -> str:
    """Resolve ``{{< include path >}}`` (recursively, paths relative to ``base_dir``) and
    ``{{< var key >}}`` (dotted keys into ``variables``) the way Quarto does; unknown shortcodes fail.
    With ``meta`` (document metadata), conditional spans are resolved too (``resolve_conditionals``)."""
    if _depth > 10:
        raise RenderError("include shortcodes nested more than 10 levels deep")
    base_dir = Path(base_dir)

    def include(match: re.Match) -> str:
        path = base_dir / match.group(1).lstrip("/")   # '/x' = relative to the project root
        if not path.is_file():
            raise RenderError(f"included file {match.group(1)} does not exist in {base_dir}")
        return expand_shortcodes(path.read_text(), variables, base_dir, _depth + 1).rstrip("\n")

    text = INCLUDE_RE.sub(include, text)
    text = VAR_RE.sub(lambda m: str(_lookup(variables, m.group(1))), text)
    if meta is not None:
        text = resolve_conditionals(text, meta)
    left = SHORTCODE_RE.findall(text)
    if left:
        raise RenderError(f"unsupported shortcodes in the paper: {sorted(set(left))}")
    return text


def assemble_build(paper_dir: str | Path, build_dir: str | Path, values: dict,
                   tables: dict[str, str | Path], figures: dict[str, list[str | Path]]) -> Path:
    """Create the build directory (see module doc) and return it. ``tables`` maps a table name to its
    Markdown file; ``figures`` maps a figure name to its files (png and pdf)."""
    paper_dir, build_dir = Path(paper_dir), Path(build_dir)
    if build_dir.exists():
        shutil.rmtree(build_dir)
    (build_dir / "generated").mkdir(parents=True)
    (build_dir / "tables").mkdir()
    (build_dir / "figures").mkdir()
    for name in PAPER_SOURCES:
        shutil.copy2(paper_dir / name, build_dir / name)
    for name in PAPER_DIRS:
        shutil.copytree(paper_dir / name, build_dir / name)
    with open(build_dir / "_variables.yml", "w") as fh:
        yaml.safe_dump(values["vars"], fh, sort_keys=True, allow_unicode=True, width=1000)
    with open(build_dir / "_metadata.yml", "w") as fh:   # document metadata: conditional content
        yaml.safe_dump({"flags": values.get("flags", {})}, fh, sort_keys=True)
    for name, text in values["blocks"].items():
        (build_dir / "generated" / f"{name}.md").write_text(text.rstrip("\n") + "\n")
    for name, path in tables.items():
        shutil.copy2(path, build_dir / "tables" / f"{name}.md")
    for name, paths in figures.items():
        for p in paths:
            p = Path(p)
            shutil.copy2(p, build_dir / "figures" / f"{name}{p.suffix}")
    return build_dir


def element_producers(build_dir: Path, values_json: str | Path, tables: dict[str, str | Path],
                      figures: dict[str, list[str | Path]], producers: dict[str, dict]) -> dict:
    """Who made each figure and table of the build: ``{"figures": {image path in the build: entry},
    "tables": {label: entry}}`` with entry = ``producers[pipeline file]`` (rule and modules).

    A figure's pipeline file is the PNG it shows; a table's is the file whose text defines its label:
    a table file, or ``values_json`` for the generated blocks. A table typed into the paper's own
    sources (``paper.qmd``, ``sections/``) is made by no rule: its entry names that source file
    (``{"source": "paper/..."}``)."""
    made = {str(k): v for k, v in producers.items()}

    def entry(path) -> dict:
        if str(path) not in made:
            raise RenderError(f"no producing rule given for {path}")
        return made[str(path)]

    out = {"figures": {}, "tables": {}}
    for name, paths in figures.items():
        png = next(Path(p) for p in paths if Path(p).suffix == ".png")
        out["figures"][f"figures/{name}.png"] = entry(png)
    origins = [(build_dir / "tables" / f"{n}.md", p) for n, p in tables.items()]
    origins += [(p, values_json) for p in sorted((build_dir / "generated").glob("*.md"))]
    for path, origin in origins:
        for label in LABEL_RE.findall(path.read_text()):
            if label.startswith("tbl-"):
                out["tables"][label] = entry(origin)
    for path in [build_dir / "paper.qmd", *sorted((build_dir / "sections").glob("*.qmd"))]:
        for label in LABEL_RE.findall(path.read_text()):
            if label.startswith("tbl-"):
                out["tables"][label] = {"source": f"paper/{path.relative_to(build_dir)}"}
    return out


# --------------------------------------------------------------------------------------------------
# Checks


def bib_keys(bib_path: str | Path) -> set[str]:
    return set(BIB_KEY_RE.findall(Path(bib_path).read_text()))


def _strip_front_matter(text: str) -> tuple[dict, str]:
    if text.startswith("---"):
        end = text.find("\n---", 3)
        if end > 0:
            return yaml.safe_load(text[3:end]) or {}, text[end + 4:]
    return {}, text


def check_source(text: str, bib_path: str | Path, base_dir: str | Path) -> dict:
    """Check the expanded Markdown: labels of every @fig-/@tbl- reference, citation keys, images.

    Returns a summary (figure/table labels in document order, citation keys, images); raises
    RenderError listing every problem found."""
    _, body = _strip_front_matter(text)
    problems = []
    labels = LABEL_RE.findall(body)
    dup = sorted({lab for lab in labels if labels.count(lab) > 1})
    if dup:
        problems.append(f"duplicate labels: {dup}")
    refs = CITE_RE.findall(body)
    refs = [r.rstrip(".:;,?") for r in refs]
    crossrefs = [r for r in refs if r.startswith(("fig-", "tbl-", "sec-"))]
    cites = sorted({r for r in refs if not r.startswith(("fig-", "tbl-", "sec-"))})
    undefined = sorted(set(crossrefs) - set(labels))
    if undefined:
        problems.append(f"references to undefined labels: {undefined}")
    unreferenced = sorted({lab for lab in labels if not lab.startswith("sec-")} - set(crossrefs))
    if unreferenced:
        problems.append(f"figures/tables never referenced in the text: {unreferenced}")
    keys = bib_keys(bib_path)
    missing = sorted(set(cites) - keys)
    if missing:
        problems.append(f"citation keys not in {Path(bib_path).name}: {missing}")
    images = IMAGE_RE.findall(body)
    absent = [p for p in images if not (Path(base_dir) / p).is_file() or (Path(base_dir) / p).stat().st_size == 0]
    if absent:
        problems.append(f"missing or empty image files: {absent}")
    if "??" in body:
        problems.append("the source contains '??'")
    if problems:
        raise RenderError("paper source check failed:\n  " + "\n  ".join(problems))
    return {"figures": [lab for lab in labels if lab.startswith("fig-")],
            "tables": [lab for lab in labels if lab.startswith("tbl-")],
            "citations": cites, "images": images}


def html_text(html: str) -> str:
    """Visible text of an HTML document (scripts/styles dropped, tags removed, entities decoded)."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S | re.I)
    return html_lib.unescape(re.sub(r"<[^>]+>", " ", html))


def _unresolved(text: str) -> list[str]:
    found = []
    if "??" in text:
        found.append("??")
    found += sorted(set(re.findall(r"@(?:fig|tbl|sec)-[\w\-]+", text)))
    found += sorted(set(re.findall(r"#ref\(<[^>]*>\)", text)))
    # citeproc renders an unknown key as '(key?)'
    found += sorted(set(re.findall(r"\((?:fig|tbl|sec)-[\w\-]+\?\)", text)))
    return found


def pdf_text(pdf: str | Path) -> str | None:
    """Text of a PDF via poppler's ``pdftotext`` (None when poppler-utils is not installed)."""
    exe = shutil.which("pdftotext")
    if exe is None:
        return None
    out = subprocess.run([exe, "-layout", str(pdf), "-"], capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RenderError(f"pdftotext failed on {pdf}: {out.stderr.strip()}")
    return out.stdout


def check_outputs(html_path: str | Path, pdf_path: str | Path, summary: dict) -> dict:
    """Check the rendered files: HTML self-contained with every label anchored, no unresolved
    references in HTML or PDF text. Returns counts for the log."""
    problems = []
    html = Path(html_path).read_text()
    srcs = re.findall(r"""\ssrc\s*=\s*["']([^"']*)["']""", html)
    local = [s for s in srcs if not s.startswith("data:")]
    if local:
        problems.append(f"HTML is not self-contained, src= not embedded: {local[:5]}")
    hrefs = re.findall(r"""<link\b[^>]*href\s*=\s*["']([^"']*)["']""", html)
    ext = [h for h in hrefs if not h.startswith(("data:", "#"))]
    if ext:
        problems.append(f"HTML links external resources: {ext[:5]}")
    for lab in summary["figures"] + summary["tables"]:
        if f'id="{lab}"' not in html:
            problems.append(f"HTML has no anchor for {lab}")
    bad = _unresolved(html_text(html))
    if bad:
        problems.append(f"unresolved references in HTML: {bad}")
    n_img = html.count("<img")
    if n_img < len(summary["images"]):
        problems.append(f"HTML has {n_img} images, the source {len(summary['images'])}")
    counts = {"html_images": n_img}
    empty_pdf = not Path(pdf_path).is_file() or Path(pdf_path).stat().st_size == 0
    text = None if empty_pdf else pdf_text(pdf_path)
    if text is not None:
        bad = _unresolved(text)
        if bad:
            problems.append(f"unresolved references in PDF: {bad}")
        counts["pdf_figure_captions"] = len(set(re.findall(r"Figure (\d+):", text)))
        counts["pdf_table_captions"] = len(set(re.findall(r"Table (\d+):", text)))
        if counts["pdf_figure_captions"] != len(summary["figures"]):
            problems.append(f"PDF shows {counts['pdf_figure_captions']} numbered figure captions, "
                            f"the source defines {len(summary['figures'])}")
        if counts["pdf_table_captions"] != len(summary["tables"]):
            problems.append(f"PDF shows {counts['pdf_table_captions']} numbered table captions, "
                            f"the source defines {len(summary['tables'])}")
    elif not empty_pdf:
        log.warning("pdftotext not found (Debian poppler-utils): PDF text not checked")
    if empty_pdf:
        problems.append("missing or empty PDF")
    if problems:
        raise RenderError("rendered paper check failed:\n  " + "\n  ".join(problems))
    return counts


# --------------------------------------------------------------------------------------------------
# Renderers


def _run(cmd: list[str], cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    log.info("running: %s", " ".join(cmd))
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if out.stderr.strip():
        log.info("stderr of %s:\n%s", cmd[0], out.stderr.strip())
    if out.returncode != 0:
        raise RenderError(f"{Path(cmd[0]).name} failed ({out.returncode}):\n{out.stderr.strip()}")
    warnings = [line for line in out.stderr.splitlines()
                if "not found" in line or "Could not fetch" in line or "could not find" in line.lower()]
    if warnings:
        raise RenderError(f"{Path(cmd[0]).name} reported missing resources:\n" + "\n".join(warnings))
    return out


def pandoc_path() -> str:
    import pypandoc

    return pypandoc.get_pandoc_path()


def render_with_pandoc(build_dir: Path, md_name: str = "paper.md") -> tuple[Path, Path]:
    """pandoc -> typst -> PDF (typst python package) and pandoc -> self-contained HTML."""
    import typst

    pandoc = pandoc_path()
    common = [pandoc, md_name, "--from", "markdown", "--lua-filter", "filters/crossref.lua",
              "--citeproc", "--bibliography", "references.bib", "--standalone",
              "--columns", "250"]  # pipe tables at natural width (no relative widths)
    # numbered headings in print as in HTML (--number-sections), so that @sec- references resolve
    _run(common + ["--to", "typst", "--variable", "section-numbering=1.1",
                   "--include-in-header", "typst/header.typ", "--output", "paper.typ"], build_dir)
    typst.compile(str(build_dir / "paper.typ"), output=str(build_dir / "paper.pdf"),
                  root=str(build_dir))
    _run(common + ["--to", "html5", "--lua-filter", "filters/html.lua", "--template",
                   "html/template.html", "--css", "html/paper.css", "--embed-resources", "--mathml",
                   "--section-divs", "--number-sections", "--toc", "--toc-depth", "2",
                   "--metadata", "link-citations=true", "--metadata-file", "_title.yml",
                   "--output", "paper.html"], build_dir)
    return build_dir / "paper.html", build_dir / "paper.pdf"


def render_with_quarto(build_dir: Path, quarto: str) -> tuple[Path, Path]:
    """``quarto render`` of the build directory's paper.qmd to HTML and typst-PDF."""
    for fmt in ("html", "typst"):
        _run([quarto, "render", "paper.qmd", "--to", fmt], build_dir, timeout=1800)
    found = {}
    for suffix in (".html", ".pdf"):
        hits = sorted(build_dir.rglob(f"paper{suffix}"), key=lambda p: len(p.parts))
        if not hits:
            raise RenderError(f"quarto produced no paper{suffix}")
        found[suffix] = hits[0]
    return found[".html"], found[".pdf"]


def title_metadata(prov: dict) -> dict:
    """The title block's date and commit, from the run's provenance record (provenance.json)."""
    commit = (prov.get("git_commit") or "")[:12] or "unknown"
    note = {True: "uncommitted changes in the working tree", False: "", None: ""}[prov.get("git_dirty")]
    if not prov.get("git_commit"):
        note = "not run from a git checkout"
    return {"date": prov["date"], "commit": commit, "commit-note": note}


def write_provenance(build: Path, prov: dict, elements: dict) -> None:
    """``_provenance.json`` (read by filters/html.lua) and ``_title.yml`` (pandoc metadata)."""
    title = title_metadata(prov)
    (build / "_provenance.json").write_text(json.dumps(
        {"commit": title["commit"], "commit_note": title["commit-note"], **elements}, indent=1))
    with open(build / "_title.yml", "w") as fh:
        yaml.safe_dump(title, fh, sort_keys=True)


def render(paper_dir: str | Path, build_dir: str | Path, values_json: str | Path,
           tables: dict[str, str | Path], figures: dict[str, list[str | Path]],
           out_html: str | Path, out_pdf: str | Path, *, provenance_json: str | Path,
           producers: dict[str, dict], engine: str = "auto", appendix_json: str | Path | None = None) -> dict:
    """Assemble, check, render and check again; copy the results to ``out_html``/``out_pdf``.

    ``producers`` maps every table file, figure PNG and ``values_json`` to the rule that made it and
    its modules (``{"rule": ..., "modules": [...]}``); ``provenance_json`` is the run's provenance
    record (commit, date); ``appendix_json`` the appendix claims (``ctpaper.appendix.claims.make``:
    its vars and flags become ``appendix.*``, its blocks join the generated blocks; without it the appendix
    block is empty). ``engine``: 'auto' (quarto when the CLI is on PATH, else pandoc),
    'quarto' or 'pandoc'."""
    from ctpaper.runtime import atomic_path

    from ctpaper.runtime import read_json

    values = read_json(values_json)
    appendix = read_json(appendix_json) if appendix_json else {"vars": {}, "blocks": {"appendix": ""}}
    values = {**values, "vars": {**values["vars"], "appendix": appendix["vars"]},
              "flags": {**values.get("flags", {}), "appendix": appendix.get("flags", {})},
              "blocks": {**values["blocks"], **appendix["blocks"]}}
    build = assemble_build(paper_dir, build_dir, values, tables, figures)
    prov = read_json(provenance_json)
    write_provenance(build, prov, element_producers(build, values_json, tables, figures, producers))
    source = (build / "paper.qmd").read_text()
    meta = {"flags": values.get("flags", {})}
    expanded = expand_shortcodes(source, values["vars"], build, meta=meta)
    (build / "paper.md").write_text(expanded)
    summary = check_source(expanded, build / "references.bib", build)
    log.info("paper source: %d figures, %d tables, %d citation keys", len(summary["figures"]),
             len(summary["tables"]), len(summary["citations"]))
    quarto = shutil.which("quarto")
    if engine == "quarto" and quarto is None:
        raise RenderError("engine 'quarto' requested but the quarto CLI is not on PATH")
    if quarto is not None and engine in ("auto", "quarto"):
        html, pdf = render_with_quarto(build, quarto)
        summary["engine"] = "quarto"
    else:
        html, pdf = render_with_pandoc(build)
        summary["engine"] = "pandoc " + _pandoc_version()
    counts = check_outputs(html, pdf, summary)
    summary.update(counts)
    for src, dst in ((html, out_html), (pdf, out_pdf)):
        with atomic_path(dst) as tmp:
            shutil.copy2(src, tmp)
    log.info("rendered with %s: %s", summary["engine"], counts)
    return summary


def _pandoc_version() -> str:
    import pypandoc

    return pypandoc.get_pandoc_version()
