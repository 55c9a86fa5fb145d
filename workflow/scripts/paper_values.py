"""Rule paper_values: the values, flags and generated blocks the paper's text quotes (values.json)."""

from ctpaper.paper import values
from ctpaper.runtime import rule_context

with rule_context(snakemake) as log:  # noqa: F821 - injected by Snakemake's script directive
    smk = snakemake  # noqa: F821
    inp = smk.input
    inputs = values.PaperInputs(
        table1=inp.table1, performance=inp.performance, table2=inp.table2,
        comparison=inp.comparison, comparison_means=inp.comparison_means,
        provenance=inp.provenance, fig1_stats=inp.fig1_stats, published=inp.published,
        robustness=tuple(inp.robustness), ig=tuple(inp.ig), ces=tuple(inp.ces),
        # training logs by (dataset, seed, model): the rule passes who each log belongs to
        logs=dict(zip(smk.params.log_ids, inp.logs, strict=True)),
        train_logs=dict(zip(smk.params.train_log_ids, inp.train_logs, strict=True)),
        **{f"{n}_stats": inp.get(f"{n}_stats") for n in ("fig2", "fig4", "fig5")})
    values.write(smk.config, smk.output[0], inputs,
                 studies_json={n: inp[f"study_{n}"] for n in ("seed_study", "sensitivity")})
