"""Rule render_paper: paper/ -> paper.html + paper.pdf (quarto if installed, else pandoc + typst)."""

from pathlib import Path

from ctpaper.paper.render import render
from ctpaper.runtime import rule_context

with rule_context(snakemake) as log:  # noqa: F821 - injected by Snakemake's script directive
    smk = snakemake  # noqa: F821
    R = smk.config["paths"]["results"]
    p = smk.params
    tables = {n: f"{R}/tables/{n}.md" for n in p.table_names}
    figures = {n: [f"{R}/figures/{n}.png", f"{R}/figures/{n}.pdf"] for n in p.figure_names}
    missing = [f for fs in figures.values() for f in fs if not Path(f).is_file()]
    if missing:
        raise FileNotFoundError(f"figures missing: {missing}")
    paper_dir = str(Path(smk.input.qmd).parent)
    summary = render(paper_dir, p.build_dir, smk.input.values, tables, figures, smk.output.html,
                     smk.output.pdf)
    log.info("paper: %s", summary)
