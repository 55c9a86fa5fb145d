"""The paper's tables (method 7): Table 1 (% reduction CT vs BL), Table 2 (settings), Table 3 (means and
intervals) and the predictive-performance table.

Each table is written as a CSV at full precision and as a Markdown pipe table (two decimals) whose last
line is the caption with the table's cross-reference label (``{#tbl-<name>}``), ready to be included by
the paper. Inputs follow the column contracts of ``docs/design.md``.

Runs: a run is a ``(seed, run)`` pair, so with several training seeds every seed's evaluation runs
count as separate runs of the comparison (the CT and BL values of a run are paired within a seed).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from ctpaper.config import dataset_kind, eval_settings
from ctpaper.names import DATASET_NAMES as TABLE_ORDER, KINDS, LABELS, ROLES
from ctpaper.runtime import read_json, read_parquet
from ctpaper.settings import TrainSettings

log = logging.getLogger(__name__)

# metric column -> (family it is taken from, printed name)
METRICS = {"ip": ("free", "IP"), "ip_star": ("free", "IP*"), "cost": ("protected", "Cost")}
TABLE1_COLUMNS = ("ip", "ip_star", "cost")          # column order of Table 1
TABLE3_METRICS = ("cost", "ip_star", "ip")          # row-block order of Table 3
# A metric whose typical BL value (median over BL's valid CEs) is zero at double precision, the
# scale of every metric being O(1) (MMD^2 of a kernel with maximum 1, distances of standardised
# features), gives no percentage reduction: CT / BL is then a ratio of rounding residues and of the
# few non-zero groups (IP* with a length-scale far below the data's distances: method 10.1 item 3).
DEGENERATE_TOL = float(np.finfo(np.float64).eps)
PM_TEXT = {"sd": "one standard deviation", "se": "one standard error",
           "2sd": "two standard deviations"}
# the two models of the CE tables (model column: the CT model of the family, and BL)
CT, BL = ROLES["ct_free"].label, ROLES["bl"].label
PERF_MODELS = tuple(r.tag for r in ROLES.values())               # model column of performance.parquet
PERF_LABELS = {r.tag: r.table_label for r in ROLES.values()}


# --------------------------------------------------------------------------------------------------
# Statistics (method 7.1 - 7.3)


def per_run_means(ces: pd.DataFrame, metric: str) -> pd.DataFrame:
    """m(r, o): per (seed, run) and model, the mean over lambda_egy of the per-(run, lambda) means of
    ``metric`` over valid CEs. NaN metric values (e.g. IP* of MMD groups with < 2 CEs) and
    configurations without valid CEs are skipped. Columns: the models (CT, BL); index (seed, run)."""
    df = ces.loc[ces["valid"].astype(bool)].copy()
    if "seed" not in df.columns:
        df["seed"] = 0
    lam = (df.groupby(["seed", "run", "lambda_egy", "model"], observed=True)[metric]
           .mean().rename("m").reset_index())
    lam = lam.dropna(subset=["m"])
    run = lam.groupby(["seed", "run", "model"], observed=True)["m"].mean()
    wide = run.unstack("model")
    for model in (CT, BL):
        if model not in wide.columns:
            wide[model] = np.nan
    return wide[[CT, BL]].sort_index()


def ci_quantiles(x: np.ndarray, level: float) -> tuple[float, float]:
    """Central ``level`` interval by numpy.quantile (method 'linear')."""
    if len(x) == 0:
        return math.nan, math.nan
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(np.asarray(x, dtype=float), [a, 1.0 - a], method="linear")
    return float(lo), float(hi)


def pm_value(ratios: np.ndarray, rule: str) -> float:
    """100 x the spread of the per-run ratios under ``tables.pm_rule`` (sd | se | 2sd)."""
    n = len(ratios)
    sd = float(np.std(ratios, ddof=1)) if n > 1 else math.nan
    if rule == "sd":
        return 100.0 * sd
    if rule == "se":
        return 100.0 * sd / math.sqrt(n) if n > 0 else math.nan
    if rule == "2sd":
        return 200.0 * sd
    raise ValueError(f"config key tables.pm_rule: unknown rule {rule!r} (sd | se | 2sd)")


def compare(m: pd.DataFrame, pm_rule: str, ci_level: float, what: str = "") -> dict:
    """CT vs BL over runs (method 7.3/7.4) from per-run means ``m`` (columns CT, BL)."""
    both = m.dropna(subset=[CT, BL])
    n_missing = len(m) - len(both)
    if n_missing:
        log.warning("%s: %d run(s) without valid CEs for CT or BL dropped", what, n_missing)
    zero = both[BL] == 0
    if zero.any():
        log.warning("%s: %d run(s) with m(r, BL) == 0 dropped (ratio undefined)", what, int(zero.sum()))
    kept = both.loc[~zero]
    ratio = (kept[CT] / kept[BL]).to_numpy(dtype=float)
    delta = (kept[CT] - kept[BL]).to_numpy(dtype=float)
    lb, ub = ci_quantiles(delta, ci_level)
    n = len(kept)
    return {
        "value": (1.0 - float(np.mean(ratio))) * 100.0 if n else math.nan,
        "pm": pm_value(ratio, pm_rule) if n else math.nan,
        "ci_lb": lb,
        "ci_ub": ub,
        "significant": bool(n and (lb > 0 or ub < 0)),
        "ct_mean": float(kept[CT].mean()) if n else math.nan,
        "bl_mean": float(kept[BL].mean()) if n else math.nan,
        "n_runs": n,
        "n_dropped": int(n_missing + zero.sum()),
    }


# --------------------------------------------------------------------------------------------------
# Formatting


def fmt(x: float, digits: int = 2) -> str:
    """Two-decimal fixed notation; values that would print as 0.00 but are not zero use 2-decimal
    scientific notation so that tiny quantities (IP* is an MMD) stay readable."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if x != 0 and abs(x) < 0.5 * 10 ** (-digits):
        return f"{x:.{digits}e}"
    return f"{x:.{digits}f}"


def markdown_table(rows: list[list[str]], header: list[str], align: str, caption: str | None = None,
                   label: str | None = None) -> str:
    """A pandoc/Quarto pipe table; ``align`` has one of l/r/c per column. Cells are padded so the
    separator dashes reflect the column widths (pandoc uses them as relative widths)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    widths = [max(w, 3) for w in widths]

    def line(cells):
        out = []
        for c, w, a in zip(cells, widths, align):
            out.append(c.rjust(w) if a == "r" else c.ljust(w))
        return "| " + " | ".join(out) + " |"

    sep = []
    for w, a in zip(widths, align):
        if a == "r":
            sep.append("-" * (w + 1) + ":")
        elif a == "c":
            sep.append(":" + "-" * w + ":")
        else:
            sep.append(":" + "-" * (w + 1))
    text = [line(header), "|" + "|".join(sep) + "|"] + [line(r) for r in rows]
    out = "\n".join(text) + "\n"
    if caption:
        out += f"\n: {caption}" + (f" {{#{label}}}" if label else "") + "\n"
    return out


def _escape(s: str) -> str:
    return s.replace("*", r"\*")


def _order(datasets: Iterable[str]) -> list[str]:
    datasets = list(datasets)
    return [d for d in TABLE_ORDER if d in datasets]


def _alphabetical(datasets: Iterable[str]) -> list[str]:
    return sorted(datasets, key=lambda d: LABELS[d].lower())


def _runs_text(ns: list[int]) -> str:
    ns = sorted(set(int(n) for n in ns))
    if not ns:
        return "0 runs"
    return f"{ns[0]} runs" if len(ns) == 1 else f"{ns[0]}–{ns[-1]} runs"


def runs_by_metric(metrics: Iterable[str], column) -> str:
    """'IP and IP\\*: 100 runs; Cost: 50 runs': the runs behind each metric's cells, metrics with
    equal counts named together. ``column(metric)`` gives the run counts of that metric's cells."""
    groups: dict[str, list[str]] = {}
    for m in metrics:
        groups.setdefault(_runs_text(list(column(m))), []).append(_escape(METRICS[m][1]))
    return "; ".join(f"{' and '.join(names)}: {runs}" for runs, names in groups.items())


def family_eval_text(config: dict, family: str, datasets: Iterable[str]) -> dict[str, str]:
    """The test-time tau, T, runs and individuals per lambda_egy of ``family`` as printed: the value
    of most configured datasets, with the datasets that differ in parentheses ("0.5 (Adult 0.95)");
    individuals by kind of dataset (synthetic / tabular / MNIST)."""
    datasets = _order(datasets)
    own = {d: eval_settings(config, d, family) for d in datasets}

    def text(key, among):
        vals = [own[d][key] for d in among]
        if not vals:
            return "–"
        common = max(sorted(set(vals)), key=vals.count)
        odd = [f"{LABELS[d]} {own[d][key]:g}" for d in among if own[d][key] != common]
        return f"{common:g}" + (f" ({', '.join(odd)})" if odd else "")

    kinds = [k for k in KINDS if any(dataset_kind(d) == k for d in datasets)]
    return {"tau": text("tau", datasets), "T": text("T", datasets),
            "n_runs": text("n_runs", datasets),
            "n_individuals": " / ".join(text("n_individuals",
                                             [d for d in datasets if dataset_kind(d) == k])
                                        for k in kinds),
            "kinds": " / ".join(KINDS[k].table_label for k in kinds)}


# --------------------------------------------------------------------------------------------------
# Table 1 and Table 3


def load_ces(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Concatenate ces.parquet files (several seeds of one dataset/family)."""
    frames = [read_parquet(p) for p in paths]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def degenerate(ces: pd.DataFrame, metric: str) -> bool:
    """Whether ``metric`` is zero at double precision for the typical valid CE of BL (its median
    over BL's valid CEs <= ``DEGENERATE_TOL``): its % reduction is then undefined."""
    bl = ces.loc[ces["valid"].astype(bool) & (ces["model"] == BL), metric].dropna()
    return bool(len(bl)) and float(np.abs(bl).median()) <= DEGENERATE_TOL


def comparisons(ces: Mapping[tuple[str, str], pd.DataFrame], pm_rule: str, ci_level: float) -> pd.DataFrame:
    """One row per (dataset, metric) with compare()'s fields. ``ces`` maps (dataset, family) to the
    CE frame of that dataset and family (all seeds)."""
    rows = []
    for (dataset, family), frame in ces.items():
        for metric, (fam, _) in METRICS.items():
            if fam != family:
                continue
            m = per_run_means(frame, metric)
            res = compare(m, pm_rule, ci_level, what=f"{dataset}/{family}/{metric}")
            res["degenerate"] = degenerate(frame, metric)
            if res["degenerate"]:
                log.warning("%s/%s/%s: BL's median is zero at double precision; the percentage "
                            "reduction is undefined", dataset, family, metric)
                res.update(value=math.nan, pm=math.nan, significant=False)
            rows.append({"dataset": dataset, "metric": metric, **res})
    return pd.DataFrame(rows)


def table1(comp: pd.DataFrame) -> pd.DataFrame:
    """Wide Table 1: one row per dataset (TABLE_ORDER) plus 'avg'; per metric value/pm/CI/asterisk."""
    datasets = _order(comp["dataset"].unique())
    rows = []
    for d in datasets:
        row = {"dataset": d, "label": LABELS[d]}
        for metric in TABLE1_COLUMNS:
            hit = comp[(comp["dataset"] == d) & (comp["metric"] == metric)]
            rec = hit.iloc[0].to_dict() if len(hit) else {}
            for key in ("value", "pm", "ci_lb", "ci_ub", "significant", "degenerate", "n_runs",
                        "n_dropped"):
                default = False if key in ("significant", "degenerate") else (0 if key.startswith("n_") else math.nan)
                row[f"{metric}_{key}"] = rec.get(key, default)
        rows.append(row)
    out = pd.DataFrame(rows)
    avg = {"dataset": "avg", "label": "Avg"}
    for metric in TABLE1_COLUMNS:
        vals = out[f"{metric}_value"].astype(float)
        avg[f"{metric}_value"] = float(vals.mean()) if vals.notna().any() else math.nan
        for key in ("pm", "ci_lb", "ci_ub"):
            avg[f"{metric}_{key}"] = math.nan
        avg[f"{metric}_significant"] = False
        avg[f"{metric}_degenerate"] = False
        avg[f"{metric}_n_runs"] = 0
        avg[f"{metric}_n_dropped"] = 0
    out = pd.concat([out, pd.DataFrame([avg])], ignore_index=True)
    for metric in TABLE1_COLUMNS:
        out[f"{metric}_significant"] = out[f"{metric}_significant"].astype(bool)
        out[f"{metric}_degenerate"] = out[f"{metric}_degenerate"].astype(bool)
        out[f"{metric}_n_runs"] = out[f"{metric}_n_runs"].astype(int)
        out[f"{metric}_n_dropped"] = out[f"{metric}_n_dropped"].astype(int)
    return out


def table1_markdown(t1: pd.DataFrame, pm_rule: str, ci_level: float) -> str:
    rows = []
    for _, r in t1.iterrows():
        cells = [r["label"]]
        for metric in TABLE1_COLUMNS:
            v = r[f"{metric}_value"]
            if r["dataset"] == "avg":
                cells.append(fmt(v))
            else:
                cell = f"{fmt(v)} ± {fmt(r[f'{metric}_pm'])}"
                cells.append(_escape(cell + ("*" if r[f"{metric}_significant"] else "")))
        rows.append(cells)
    header = ["Data"] + [METRICS[m][1].replace("*", r"\*") + " (%)" for m in TABLE1_COLUMNS]
    cells = t1.loc[t1["dataset"] != "avg"]
    runs = runs_by_metric(TABLE1_COLUMNS, lambda m: cells[f"{m}_n_runs"])
    level = f"{100 * ci_level:g}"
    caption = (
        "Percentage reduction of implausibility (IP, IP\\*; `free` models) and cost (`protected` "
        "models) achieved by counterfactual training (CT) relative to the baseline (BL), "
        "100 × (1 − mean over runs of the CT/BL ratio of per-run means); positive values favour CT. "
        f"± is 100 × {PM_TEXT[pm_rule]} of the per-run ratios ({runs} per cell); "
        f"\\* marks cells whose {level}% interval of the per-run CT − BL difference excludes zero. "
        "Avg is the plain mean of the dataset values."
    )
    return markdown_table(rows, header, "lrrr", caption, "tbl-table1")


def table3(comp: pd.DataFrame) -> pd.DataFrame:
    """Long Table 3: per metric (Cost, IP*, IP) and dataset (alphabetical) CT/BL means and CI of delta."""
    rows = []
    for metric in TABLE3_METRICS:
        sub = comp[comp["metric"] == metric]
        for d in _alphabetical(sub["dataset"].unique()):
            r = sub[sub["dataset"] == d].iloc[0]
            rows.append({"metric": metric, "metric_label": METRICS[metric][1], "dataset": d,
                         "label": LABELS[d], "ct": r["ct_mean"], "bl": r["bl_mean"],
                         "ci_lb": r["ci_lb"], "ci_ub": r["ci_ub"],
                         "significant": bool(r["significant"]), "n_runs": int(r["n_runs"])})
    return pd.DataFrame(rows, columns=["metric", "metric_label", "dataset", "label", "ct", "bl",
                                       "ci_lb", "ci_ub", "significant", "n_runs"])


def table3_markdown(t3: pd.DataFrame, ci_level: float) -> str:
    rows = [[_escape(r["metric_label"]), r["label"], fmt(r["ct"]), fmt(r["bl"]), fmt(r["ci_lb"]),
             fmt(r["ci_ub"])] for _, r in t3.iterrows()]
    level = f"{100 * ci_level:g}"
    caption = (f"Mean over runs of the per-run means of each metric for CT and BL, and the lower (LB) "
               f"and upper (UB) bounds of the {level}% interval of the per-run difference CT − BL "
               f"({runs_by_metric(TABLE3_METRICS, lambda m: t3.loc[t3['metric'] == m, 'n_runs'])}"
               "). Cost uses the `protected` models, IP and IP\\* the `free` "
               "models. Values below 0.005 in magnitude are printed in scientific notation.")
    return markdown_table(rows, ["Metric", "Data", CT, BL, "LB", "UB"], "llrrrr", caption,
                          "tbl-table3")


# --------------------------------------------------------------------------------------------------
# Predictive performance


def performance(perf: pd.DataFrame) -> pd.DataFrame:
    """Wide table: per dataset, mean (and SD over seeds) of test accuracy and macro-F1 per model."""
    rows = []
    for d in _order(perf["dataset"].unique()):
        sub = perf[perf["dataset"] == d]
        row = {"dataset": d, "label": LABELS[d], "n_seeds": int(sub["seed"].nunique())}
        for model in PERF_MODELS:
            s = sub[sub["model"] == model]
            for metric in ("accuracy", "f1"):
                vals = s[metric].astype(float)
                row[f"{model}_{metric}"] = float(vals.mean()) if len(vals) else math.nan
                row[f"{model}_{metric}_sd"] = float(vals.std(ddof=1)) if len(vals) > 1 else math.nan
            # fewest distinct test-set predictions over seeds: 1 flags a single-class model
            row[f"{model}_min_pred_classes"] = int(s["n_pred_classes"].min()) if len(s) else 0
        rows.append(row)
    return pd.DataFrame(rows)


def performance_markdown(pt: pd.DataFrame) -> str:
    multi = bool((pt["n_seeds"] > 1).any())
    rows = []
    for _, r in pt.iterrows():
        cells = [r["label"]]
        for metric in ("accuracy", "f1"):
            for model in PERF_MODELS:
                v = fmt(r[f"{model}_{metric}"])
                if multi:
                    v += f" ± {fmt(r[f'{model}_{metric}_sd'])}"
                cells.append(v)
        rows.append(cells)
    header = ["Data"] + [f"Acc. {PERF_LABELS[m]}" for m in PERF_MODELS] + \
        [f"F1 {PERF_LABELS[m]}" for m in PERF_MODELS]
    seeds = ("; mean ± SD over training seeds" if multi else "")
    caption = ("Predictive performance on the held-out test sets: accuracy and macro-averaged F1 of "
               "the baseline (BL) and of counterfactual training without (`free`) and with "
               f"(`protected`) mutability constraints{seeds}.")
    return markdown_table(rows, header, "l" + "r" * 6, caption, "tbl-performance")


# --------------------------------------------------------------------------------------------------
# Table 2 (settings, from the config and the prepared data)


def domain_text(dataset: str) -> str:
    return "(-1.0, 1.0)" if dataset_kind(dataset) == "image" else "inferred"


def table2(config: dict, metas: Mapping[str, dict]) -> pd.DataFrame:
    """Per-dataset settings (Table 2) plus the shared Note-1 settings as repeated columns."""
    rows = []
    shared = shared_settings(config, list(metas))
    for d in _order(metas):
        s = TrainSettings.from_config(config, d).to_dict()
        meta = metas[d]
        rows.append({"dataset": d, "label": LABELS[d], "n_pool": int(meta["n_pool"]),
                     "n_train": int(meta["n_train"]), "n_val": int(meta["n_val"]),
                     "n_test": int(meta["n_test"]), "batch_size": int(s["batch_size"]),
                     "domain": domain_text(d), "tau": float(s["tau"]), "nce": int(s["nce"]),
                     "lambda_reg": float(s["lambda_reg"]),
                     **{f"shared.{k}": v for k, v in shared.items()}})
    return pd.DataFrame(rows)


def shared_settings(config: dict, datasets: Iterable[str]) -> dict:
    """Settings shared by all datasets (paper Note 1, training; and the test-time generator, whose
    tau, T, runs and individuals are given per family with the datasets that differ)."""
    t, e = config["train"], config["eval"]
    fam = {f: family_eval_text(config, f, datasets) for f in ("free", "protected")}
    return {
        "model": f"{config['model']['arch'].upper()}, 1 hidden layer, {config['model']['hidden']} "
                 "units, ReLU",
        "objective": t["objective"], "generator": t["generator"], "burnin": t["burnin"],
        "convergence": t["convergence"], "tau_default": t["tau"], "T": t["T"],
        "lambda_cst": t["lambda_cst"], "lambda_egy": t["lambda_egy"], "ce_lr": config["ce"]["lr"],
        "lambda_clf": t["lambda_clf"], "lambda_div": t["lambda_div"],
        "lambda_reg_default": t["lambda_reg"], "lambda_adv": t["lambda_adv"],
        "nce_default": t["nce"], "model_lr": config["model"]["lr"],
        "n_epochs": config["model"]["n_epochs"], "adv_eps": t["adv_eps"],
        "domain_n_sigma": config["data"]["domain_n_sigma"],
        "eval_generator": e["generator"], "eval_lambda_cst": e["lambda_cst"],
        "eval_lambda_egy_grid": ", ".join(f"{v:g}" for v in e["lambda_egy_grid"]),
        "eval_ip_reference": e["ip"]["reference"],
        **{f"eval_{f}_{k}": v for f, d in fam.items() for k, v in d.items()},
    }


def table2_markdown(t2: pd.DataFrame, config: dict) -> str:
    rows = [[r["label"], str(r["n_pool"]), str(r["n_test"]), str(r["batch_size"]), r["domain"],
             f"{r['tau']:g}", str(r["nce"]), f"{r['lambda_reg']:g}"] for _, r in t2.iterrows()]
    header = ["Data", "No. Train", "No. Test", "Batch", "Domain", "τ", "nce", r"$\lambda_\mathrm{reg}$"]
    n_sigma = config["data"]["domain_n_sigma"]
    cap1 = ("Per-dataset settings of counterfactual training. No. Train is the pool (training plus "
            "validation rows); No. Test is the size of the held-out test set actually used for "
            "every evaluation here (the original's Table 2 prints round(0.2 × n_train) instead). "
            "Domain: per-feature bounds inferred from the pool as mean ± "
            f"{n_sigma:g} SD widened to the observed range, or fixed pixel bounds. "
            "τ is the training decision threshold, nce the number of counterfactuals per epoch.")
    out = markdown_table(rows, header, "lrrrlrrr", cap1, "tbl-table2")
    s = shared_settings(config, t2["dataset"])
    gen = {"ecco": "ECCo", "generic": "Generic", "revise": "REVISE"}
    shared = [
        ("Model", s["model"]),
        ("Objective / burn-in", f"{s['objective']} / {s['burnin']:g}"),
        ("Optimiser, learning rate, epochs", f"Adam, {s['model_lr']:g}, {s['n_epochs']}"),
        (r"Loss weights $\lambda_\mathrm{clf}$, $\lambda_\mathrm{div}$, $\lambda_\mathrm{reg}$, "
         r"$\lambda_\mathrm{adv}$",
         f"{s['lambda_clf']:g}, {s['lambda_div']:g}, {s['lambda_reg_default']:g} (default), "
         f"{s['lambda_adv']:g}"),
        ("nce (default)", str(s["nce_default"])),
        ("Radius of nascent adversarial examples (L∞)", f"{s['adv_eps']:g}"),
        ("Training search: generator, convergence", f"{gen[s['generator']]}, {s['convergence']}"),
        ("Training search: τ (default), T", f"{s['tau_default']:g}, {s['T']}"),
        (r"Training search: $\lambda_\mathrm{cst}$, $\lambda_\mathrm{egy}$",
         f"{s['lambda_cst']:g}, {s['lambda_egy']:g}"),
        ("Training search: optimiser, step size η", f"SGD, {s['ce_lr']:g}"),
        ("Test-time search: generator", gen[s["eval_generator"]]),
        (r"Test-time search: $\lambda_\mathrm{cst}$; $\lambda_\mathrm{egy}$ grid",
         f"{s['eval_lambda_cst']:g}; {s['eval_lambda_egy_grid']}"),
        *[(f"Test-time search and evaluation, `{f}` family ({what}): τ; T; runs; individuals per "
           f"$\\lambda_\\mathrm{{egy}}$ ({s[f'eval_{f}_kinds']})",
           f"{s[f'eval_{f}_tau']}; {s[f'eval_{f}_T']}; {s[f'eval_{f}_n_runs']}; "
           f"{s[f'eval_{f}_n_individuals']}")
          for f, what in (("free", "IP, IP\\*"), ("protected", "Cost"))],
        ("IP reference rows", {"per_ce": "drawn for every counterfactual",
                               "fixed": "one fixed set per class",
                               "exact": "all test rows of the target class"}[s["eval_ip_reference"]]),
    ]
    out += ("\nSettings shared by all datasets (the original's Notes 1 and 2, with the values applied "
            "in this run; the reproduction notes list where they differ from the paper text):\n\n")
    out += "\n".join(f"* {name}: {value}" for name, value in shared) + "\n"
    return out


# --------------------------------------------------------------------------------------------------
# Writers used by the rule scripts


def _write(df: pd.DataFrame, md: str, csv_path: str | Path, md_path: str | Path) -> None:
    from ctpaper.runtime import atomic_path

    with atomic_path(csv_path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.17g")
    with atomic_path(md_path) as tmp:
        tmp.write_text(md)


def _ces_by_dataset(ces_paths: Iterable[str | Path]) -> dict[tuple[str, str], pd.DataFrame]:
    """Group CE frames (all seeds) by their (dataset, family) columns."""
    frame = load_ces(ces_paths)
    return {(str(d), str(f)): g for (d, f), g in frame.groupby(["dataset", "family"], observed=True)}


def make_table(name: str, inputs: list[str], csv_path: str, md_path: str, config: dict) -> pd.DataFrame:
    """Build table ``name`` from the rule's input files (paths follow workflow/rules/common.smk)."""
    if name in ("table1", "table3"):
        tcfg = config["tables"]
        pm_rule, ci_level = tcfg["pm_rule"], float(tcfg["ci_level"])
        comp = comparisons(_ces_by_dataset(p for p in inputs if p.endswith("ces.parquet")), pm_rule,
                           ci_level)
        if name == "table1":
            df = table1(comp)
            md = table1_markdown(df, pm_rule, ci_level)
        else:
            df = table3(comp)
            md = table3_markdown(df, ci_level)
    elif name == "table2":
        metas = {}
        for p in inputs:
            meta = read_json(p)
            metas[meta["dataset"]] = meta
        df = table2(config, metas)
        md = table2_markdown(df, config)
    elif name == "performance":
        perf = pd.concat([read_parquet(p) for p in inputs], ignore_index=True)
        df = performance(perf)
        md = performance_markdown(df)
    else:
        raise ValueError(f"unknown table {name!r}")
    _write(df, md, csv_path, md_path)
    log.info("table %s: %d rows -> %s, %s", name, len(df), csv_path, md_path)
    return df
