"""The original's appendix claims (issue 12 item 4, (a)-(i)), each with a verdict computed from the grid
results and the numbers behind it.

Verdicts are the keys of ``ctpaper.paper.values.verdict``: ``supports``, ``partly`` (partly supports),
``not`` (does not support), and ``cannot`` (cannot assess) when the run has no results for the claim
(grid or data set not configured); the paper's text words them. Each claim's function documents its
decision rule. Shared building blocks:

* pct = percentage change of a metric vs BL (method 8, ``ctpaper.appendix.data.pct_change``); lower is
  better. "Median pct at value v of a parameter" pools every CT cell with that value, every run and
  every test-time lambda.
* ``share_verdict(k, n)``: a property that should hold in each of n data sets and holds in k:
  supports if k = n, partly if k >= n/2, does not support otherwise.
* ``combine``: a claim with several parts supports if every assessable part supports, does not
  support if every one does not, and partly otherwise.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ctpaper.appendix import D_GRIDS
from ctpaper.appendix.data import final_maturity, iqr, pct_change

SUPPORTS, PARTLY, NOT, NA = "supports", "partly", "not", "cannot"
NOT_IN_RUN = "not available (not in this run)"
# (i): "at most about one point" = a drop below 1.5 percentage points (the largest that rounds to 1).
ABOUT_ONE_POINT = 1.5
# (g): "full maturity" = at least 99% of the epoch's counterfactuals mature.
FULL_MATURITY = 0.99
# (f): "loses little" = the burn-in's median pct is worse by at most half the no-burn-in median's size.
BURNIN_TOLERANCE = 0.5


def share_verdict(k: int, n: int) -> str:
    """supports if k = n, partly if 2k >= n, does not support otherwise; cannot assess if n = 0."""
    if n == 0:
        return NA
    return SUPPORTS if k == n else PARTLY if 2 * k >= n else NOT


def majority_verdict(k: int, n: int) -> str:
    """For "generally": supports if k > n/2, partly if 3k >= n, does not support otherwise."""
    if n == 0:
        return NA
    return SUPPORTS if 2 * k > n else PARTLY if 3 * k >= n else NOT


def combine(*verdicts: str) -> str:
    """All assessable parts support -> supports; all do not -> does not; else partly."""
    v = [x for x in verdicts if x != NA]
    if not v:
        return NA
    if all(x == SUPPORTS for x in v):
        return SUPPORTS
    if all(x == NOT for x in v):
        return NOT
    return PARTLY


def pct_all(scores: pd.DataFrame, vary: list[str], metric: str) -> pd.DataFrame:
    """pct_change per data set (BL matched within the data set), concatenated with a dataset column."""
    frames = [pct_change(g, vary, metric).assign(dataset=d) for d, g in scores.groupby("dataset", sort=True)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["dataset", "pct"])


def _med(pct: pd.DataFrame, param: str) -> pd.Series:
    return pct.groupby(param)["pct"].median().sort_index()


def _mean_maturity(maturity: pd.DataFrame, vary: list[str], param: str) -> pd.Series:
    """Per value of ``param``: mean over models of each model's mean proportion of mature CEs."""
    fm = final_maturity(maturity, vary)
    return fm.groupby(param)["mean"].mean().sort_index() if len(fm) else pd.Series(dtype=float)


def _cell_iqr(pct: pd.DataFrame, param: str) -> pd.Series:
    """Per value of ``param``: median over CT cells of the IQR of pct within the cell (runs x lambda)."""
    per_model = pct.groupby(["model", param])["pct"].apply(iqr).reset_index()
    return per_model.groupby(param)["pct"].median().sort_index()


def _r(x) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), 2)


def _ds(res: dict, grid: str, datasets=None) -> list[str]:
    if grid not in res:
        return []
    have = sorted(set(res[grid]["scores"]["dataset"]))
    return [d for d in have if datasets is None or d in datasets]


def claim_a(res: dict) -> dict:
    """(a) ECCo best, REVISE worst, REVISE often lowering plausibility. For every (D grid, data set):
    median pct IP per generator. Part 1: ECCo has the lowest and REVISE the highest median
    (share_verdict over the pairs). Part 2, "often": REVISE's median > 0 (IP worse than BL) in at
    least half the pairs -> supports, in at least one -> partly, in none -> does not support."""
    rows = []
    for grid in D_GRIDS:
        for d in _ds(res, grid):
            med = _med(res[grid]["pct_ip"].query("dataset == @d"), "generator")
            if not {"ecco", "revise"} <= set(med.index):
                continue
            rows.append({"grid": grid, "dataset": d, **{f"median_{g}": _r(v) for g, v in med.items()},
                         "ecco_best": bool(med.idxmin() == "ecco"), "revise_worst": bool(med.idxmax() == "revise"),
                         "revise_worse_than_bl": bool(med["revise"] > 0)})
    n = len(rows)
    k_order = sum(r["ecco_best"] and r["revise_worst"] for r in rows)
    k_pos = sum(r["revise_worse_than_bl"] for r in rows)
    often = NA if n == 0 else SUPPORTS if 2 * k_pos >= n else PARTLY if k_pos else NOT
    return {"verdict": combine(share_verdict(k_order, n), often), "n": n, "k_order": k_order,
            "k_ecco_best": sum(r["ecco_best"] for r in rows), "k_revise_worst": sum(r["revise_worst"] for r in rows),
            "k_revise_worse_than_bl": k_pos, "rows": rows}


def claim_b(res: dict) -> dict:
    """(b) Larger T is better because more CEs mature. Generator grid, per data set: part 1, median
    pct IP at the largest T below that at the smallest T; part 2, the mean proportion of mature CEs
    (per model over epochs, then over models) higher at the largest T. share_verdict per part, combined."""
    rows = []
    for d in _ds(res, "generator"):
        med = _med(res["generator"]["pct_ip"].query("dataset == @d"), "T")
        mat = _mean_maturity(res["generator"]["maturity"].query("dataset == @d"), res["generator"]["vary"], "T")
        lo, hi = med.index.min(), med.index.max()
        rows.append({"dataset": d, "T_min": _r(lo), "T_max": _r(hi), "median_T_min": _r(med[lo]),
                     "median_T_max": _r(med[hi]), "maturity_T_min": _r(mat.get(lo)),
                     "maturity_T_max": _r(mat.get(hi)), "better": bool(med[hi] < med[lo]),
                     "more_mature": bool(len(mat) and mat.get(hi, np.nan) > mat.get(lo, np.nan))})
    n = len(rows)
    k_b, k_m = sum(r["better"] for r in rows), sum(r["more_mature"] for r in rows)
    return {"verdict": combine(share_verdict(k_b, n), share_verdict(k_m, n)), "n": n, "k_better": k_b,
            "k_more_mature": k_m, "rows": rows}


def claim_c(res: dict) -> dict:
    """(c) More CEs per epoch (nce) make CT more effective and stable, on Circles and Moons. Other
    grid, data sets circ and moon: part 1, median pct IP at the largest nce below that at the smallest;
    part 2, the median within-cell IQR of pct IP (runs x lambda) smaller at the largest nce.
    share_verdict per part, combined."""
    rows = []
    for d in _ds(res, "other", ("circ", "moon")):
        pct = res["other"]["pct_ip"].query("dataset == @d")
        med, spread = _med(pct, "nce"), _cell_iqr(pct, "nce")
        lo, hi = med.index.min(), med.index.max()
        rows.append({"dataset": d, "nce_min": int(lo), "nce_max": int(hi), "median_nce_min": _r(med[lo]),
                     "median_nce_max": _r(med[hi]), "iqr_nce_min": _r(spread[lo]), "iqr_nce_max": _r(spread[hi]),
                     "more_effective": bool(med[hi] < med[lo]), "more_stable": bool(spread[hi] < spread[lo])})
    n = len(rows)
    k_e, k_s = sum(r["more_effective"] for r in rows), sum(r["more_stable"] for r in rows)
    return {"verdict": combine(share_verdict(k_e, n), share_verdict(k_s, n)), "n": n,
            "k_more_effective": k_e, "k_more_stable": k_s, "rows": rows}


def claim_d(res: dict) -> dict:
    """(d) tau = 0.5 generally best because more CEs mature; Moons prefers a higher tau; on
    Overlapping a high tau makes CT fail. Key-parameter grid (E.1): per data set the best tau is the
    one with the lowest median pct IP. Part 1: best tau = the smallest tau of the grid (0.5)
    (majority_verdict over data sets); part 2: the smallest tau has the highest mean proportion of
    mature CEs (majority_verdict); part 3 (moon): best tau above the smallest; part 4 (ol): median pct
    IP at the largest tau >= 0, i.e. CT no better than BL. Parts 3-4 support or do not; combined."""
    rows = []
    for d in _ds(res, "tune"):
        med = _med(res["tune"]["pct_ip"].query("dataset == @d"), "tau")
        mat = _mean_maturity(res["tune"]["maturity"].query("dataset == @d"), res["tune"]["vary"], "tau")
        lo, hi = med.index.min(), med.index.max()
        rows.append({"dataset": d, "best_tau": _r(med.idxmin()), "tau_min": _r(lo), "tau_max": _r(hi),
                     **{f"median_tau_{t:g}".replace(".", "p"): _r(v) for t, v in med.items()},
                     **{f"maturity_tau_{t:g}".replace(".", "p"): _r(v) for t, v in mat.items()},
                     "min_best": bool(med.idxmin() == lo),
                     "min_most_mature": bool(len(mat) and mat.idxmax() == lo),
                     "median_tau_max": _r(med[hi])})
    n = len(rows)
    k_best, k_mat = sum(r["min_best"] for r in rows), sum(r["min_most_mature"] for r in rows)
    by = {r["dataset"]: r for r in rows}
    moon = NA if "moon" not in by else SUPPORTS if by["moon"]["best_tau"] > by["moon"]["tau_min"] else NOT
    ol = NA if "ol" not in by else SUPPORTS if by["ol"]["median_tau_max"] >= 0 else NOT
    return {"verdict": combine(majority_verdict(k_best, n), majority_verdict(k_mat, n), moon, ol), "n": n,
            "k_min_best": k_best, "k_min_most_mature": k_mat, "moon": moon, "ol": ol,
            "moon_best_tau": by.get("moon", {}).get("best_tau"),
            "ol_median_tau_max": by.get("ol", {}).get("median_tau_max"),
            "ol_change": f"{by['ol']['median_tau_max']:.2f}%" if "ol" in by else NOT_IN_RUN, "rows": rows}


def _spread(pct: pd.DataFrame, param: str) -> float:
    med = _med(pct, param)
    return float(med.max() - med.min()) if len(med) else math.nan


def claim_e(res: dict) -> dict:
    """(e) lambda_reg is the key penalty, lambda_div and lambda_adv matter much less; too little
    regularisation lowers plausibility and raises cost on Circles, LS, OL. Penalty grid, per data
    set: spread of a parameter = max - min over its values of the median pct IP. Part 1: the spread
    of lambda_reg exceeds those of lambda_div and lambda_adv (share_verdict over data sets). Part 2,
    data sets circ, ls, ol and metrics IP and cost: the median pct at the smallest lambda_reg is above
    the median pct of all larger values (share_verdict over the (data set, metric) pairs). Combined."""
    rows, low = [], []
    for d in _ds(res, "penalties"):
        pct = res["penalties"]["pct_ip"].query("dataset == @d")
        s = {p: _spread(pct, p) for p in ("lambda_reg", "lambda_div", "lambda_adv")}
        rows.append({"dataset": d, **{f"spread_{p}": _r(v) for p, v in s.items()},
                     "reg_key": bool(s["lambda_reg"] > max(s["lambda_div"], s["lambda_adv"]))})
        if d not in ("circ", "ls", "ol"):
            continue
        for metric in ("ip", "cost"):
            pm = res["penalties"][f"pct_{metric}"].query("dataset == @d")
            lo = pm["lambda_reg"].min()
            at_lo, above = pm.loc[pm["lambda_reg"] == lo, "pct"].median(), pm.loc[pm["lambda_reg"] > lo, "pct"].median()
            low.append({"dataset": d, "metric": metric, "lambda_reg_min": _r(lo), "median_at_min": _r(at_lo),
                        "median_above_min": _r(above), "worse_at_min": bool(at_lo > above)})
    n, n_low = len(rows), len(low)
    k_key, k_low = sum(r["reg_key"] for r in rows), sum(r["worse_at_min"] for r in low)
    return {"verdict": combine(share_verdict(k_key, n), share_verdict(k_low, n_low)), "n": n,
            "k_reg_key": k_key, "n_low": n_low, "k_worse_at_min": k_low, "rows": rows, "low_reg": low}


def claim_f(res: dict) -> dict:
    """(f) 100 epochs beat 50, and a burn-in of half the epochs loses little. Other grid, per data set:
    part 1, median pct IP at the most epochs below that at the fewest (pct vs the BL trained as long);
    part 2, median pct IP with burn-in (largest burnin) minus without (burnin 0) at most
    BURNIN_TOLERANCE times the size of the no-burn-in median. share_verdict per part, combined."""
    rows = []
    for d in _ds(res, "other"):
        pct = res["other"]["pct_ip"].query("dataset == @d")
        ep, bu = _med(pct, "n_epochs"), _med(pct, "burnin")
        b0, b1 = bu.index.min(), bu.index.max()
        rows.append({"dataset": d, "median_epochs_min": _r(ep.iloc[0]), "median_epochs_max": _r(ep.iloc[-1]),
                     "median_burnin_0": _r(bu[b0]), "median_burnin": _r(bu[b1]), "burnin": _r(b1),
                     "more_epochs_better": bool(ep.iloc[-1] < ep.iloc[0]),
                     "burnin_loses_little": bool(bu[b1] - bu[b0] <= BURNIN_TOLERANCE * abs(bu[b0]))})
    n = len(rows)
    k_e, k_b = sum(r["more_epochs_better"] for r in rows), sum(r["burnin_loses_little"] for r in rows)
    return {"verdict": combine(share_verdict(k_e, n), share_verdict(k_b, n)), "n": n,
            "k_more_epochs_better": k_e, "k_burnin_loses_little": k_b, "rows": rows}


def claim_g(res: dict) -> dict:
    """(g) MNIST prefers a low lambda_reg and then reaches full maturity. Key-parameter grid, mnist:
    part 1, the smallest lambda_reg has the lowest median pct IP; part 2, the mean over the models with
    the smallest lambda_reg of their last epoch's proportion of mature CEs is >= FULL_MATURITY.
    share_verdict over the two parts (both: supports, one: partly)."""
    if "mnist" not in _ds(res, "tune"):
        return {"verdict": NA, "n": 0, "best_lambda_reg": None, "lambda_reg_min": None,
                "final_maturity_at_min": None, "low_best": None, "full_maturity": None}
    med = _med(res["tune"]["pct_ip"].query("dataset == 'mnist'"), "lambda_reg")
    fm = final_maturity(res["tune"]["maturity"].query("dataset == 'mnist'"), res["tune"]["vary"])
    lo = med.index.min()
    final = float(fm.loc[fm["lambda_reg"] == lo, "final"].mean()) if len(fm) else math.nan
    low_best, full = bool(med.idxmin() == lo), bool(final >= FULL_MATURITY)
    return {"verdict": share_verdict(low_best + full, 2), "n": 1, "best_lambda_reg": _r(med.idxmin()),
            "lambda_reg_min": _r(lo), **{f"median_lambda_reg_{v:g}".replace(".", "p"): _r(m) for v, m in med.items()},
            "final_maturity_at_min": _r(final), "low_best": low_best, "full_maturity": full}


def _lr_variant(res: dict, grid: str) -> dict:
    """Per data set of an E.2 variant: spread over eta_ce of the median pct IP vs the noise (median
    within-cell IQR); and the largest vs the smallest step size in median pct IP and maturity."""
    rows = []
    for d in _ds(res, grid):
        pct = res[grid]["pct_ip"].query("dataset == @d")
        med, noise = _med(pct, "eta_ce"), float(_cell_iqr(pct, "eta_ce").median())
        mat = _mean_maturity(res[grid]["maturity"].query("dataset == @d"), res[grid]["vary"], "eta_ce")
        lo, hi = med.index.min(), med.index.max()
        rows.append({"dataset": d, "spread": _r(med.max() - med.min()), "noise": _r(noise),
                     "no_impact": bool(med.max() - med.min() <= noise),
                     "median_eta_min": _r(med[lo]), "median_eta_max": _r(med[hi]),
                     "maturity_eta_min": _r(mat.get(lo)), "maturity_eta_max": _r(mat.get(hi)),
                     "larger_better": bool(med[hi] < med[lo]),
                     "larger_more_mature": bool(len(mat) and mat.get(hi, np.nan) > mat.get(lo, np.nan))})
    n, k = len(rows), sum(r["no_impact"] for r in rows)
    return {"verdict": share_verdict(k, n), "n": n, "k_no_impact": k,
            "k_larger_better": sum(r["larger_better"] for r in rows),
            "k_larger_more_mature": sum(r["larger_more_mature"] for r in rows), "rows": rows}


def claim_h(res: dict) -> dict:
    """(h) The CE learning rate has no discernible impact. For each E.2 variant (``tune_lr``: step
    size not applied, as published; ``tune_lr_applied``: applied) and data set: no discernible
    impact if the spread over eta_ce of the median pct IP is at most the median within-cell IQR of
    pct IP (run-to-run and lambda variation). share_verdict over data sets per variant; the claim's
    verdict is the published variant's (what the original ran), the applied one is reported beside
    it with what a larger step size changes (median pct IP, maturity)."""
    out = {g: _lr_variant(res, g) for g in ("tune_lr", "tune_lr_applied")}
    return {"verdict": out["tune_lr"]["verdict"], "published": out["tune_lr"], "applied": out["tune_lr_applied"]}


def claim_i(res: dict) -> dict:
    """(i) On the synthetic data CT costs at most about one point of accuracy or F1. D grids, per (grid,
    data set): drop = 100 x (mean over BL models - mean over CT models) of test accuracy and of macro-F1;
    holds if both drops are below ABOUT_ONE_POINT. share_verdict over the pairs."""
    rows = []
    for grid in D_GRIDS:
        if grid not in res:
            continue
        perf = res[grid]["performance"]
        for d, g in perf.groupby("dataset", sort=True):
            m = g.groupby("objective")[["accuracy", "f1"]].mean()
            if not {"full", "vanilla"} <= set(m.index):
                continue
            drop = 100 * (m.loc["vanilla"] - m.loc["full"])
            rows.append({"grid": grid, "dataset": d, "drop_accuracy": _r(drop["accuracy"]),
                         "drop_f1": _r(drop["f1"]), "holds": bool(drop.max() < ABOUT_ONE_POINT)})
    n, k = len(rows), sum(r["holds"] for r in rows)
    worst = max((max(r["drop_accuracy"], r["drop_f1"]) for r in rows), default=None)
    return {"verdict": share_verdict(k, n), "n": n, "k_holds": k, "max_drop": worst, "rows": rows}


CLAIMS = {"a": claim_a, "b": claim_b, "c": claim_c, "d": claim_d, "e": claim_e, "f": claim_f,
          "g": claim_g, "h": claim_h, "i": claim_i}


def prepare(frames: dict, varies: dict) -> dict:
    """``{grid: {scores, performance, maturity, vary, pct_ip, pct_cost}}`` from the concatenated
    frames per grid and the grids' varied parameters."""
    res = {}
    for grid, f in frames.items():
        vary = list(varies[grid])
        res[grid] = {**f, "vary": vary, "pct_ip": pct_all(f["scores"], vary, "ip"),
                     "pct_cost": pct_all(f["scores"], vary, "cost")}
    return res


def evaluate(frames: dict, varies: dict) -> dict:
    """Every claim's result (verdict, counts, per-data-set numbers)."""
    res = prepare(frames, varies)
    return {key: fn(res) for key, fn in CLAIMS.items()}


def _text(v) -> str:
    """A value as the paper prints it: at most two decimals, no trailing zeros."""
    if v is None:
        return NOT_IN_RUN
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        out = f"{v:.2f}".rstrip("0").rstrip(".") if abs(v) >= 0.005 or v == 0 else f"{v:.2g}"
        return "0" if out == "-0" else out
    return str(v)


def paper_vars(claims: dict) -> dict:
    """The scalar results as text for the paper's ``{{< var appendix.<claim>.<key> >}}`` (lists of
    per-data-set rows stay in the JSON; verdicts are flags, ``paper_flags``)."""
    def flat(d: dict) -> dict:
        return {k: flat(v) if isinstance(v, dict) else _text(v) for k, v in d.items()
                if not isinstance(v, list) and k != "verdict"}
    return flat(claims)


def paper_flags(claims: dict) -> dict:
    """``appendix.<claim>[.<variant>].verdicts.<key>``: the flags the paper's conditional text
    words each verdict by (``ctpaper.paper.values.verdict_flags``)."""
    from ctpaper.paper.values import verdict_flags

    def flags(d: dict) -> dict:
        out = {k: flags(v) for k, v in d.items() if isinstance(v, dict)}
        if "verdict" in d:
            out["verdicts"] = verdict_flags(d["verdict"])
        return {k: v for k, v in out.items() if v}
    return flags(claims)


def make(paths: dict, config, json_path: str) -> dict:
    """Rule ``appendix_claims``: ``paths[grid][kind]`` = the grid's files of kind scores / performance
    / maturity (all its data sets) -> JSON with ``claims`` (all results), ``vars`` (the paper's
    ``appendix.*`` variables), ``flags`` (its verdicts) and ``blocks`` (the generated appendix part, ``ctpaper.appendix.paper``)."""
    from ctpaper.appendix import grid_vary
    from ctpaper.appendix.data import load
    from ctpaper.appendix.paper import appendix_block, grid_vars
    from ctpaper.runtime import write_json

    frames = {g: {k: load(p) for k, p in kinds.items()} for g, kinds in paths.items()}
    claims = evaluate(frames, {g: grid_vary(config, g) for g in paths})
    out = {"claims": claims, "vars": {**paper_vars(claims), "grids": grid_vars(config)},
           "flags": paper_flags(claims), "blocks": {"appendix": appendix_block(config)}}
    write_json(out, json_path)
    return out
