"""Rule render_paper: paper/ -> paper.html + paper.pdf (quarto if installed, else pandoc + typst)."""

from pathlib import Path

from ctpaper.paper.render import render
from ctpaper.runtime import rule_context

with rule_context(snakemake) as log:  # noqa: F821 - injected by Snakemake's script directive
    smk = snakemake  # noqa: F821
    p = smk.params   # tables/figures by name; the same files are the rule's inputs
    paper_dir = str(Path(smk.input.qmd).parent)
    summary = render(paper_dir, p.build_dir, smk.input.values, p.tables, p.figures,
                     smk.output.html, smk.output.pdf, provenance_json=smk.input.provenance,
                     producers=p.producers, appendix_json=smk.input.get("appendix") or None)
    log.info("paper: %s", summary)
