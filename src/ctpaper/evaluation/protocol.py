"""Test-time counterfactual evaluation: sampling protocol, batched search and per-CE metrics.

Implements method 6.1-6.7 for one dataset, training seed and experiment family:

* models: CT = ``ct_{family}``, BL = ``bl``, both explained under the family's mutability;
* generator (6.2): ECCo with the family's (and dataset's) tau and T (``config.eval_settings``:
  ``eval.tau``/``eval.T`` overridden by ``eval.families``), ``ce.lr``, ``eval.lambda_cst`` and each
  ``eval.lambda_egy_grid`` value in turn; Adult/Credit one-hot blocks reconstructed by arg-max and
  excluded from clamping;
* sampling (6.3): per lambda configuration n_ind (f_i, t_i) pairs drawn once and shared by both
  models and all runs (unless ``eval.redraw_pairs_per_run``); per run and model a uniformly chosen
  test point that *this* model predicts as f_i (f_i redrawn when the model predicts no test point as
  f_i); one batched search per (model, lambda) over all runs x individuals;
* metrics: validity, IP (6.5), IP* (6.6, ``free`` family only), cost and redundancy (6.7), steps,
  maturity.

Choices the method leaves open (documented here and in the output):

* IP reference rows (``eval.ip.reference``): ``per_ce`` (default, the original's): drawn afresh for
  every counterfactual (``metrics.implausibility_resampled``) from a generator per (family, model,
  lambda); ``fixed``: **one** set per target class t per dataset evaluation (dataset, training seed),
  ``eval.ip.n_ref`` test rows with true label t drawn uniformly with replacement, shared by CT and BL,
  all lambda configurations, runs and both families; ``exact``: all test rows with true label t.
* f_i redraw: uniform over the classes != t_i that the model predicts for at least one test point
  (= rejection sampling from the uniform over classes != t_i). If the model predicts only t_i, the
  pair (f_i, t_i) is redrawn for that model (f_i uniform over predicted classes, t_i != f_i) with a
  warning; ``factual_class``/``target`` record what was used.

Randomness: every draw comes from a generator seeded by ``derive_seed(seed.global, ...)`` with the
dataset, family, training seed, model, lambda index, run and target class as needed, so outputs are
reproducible byte for byte and independent of evaluation order. A model's rows are also
independent of the model evaluated beside it (every draw that differs between models is keyed by the
model, and IP* batches each model's groups apart), so one model can be evaluated alone and merged
with the other's rows of an earlier evaluation (``run_evaluate_ces(reuse=)``).
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from ctpaper import names
from ctpaper.evaluation import metrics
from ctpaper.runtime import progress
from ctpaper.settings import EvalSettings  # noqa: F401  (re-exported: evaluation.stacked)

log = logging.getLogger("ctpaper.evaluation")

# the CT model of the evaluated family and BL, under their short labels (the ``model`` column)
CT_LABEL, BL_LABEL = names.ct_role("free").label, names.BL.label
MODEL_LABELS = (CT_LABEL, BL_LABEL)
CES_COLUMNS = ["dataset", "family", "seed", "model", "lambda_egy", "run", "individual",
               "factual_index", "factual_class", "target", "valid", "mature", "steps", "ip", "cost",
               "redundancy", "ip_star"]
MMD_COLUMNS = ["model", "lambda_egy", "run", "target", "n_ce", "n_ref", "mmd2", "ip_star"]


# ---- seeding -------------------------------------------------------------------------------------

def derive_seed(base: int, *keys) -> int:
    """A 63-bit seed from ``base`` and any keys (str/int/float), stable across runs and platforms."""
    blob = "|".join([str(int(base)), *map(str, keys)]).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "little") & (2 ** 63 - 1)


def numpy_rng(base: int, *keys) -> np.random.Generator:
    return np.random.default_rng(derive_seed(base, *keys))


def torch_generator(base: int, *keys) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(base, *keys))


# ---- settings ------------------------------------------------------------------------------------

# EvalSettings (the test-time settings of one family and data set) lives in ctpaper.settings.


# ---- sampling protocol (6.3) ---------------------------------------------------------------------

def draw_pairs(n: int, n_classes: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n (factual class, target) pairs: f uniform over classes, t uniform over classes != f."""
    if n_classes < 2:
        raise ValueError("need at least two classes")
    f = rng.integers(0, n_classes, n)
    t = (f + rng.integers(1, n_classes, n)) % n_classes
    return f.astype(np.int64), t.astype(np.int64)


def choose_factuals(pred: np.ndarray, f: np.ndarray, t: np.ndarray, n_classes: int,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each pair a test point that the model predicts as f_i, uniformly, with replacement.

    ``pred`` holds the model's predicted class per test row. Returns (row index, f, t) after the
    redraws described in the module docstring.
    """
    pred = np.asarray(pred, dtype=np.int64)
    counts = np.bincount(pred, minlength=n_classes)
    f, t = f.astype(np.int64).copy(), t.astype(np.int64).copy()
    for i in np.flatnonzero(counts[f] == 0):
        cands = [c for c in range(n_classes) if c != t[i] and counts[c] > 0]
        if cands:
            f[i] = cands[int(rng.integers(0, len(cands)))]
        else:
            log.warning("model predicts only class %d; redrawing pair %d", t[i], i)
            predicted = np.flatnonzero(counts > 0)
            f[i] = predicted[int(rng.integers(0, len(predicted)))]
            t[i] = (f[i] + int(rng.integers(1, n_classes))) % n_classes
    order = np.argsort(pred, kind="stable")                 # rows grouped by predicted class
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    u = rng.integers(0, counts[f])                          # uniform position within class f_i
    return order[starts[f] + u], f, t


def ip_references(X: torch.Tensor, y: torch.Tensor, n_classes: int, n_ref: int | None,
                  seed_global: int, *keys) -> dict[int, metrics.L1MeanDistance]:
    """One IP reference set per class: n_ref rows with that true label, uniform with replacement
    (``eval.ip.reference: fixed``), or all of them when ``n_ref`` is None (``exact``)."""
    refs = {}
    y_np = y.numpy()
    for c in range(n_classes):
        rows = np.flatnonzero(y_np == c)
        if len(rows) == 0:
            log.warning("no evaluation rows with true label %d: IP is NaN for that target", c)
            continue
        idx = rows if n_ref is None else numpy_rng(seed_global, *keys, "ip_ref", c).choice(
            rows, size=n_ref, replace=True)
        refs[c] = metrics.L1MeanDistance(X[torch.from_numpy(idx)])
    return refs


def _clamp_mask(n_features: int, blocks: list[list[int]]) -> torch.Tensor | None:
    if not blocks:
        return None
    mask = torch.ones(n_features, dtype=torch.bool)
    for b in blocks:
        mask[list(b)] = False
    return mask


# ---- the evaluation ------------------------------------------------------------------------------

def evaluate_counterfactuals(ds, models: dict[str, torch.nn.Module], config: dict, dataset: str,
                             family: str, seed: int, labels: Sequence[str] = MODEL_LABELS
                             ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Generate and score the test-time CEs of one dataset/seed/family.

    ``ds`` is a ``ctpaper.data.io.Dataset``; ``models`` maps the labels evaluated ("CT", "BL") to
    classifiers. Returns (ces frame, mmd frame) with the column contracts of docs/design.md.
    ``labels``: the models to evaluate (a subset of ``MODEL_LABELS``, in its order); each model's rows are the same whether it
    is evaluated alone or with the other (every draw is keyed by its model, IP* batches each model's
    groups apart), so ``merge_model_rows`` of two single-model evaluations equals the joint one.
    """
    from ctpaper.search import search

    if family not in ("free", "protected"):
        raise ValueError(f"unknown family {family!r}")
    unknown = [m for m in labels if m not in MODEL_LABELS]
    if unknown:
        raise ValueError(f"unknown model labels {unknown}; known: {MODEL_LABELS}")
    labels = [m for m in MODEL_LABELS if m in labels]
    if not labels:
        raise ValueError(f"no model to evaluate: labels must name some of {MODEL_LABELS}")
    missing = [m for m in labels if m not in models]
    if missing:
        raise ValueError(f"models missing: {missing}")
    s = EvalSettings.from_config(config, dataset, family)
    K, D = ds.n_classes, ds.n_features
    X, y = ds.X_test, ds.y_test
    lower, upper = ds.lower, ds.upper
    mut = ds.mutability(family)
    blocks = ds.categorical_blocks or None
    clamp_mask = _clamp_mask(D, ds.categorical_blocks)
    key = (dataset, family, int(seed))
    refs = shared_ip_references(ds, s, dataset, seed)
    for model in models.values():
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
    preds = {m: metrics.predict(models[m], X).numpy() for m in labels}

    frames, x_cfs = [], {}
    for li, lam in progress(enumerate(s.lambda_egy_grid), "lambda_egy (searches)", len(s.lambda_egy_grid)):
        shared = None if s.redraw_pairs_per_run else draw_pairs(
            s.n_individuals, K, numpy_rng(s.seed_global, *key, "pairs", li))
        for m in labels:
            t0 = time.perf_counter()
            rows, fs, ts = [], [], []
            for r in range(s.n_runs):
                f, t = shared if shared is not None else draw_pairs(
                    s.n_individuals, K, numpy_rng(s.seed_global, *key, "pairs", li, r))
                idx, f, t = choose_factuals(preds[m], f, t, K,
                                            numpy_rng(s.seed_global, *key, "factuals", m, li, r))
                rows.append(idx)
                fs.append(f)
                ts.append(t)
            idx = torch.from_numpy(np.concatenate(rows))
            target = torch.from_numpy(np.concatenate(ts))
            x = X[idx]
            res = search(models[m], x, target, s.search_config(lam), lower, upper,
                         mutability=mut, categorical_blocks=blocks, clamp_mask=clamp_mask,
                         generator=torch_generator(s.seed_global, *key, "search", m, li),
                         track_adversarial=False)   # the metrics read x_cf, mature and steps only
            x_cf = res.x_cf.detach()
            n = len(idx)
            df = pd.DataFrame({
                "dataset": dataset, "family": family, "seed": np.int64(seed), "model": m,
                "lambda_egy": np.float64(lam),
                "run": np.repeat(np.arange(s.n_runs, dtype=np.int64), s.n_individuals),
                "individual": np.tile(np.arange(s.n_individuals, dtype=np.int64), s.n_runs),
                "factual_index": idx.numpy().astype(np.int64),
                "factual_class": np.concatenate(fs).astype(np.int64),
                "target": target.numpy().astype(np.int64),
                "valid": metrics.validity(models[m], x_cf, target).numpy(),
                "mature": res.mature.numpy().astype(bool),
                "steps": res.steps.numpy().astype(np.int64),
                "ip": _ip(x_cf, target, refs, ds, s, key, m, li),
                "cost": metrics.cost(x_cf, x).numpy(),
                "redundancy": metrics.redundancy(x_cf, x, s.redundancy_tol).numpy(),
                "ip_star": np.full(n, np.nan),
            })
            frames.append(df)
            if family == "free":          # the CEs themselves are needed only for IP*
                x_cfs[(m, li)] = x_cf
            log.info("family=%s model=%s lambda_egy=%g: %d CEs, valid %.3f, mature %.3f, "
                     "mean steps %.1f (%.1f s)", family, m, lam, n, df["valid"].mean(),
                     df["mature"].mean(), df["steps"].mean(), time.perf_counter() - t0)
    ces = pd.concat(frames, ignore_index=True)
    if family == "free":
        t0 = time.perf_counter()
        mmd = _ip_star(ces, x_cfs, ds, s, key, labels)
        log.info("IP*: %d groups (%.1f s)", len(mmd), time.perf_counter() - t0)
    else:
        mmd = empty_mmd_frame()
    return ces[CES_COLUMNS], mmd


def shared_ip_references(ds, s: EvalSettings, dataset: str, seed: int):
    """The IP reference sets shared by every CE of a (dataset, seed) (``fixed``: n_ref rows per
    class; ``exact``: all target-class rows), or None for ``per_ce`` (drawn for each CE in ``_ip``)."""
    if s.ip_reference == "per_ce":
        return None
    n_ref = s.n_ref if s.ip_reference == "fixed" else None
    return ip_references(ds.X_test, ds.y_test, ds.n_classes, n_ref, s.seed_global, dataset, int(seed))


def _ip(x_cf: torch.Tensor, target: torch.Tensor, refs: dict[int, metrics.L1MeanDistance] | None,
        ds, s: EvalSettings, key: tuple, model: str, li: int) -> np.ndarray:
    """IP of every CE of one (model, lambda) block: against reference rows drawn for each CE
    (``refs`` None, ``per_ce``) or against the shared set of its own target (NaN if missing)."""
    if refs is None:
        rng = numpy_rng(s.seed_global, *key, "ip", model, li)
        return metrics.implausibility_resampled(x_cf, target, ds.X_test, ds.y_test, ds.n_classes,
                                                s.n_balanced, s.n_ref, rng).numpy()
    return metrics.implausibility_by_target(x_cf, target, refs).numpy()


def empty_mmd_frame() -> pd.DataFrame:
    return pd.DataFrame({"model": pd.Series([], dtype=object),
                         "lambda_egy": pd.Series([], dtype=np.float64),
                         "run": pd.Series([], dtype=np.int64), "target": pd.Series([], dtype=np.int64),
                         "n_ce": pd.Series([], dtype=np.int64), "n_ref": pd.Series([], dtype=np.int64),
                         "mmd2": pd.Series([], dtype=np.float64),
                         "ip_star": pd.Series([], dtype=np.float64)})


def _ip_star(ces: pd.DataFrame, x_cfs: dict, ds, s: EvalSettings, key: tuple,
             labels: Sequence[str] = MODEL_LABELS, runs_per_block: int = 10) -> pd.DataFrame:
    """IP* per (model, lambda, run, target) group (6.6) of the models ``labels`` (the order of their
    blocks in ``ces``); fills ``ces.ip_star`` in place.

    Groups are evaluated in blocks of ``runs_per_block`` runs, each model's groups in batches of
    their own: a model's values do not depend on which other models are evaluated with it (the
    study evaluations score a variant's CT alone and take the BL's rows from the main results).
    Each Y sample is drawn once per (lambda, run, target), for every target class, and its Y-Y
    kernel term computed once for all models; memory stays O(block x classes x n_samples x D).
    """
    K, n_s, ell = ds.n_classes, s.mmd_n_samples, s.mmd_length_scale
    y_test = ds.y_test.numpy()
    train_all = s.mmd_reference == "train_all"
    if train_all:
        pools = {c: ds.X_train[ds.y_train == c] for c in range(K)}
        yy_all = {c: metrics.kernel_offdiag_mean(pools[c], ell) for c in range(K)}
    else:
        test_rows = {c: np.flatnonzero(y_test == c) for c in range(K)}
    # row offset of every (model, lambda) block in ``ces`` (frames were appended lambda-major)
    offsets, pos = {}, 0
    for li in range(len(s.lambda_egy_grid)):
        for m in labels:
            offsets[(m, li)] = pos
            pos += len(x_cfs[(m, li)])
    run_col, target_col = ces["run"].to_numpy(), ces["target"].to_numpy()
    ip_star_col = ces["ip_star"].to_numpy(copy=True)
    recs = []
    for li, lam in progress(enumerate(s.lambda_egy_grid), "lambda_egy (MMD)", len(s.lambda_egy_grid)):
        grouped = {}
        for m in labels:   # rows of each (run, target) group, in individual order
            o = offsets[(m, li)]
            n = len(x_cfs[(m, li)])
            run, target = run_col[o:o + n], target_col[o:o + n]
            order = np.lexsort((np.arange(n), target, run))
            cuts = np.flatnonzero(np.diff(run[order] * K + target[order])) + 1
            grouped[m] = {(int(run[g[0]]), int(target[g[0]])): g for g in np.split(order, cuts)}
        for r0 in range(0, s.n_runs, runs_per_block):
            block = range(r0, min(s.n_runs, r0 + runs_per_block))
            if not train_all:   # Y of every (run, target) of the block, shared by the models
                y_sets = {}
                for r in block:
                    for t in range(K):
                        take = numpy_rng(s.seed_global, *key, "mmd_ref", li, r, t).choice(
                            test_rows[t], size=min(n_s, len(test_rows[t])), replace=False)
                        y_sets[(r, t)] = ds.X_test[torch.from_numpy(np.sort(take))]
                yy_sets = dict(zip(y_sets, metrics.kernel_offdiag_means(list(y_sets.values()), ell)))
            for mi, m in enumerate(labels):
                X_groups, Y_groups, yy, meta = [], [], [], []
                for (r, t), g_rows in grouped[m].items():
                    if r not in block:
                        continue
                    pick = g_rows
                    if len(g_rows) > n_s:
                        pick = numpy_rng(s.seed_global, *key, "mmd_ce", m, li, r, t).choice(
                            g_rows, size=n_s, replace=False)
                    X_groups.append(x_cfs[(m, li)][torch.from_numpy(pick)])
                    Y_groups.append(pools[t] if train_all else y_sets[(r, t)])
                    yy.append(yy_all[t] if train_all else yy_sets[(r, t)])
                    meta.append((r, t, len(pick), len(Y_groups[-1]), offsets[(m, li)] + g_rows))
                if not X_groups:
                    continue
                mmd2 = metrics.mmd2_unbiased_groups(X_groups, Y_groups, ell, yy=yy).numpy()
                for (r, t, n_ce, n_ref, members), v in zip(meta, mmd2):
                    star = np.nan if np.isnan(v) else max(float(v), 0.0)
                    ip_star_col[members] = star
                    recs.append((li, mi, m, float(lam), r, t, n_ce, n_ref, float(v), star))
    ces["ip_star"] = ip_star_col
    out = pd.DataFrame(recs, columns=["li", "mi", *MMD_COLUMNS])
    out = out.sort_values(["li", "mi", "run", "target"], kind="stable").drop(columns=["li", "mi"])
    out = out.astype({"lambda_egy": np.float64, "run": np.int64, "target": np.int64,
                      "n_ce": np.int64, "n_ref": np.int64, "mmd2": np.float64,
                      "ip_star": np.float64})
    return out.reset_index(drop=True)[MMD_COLUMNS]


# ---- file-level entry point (rule evaluate_ces) --------------------------------------------------

def merge_model_rows(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """ces (or mmd) rows of single-model evaluations in the order of a joint one: lambda (in order of
    first appearance), then model (``MODEL_LABELS`` order), each block's rows as given."""
    df = pd.concat(frames, ignore_index=True)
    lam = {v: i for i, v in enumerate(pd.unique(df["lambda_egy"]))}
    model = {m: i for i, m in enumerate(MODEL_LABELS)}
    key = df["lambda_egy"].map(lam).to_numpy() * len(model) + df["model"].map(model).to_numpy()
    return df.iloc[np.argsort(key, kind="stable")].reset_index(drop=True)


def reused_rows(ces_path: str | Path, mmd_path: str | Path, label: str, dataset: str, family: str,
                seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ces and mmd rows of model ``label`` in another evaluation's files of the same key (an
    error if the files hold another key or no row of ``label``)."""
    from ctpaper.runtime import read_parquet

    ces, mmd = read_parquet(ces_path), read_parquet(mmd_path)
    keys = ces[["dataset", "family", "seed"]].drop_duplicates()
    if len(keys) != 1 or tuple(keys.iloc[0]) != (dataset, family, int(seed)):
        raise ValueError(f"{ces_path} evaluates {keys.to_dict('records')}, not "
                         f"{dataset}/{family}/seed {seed}")
    if not (ces["model"] == label).any():
        raise ValueError(f"{ces_path} holds no row of model {label}")
    return (ces[ces["model"] == label].reset_index(drop=True),
            mmd[mmd["model"] == label].reset_index(drop=True))


def _check_reused(reused: pd.DataFrame, ces: pd.DataFrame, label: str, path) -> None:
    """The reused rows must follow the protocol of this evaluation: the same lambda values and, per
    lambda, the same runs x individuals (a stale file of other settings fails here)."""
    def shape(df):
        return df.groupby("lambda_egy")[["run", "individual"]].agg(["nunique", "size"]).to_dict()

    if shape(reused) != shape(ces):
        raise ValueError(f"rows of {label} in {path} follow other evaluation settings (lambda values, "
                         "runs or individuals) than this evaluation: a stale file?")


def run_evaluate_ces(data_dir: str | Path, ct_model: str | Path, bl_model: str | Path, config: dict,
                     dataset: str, family: str, seed: int, ces_path: str | Path,
                     mmd_path: str | Path, reuse: dict[str, Sequence] | None = None) -> pd.DataFrame:
    """Load data and models, evaluate, write ``ces.parquet`` and ``mmd.parquet`` atomically.

    ``reuse``: {label: (ces path, mmd path)} of models whose rows are taken from an evaluation of the
    same model file under the same settings (the study variants that retrain only the CT model take
    the BL's rows from the main results) instead of being computed again."""
    from ctpaper.data.io import load_dataset
    from ctpaper.models import load_model
    from ctpaper.runtime import write_parquet

    reuse = reuse or {}
    unknown = [m for m in reuse if m not in MODEL_LABELS]
    if unknown:
        raise ValueError(f"unknown model labels to reuse {unknown}; known: {MODEL_LABELS}")
    ds = load_dataset(data_dir)
    models = {}
    for label, path in ((CT_LABEL, ct_model), (BL_LABEL, bl_model)):
        if label in reuse:
            continue
        model, spec = load_model(path)
        if spec["n_features"] != ds.n_features or spec["n_classes"] != ds.n_classes:
            raise ValueError(f"{path}: model shape {spec['n_features']}x{spec['n_classes']} does not "
                             f"match dataset {dataset} ({ds.n_features}x{ds.n_classes})")
        models[label] = model
    ces, mmd = evaluate_counterfactuals(ds, models, config, dataset, family, seed, labels=list(models))
    if reuse:
        taken = [reused_rows(c, m, label, dataset, family, seed) for label, (c, m) in reuse.items()]
        for label, (c, _) in zip(reuse, taken):
            _check_reused(c, ces, label, reuse[label][0])
        ces = merge_model_rows([ces, *(c for c, _ in taken)])[CES_COLUMNS]
        mmd = merge_model_rows([mmd, *(m for _, m in taken)])[MMD_COLUMNS]
        log.info("rows of %s taken from %s", ", ".join(reuse), ", ".join(str(c) for c, _ in reuse.values()))
    write_parquet(ces, ces_path)
    write_parquet(mmd, mmd_path)
    return ces
