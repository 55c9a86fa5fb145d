"""Values the paper's text quotes, computed from the run's tables, evaluation files and provenance.

``compute`` returns ``{"vars": {...}, "blocks": {...}}``:

* ``vars`` (nested; referenced in ``paper/paper.qmd`` as ``{{< var group.key >}}``): counts, averages
  and verdicts derived from Table 1, the performance table, the robustness files, the ``free``
  family's counterfactuals (validity and maturity), the training logs, the IG summary and the
  provenance record. Nothing in the paper's text that depends on results is
  written by hand: every such number or verdict is one of these values.
* ``blocks`` (written to ``generated/<name>.md`` and included by the paper): the reproduction notes
  (method 10.1, each item with the setting of this run read from the config), the provenance and
  compute section, and the MNIST sections (which include ``sections/*.qmd`` only when MNIST is part of
  the run, since Figures 2, 4 and 5 exist only then).

Verdict rule for a claim that CT improves a metric (stated in the paper): *supports* if CT is
significantly better (99% interval of the per-run difference excludes zero) on more than half of the
datasets and better on average; *partly supports* if it is significantly better on at least one
dataset and better on average; otherwise *does not support*.
"""

from __future__ import annotations

import math
from typing import Iterable

import pandas as pd

from ctpaper.comparison import CLASS_TEXT, synthetic_stream_is_original
from ctpaper.comparison import summary as comparison_summary
from ctpaper.config import LABELS, TABLE_ORDER, dataset_kind
from ctpaper.runtime import read_csv, read_json, read_parquet
from ctpaper.tables import PM_TEXT, family_eval_text, markdown_table


# --------------------------------------------------------------------------------------------------
# Formatting helpers


def num(x: float, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.{digits}f}"


def join_words(items: list[str]) -> str:
    items = list(items)
    if not items:
        return "none"
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def count_list(labels: list[str]) -> str:
    """'none' or 'n (A, B and C)'."""
    return "none" if not labels else f"{len(labels)} ({join_words(labels)})"


def range_text(values: Iterable[int]) -> str:
    vals = sorted(set(int(v) for v in values))
    if not vals:
        return "0"
    return str(vals[0]) if len(vals) == 1 else f"{vals[0]}–{vals[-1]}"


def duration(seconds: float) -> str:
    if seconds is None or math.isnan(seconds):
        return "n/a"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def verdict(n_sig_better: int, n_total: int, avg: float) -> str:
    if n_total == 0 or math.isnan(avg):
        return "cannot assess"
    if n_sig_better > n_total / 2 and avg > 0:
        return "supports"
    if n_sig_better >= 1 and avg > 0:
        return "partly supports"
    return "does not support"


# --------------------------------------------------------------------------------------------------
# Groups of values


def table1_values(t1: pd.DataFrame) -> dict:
    rows = t1[t1["dataset"] != "avg"]
    avg_row = t1[t1["dataset"] == "avg"]
    out = {}
    for metric in ("ip", "ip_star", "cost"):
        v = rows[f"{metric}_value"].astype(float)
        sig = rows[f"{metric}_significant"].astype(bool)
        ok = v.notna()
        avg = float(avg_row[f"{metric}_value"].iloc[0]) if len(avg_row) else math.nan
        n_sig_better = int((sig & (v > 0)).sum())
        n_total = int(ok.sum())
        best = rows.loc[v.idxmax()] if ok.any() else None
        worst = rows.loc[v.idxmin()] if ok.any() else None
        out[metric] = {
            "n": n_total,
            "n_better": int((v > 0).sum()),
            "n_sig_better": n_sig_better,
            "n_sig_worse": int((sig & (v < 0)).sum()),
            "avg": num(avg),
            "best": best["label"] if best is not None else "n/a",
            "best_value": num(float(best[f"{metric}_value"])) if best is not None else "n/a",
            "worst": worst["label"] if worst is not None else "n/a",
            "worst_value": num(float(worst[f"{metric}_value"])) if worst is not None else "n/a",
            "sig_better_list": join_words([r["label"] for _, r in rows[sig & (v > 0)].iterrows()]),
            "sig_worse_list": join_words([r["label"] for _, r in rows[sig & (v < 0)].iterrows()]),
            "sig_better_text": count_list([r["label"] for _, r in rows[sig & (v > 0)].iterrows()]),
            "sig_worse_text": count_list([r["label"] for _, r in rows[sig & (v < 0)].iterrows()]),
            "verdict": verdict(n_sig_better, n_total, avg),
        }
    return out


def robustness_values(rob: pd.DataFrame) -> dict:
    eps_pos = sorted(e for e in rob["eps"].unique() if e > 0)
    sub = rob[rob["eps"] > 0]
    per = sub.groupby(["dataset", "model"])["accuracy"].mean().unstack("model")
    clean = rob[rob["eps"] == 0].groupby(["dataset", "model"])["accuracy"].mean().unstack("model")
    if per.empty or not {"CT", "BL"} <= set(per.columns):
        return {"n": 0, "n_better": 0, "avg_gain_pp": "n/a", "verdict": "cannot assess",
                "eps_min": "n/a", "eps_max": "n/a", "better_list": "none", "max_gap_label": "n/a",
                "max_gap_pp": "n/a"}
    gain = (per["CT"] - per["BL"]) * 100
    n_better = int((gain > 0).sum())
    order = [d for d in TABLE_ORDER if d in gain.index]
    top = gain.idxmax()
    avg = float(gain.mean())
    return {
        "n": int(len(gain)),
        "n_better": n_better,
        "avg_gain_pp": num(avg, 1),
        "better_list": join_words([LABELS[d] for d in order if gain[d] > 0]),
        "max_gap_label": LABELS[top],
        "max_gap_pp": num(float(gain[top]), 1),
        "eps_min": f"{eps_pos[0]:.3g}" if eps_pos else "n/a",
        "eps_max": f"{eps_pos[-1]:.3g}" if eps_pos else "n/a",
        "n_eps": len(eps_pos),
        "clean_gap_pp": num(float(((clean["CT"] - clean["BL"]) * 100).mean()), 1)
        if {"CT", "BL"} <= set(clean.columns) else "n/a",
        # majority of datasets with higher average robust accuracy (no run-level uncertainty here)
        "verdict": verdict(n_better, len(gain), avg),
    }


def performance_values(pt: pd.DataFrame) -> dict:
    out = {}
    for model, key in (("BL", "bl"), ("CT_free", "ct_free"), ("CT_protected", "ct_prot")):
        out[f"acc_{key}"] = num(float(pt[f"{model}_accuracy"].mean()), 3)
        out[f"f1_{key}"] = num(float(pt[f"{model}_f1"].mean()), 3)
    drop = (pt["BL_accuracy"] - pt["CT_free_accuracy"]) * 100
    i = drop.idxmax()
    out["max_drop_label"] = pt.loc[i, "label"]
    out["max_drop_pp"] = num(float(drop[i]), 1)
    out["max_drop_text"] = (
        f"the largest loss of test accuracy relative to BL is {num(float(drop[i]), 1)} percentage "
        f"points ({pt.loc[i, 'label']})" if drop[i] > 0 else
        "CT is at least as accurate as BL on every dataset")
    out["n_within_1pp"] = int((drop.abs() <= 1.0).sum())
    out["n"] = int(len(pt))
    out["avg_drop_pp"] = num(float(drop.mean()), 1)
    single = [f"{MODEL_TEXT[model]} on {r['label']}" for _, r in pt.iterrows()
              for model in ("BL", "CT_free", "CT_protected")
              if int(r.get(f"{model}_min_pred_classes", 2)) < 2]
    out["single_class_text"] = (
        f"**Warning:** {join_words(single)} predict{'s' if len(single) == 1 else ''} a single "
        f"class on the whole test set, so {'its' if len(single) == 1 else 'their'} scores describe "
        "a degenerate classifier and should not be read as results."
        if single else "Every model predicts more than one class on its test set.")
    return out


MODEL_TEXT = {"BL": "BL", "CT_free": "CT (`free`)", "CT_protected": "CT (`protected`)",
              "bl": "BL", "ct_free": "CT (`free`)", "ct_protected": "CT (`protected`)"}


def training_health_values(logs: pd.DataFrame) -> dict:
    """How many training updates were skipped for a non-finite loss (every model's log)."""
    if not len(logs) or "skipped_share" not in logs:
        return {"skipped_text": "No training log records skipped updates."}
    worst = logs.loc[logs["skipped_share"].astype(float).idxmax()]
    share = float(worst["skipped_share"])
    if share <= 0:
        text = "No training update was skipped for a non-finite loss."
    else:
        n_models = int((logs.groupby(["dataset", "seed", "model"])["n_skipped"].sum() > 0).sum())
        text = (f"Updates skipped for a non-finite loss: {n_models} model(s) skipped some; the "
                f"largest share in one epoch is {pct(share)}% ({MODEL_TEXT[worst['model']]} on "
                f"{LABELS[worst['dataset']]}, epoch {int(worst['epoch'])}).")
    return {"skipped_text": text, "max_skipped_pct": pct(share)}


def maturity_values(logs: pd.DataFrame) -> dict:
    out = {}
    last = logs.sort_values("epoch").groupby(["dataset", "model"]).tail(1)
    for model, key in (("ct_free", "final_free"), ("ct_protected", "final_prot")):
        v = last[last["model"] == model]["prop_mature"].astype(float)
        out[key] = num(float(v.mean()), 2) if len(v) else "n/a"
    first = logs[logs["prop_mature"].notna()].sort_values("epoch").groupby(["dataset", "model"]).head(1)
    out["first_avg"] = num(float(first["prop_mature"].mean()), 2) if len(first) else "n/a"
    out["n_epochs"] = int(logs["epoch"].max()) if len(logs) else 0
    low = set(last.loc[last["prop_mature"] < 0.5, "dataset"])
    out["low_list"] = join_words([LABELS[d] for d in TABLE_ORDER if d in low])
    return out


LOW_MATURE = 0.05   # a model's counterfactuals on a dataset count as "rarely mature" below this share
CES_COLUMNS = ["dataset", "seed", "model", "lambda_egy", "run", "valid", "mature"]


def pct(x: float) -> str:
    """A share as a whole percentage; '0' and '100' only when exact, else '<1' / '>99' at the ends."""
    if x is None or math.isnan(x):
        return "n/a"
    if x <= 0:
        return "0"
    if x >= 1:
        return "100"
    v = 100 * x
    return "<1" if v < 0.5 else ">99" if v >= 99.5 else f"{v:.0f}"


def _low_clause(who: str, shares: dict[str, float]) -> str:
    """'on A and B, none of CT's counterfactuals is mature' and variants (shares below LOW_MATURE)."""
    labels = list(shares)
    zero = [lab for lab, s in shares.items() if s <= 0]
    if zero == labels:
        return f"on {join_words(labels)}, none of {who}'s counterfactuals is mature"
    text = (f"on {join_words(labels)}, fewer than {100 * LOW_MATURE:g}% of {who}'s counterfactuals "
            "are mature")
    return text + (f" (none at all on {join_words(zero)})" if zero else "")


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def validity_values(ces: pd.DataFrame, tau: float | str, T: int | str) -> dict:
    """Shares of valid and of mature test-time counterfactuals per dataset and model (CT, BL).

    ``ces``: rows of the ``free`` family's ces.parquet files (columns ``CES_COLUMNS``; ``seed`` is
    optional). A share is computed per (seed, lambda_egy, run) and then averaged, i.e. averaged over
    the energy weights and runs. Datasets on which a model's mature share is below ``LOW_MATURE`` are
    listed, and two sentences adapt to them: which model is rarely mature where, and what that means
    for the scores (which average over valid counterfactuals, mature or not)."""
    keys = [k for k in ("dataset", "model", "seed", "lambda_egy", "run") if k in ces.columns]
    per_run = ces.assign(valid=ces["valid"].astype(float), mature=ces["mature"].astype(float)) \
        .groupby(keys)[["valid", "mature"]].mean()
    share = per_run.groupby(["dataset", "model"]).mean()
    order = [d for d in TABLE_ORDER if d in set(share.index.get_level_values("dataset"))]

    def get(d, m, col):
        return float(share.loc[(d, m), col]) if (d, m) in share.index else math.nan

    def per_dataset(col):   # 'LS 100/100, ...' with no line break inside a pair (NBSP, word joiners)
        return join_words([f"{LABELS[d]}\u00a0{pct(get(d, 'CT', col))}\u2060/\u2060"
                           f"{pct(get(d, 'BL', col))}" for d in order])

    low = {m: {LABELS[d]: get(d, m, "mature") for d in order if get(d, m, "mature") < LOW_MATURE}
           for m in ("CT", "BL")}
    pairs = [(d, m) for m in ("CT", "BL") for d in order if get(d, m, "mature") < LOW_MATURE]
    if low["CT"] and low["BL"]:
        low_text = _cap(_low_clause("CT", low["CT"])) + "; " + _low_clause("BL", low["BL"]) + "."
    elif low["CT"] or low["BL"]:
        who, other = ("CT", "BL") if low["CT"] else ("BL", "CT")
        low_text = (_cap(_low_clause(who, low[who])) + f", whereas at least {100 * LOW_MATURE:g}% of "
                    f"{other}'s counterfactuals are mature on every dataset.")
    else:
        low_text = (f"On every dataset, at least {100 * LOW_MATURE:g}% of the counterfactuals of both "
                    "CT and BL are mature, so the step budget does not keep either model's "
                    "counterfactuals from reaching the threshold altogether.")
    if pairs:
        # share of the valid counterfactuals that are immature (stopped at the budget), per pair
        sub = ces[ces["valid"].astype(bool)]
        immature = 1 - sub.groupby(["dataset", "model"])["mature"].mean()
        imm = [float(immature.get((d, m), math.nan)) for d, m in pairs]
        imm = [v for v in imm if not math.isnan(v)]
        imm_min = min(imm) if imm else math.nan
        imm_text = ("all" if imm_min >= 1 else
                    f"at least {math.floor(100 * imm_min)}%" if not math.isnan(imm_min) else "n/a")
        vals = [get(d, m, "valid") for d, m in pairs]
        lo, hi = pct(min(vals)), pct(max(vals))
        valid_range = f"{lo}%" if lo == hi else f"{lo}–{hi}%"
        cases = "this case" if len(pairs) == 1 else "these cases"
        consequence = (
            f"In {cases}, {imm_text} of the valid counterfactuals over which the scores are "
            f"averaged stopped at the budget of {T} steps with a target probability below {tau}. "
            f"This is consistent with flatter logits (smaller margins) of the models concerned, for "
            f"which the plain gradient search would need more than {T} steps to reach {tau}: low "
            f"maturity would then reflect the test-time budget rather than a failure of the search, "
            f"which still produces valid counterfactuals for {valid_range} of the factuals in "
            f"{cases}.")
    else:
        consequence = ""
    avg = share.groupby("model").mean()

    def mean_of(m, col):
        return pct(float(avg.loc[m, col])) if m in avg.index else "n/a"

    return {
        "valid_text": per_dataset("valid"),
        "mature_text": per_dataset("mature"),
        "valid_ct_avg": mean_of("CT", "valid"), "valid_bl_avg": mean_of("BL", "valid"),
        "mature_ct_avg": mean_of("CT", "mature"), "mature_bl_avg": mean_of("BL", "mature"),
        "low_pct": f"{100 * LOW_MATURE:g}",
        "n_ct_low": len(low["CT"]), "n_bl_low": len(low["BL"]),
        "ct_low_list": join_words(list(low["CT"])), "bl_low_list": join_words(list(low["BL"])),
        "low_text": low_text,
        "consequence_text": consequence,
    }


def ig_values(ig: pd.DataFrame) -> dict:
    cm = ig[(ig["dataset"] == "mnist") & (ig["source"] == "class_maps")]
    if cm.empty:
        return {}
    m = cm.groupby("model")["mean"].mean()
    bl, ct = float(m.get("BL", math.nan)), float(m.get("CT_protected", math.nan))
    return {"mnist_bl": num(bl, 3), "mnist_ct": num(ct, 3),
            "mnist_lower": "lower" if ct < bl else "higher" if ct > bl else "equal",
            "mnist_ratio": num(ct / bl, 2) if bl > 0 else "n/a"}


# --------------------------------------------------------------------------------------------------
# Blocks


def _setting(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def synthetic_stream_note(config: dict) -> str:
    """What ``data.synthetic.rng`` and the seeds make of the original's synthetic data."""
    syn, seed = config["data"]["synthetic"], config["seed"]
    here = (f"`data.synthetic.rng` = {syn['rng']}, seeds {seed['data']} / {seed['global']}, "
            f"{syn['n_generate']:,} points")
    if not synthetic_stream_is_original(config):
        return (here + " (differs from the published results): the points are not the original's"
                + ("; numpy's generator gives other blob centres" if syn["rng"] == "numpy" else ""))
    return (here + " (as in the published results): the points, their rounding to Float32, the "
            f"shuffle and the pool (first {syn['n_pool']:,}) and test rows (last {syn['n_test']:,}) "
            "are the original's bit for bit (tested against outputs printed in Julia's "
            "documentation and against regenerated points that coincide with those plotted in one "
            "of the original's figures). Not reproducible, and "
            "therefore drawn with numpy's generator: the pool's train/validation split (the original "
            "draws it from Julia's process-wide generator, whose state depends on everything the "
            "process drew before) and the MNIST class-balanced resample (specified for Julia's "
            "stream, but with no published output to check it against)")


def repro_notes(config: dict, metas: dict[str, dict]) -> str:
    """Every item of method 10.1 with the setting used in this run (read from the config)."""
    t, e = config["train"], config["eval"]
    free = family_eval_text(config, "free", config["datasets"])
    prot = family_eval_text(config, "protected", config["datasets"])

    def status(here, published, text=None):
        if here == published:
            return "as in the published results"
        if text is not None and here == text:
            return "as in the paper text"
        return "differs from both"

    ni = e["n_individuals"]
    items = [
        ("Counterfactual search step size",
         "0.25 in the text (Notes 1 and 2); 0.1 in the published results everywhere, so the "
         "learning-rate tuning grid did not actually vary it",
         f"`ce.lr` = {_setting(config['ce']['lr'])} ({status(config['ce']['lr'], 0.1, 0.25)}); "
         "the appendix grids are not part of this pipeline"),
        ("Domain bounds", "n_sigma = 3 in the text; 2 in the published results",
         f"`data.domain_n_sigma` = {_setting(config['data']['domain_n_sigma'])} "
         f"({status(config['data']['domain_n_sigma'], 2, 3)})"),
        ("MMD length-scale", "0.5 in the text; 5.0 in the published results",
         f"`eval.mmd.length_scale` = {_setting(e['mmd']['length_scale'])} "
         f"({status(e['mmd']['length_scale'], 5.0, 0.5)})"),
        ("MMD reference set", "the entire training subset of the target class in the text; at most "
         "100 target-class test rows against at most 100 counterfactuals per (model, λ_egy, run, "
         "target) group in the published results",
         f"`eval.mmd.reference` = {e['mmd']['reference']} with `eval.mmd.n_samples` = "
         f"{e['mmd']['n_samples']} ({status(e['mmd']['reference'], 'sample', 'train_all')})"),
        ("Maturity", "\"exhausted all T iterations or converged\" in the text; threshold reached "
         "within T (immature counterfactuals replaced by x+) in the published results",
         f"`train.maturity` = {t['maturity']} "
         f"({status(t['maturity'], 'threshold', 'threshold_or_exhausted')})"),
        ("Label of the adversarial loss", "the true label in Eq. 4; the model's prediction at "
         "generation time in the published results",
         f"`train.adv_label` = {t['adv_label']} ({status(t['adv_label'], 'predicted', 'true')})"),
        ("Radius of nascent adversarial examples", "no value and a strict \"<\" in the text; "
         "ε = 0.3 (L∞, inclusive, the factual itself included) in the published results",
         f"`train.adv_eps` = {_setting(t['adv_eps'])}, `train.adv_eps_strict` = "
         f"{_setting(t['adv_eps_strict'])} "
         f"({status((t['adv_eps'], t['adv_eps_strict']), (0.3, False))})"),
        ("Ridge term", "an \"l2-norm of the energies\" in the text; the per-counterfactual sum of "
         "the two squared target logits, averaged, in the published results",
         f"`train.ridge_form` = {t['ridge_form']} ({status(t['ridge_form'], 'sum_sq', 'l2_norm')})"),
        ("Counterfactual generation frequency", "per training iteration in Algorithm 1; once per "
         "epoch, chunked over unshuffled batches, in the published results",
         f"`train.ce_frequency` = {t['ce_frequency']} ({status(t['ce_frequency'], 'epoch', 'batch')})"),
        ("Test-time cost weight", "λ_cst = 0.001 in Note 2; 0.0 in the published results (Note 2's "
         "τ = 0.75 and T = 30 are not used at test time; see the next two items for τ and T)",
         f"`eval.lambda_cst` = {_setting(e['lambda_cst'])} ({status(e['lambda_cst'], 0.0, 0.001)}); "
         f"`free` family τ = {free['tau']}, T = {free['T']}"),
        ("Evaluation size of the `free` family (IP, IP\\*)", "5 runs × 100 individuals in Note 2; "
         "100 runs × 250 / 100 / 25 individuals per λ_egy (synthetic / tabular / MNIST) in the "
         "appendix text (the original's committed configurations of these evaluations are stale)",
         f"`eval.n_runs` = {e['n_runs']}, `eval.n_individuals` = {ni['synthetic']} / {ni['tabular']} "
         f"/ {ni['mnist']}; `free` family: {free['n_runs']} runs × {free['n_individuals']} "
         f"({status((free['n_runs'], free['n_individuals']), ('100', '250 / 100 / 25'), ('5', '100 / 100 / 100'))})"),
        ("Test-time threshold and size of the `protected` (Cost) evaluations", "τ = 0.95 in Note 2 "
         "and 100 rounds for every column in the caption of Table 1; the original's committed "
         "evaluation configurations of the mutability experiments "
         "(`paper/experiments/evaluations/final_run/mutability/mlp/<dataset>/evaluation/"
         "evaluation_{1..5}/eval_config.toml`, added 2025-07-04) use τ = 0.5 for CH, Credit, GMSC "
         "and MNIST and 0.95 for Adult, T = 50, 50 runs and 100 individuals per λ_egy (50 for "
         "MNIST). Its synthetic configurations there are stale (March versions); all protected "
         "evaluations it committed for its other models use τ = 0.5, so τ = 0.5 and 50 runs for "
         "the synthetic data are an inference",
         f"`eval.families.protected`: τ = {prot['tau']}, T = {prot['T']}, {prot['n_runs']} runs × "
         f"{prot['n_individuals']} individuals per λ_egy ({prot['kinds']})"),
        ("IP reference rows", "not stated in the text; the original's implementation "
         "(CounterfactualExplanations.jl, `find_potential_neighbours`) draws them afresh for every "
         "counterfactual: a class-balanced resample with replacement of min(N, 1000) test rows, "
         "then 1000 draws with replacement among those of the target class",
         f"`eval.ip.reference` = {e['ip']['reference']} with `eval.ip.n_balanced` = "
         f"{e['ip']['n_balanced']} and `eval.ip.n_ref` = {e['ip']['n_ref']} "
         f"({status((e['ip']['reference'], e['ip']['n_balanced'], e['ip']['n_ref']), ('per_ce', 1000, 1000))})"),
        ("The ± of Table 1", "\"standard errors\" in the main text and \"two standard deviations\" "
         "in Appendix C.2; 100 × one standard deviation of the per-run CT/BL ratios in the "
         "published results",
         f"`tables.pm_rule` = {config['tables']['pm_rule']} "
         f"({status(config['tables']['pm_rule'], 'sd')})"),
        ("Test-set sizes of Table 2", "the original prints round(0.2 × n_train) as \"No. Test\" and "
         "a Credit pool of 10617 (the pool has 10618 rows)",
         "@tbl-table2 prints the test sets actually used: " + join_words(
             [f"{LABELS[d]} {metas[d]['n_test']}" for d in TABLE_ORDER if d in metas])
         + (f"; Credit pool {metas['credit']['n_pool']}" if "credit" in metas else "")),
        ("Figure 1", "its own setting (linear model, Generic search, a fixed number of steps, no "
         "ridge term) and the **second** feature protected, whereas the main experiments protect "
         "the first",
         "as described in the proof-of-concept section: " + ", ".join(
             f"{k} = {_setting(v)}" for k, v in config["figures"]["fig1"].items())),
        ("Figure 3 caption", "says \"non-synthetic datasets\" but all nine datasets are plotted",
         "@fig-fig3 shows every configured dataset: " + join_words(
             [LABELS[d] for d in TABLE_ORDER if d in config["datasets"]])),
        ("FGSM perturbation size", "ε = 0.03 in Appendix B.5.1; Figure 3 uses ε in "
         "linspace(0, 0.1, 10)",
         "`robust.eps_grid` = linspace({start:g}, {stop:g}, {num})".format(**config["robust"]["eps_grid"])
         + f"; `robust.eps_single` = {_setting(config['robust']['eps_single'])} (text only)"),
        ("Synthetic data", "the text names the generators only; the published results drew them with "
         "Julia 1.11's Xoshiro256++ generator (`Xoshiro(42)` through TaijaData 1.1.7 and MLJBase "
         "0.21.14, 100,000 points each) and shuffled them with `Xoshiro(2025)`",
         synthetic_stream_note(config)),
    ]
    lines = []
    for i, (title, paper, here) in enumerate(items, 1):
        lines.append(f"{i}. **{title}.** Original: {paper}. This run: {here}.")
    return "\n".join(lines) + "\n"


def provenance_block(prov: dict) -> str:
    pk = prov["packages"]
    pk_text = ", ".join(f"{k} {v}" for k, v in pk.items() if v != "absent")
    dirty = {True: " (with uncommitted or untracked changes in the working tree)", False: "",
             None: ""}[prov.get("git_dirty")]
    commit = prov.get("git_commit") or "unknown (not a git checkout)"
    lines = [
        f"This document was generated by the pipeline from configuration hash "
        f"`{prov['config_hash']}` at git commit `{commit}`{dirty}, with Python {prov['python']} on "
        f"{prov['platform']}. Package versions: {pk_text}.",
        "",
        f"The pipeline's {prov['n_jobs']} benchmarked jobs took {duration(prov['total_cpu_s'])} of CPU "
        f"time and {duration(prov['total_wall_s'])} of summed wall time; the largest resident memory "
        f"of a single job was {num(prov['peak_rss_mb'], 0)} MB. @tbl-compute breaks this down by "
        "rule (from Snakemake's benchmark files; the steps that render this document are not "
        "included).",
        "",
    ]
    rows = [[r["rule"].replace("_", "\\_"), str(r["jobs"]), num(r["wall_s_total"], 1),
             num(r["wall_s_max"], 1), num(r["max_rss_mb"], 0), num(r["cpu_s_total"], 1)]
            for r in prov["rules"]]
    rows.append(["**total**", str(prov["n_jobs"]), num(prov["total_wall_s"], 1), "", 
                 num(prov["peak_rss_mb"], 0), num(prov["total_cpu_s"], 1)])
    lines.append(markdown_table(rows, ["Rule", "Jobs", "Wall (s)", "Max job wall (s)",
                                       "Peak RSS (MB)", "CPU (s)"], "lrrrrr",
                                "Compute per Snakemake rule: number of jobs, summed and largest "
                                "wall time, peak resident memory of any job and summed CPU time.",
                                "tbl-compute"))
    return "\n".join(lines)


def ip_reference_text(ip: dict) -> str:
    """How IP's reference rows are drawn, as the paper's metric list states it."""
    if ip["reference"] == "per_ce":
        return (f"{ip['n_ref']} test samples of the target class drawn afresh for every "
                f"counterfactual (with replacement, from a class-balanced resample of at most "
                f"{ip['n_balanced']} test rows, as in the original implementation)")
    if ip["reference"] == "fixed":
        return (f"one fixed set of {ip['n_ref']} test samples of the target class, shared by all "
                "counterfactuals")
    return "all test samples of the target class"


def comparison_values(c1: pd.DataFrame, c3: pd.DataFrame, rel_tol: float) -> dict:
    """Counts of the comparison with the original (Table-1 classes, Table-3 means)."""
    out = comparison_summary(c1, c3)
    out["tol_pct"] = f"{100 * rel_tol:g}"
    out["n_disagree"] = out["n_cells"] - out["n_agree"]
    out["n_undefined"] = out["n_means"] - out["n_means_defined"]
    return out


def comparison_notes(c1: pd.DataFrame) -> str:
    """One item per Table-1 cell whose class differs from the original's, with what is known."""
    bad = c1[~c1["agree"].astype(bool)]
    if bad.empty:
        return "Every cell of @tbl-table1 has the class of the original's.\n"
    lines = []
    for _, r in bad.iterrows():
        known = r["known"] if isinstance(r["known"], str) and r["known"] else (
            "no documented difference of settings or data applies; only the random streams "
            "(initialisation, batches, drawn individuals and references) differ")
        lines.append(f"* **{r['label']}, {r['metric_label'].replace('*', chr(92) + '*')}**: "
                     f"{CLASS_TEXT[r['ours_class']]} here ({num(float(r['ours']))}), "
                     f"{CLASS_TEXT[r['original_class']]} in the original "
                     f"({num(float(r['original']))}). Known: {known}.")
    return "\n".join(lines) + "\n"


MNIST_ABSENT = ("MNIST is not part of this run's configuration, so the image experiments "
                "(the MNIST counterfactual figures) are omitted.")


# --------------------------------------------------------------------------------------------------
# Entry point


def _concat(paths, columns: list[str] | None = None) -> pd.DataFrame:
    """The Parquet files ``paths`` (only ``columns`` if given) as one frame."""
    frames = [read_parquet(p, columns=columns) for p in paths]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def fig1_values(stats: dict) -> dict:
    out = {}
    for key, st in stats.items():
        out[f"{key}_valid"] = num(100 * float(st["valid_share"]), 0)
        out[f"{key}_dist"] = num(float(st["dist_class1"]), 2)
        out[f"{key}_cost"] = num(float(st["cost"]), 2)
        out[f"{key}_acc"] = num(100 * float(st["train_acc"]), 1)
    return out


def compute(config: dict, table1_csv, performance_csv, table2_csv, comparison_csv,
            comparison_means_csv, robustness_paths, log_paths, ig_summary_paths, provenance_json,
            fig1_stats_json, ces_paths, fig2_stats_json=None, fig4_stats_json=None,
            fig5_stats_json=None, train_log_paths=()) -> dict:
    """``ces_paths``: the ``free`` family's ces.parquet files (validity and maturity values);
    ``train_log_paths``: every model's training log (skipped updates)."""
    from ctpaper.figures.maturity import load as load_logs

    t1 = read_csv(table1_csv)
    pt = read_csv(performance_csv)
    t2 = read_csv(table2_csv)
    c1 = read_csv(comparison_csv, keep_default_na=False, na_values=["", "NaN", "nan"])
    c3 = read_csv(comparison_means_csv)
    prov = read_json(provenance_json)
    rob = _concat(robustness_paths)
    logs = load_logs(log_paths)
    ig = _concat(ig_summary_paths)
    metas = {r["dataset"]: {"n_test": int(r["n_test"]), "n_pool": int(r["n_pool"])}
             for _, r in t2.iterrows()}
    datasets = [d for d in TABLE_ORDER if d in config["datasets"]]
    kinds = {dataset_kind(d) for d in datasets}
    n_runs = [int(v) for m in ("ip", "ip_star", "cost") for v in t1[f"{m}_n_runs"]
              if int(v) > 0]
    seeds = [int(s) for s in config["train"]["seeds"]]
    mnist = "mnist" in datasets
    e = config["eval"]
    free = family_eval_text(config, "free", datasets)
    prot = family_eval_text(config, "protected", datasets)
    vars_ = {
        "run": {
            "n_datasets": len(datasets),
            "datasets": join_words([LABELS[d] for d in datasets]),
            "kinds": join_words([k for k in ("synthetic", "tabular", "mnist") if k in kinds]).replace(
                "mnist", "image"),
            "n_runs": range_text(n_runs),
            "n_runs_free": free["n_runs"],
            "n_runs_prot": prot["n_runs"],
            "n_seeds": len(seeds),
            "seeds": join_words([str(s) for s in seeds]),
            "n_lambda": len(e["lambda_egy_grid"]),
            "lambda_grid": ", ".join(f"{v:g}" for v in e["lambda_egy_grid"]),
            "n_ind": free["n_individuals"],
            "n_ind_prot": prot["n_individuals"],
            "ind_kinds": free["kinds"],
            "n_epochs": config["model"]["n_epochs"],
            "hidden": config["model"]["hidden"],
            "synthetic_n_test": config["data"]["synthetic"]["n_test"],
            "config_hash": prov["config_hash"],
            "git_commit": (prov.get("git_commit") or "unknown")[:12],
            "cpu_time": duration(prov["total_cpu_s"]),
            "ci_level": f"{100 * float(config['tables']['ci_level']):g}",
            "pm_rule": PM_TEXT[config["tables"]["pm_rule"]],
            "eval_tau": free["tau"],
            "eval_T": free["T"],
            "prot_tau": prot["tau"],
            "prot_T": prot["T"],
            "ce_lr": f"{config['ce']['lr']:g}",
            "n_sigma": f"{config['data']['domain_n_sigma']:g}",
            "mmd_l": f"{e['mmd']['length_scale']:g}",
            "ip_n_ref": e["ip"]["n_ref"],
            "ip_text": ip_reference_text(e["ip"]),
            "adv_eps": f"{config['train']['adv_eps']:g}",
        },
        **table1_values(t1),
        "robust": robustness_values(rob) if len(rob) else robustness_values(
            pd.DataFrame(columns=["dataset", "model", "eps", "accuracy"])),
        "perf": performance_values(pt),
        "maturity": maturity_values(logs),
        "training": {**training_health_values(load_logs(train_log_paths) if train_log_paths
                                              else pd.DataFrame()),
                     "max_share": _setting(config["train"]["max_skipped_share"])},
        # only the columns validity_values needs (cheap: no metric columns)
        "validity": validity_values(_concat(ces_paths, CES_COLUMNS), free["tau"], free["T"]),
        "cmp": comparison_values(c1, c3, float(config["tables"]["compare_rel_tol"])),
        "fig1": {k: _setting(v) for k, v in config["figures"]["fig1"].items()},
        "fig1s": fig1_values(read_json(fig1_stats_json)),
        "fig2": {k: _setting(v) for k, v in config["figures"]["fig2"].items()},
        "fig45": {k: _setting(v) for k, v in config["figures"]["fig45"].items()},
    }
    if mnist:
        f2 = read_json(fig2_stats_json)
        vars_["fig2s"] = {"bl_valid": f2["BL"]["n_valid"], "ct_valid": f2["CT_protected"]["n_valid"]}
        f4 = read_json(fig4_stats_json)
        f5 = read_json(fig5_stats_json)
        vars_["fig45"].update(ct_valid=f4["n_valid"], bl_valid=f5["n_valid"], n_pairs=f4["n_pairs"])
    ig_v = ig_values(ig) if len(ig) else {}
    if ig_v:
        vars_["ig"] = ig_v
    blocks = {
        "repro_notes": repro_notes(config, metas),
        "comparison_notes": comparison_notes(c1),
        "provenance": provenance_block(prov),
        "mnist_plausibility": "{{< include /sections/mnist_plausibility.qmd >}}" if mnist else MNIST_ABSENT,
        "mnist_grids": "{{< include /sections/mnist_grids.qmd >}}" if mnist else "",
        "mnist_actionability": ("{{< include /sections/mnist_actionability.qmd >}}" if mnist and ig_v
                                else MNIST_ABSENT),
    }
    return {"vars": vars_, "blocks": blocks}


def write(config: dict, out_path, studies_json=None, **inputs) -> dict:
    """``studies_json``: {name: values json of a robustness study (ctpaper.studies.report)}, quoted
    by the paper as ``studies.<name>.<key>``."""
    from ctpaper.runtime import write_json

    values = compute(config, **inputs)
    if studies_json:
        from ctpaper.studies.report import compute_values, summary_words

        st = {name: read_json(p) for name, p in studies_json.items()}
        st["summary"] = summary_words(st["seed_study"], st["sensitivity"])
        st["compute"] = compute_values(read_json(inputs["provenance_json"]))
        values["vars"]["studies"] = st
    write_json(values, out_path)
    return values
