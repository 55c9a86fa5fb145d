"""Side by side with the original: this run's Table 1 and Table 3 next to the values the original
paper printed (``config/original_results.yaml``).

* Table-1 cells: the sign-and-significance class of each value (``better``: CT significantly better,
  i.e. a positive reduction with the asterisk; ``worse``: negative with the asterisk; ``n.s.``: no
  asterisk), ours and the original's, and whether they agree. The original prints only the value
  and the asterisk, so the same rule classifies both.
* Table-3 means (CT and BL per metric and dataset): ours, the original's and the relative
  difference (ours - original) / |original|, undefined where the original printed 0.00.
* For every cell whose class disagrees, what is known about why, from this run's settings and the
  documented differences to the original (``known_differences``); a cell without a documented
  difference says so.
"""

from __future__ import annotations

import math
from pathlib import Path
import pandas as pd
import yaml

from ctpaper.config import dataset_kind, eval_settings
from ctpaper.names import DATASET_NAMES as TABLE_ORDER, LABELS
from ctpaper.tables import BL, CT, METRICS, TABLE1_COLUMNS, fmt, markdown_table

CLASS_TEXT = {"better": "CT sig. better", "worse": "CT sig. worse", "n.s.": "n.s."}
# printed metric name -> our metric column
METRIC_OF = {label: m for m, (_, label) in METRICS.items()}
DATASET_OF = {label: d for d, label in LABELS.items()}

# The original's committed evaluation configurations of the mutability (protected) experiments
# (paper/experiments/evaluations/final_run/mutability/mlp/<dataset>/evaluation/evaluation_{1..5}/
# eval_config.toml, added 2025-07-04; method.md 6.2). The synthetic ones are stale (March versions)
# and therefore absent here.
ORIGINAL_PROTECTED = {
    "adult": {"tau": 0.95, "n_runs": 50, "n_individuals": 100},
    "ch": {"tau": 0.5, "n_runs": 50, "n_individuals": 100},
    "credit": {"tau": 0.5, "n_runs": 50, "n_individuals": 100},
    "gmsc": {"tau": 0.5, "n_runs": 50, "n_individuals": 100},
    "mnist": {"tau": 0.5, "n_runs": 50, "n_individuals": 50},
}
# The original appendix text's free-family evaluation (its committed free configurations are stale).
ORIGINAL_FREE = {"tau": 0.95, "T": 50, "n_runs": 100,
                 "n_individuals": {"synthetic": 250, "tabular": 100, "image": 25}}


def load_original(path: str | Path) -> dict:
    """The original's printed tables (``config/original_results.yaml``)."""
    with open(path) as fh:
        return yaml.safe_load(fh)


def synthetic_stream_is_original(config: dict) -> bool:
    """Whether the synthetic data are the original's points: Julia's stream (``data.synthetic.rng``)
    with the original's seeds (42, 2025), 100,000 generated points and drawn blob centres."""
    syn, seed = config["data"]["synthetic"], config["seed"]
    return (syn.get("rng"), seed["data"], seed["global"], syn["n_generate"], syn["centers"]) == \
        ("julia", 42, 2025, 100_000, None)


def context(config: dict) -> dict:
    """The settings of this run that the explanations of disagreements name (the rule's params)."""
    return {
        "synthetic_rng": config["data"]["synthetic"]["rng"],
        "synthetic_original": synthetic_stream_is_original(config),
        "ip_reference": config["eval"]["ip"]["reference"],
        "free": {d: eval_settings(config, d, "free") for d in config["datasets"]},
        "protected": {d: eval_settings(config, d, "protected") for d in config["datasets"]},
        "rel_tol": float(config["tables"]["compare_rel_tol"]),
    }


def sig_class(value: float, significant: bool) -> str:
    """'better' / 'worse' (CT significantly better / worse: sign of the reduction with the
    asterisk) or 'n.s.'; NaN values count as 'n.s.'."""
    if not significant or value is None or math.isnan(value) or value == 0:
        return "n.s."
    return "better" if value > 0 else "worse"


def known_differences(dataset: str, metric: str, ctx: dict, ours: dict, orig: dict) -> list[str]:
    """What is known to differ from the original for one Table-1 cell (``metric`` = ip | ip_star |
    cost), read from this run's settings ``ctx`` and the two values."""
    out = []
    if dataset_kind(dataset) == "synthetic":
        if ctx["synthetic_original"]:
            out.append("the synthetic points are the original's (`data.synthetic.rng` = julia), but "
                       "the pool's train/validation split is ours (the original drew it from "
                       "Julia's process-wide generator)")
        else:
            out.append(f"the synthetic data are not the original's points (`data.synthetic.rng` = "
                       f"{ctx['synthetic_rng']} or other seeds or sizes), so for LS and OL the "
                       "blob centres differ too")
    if metric == "cost":
        own = ctx["protected"].get(dataset)
        pub = ORIGINAL_PROTECTED.get(dataset)
        if own and pub is None:
            out.append(f"the original's settings of the protected evaluation are not documented "
                       f"for this dataset (its committed configurations are stale); this run uses "
                       f"τ = {own['tau']:g}, {own['n_runs']} runs and {own['n_individuals']} "
                       "individuals, inferred from the original's other committed configurations")
        elif own and any(own[k] != pub[k] for k in pub):
            out.append(f"this run's protected evaluation (τ = {own['tau']:g}, {own['n_runs']} runs, "
                       f"{own['n_individuals']} individuals) differs from the original's committed "
                       f"configuration (τ = {pub['tau']:g}, {pub['n_runs']} runs, "
                       f"{pub['n_individuals']} individuals)")
    else:
        own = ctx["free"].get(dataset)
        if own:
            kind = dataset_kind(dataset)
            pub = {**ORIGINAL_FREE, "n_individuals": ORIGINAL_FREE["n_individuals"][kind]}
            if any(own[k] != pub[k] for k in pub):
                out.append(f"this run's free evaluation (τ = {own['tau']:g}, T = {own['T']}, "
                           f"{own['n_runs']} runs, {own['n_individuals']} individuals) differs from "
                           f"the original's appendix (τ = {pub['tau']:g}, T = {pub['T']}, "
                           f"{pub['n_runs']} runs, {pub['n_individuals']} individuals)")
    if metric == "ip" and ctx["ip_reference"] != "per_ce":
        out.append(f"IP uses `eval.ip.reference` = {ctx['ip_reference']}, not reference rows drawn "
                   "for every counterfactual as the original")
    near = [who for who, v in (("ours", ours), ("the original's", orig))
            if not math.isnan(v["value"]) and not math.isnan(v["pm"]) and abs(v["value"]) < v["pm"]]
    if near:
        out.append(f"{' and '.join(near)} value lies within one ± of zero, so its class is "
                   "sensitive to the random draws")
    return out


def table1_comparison(t1: pd.DataFrame, original: dict, ctx: dict) -> pd.DataFrame:
    """One row per Table-1 cell present in both: values, ±, classes, agreement, known differences."""
    orig = {(DATASET_OF[r["dataset"]], METRIC_OF[r["metric"]]): r for r in original["table1"]}
    rows = []
    for _, r in t1[t1["dataset"] != "avg"].iterrows():
        for metric in TABLE1_COLUMNS:
            o = orig.get((r["dataset"], metric))
            if o is None:
                continue
            ours = {"value": float(r[f"{metric}_value"]), "pm": float(r[f"{metric}_pm"])}
            theirs = {"value": float(o["value"]), "pm": float(o["pm"])}
            c_ours = sig_class(ours["value"], bool(r[f"{metric}_significant"]))
            c_orig = sig_class(theirs["value"], bool(o["significant"]))
            agree = c_ours == c_orig
            rows.append({
                "dataset": r["dataset"], "label": LABELS[r["dataset"]], "metric": metric,
                "metric_label": METRICS[metric][1], "ours": ours["value"], "ours_pm": ours["pm"],
                "ours_class": c_ours, "original": theirs["value"], "original_pm": theirs["pm"],
                "original_class": c_orig, "agree": agree,
                "known": "" if agree else "; ".join(
                    known_differences(r["dataset"], metric, ctx, ours, theirs)),
            })
    return pd.DataFrame(rows, columns=["dataset", "label", "metric", "metric_label", "ours",
                                       "ours_pm", "ours_class", "original", "original_pm",
                                       "original_class", "agree", "known"])


def relative_difference(ours: float, original: float) -> float:
    """(ours - original) / |original|; NaN where the original is 0 (printed 0.00) or missing."""
    if original is None or original == 0 or math.isnan(original):
        return math.nan
    return (ours - original) / abs(original)


def table3_comparison(t3: pd.DataFrame, original: dict, rel_tol: float) -> pd.DataFrame:
    """One row per Table-3 mean (CT and BL of each metric and dataset) present in both."""
    orig = {(METRIC_OF[r["metric"]], DATASET_OF[r["dataset"]]): r for r in original["table3"]}
    rows = []
    for _, r in t3.iterrows():
        o = orig.get((r["metric"], r["dataset"]))
        if o is None:
            continue
        for model, key in ((CT, "ct"), (BL, "bl")):
            rel = relative_difference(float(r[key]), float(o[key]))
            rows.append({"metric": r["metric"], "metric_label": r["metric_label"],
                         "dataset": r["dataset"], "label": r["label"], "model": model,
                         "ours": float(r[key]), "original": float(o[key]), "rel_diff": rel,
                         "within": bool(not math.isnan(rel) and abs(rel) <= rel_tol)})
    return pd.DataFrame(rows, columns=["metric", "metric_label", "dataset", "label", "model", "ours",
                                       "original", "rel_diff", "within"])


def notes_markdown(c1: pd.DataFrame) -> str:
    """The list the paper prints under the comparison (``tables/comparison_notes.md``): one item per
    Table-1 cell whose class differs from the original's, with what is known about why."""
    from ctpaper.paper.values import num as _num  # values imports this module

    bad = c1[~c1["agree"].astype(bool)]
    if bad.empty:
        return "Every cell of @tbl-table1 has the class of the original's.\n"
    lines = []
    for _, r in bad.iterrows():
        known = r["known"] if isinstance(r["known"], str) and r["known"] else (
            "no documented difference of settings or data applies; only the random streams "
            "(initialisation, batches, drawn individuals and references) differ")
        lines.append(f"* **{r['label']}, {r['metric_label'].replace('*', chr(92) + '*')}**: "
                     f"{CLASS_TEXT[r['ours_class']]} here ({_num(float(r['ours']))}), "
                     f"{CLASS_TEXT[r['original_class']]} in the original "
                     f"({_num(float(r['original']))}). Known: {known}.")
    return "\n".join(lines) + "\n"


def _pct(x: float) -> str:
    return "–" if math.isnan(x) else f"{100 * x:+.0f}%"


def comparison_markdown(c1: pd.DataFrame, c3: pd.DataFrame, rel_tol: float) -> str:
    """Both comparison tables as pipe tables with captions (``tbl-comparison``, ``tbl-comparison3``)."""
    order = {d: i for i, d in enumerate(TABLE_ORDER)}
    c1 = c1.assign(_o=c1["dataset"].map(order),
                   _m=c1["metric"].map({m: i for i, m in enumerate(TABLE1_COLUMNS)}))
    rows1 = [[r["label"], r["metric_label"].replace("*", r"\*"),
              f"{fmt(r['ours'])} ± {fmt(r['ours_pm'])}", CLASS_TEXT[r["ours_class"]],
              f"{fmt(r['original'])} ± {fmt(r['original_pm'])}", CLASS_TEXT[r["original_class"]],
              "yes" if r["agree"] else "**no**"]
             for _, r in c1.sort_values(["_o", "_m"]).iterrows()]
    cap1 = ("Every cell of @tbl-table1 next to the original's Table 1: the reduction (%) and ± of "
            "this run and of the original, the class of each (CT significantly better or worse: the "
            "sign of the reduction where the 99% interval excludes zero, the original's asterisk; "
            "n.s. otherwise) and whether the classes agree.")
    out = markdown_table(rows1, ["Data", "Metric", "Here", "Class here", "Original",
                                 "Class original", "Agree"], "llrlrlc", cap1, "tbl-comparison")
    rows3 = [[r["metric_label"].replace("*", r"\*"), r["label"], r["model"], fmt(r["ours"]),
              fmt(r["original"]), _pct(r["rel_diff"])] for _, r in c3.iterrows()]
    cap3 = (f"Every mean of @tbl-table3 next to the original's Table 3, and the relative difference "
            f"(here − original) / |original|; it is undefined where the original printed 0.00. The "
            f"original prints two decimals, so for small means (IP\\*) the relative difference "
            f"is dominated by that rounding. {int(c3['within'].sum())} of {len(c3)} means lie within "
            f"{100 * rel_tol:g}%.")
    out += "\n" + markdown_table(rows3, ["Metric", "Data", "Model", "Here", "Original",
                                         "Difference"], "lllrrr", cap3, "tbl-comparison3")
    return out


def make_comparison(table1_csv: str | Path, table3_csv: str | Path, original_yaml: str | Path,
                    ctx: dict, csv_path: str | Path, means_path: str | Path,
                    md_path: str | Path, notes_path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rule table_comparison: read Tables 1 and 3 and the original's, write both comparisons and
    the notes on the disagreeing cells."""
    from ctpaper.runtime import atomic_path

    original = load_original(original_yaml)
    c1 = table1_comparison(pd.read_csv(table1_csv), original, ctx)
    c3 = table3_comparison(pd.read_csv(table3_csv), original, ctx["rel_tol"])
    for frame, path in ((c1, csv_path), (c3, means_path)):
        with atomic_path(path) as tmp:
            frame.to_csv(tmp, index=False, float_format="%.17g")
    with atomic_path(md_path) as tmp:
        tmp.write_text(comparison_markdown(c1, c3, ctx["rel_tol"]))
    with atomic_path(notes_path) as tmp:
        tmp.write_text(notes_markdown(c1))
    return c1, c3


def summary(c1: pd.DataFrame, c3: pd.DataFrame) -> dict:
    """Counts the paper quotes: Table-1 cells agreeing in class (per metric too), Table-3 means
    within the tolerance, and the disagreeing cells."""
    out = {"n_cells": len(c1), "n_agree": int(c1["agree"].sum()),
           "n_means": len(c3), "n_means_defined": int(c3["rel_diff"].notna().sum()),
           "n_within": int(c3["within"].sum())}
    for metric in TABLE1_COLUMNS:
        sub = c1[c1["metric"] == metric]
        out[f"{metric}_agree"] = f"{int(sub['agree'].sum())} of {len(sub)}"
    return out
