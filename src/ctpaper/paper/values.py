"""Values the paper's text quotes, computed from the run's tables, evaluation files and provenance.

``compute(config, PaperInputs(...))`` returns ``{"vars": {...}, "flags": {...}, "blocks": {...}}``:

* ``vars`` (nested; referenced in ``paper/paper.qmd`` as ``{{< var group.key >}}``): counts, averages,
  lists of dataset labels and settings derived from Table 1, the performance table, the robustness
  files, the ``free`` family's counterfactuals (validity and maturity), the training logs, the IG
  summary, the provenance record and ``config/published.yaml`` (the original's paper-text vs
  published settings: ``text.<key>``, ``published.<key>``; this run's: ``setting.<key>``). Nothing in
  the paper's text that depends on results is written by hand: every such number is one of these.
* ``flags`` (booleans of the same nesting): the conditions the paper's wording branches on, e.g.
  ``ip.verdicts.supports``, ``validity.ct_low``, ``repro.<note>.published``. This module computes
  no sentences: the paper source words every case as a conditional span
  (``[text]{.content-visible when-meta="flags.k"}``, see ``ctpaper.paper.render``).
* ``blocks`` (written to ``generated/<name>.md`` and included by the paper): lists and tables with
  one entry per row of a result (the notes on cells that disagree with the original, the compute
  table with its provenance paragraph) and the includes of the MNIST sections (``sections/*.qmd``,
  only when MNIST is part of the run, since Figures 2, 4 and 5 exist only then).

Verdict rule for a claim that CT improves a metric (stated in the paper): *supports* if CT is
significantly better (99% interval of the per-run difference excludes zero) on more than half of the
datasets and better on average; *partly supports* if it is significantly better on at least one
dataset and better on average; otherwise *does not support* (keys ``supports``, ``partly``,
``not``; ``cannot`` when there is nothing to assess).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import pandas as pd
import yaml

from ctpaper.comparison import synthetic_stream_is_original
from ctpaper.comparison import summary as comparison_summary
from ctpaper.config import dataset_kind
from ctpaper.names import DATASET_NAMES as TABLE_ORDER, KINDS, LABELS, ROLES
from ctpaper.runtime import read_csv, read_json, read_parquet
from ctpaper.tables import BL, CT, PM_TEXT, family_eval_text, markdown_table


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


VERDICTS = ("supports", "partly", "not", "cannot")


def verdict(n_sig_better: int, n_total: int, avg: float) -> str:
    """The verdict key of the paper's rule (module doc): 'supports', 'partly' (partly supports),
    'not' (does not support) or 'cannot' (nothing to assess); the paper's text words each key."""
    if n_total == 0 or math.isnan(avg):
        return "cannot"
    if n_sig_better > n_total / 2 and avg > 0:
        return "supports"
    if n_sig_better >= 1 and avg > 0:
        return "partly"
    return "not"


def verdict_flags(key: str) -> dict[str, bool]:
    """One flag per verdict key, true for ``key`` (the paper's conditional text picks the wording)."""
    return {k: k == key for k in VERDICTS}


def split_flags(tree: dict) -> tuple[dict, dict]:
    """``(values, flags)``: the booleans of the nested mapping ``tree`` (conditions the paper's text
    branches on) moved out of it into a mapping of the same shape."""
    values, flags = {}, {}
    for key, node in tree.items():
        if isinstance(node, dict):
            v, f = split_flags(node)
            values[key] = v
            if f:
                flags[key] = f
        elif isinstance(node, bool):
            flags[key] = node
        else:
            values[key] = node
    return values, flags


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
            "verdicts": verdict_flags(verdict(n_sig_better, n_total, avg)),
        }
    return out


def robustness_values(rob: pd.DataFrame) -> dict:
    eps_pos = sorted(e for e in rob["eps"].unique() if e > 0)
    sub = rob[rob["eps"] > 0]
    per = sub.groupby(["dataset", "model"])["accuracy"].mean().unstack("model")
    clean = rob[rob["eps"] == 0].groupby(["dataset", "model"])["accuracy"].mean().unstack("model")
    if per.empty or not {CT, BL} <= set(per.columns):
        return {"n": 0, "n_better": 0, "avg_gain_pp": "n/a", "verdict": "cannot",
                "verdicts": verdict_flags("cannot"),
                "eps_min": "n/a", "eps_max": "n/a", "better_list": "none", "max_gap_label": "n/a",
                "max_gap_pp": "n/a"}
    gain = (per[CT] - per[BL]) * 100
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
        "clean_gap_pp": num(float(((clean[CT] - clean[BL]) * 100).mean()), 1)
        if {CT, BL} <= set(clean.columns) else "n/a",
        # majority of datasets with higher average robust accuracy (no run-level uncertainty here)
        "verdict": verdict(n_better, len(gain), avg),
        "verdicts": verdict_flags(verdict(n_better, len(gain), avg)),
    }


def performance_values(pt: pd.DataFrame) -> dict:
    out = {}
    for model, key in ((TAG["bl"], "bl"), (TAG["ct_free"], "ct_free"), (TAG["ct_protected"], "ct_prot")):
        out[f"acc_{key}"] = num(float(pt[f"{model}_accuracy"].mean()), 3)
        out[f"f1_{key}"] = num(float(pt[f"{model}_f1"].mean()), 3)
    drop = (pt[f"{TAG['bl']}_accuracy"] - pt[f"{TAG['ct_free']}_accuracy"]) * 100
    i = drop.idxmax()
    out["max_drop_label"] = pt.loc[i, "label"]
    out["max_drop_pp"] = num(float(drop[i]), 1)
    out["ct_less_accurate"] = bool(drop[i] > 0)   # some dataset: CT (free) below BL
    out["n_within_1pp"] = int((drop.abs() <= 1.0).sum())
    out["n"] = int(len(pt))
    out["avg_drop_pp"] = num(float(drop.mean()), 1)
    single = [f"{MODEL_TEXT[model]} on {r['label']}" for _, r in pt.iterrows()
              for model in TAG.values()
              if int(r.get(f"{model}_min_pred_classes", 2)) < 2]
    out["single_class_list"] = join_words(single)
    out["single_class"] = bool(single)             # some model predicts one class only
    out["single_class_one"] = len(single) == 1
    return out


TAG = {r.key: r.tag for r in ROLES.values()}   # model column of the performance/IG/fig2 files
# the prose name of a model, by its tag (performance files) or key (training logs)
MODEL_TEXT = {**{r.tag: r.text_label for r in ROLES.values()},
              **{r.key: r.text_label for r in ROLES.values()}}


def training_health_values(logs: pd.DataFrame) -> dict:
    """How many training updates were skipped for a non-finite loss (every model's log): whether
    the logs record skipped updates at all (``logged``), whether any was skipped, and the model and
    epoch with the largest skipped share."""
    if not len(logs) or "skipped_share" not in logs:
        return {"logged": False, "skipped": False, "none_skipped": False, "n_models": 0,
                "max_skipped_pct": "n/a", "worst_model": "n/a", "worst_label": "n/a",
                "worst_epoch": "n/a"}
    worst = logs.loc[logs["skipped_share"].astype(float).idxmax()]
    share = float(worst["skipped_share"])
    n_models = int((logs.groupby(["dataset", "seed", "model"])["n_skipped"].sum() > 0).sum())
    return {"logged": True, "skipped": share > 0, "none_skipped": share <= 0, "n_models": n_models,
            "max_skipped_pct": pct(share), "worst_model": MODEL_TEXT[worst["model"]],
            "worst_label": LABELS[worst["dataset"]], "worst_epoch": int(worst["epoch"])}


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


def validity_values(ces: pd.DataFrame) -> dict:
    """Shares of valid and of mature test-time counterfactuals per dataset and model (CT, BL).

    ``ces``: rows of the ``free`` family's ces.parquet files (columns ``CES_COLUMNS``; ``seed`` is
    optional). A share is computed per (seed, lambda_egy, run) and then averaged, i.e. averaged over
    the energy weights and runs. Datasets on which a model's mature share is below ``LOW_MATURE`` are
    listed (``ct_low_list``, ``bl_low_list``; ``*_zero_list``: none mature at all), with flags for
    which model is rarely mature where; for those (dataset, model) pairs, the smallest share of
    immature counterfactuals among the valid ones (``imm_pct``) and the range of valid shares."""
    keys = [k for k in ("dataset", "model", "seed", "lambda_egy", "run") if k in ces.columns]
    per_run = ces.assign(valid=ces["valid"].astype(float), mature=ces["mature"].astype(float)) \
        .groupby(keys)[["valid", "mature"]].mean()
    share = per_run.groupby(["dataset", "model"]).mean()
    order = [d for d in TABLE_ORDER if d in set(share.index.get_level_values("dataset"))]

    def get(d, m, col):
        return float(share.loc[(d, m), col]) if (d, m) in share.index else math.nan

    def per_dataset(col):   # 'LS 100/100, ...' with no line break inside a pair (NBSP, word joiners)
        return join_words([f"{LABELS[d]}\u00a0{pct(get(d, CT, col))}\u2060/\u2060"
                           f"{pct(get(d, BL, col))}" for d in order])

    low = {m: {LABELS[d]: get(d, m, "mature") for d in order if get(d, m, "mature") < LOW_MATURE}
           for m in (CT, BL)}
    pairs = [(d, m) for m in (CT, BL) for d in order if get(d, m, "mature") < LOW_MATURE]
    avg = share.groupby("model").mean()

    def mean_of(m, col):
        return pct(float(avg.loc[m, col])) if m in avg.index else "n/a"

    out = {
        "valid_text": per_dataset("valid"),
        "mature_text": per_dataset("mature"),
        "valid_ct_avg": mean_of(CT, "valid"), "valid_bl_avg": mean_of(BL, "valid"),
        "mature_ct_avg": mean_of(CT, "mature"), "mature_bl_avg": mean_of(BL, "mature"),
        "low_pct": f"{100 * LOW_MATURE:g}",
        "n_ct_low": len(low[CT]), "n_bl_low": len(low[BL]),
        "both_low": bool(low[CT] and low[BL]), "none_low": not pairs,
        "ct_only_low": bool(low[CT] and not low[BL]), "bl_only_low": bool(low[BL] and not low[CT]),
        "one_pair": len(pairs) == 1,
    }
    for m in (CT, BL):
        zero = [lab for lab, v in low[m].items() if v <= 0]
        k = m.lower()
        out.update({f"{k}_low": bool(low[m]), f"{k}_low_list": join_words(list(low[m])),
                    f"{k}_zero_list": join_words(zero), f"{k}_all_zero": bool(low[m]) and
                    len(zero) == len(low[m]), f"{k}_some_zero": 0 < len(zero) < len(low[m])})
    return {**out, **_low_pair_values(ces, pairs, get)}


def _low_pair_values(ces: pd.DataFrame, pairs: list[tuple[str, str]], get) -> dict:
    """For the rarely mature (dataset, model) ``pairs``: the smallest share of immature (stopped at
    the budget) counterfactuals among the valid ones, as a floored percentage ``imm_pct`` (flags
    ``imm_all``: every valid one is immature; ``imm_undefined``: no valid one), and the range of
    the pairs' valid shares ``valid_range`` ('40%' or '40–60%')."""
    if not pairs:
        return {"imm_all": False, "imm_undefined": False, "imm_some": False, "imm_pct": "n/a",
                "valid_range": "n/a"}
    sub = ces[ces["valid"].astype(bool)]
    immature = 1 - sub.groupby(["dataset", "model"])["mature"].mean()
    imm = [float(immature.get((d, m), math.nan)) for d, m in pairs]
    imm = [v for v in imm if not math.isnan(v)]
    imm_min = min(imm) if imm else math.nan
    vals = [get(d, m, "valid") for d, m in pairs]
    lo, hi = pct(min(vals)), pct(max(vals))
    return {"imm_all": bool(imm) and imm_min >= 1, "imm_undefined": not imm,
            "imm_some": bool(imm) and imm_min < 1,
            "imm_pct": "n/a" if not imm else str(math.floor(100 * imm_min)),
            "valid_range": f"{lo}%" if lo == hi else f"{lo}–{hi}%"}


def ig_values(ig: pd.DataFrame) -> dict:
    cm = ig[(ig["dataset"] == "mnist") & (ig["source"] == "class_maps")]
    if cm.empty:
        return {}
    m = cm.groupby("model")["mean"].mean()
    bl, ct = float(m.get(TAG["bl"], math.nan)), float(m.get(TAG["ct_protected"], math.nan))
    return {"mnist_bl": num(bl, 3), "mnist_ct": num(ct, 3),
            "ct_lower": ct < bl, "ct_higher": ct > bl, "ct_equal": ct == bl,
            "mnist_ratio": num(ct / bl, 2) if bl > 0 else "n/a"}


# --------------------------------------------------------------------------------------------------
# Blocks


def _setting(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _get(config: dict, key: str):
    """The value at dotted ``key`` of ``config``."""
    node = config
    for part in key.split("."):
        node = node[part]
    return node


def _nest(flat: dict[str, object]) -> dict:
    """``{"a.b": v}`` -> ``{"a": {"b": v}}``."""
    out: dict = {}
    for key, value in flat.items():
        *head, last = key.split(".")
        node = out
        for part in head:
            node = node.setdefault(part, {})
        node[last] = value
    return out


def _quoted(value):
    """A value of config/published.yaml as the paper prints it: as written there ('5.0' stays
    '5.0'), booleans in YAML spelling, mappings element-wise, no value as 'none'."""
    if isinstance(value, dict):
        return {k: _quoted(v) for k, v in value.items()}
    if isinstance(value, bool):
        return "true" if value else "false"
    return "none" if value is None else str(value)


def _settings_tree(node):
    """Every scalar setting of a config (sub)tree, formatted as the paper prints settings."""
    if isinstance(node, dict):
        return {k: _settings_tree(v) for k, v in node.items() if not isinstance(v, list)}
    return "null" if node is None else _setting(node)


def load_published(path: str | Path) -> list[dict]:
    """The entries of config/published.yaml (a source file of the project, not a pipeline output)."""
    with open(path) as fh:
        return yaml.safe_load(fh)["settings"]


def published_values(config: dict, published: list[dict]) -> dict:
    """The reproduction notes' values: the paper-text and published values of every entry of
    config/published.yaml (``text.<key>``, ``published.<key>``), this run's settings
    (``setting.<key>``, every scalar of the config) and, per note, whether this run's values of all
    its keys are the published ones, the text's ones, or neither (flags ``repro.<note>.*``)."""
    notes: dict[str, list[dict]] = {}
    for entry in published:
        notes.setdefault(entry["note"], []).append(entry)
    status = {}
    for note, entries in notes.items():
        pub = all(_get(config, e["key"]) == e["published"] for e in entries)
        text = not pub and all(e["text"] is not None and _get(config, e["key"]) == e["text"]
                               for e in entries)
        status[note] = {"published": pub, "text": text, "differs": not (pub or text)}
    return {"text": _nest({e["key"]: _quoted(e["text"]) for e in published}),
            "published": _nest({e["key"]: _quoted(e["published"]) for e in published}),
            "setting": _settings_tree(config), "repro": status}


def repro_run_values(config: dict, metas: dict[str, dict]) -> dict:
    """The run-specific facts of the reproduction notes: test-set sizes (Table 2), Figure 1's
    settings, the synthetic data's sizes and whether its stream is the original's."""
    syn = config["data"]["synthetic"]
    return {
        "test_sizes": join_words([f"{LABELS[d]} {metas[d]['n_test']}" for d in TABLE_ORDER
                                  if d in metas]),
        "has_credit": "credit" in metas,
        "credit_pool": metas["credit"]["n_pool"] if "credit" in metas else "n/a",
        "fig1_settings": ", ".join(f"{k} = {_setting(v)}" for k, v in config["figures"]["fig1"].items()),
        "n_generate": f"{syn['n_generate']:,}", "n_pool": f"{syn['n_pool']:,}",
        "n_test": f"{syn['n_test']:,}",
        "synthetic_original": synthetic_stream_is_original(config),
        "synthetic_numpy": syn["rng"] == "numpy",
    }


def provenance_values(prov: dict) -> dict:
    """The provenance record as the paper quotes it: commit, environment, package versions and the
    compute totals (flags ``git``: run from a git checkout; ``dirty``: with uncommitted changes)."""
    return {
        "config_hash": prov["config_hash"], "commit": prov.get("git_commit") or "n/a",
        "git": bool(prov.get("git_commit")), "dirty": prov.get("git_dirty") is True,
        "python": prov["python"], "platform": prov["platform"],
        "packages": ", ".join(f"{k} {v}" for k, v in prov["packages"].items() if v != "absent"),
        "n_jobs": prov["n_jobs"], "cpu": duration(prov["total_cpu_s"]),
        "wall": duration(prov["total_wall_s"]), "peak_rss_mb": num(prov["peak_rss_mb"], 0),
    }


def compute_table(prov: dict) -> str:
    """Table of compute per Snakemake rule (from the provenance record), Markdown."""
    rows = [[r["rule"].replace("_", "\\_"), str(r["jobs"]), num(r["wall_s_total"], 1),
             num(r["wall_s_max"], 1), num(r["max_rss_mb"], 0), num(r["cpu_s_total"], 1)]
            for r in prov["rules"]]
    rows.append(["**total**", str(prov["n_jobs"]), num(prov["total_wall_s"], 1), "",
                 num(prov["peak_rss_mb"], 0), num(prov["total_cpu_s"], 1)])
    return markdown_table(rows, ["Rule", "Jobs", "Wall (s)", "Max job wall (s)", "Peak RSS (MB)",
                                 "CPU (s)"], "lrrrrr",
                          "Compute per Snakemake rule: number of jobs, summed and largest wall time, "
                          "peak resident memory of any job and summed CPU time.", "tbl-compute")


def ip_reference_flags(ip: dict) -> dict:
    """Which of the three ways of drawing IP's reference rows this run uses (``eval.ip.reference``)."""
    return {"ip_per_ce": ip["reference"] == "per_ce", "ip_fixed": ip["reference"] == "fixed",
            "ip_exact": ip["reference"] not in ("per_ce", "fixed")}


def comparison_values(c1: pd.DataFrame, c3: pd.DataFrame, rel_tol: float) -> dict:
    """Counts of the comparison with the original (Table-1 classes, Table-3 means)."""
    out = comparison_summary(c1, c3)
    out["tol_pct"] = f"{100 * rel_tol:g}"
    out["n_disagree"] = out["n_cells"] - out["n_agree"]
    out["n_undefined"] = out["n_means"] - out["n_means_defined"]
    return out


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


@dataclass(frozen=True)
class PaperInputs:
    """The files the paper's values are computed from (the paper_values rule's inputs).

    ``ces``: the ``free`` family's ces.parquet files (validity and maturity values); ``logs``: the CT
    models' training logs (maturity); ``train_logs``: every model's training log (skipped updates),
    both ``{(dataset, seed, model): log.parquet}`` (the rule knows whose log each file is);
    ``published``: config/published.yaml; ``fig2_stats``..``fig5_stats``: only with MNIST."""

    table1: str | Path
    performance: str | Path
    table2: str | Path
    comparison: str | Path
    comparison_means: str | Path
    provenance: str | Path
    fig1_stats: str | Path
    published: str | Path
    robustness: tuple = ()
    logs: Mapping = field(default_factory=dict)         # {(dataset, seed, model): log.parquet}
    ig: tuple = ()
    ces: tuple = ()
    train_logs: Mapping = field(default_factory=dict)   # {(dataset, seed, model): log.parquet}
    fig2_stats: str | Path | None = None
    fig4_stats: str | Path | None = None
    fig5_stats: str | Path | None = None


def run_values(config: dict, t1: pd.DataFrame, prov: dict, datasets: list[str]) -> dict:
    """The run's settings and sizes as the paper quotes them (group ``run``)."""
    kinds = {dataset_kind(d) for d in datasets}
    n_runs = [int(v) for m in ("ip", "ip_star", "cost") for v in t1[f"{m}_n_runs"] if int(v) > 0]
    seeds = [int(s) for s in config["train"]["seeds"]]
    e = config["eval"]
    free = family_eval_text(config, "free", datasets)
    prot = family_eval_text(config, "protected", datasets)
    return {
        "n_datasets": len(datasets),
        "datasets": join_words([LABELS[d] for d in datasets]),
        "kinds": join_words([KINDS[k].label for k in KINDS if k in kinds]),
        "mnist": "mnist" in datasets,
        "n_runs": range_text(n_runs), "n_runs_free": free["n_runs"], "n_runs_prot": prot["n_runs"],
        "n_seeds": len(seeds), "seeds": join_words([str(s) for s in seeds]),
        "n_lambda": len(e["lambda_egy_grid"]),
        "lambda_grid": ", ".join(f"{v:g}" for v in e["lambda_egy_grid"]),
        "n_ind": free["n_individuals"], "n_ind_prot": prot["n_individuals"],
        "ind_kinds": free["kinds"], "prot_kinds": prot["kinds"],
        "n_epochs": config["model"]["n_epochs"], "hidden": config["model"]["hidden"],
        "synthetic_n_test": config["data"]["synthetic"]["n_test"],
        "config_hash": prov["config_hash"],
        "git_commit": (prov.get("git_commit") or "unknown")[:12],
        "cpu_time": duration(prov["total_cpu_s"]),
        "ci_level": f"{100 * float(config['tables']['ci_level']):g}",
        "pm_rule": PM_TEXT[config["tables"]["pm_rule"]],
        "eval_tau": free["tau"], "eval_T": free["T"], "prot_tau": prot["tau"], "prot_T": prot["T"],
        "ce_lr": f"{config['ce']['lr']:g}",
        "n_sigma": f"{config['data']['domain_n_sigma']:g}",
        "mmd_l": f"{e['mmd']['length_scale']:g}",
        "ip_n_ref": e["ip"]["n_ref"], "ip_n_balanced": e["ip"]["n_balanced"],
        **ip_reference_flags(e["ip"]),
        "adv_eps": f"{config['train']['adv_eps']:g}",
    }


def mnist_values(inputs: PaperInputs) -> dict:
    """Counts of Figures 2, 4 and 5 (MNIST runs only)."""
    f2, f4, f5 = (read_json(p) for p in (inputs.fig2_stats, inputs.fig4_stats, inputs.fig5_stats))
    return {"fig2s": {"bl_valid": f2[TAG["bl"]]["n_valid"],
                      "ct_valid": f2[TAG["ct_protected"]]["n_valid"]},
            "fig45": {"ct_valid": f4["n_valid"], "bl_valid": f5["n_valid"], "n_pairs": f4["n_pairs"]}}


def compute(config: dict, inputs: PaperInputs) -> dict:
    """``{"vars", "flags", "blocks"}`` of the paper (module doc) from the run's files ``inputs``."""
    from ctpaper.figures.maturity import load as load_logs

    t1 = read_csv(inputs.table1)
    c1 = read_csv(inputs.comparison, keep_default_na=False, na_values=["", "NaN", "nan"])
    prov = read_json(inputs.provenance)
    rob = _concat(inputs.robustness)
    ig = _concat(inputs.ig)
    metas = {r["dataset"]: {"n_test": int(r["n_test"]), "n_pool": int(r["n_pool"])}
             for _, r in read_csv(inputs.table2).iterrows()}
    datasets = [d for d in TABLE_ORDER if d in config["datasets"]]
    mnist = "mnist" in datasets
    train_logs = load_logs(inputs.train_logs) if inputs.train_logs else pd.DataFrame()
    tree = {
        "run": run_values(config, t1, prov, datasets),
        **table1_values(t1),
        "robust": robustness_values(rob if len(rob) else
                                    pd.DataFrame(columns=["dataset", "model", "eps", "accuracy"])),
        "perf": performance_values(read_csv(inputs.performance)),
        "maturity": maturity_values(load_logs(inputs.logs)),
        "training": {**training_health_values(train_logs),
                     "max_share": _setting(config["train"]["max_skipped_share"])},
        # only the columns validity_values needs (cheap: no metric columns)
        "validity": validity_values(_concat(inputs.ces, CES_COLUMNS)),
        "cmp": comparison_values(c1, read_csv(inputs.comparison_means),
                                 float(config["tables"]["compare_rel_tol"])),
        "fig1": {k: _setting(v) for k, v in config["figures"]["fig1"].items()},
        "fig1s": fig1_values(read_json(inputs.fig1_stats)),
        "fig2": {k: _setting(v) for k, v in config["figures"]["fig2"].items()},
        "fig45": {k: _setting(v) for k, v in config["figures"]["fig45"].items()},
        **published_values(config, load_published(inputs.published)),
    }
    tree["repro"].update(repro_run_values(config, metas))
    tree["prov"] = provenance_values(prov)
    if mnist:
        extra = mnist_values(inputs)
        tree["fig2s"] = extra["fig2s"]
        tree["fig45"].update(extra["fig45"])
    ig_v = ig_values(ig) if len(ig) else {}
    if ig_v:
        tree["ig"] = ig_v
    tree["run"]["mnist_ig"] = bool(mnist and ig_v)
    vars_, flags = split_flags(tree)
    blocks = {
        "compute": compute_table(prov),
        "mnist_plausibility": "{{< include /sections/mnist_plausibility.qmd >}}" if mnist else "",
        "mnist_grids": "{{< include /sections/mnist_grids.qmd >}}" if mnist else "",
        "mnist_actionability": "{{< include /sections/mnist_actionability.qmd >}}" if mnist and ig_v
        else "",
    }
    return {"vars": vars_, "flags": flags, "blocks": blocks}


def write(config: dict, out_path, inputs: PaperInputs, studies_json=None) -> dict:
    """Compute the paper's values from ``inputs`` and write them to ``out_path`` (JSON).
    ``studies_json``: {name: values json of a robustness study (ctpaper.studies.report)}, quoted
    by the paper as ``studies.<name>.<key>``."""
    from ctpaper.runtime import write_json

    values = compute(config, inputs)
    # the section "How robust are the conclusions?" exists when the studies ran
    values["blocks"]["robustness"] = "{{< include /sections/robustness.qmd >}}" if studies_json else ""
    if studies_json:
        from ctpaper.studies.report import compute_values

        st = {name: read_json(p) for name, p in studies_json.items()}
        st["compute"] = compute_values(read_json(inputs.provenance))
        values["vars"]["studies"], values["flags"]["studies"] = split_flags(st)
    write_json(values, out_path)
    return values
