"""Rule paper_values: the values and generated blocks the paper's text quotes (values.json)."""

from ctpaper.paper import values
from ctpaper.runtime import rule_context

with rule_context(snakemake) as log:  # noqa: F821 - injected by Snakemake's script directive
    smk = snakemake  # noqa: F821
    inp = smk.input
    optional = {f"{n}_stats_json": inp.get(f"{n}_stats") for n in ("fig2", "fig4", "fig5")}
    values.write(smk.config, smk.output[0], table1_csv=inp.table1, performance_csv=inp.performance,
                 table2_csv=inp.table2, comparison_csv=inp.comparison,
                 comparison_means_csv=inp.comparison_means, robustness_paths=list(inp.robustness),
                 log_paths=list(inp.logs), ig_summary_paths=list(inp.ig), ces_paths=list(inp.ces),
                 provenance_json=inp.provenance, fig1_stats_json=inp.fig1_stats,
                 train_log_paths=list(inp.train_logs),
                 studies_json={n: inp[f"study_{n}"] for n in ("seed_study", "sensitivity")}, **optional)
