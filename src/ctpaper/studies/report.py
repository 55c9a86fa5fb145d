"""Tables and paper values of the robustness studies (issue 13).

Seed study: Table 1 (method 7.3) is computed separately for every training seed from that seed's
evaluation runs; per data set and column the table gives each seed's value (``*`` = significant),
the mean over seeds with its t interval (``ctpaper.studies.stats``), and in how many seeds the cell
is significant in each direction. Sensitivity study: Table 1 of every variant at the first training
seed, its column averages' shift from the published settings and the data sets whose class flips.

Claims (the paper's verdict rules of ``ctpaper.paper.values``): plausibility by IP and by IP*,
actionability by Cost (Table-1 verdict: supported when CT is significantly better on more than
half the data sets and better on average), robustness by FGSM (CT more robust on more than half the
data sets and on average) and the accuracy cost (average loss of test accuracy of CT (free) vs BL
within one percentage point, the paper's "within one point" criterion of the performance section).
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from ctpaper import tables as T
from ctpaper.names import LABELS
from ctpaper.runtime import read_parquet
from ctpaper.studies import stats as S

COLUMNS = T.TABLE1_COLUMNS                       # ip, ip_star, cost
COLUMN_LABELS = {m: T.METRICS[m][1] for m in COLUMNS}
CLAIMS = ("ip", "ip_star", "cost", "robust", "accuracy")
CLAIM_TEXT = {"ip": "plausibility (IP)", "ip_star": "plausibility (IP*)", "cost": "actionability (Cost)",
              "robust": "robustness (FGSM)", "accuracy": "accuracy cost"}
ACCURACY_TOL_PP = 1.0


# Table 1 reads only the valid CEs, and of them only these columns (``tables.per_run_means``,
# ``tables.degenerate``): the seed study's CE files hold 9 million rows, and reading them whole took
# its rule to 2.4 GB
CE_COLUMNS = ["dataset", "family", "seed", "model", "lambda_egy", "run", "valid", *T.METRICS]


def _concat(paths: Iterable[str], **read) -> pd.DataFrame:
    """The parquet files ``paths`` in one frame (``read``: ``pandas.read_parquet`` options)."""
    frames = [read_parquet(p, **read) for p in paths]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _valid_ces(paths: Iterable[str]) -> pd.DataFrame:
    """The valid CEs of the ces.parquet files ``paths`` in one frame, columns ``CE_COLUMNS``."""
    return _concat(paths, columns=CE_COLUMNS, filters=[("valid", "==", True)])


def table1_from(ces: pd.DataFrame, pm_rule: str, ci_level: float) -> pd.DataFrame:
    """Wide Table 1 (``tables.table1``) of a CE frame holding every data set and family."""
    by = {(d, f): g for (d, f), g in ces.groupby(["dataset", "family"], observed=True)}
    return T.table1(T.comparisons(by, pm_rule, ci_level))


def claim_values(t1: pd.DataFrame, rob: pd.DataFrame, perf: pd.DataFrame) -> dict:
    """Per claim: ``avg`` (the column average / gain / loss in points) and ``verdict`` (a key of
    ``ctpaper.paper.values.verdict``, worded by the paper); Table-1 claims also their per-data-set
    ``class``."""
    from ctpaper.paper.values import robustness_values, verdict

    rows = t1[t1["dataset"] != "avg"]
    out: dict = {}
    for m in COLUMNS:
        v, sig = rows[f"{m}_value"].astype(float), rows[f"{m}_significant"].astype(bool)
        n_sig = int((sig & (v > 0)).sum())
        avg = float(v.mean()) if v.notna().any() else math.nan
        out[m] = {"avg": avg, "verdict": verdict(n_sig, int(v.notna().sum()), avg),
                  "n_sig_better": n_sig, "n_sig_worse": int((sig & (v < 0)).sum()),
                  "class": {d: S.cell_class(x, s) for d, x, s in zip(rows["dataset"], v, sig)}}
    rv = robustness_values(rob)
    gain = _robust_gain(rob)
    out["robust"] = {"avg": gain, "verdict": rv["verdict"], "n_better": rv["n_better"]}
    drop = _accuracy_drop(perf)
    out["accuracy"] = {"avg": drop, "verdict": ("cannot" if math.isnan(drop) else
                                                "supports" if drop <= ACCURACY_TOL_PP else "not")}
    return out


def _robust_gain(rob: pd.DataFrame) -> float:
    """Mean over data sets of the robust-accuracy gain CT - BL (points, eps > 0)."""
    sub = rob[rob["eps"] > 0].groupby(["dataset", "model"])["accuracy"].mean().unstack("model")
    if sub.empty or not {"CT", "BL"} <= set(sub.columns):
        return math.nan
    return float(((sub["CT"] - sub["BL"]) * 100).mean())


def _accuracy_drop(perf: pd.DataFrame) -> float:
    """Mean over data sets of the test-accuracy loss BL - CT (free), in points."""
    if perf.empty:
        return math.nan
    pt = T.performance(perf)
    return float(((pt["BL_accuracy"] - pt["CT_free_accuracy"]) * 100).mean())


# ---- seed study -----------------------------------------------------------------------------------


def seed_long(ces: pd.DataFrame, pm_rule: str, ci_level: float) -> pd.DataFrame:
    """One row per (seed, data set, column): the seed's Table-1 value, pm, CI and class."""
    rows = []
    for seed, g in ces.groupby("seed"):
        t1 = table1_from(g, pm_rule, ci_level)
        for _, r in t1[t1["dataset"] != "avg"].iterrows():
            for m in COLUMNS:
                v, sig = float(r[f"{m}_value"]), bool(r[f"{m}_significant"])
                rows.append({"seed": int(seed), "dataset": r["dataset"], "metric": m, "value": v,
                             "pm": float(r[f"{m}_pm"]), "significant": sig,
                             "class": S.cell_class(v, sig)})
    return pd.DataFrame(rows)


def seed_summary(long: pd.DataFrame, ci_level: float) -> pd.DataFrame:
    """Per (data set, column): mean over seeds, its t interval, significant seeds per direction."""
    rows = []
    for (d, m), g in long.groupby(["dataset", "metric"], sort=False):
        mean, lo, hi = S.seed_interval(g["value"].tolist(), ci_level)
        better, worse = S.direction_counts(g["value"].tolist(), g["significant"].tolist())
        rows.append({"dataset": d, "metric": m, "mean": mean, "lb": lo, "ub": hi,
                     "n_seeds": int(g["value"].notna().sum()), "n_sig_better": better,
                     "n_sig_worse": worse})
    return pd.DataFrame(rows)


def seed_markdown(long: pd.DataFrame, summary: pd.DataFrame, ci_level: float) -> str:
    """The seed-study table: one row per data set and column."""
    seeds = sorted(long["seed"].unique())
    rows = []
    for d in T._order(summary["dataset"].unique()):
        for m in COLUMNS:
            s = summary[(summary["dataset"] == d) & (summary["metric"] == m)]
            if s.empty:
                continue
            s = s.iloc[0]
            cells = []
            for seed in seeds:
                hit = long[(long["seed"] == seed) & (long["dataset"] == d) & (long["metric"] == m)]
                r = hit.iloc[0] if len(hit) else None
                cells.append("–" if r is None else T.fmt(r["value"]) + ("\\*" if r["significant"] else ""))
            rows.append([LABELS[d], _md(COLUMN_LABELS[m]), *cells, T.fmt(s["mean"]),
                         f"[{T.fmt(s['lb'])}, {T.fmt(s['ub'])}]",
                         f"{s['n_sig_better']} / {s['n_sig_worse']}"])
    header = ["Data", "Column", *[f"seed {s}" for s in seeds], "Mean",
              f"{round(ci_level * 100)}% interval", "sig. better / worse"]
    caption = (f"Table 1 per training seed (% reduction CT vs BL; \\* = significant at "
               f"{round(ci_level * 100)}%), the mean over the {len(seeds)} seeds with its t interval "
               "over seeds (includes training randomness), and the number of seeds in which the cell "
               "is significantly better / worse.")
    return T.markdown_table(rows, header, "ll" + "r" * (len(seeds) + 3), caption=caption,
                            label="tbl-seed_study")


def seed_values(long: pd.DataFrame, rob: pd.DataFrame, perf: pd.DataFrame, ces: pd.DataFrame,
                pm_rule: str, ci_level: float) -> dict:
    """The paper's values of the seed study: per claim how many seeds support it (partly, not),
    whether all do (``holds_all``), and the range of the column average over seeds."""
    per_seed = {}
    for seed in sorted(long["seed"].unique()):
        t1 = table1_from(ces[ces["seed"] == seed], pm_rule, ci_level)
        per_seed[int(seed)] = claim_values(t1, rob[rob["seed"] == seed], perf[perf["seed"] == seed])
    n = len(per_seed)
    out = {"n_seeds": n, "seeds": ", ".join(str(s) for s in per_seed)}
    for c in CLAIMS:
        verdicts = [v[c]["verdict"] for v in per_seed.values()]
        avgs = [v[c]["avg"] for v in per_seed.values()]
        mean, lo, hi = S.seed_interval(avgs, ci_level)
        out[c] = {"n_supports": sum(x == "supports" for x in verdicts),
                  "n_partly": sum(x == "partly" for x in verdicts),
                  "n_not": sum(x in ("not", "cannot") for x in verdicts),
                  "holds_all": all(x == "supports" for x in verdicts),
                  "avg_min": _num(min(avgs)), "avg_max": _num(max(avgs)), "avg_mean": _num(mean),
                  "avg_lb": _num(lo), "avg_ub": _num(hi)}
    return out


def _md(text: str) -> str:
    """Markdown-escaped asterisks (IP*)."""
    return text.replace("*", "\\*")


def _num(x: float, digits: int = 2) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def make_seed_study(ces_paths, rob_paths, perf_paths, csv_path, md_path, json_path, config) -> None:
    """Rule seed_study_table: the long per-seed CSV (+ summary columns), the table and the values."""
    from ctpaper.runtime import atomic_path, write_json

    pm_rule, ci = config["tables"]["pm_rule"], float(config["tables"]["ci_level"])
    ces, rob, perf = _valid_ces(ces_paths), _concat(rob_paths), _concat(perf_paths)
    long = seed_long(ces, pm_rule, ci)
    summary = seed_summary(long, ci)
    with atomic_path(csv_path) as tmp:
        long.merge(summary, on=["dataset", "metric"]).to_csv(tmp, index=False)
    with atomic_path(md_path) as tmp:
        tmp.write_text(seed_markdown(long, summary, ci) + "\n")
    write_json(seed_values(long, rob, perf, ces, pm_rule, ci), json_path)


# ---- sensitivity to the stated settings -----------------------------------------------------------


def variant_long(tables1: Mapping[str, pd.DataFrame], claims: Mapping[str, dict]) -> pd.DataFrame:
    """One row per (variant, data set or avg, claim column): value, class, the published-settings
    class, whether it flipped, and the shift of the column average from the published settings."""
    from ctpaper.studies.variants import BASE, LABELS as VLABELS, VARIANTS

    base = claims[BASE]
    rows = []
    for v, t1 in tables1.items():
        for c in CLAIMS:
            shift = claims[v][c]["avg"] - base[c]["avg"]
            common = {"variant": v, "variant_label": VLABELS[v],
                      "item": VARIANTS[v][0] if v in VARIANTS else 0, "metric": c,
                      "avg": claims[v][c]["avg"], "avg_shift": shift,
                      "verdict": claims[v][c]["verdict"], "base_verdict": base[c]["verdict"]}
            if c not in COLUMNS:
                rows.append({**common, "dataset": "avg", "value": claims[v][c]["avg"],
                             "significant": False, "degenerate": False, "class": "n/a",
                             "base_class": "n/a", "flipped": False})
                continue
            for _, r in t1.iterrows():
                d = r["dataset"]
                cls = claims[v][c]["class"].get(d, "n/a")
                bcls = base[c]["class"].get(d, "n/a")
                # an undefined cell (tables.degenerate) is reported as such, not as a flip
                rows.append({**common, "dataset": d, "value": float(r[f"{c}_value"]),
                             "significant": bool(r[f"{c}_significant"]),
                             "degenerate": bool(r[f"{c}_degenerate"]), "class": cls,
                             "base_class": bcls,
                             "flipped": d != "avg" and cls != bcls and "n/a" not in (cls, bcls)})
    return pd.DataFrame(rows)


def paper_text_markdown(base: pd.DataFrame, alt: pd.DataFrame, ci_level: float) -> str:
    """Table 1 at the published settings beside Table 1 at every stated setting at once."""
    rows = []
    for (_, b), (_, a) in zip(base.iterrows(), alt.iterrows()):
        cells = [b["label"]]
        for m in COLUMNS:
            for r in (b, a):
                cells.append(T.fmt(float(r[f"{m}_value"])) + ("\\*" if r[f"{m}_significant"] else ""))
        rows.append(cells)
    header = ["Data"] + [_md(COLUMN_LABELS[m]) + f" ({w})" for m in COLUMNS
                         for w in ("published", "stated")]
    caption = ("Table 1 (% reduction CT vs BL, first training seed) at the published settings and "
               "with every setting the paper's text states (config/paper_text.yaml, method 10.1) at "
               f"once; \\* = 0 outside the {round(ci_level * 100)}% interval of CT − BL.")
    if any(bool(t[f"{m}_degenerate"].any()) for t in (base, alt) for m in COLUMNS):
        caption += " – = undefined: BL's median value is zero at double precision."
    return T.markdown_table(rows, header, "l" + "r" * (2 * len(COLUMNS)), caption=caption,
                            label="tbl-paper_text")


def sensitivity_values(long: pd.DataFrame, claims: Mapping[str, dict]) -> dict:
    """The paper's values of the sensitivity study: per claim the verdict at the published settings
    (``base``) and with all stated settings at once (``all``) as flags of the verdict keys, the
    variants under which the verdict changes, and per variant the classes that flip and the largest
    shift of a column average."""
    from ctpaper.paper.values import verdict_flags
    from ctpaper.studies.variants import ALL, BASE, LABELS as VLABELS

    variants = [v for v in claims if v != BASE]
    single = [v for v in variants if v != ALL]
    out: dict = {"n_variants": len(single), "has_all": ALL in claims}
    for c in CLAIMS:
        changed = [v for v in single if claims[v][c]["verdict"] != claims[BASE][c]["verdict"]]
        shifts = {v: claims[v][c]["avg"] - claims[BASE][c]["avg"] for v in single}
        big = max(shifts, key=lambda v: abs(shifts[v]) if not math.isnan(shifts[v]) else -1) if shifts else None
        out[c] = {"base": verdict_flags(claims[BASE][c]["verdict"]),
                  "base_avg": _num(claims[BASE][c]["avg"]),
                  "n_changed": len(changed), "changed": bool(changed),
                  "changed_list": ", ".join(VLABELS[v] for v in changed) or "none",
                  "holds_all": not changed and claims[BASE][c]["verdict"] == "supports",
                  "max_shift_variant": VLABELS[big] if big else "n/a",
                  "max_shift": _num(shifts[big]) if big else "n/a",
                  "all": verdict_flags(claims[ALL][c]["verdict"] if ALL in claims else "cannot"),
                  "all_avg": _num(claims[ALL][c]["avg"]) if ALL in claims else "n/a"}
    undefined = long[long["degenerate"].astype(bool)]
    out["undefined_text"] = "; ".join(
        f"{VLABELS[v]}: " + ", ".join(f"{LABELS[r['dataset']]} {COLUMN_LABELS[r['metric']]}"
                                      for _, r in undefined[undefined["variant"] == v].iterrows())
        for v in claims if (undefined["variant"] == v).any()) or "none"
    flips = long[long["flipped"].astype(bool)]
    out["n_flips"] = {v: int((flips["variant"] == v).sum()) for v in variants}
    out["flip_text"] = "; ".join(
        f"{VLABELS[v]}: " + ", ".join(f"{LABELS[r['dataset']]} {COLUMN_LABELS[r['metric']]} "
                                      f"({r['base_class']} → {r['class']})"
                                      for _, r in flips[flips["variant"] == v].iterrows())
        for v in variants if (flips["variant"] == v).any()) or "none"
    return out


def make_sensitivity(ces: Mapping[str, list], rob: Mapping[str, list], perf: Mapping[str, list],
                     csv_path, md_path, json_path, config) -> None:
    """Rule sensitivity_table: per variant ``{variant: files}`` -> long CSV, the all-at-once table,
    the values."""
    from ctpaper.runtime import atomic_path, write_json
    from ctpaper.studies.variants import ALL, BASE

    pm_rule, ci = config["tables"]["pm_rule"], float(config["tables"]["ci_level"])
    tables1, claims = {}, {}
    for v in ces:
        tables1[v] = table1_from(_valid_ces(ces[v]), pm_rule, ci)
        claims[v] = claim_values(tables1[v], _concat(rob[v]), _concat(perf[v]))
    long = variant_long(tables1, claims)
    with atomic_path(csv_path) as tmp:
        long.to_csv(tmp, index=False)
    alt = tables1.get(ALL, tables1[BASE].assign(**{f"{m}_value": np.nan for m in COLUMNS}))
    with atomic_path(md_path) as tmp:
        tmp.write_text(paper_text_markdown(tables1[BASE], alt, ci) + "\n")
    write_json(sensitivity_values(long, claims), json_path)


STUDY_RULES = ("seed_study_table", "seed_study_figure", "sensitivity_table", "sensitivity_figure")
MAIN_RULES = ("train_model", "evaluate_ces", "robustness", "performance")


def compute_values(prov: Mapping) -> dict:
    """CPU time of the studies' jobs in this run (provenance: per-rule benchmark totals) and its
    ratio to the main results' training and evaluation."""
    rules = {r["rule"]: r for r in prov.get("rules", [])}
    study = sum(r["cpu_s_total"] for name, r in rules.items()
                if name.startswith("study_") or name in STUDY_RULES)
    main = sum(rules[name]["cpu_s_total"] for name in MAIN_RULES if name in rules)
    peak = max([r["max_rss_mb"] for name, r in rules.items() if name.startswith("study_")
                and not math.isnan(r["max_rss_mb"])] + [0.0])
    return {"cpu_min": _num(study / 60, 1), "ratio_main": _num(study / main, 1) if main else "n/a",
            "peak_gb": _num(peak / 1024, 2)}
