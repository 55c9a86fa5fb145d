"""The evaluation of one grid on one data set (method 9): the three files of the appendix.

Counterfactuals are generated on the **pool** (training + validation rows): factuals and IP reference
rows come from it, never from the test set (``pool_view``). The test-time generator is the one of
method 6.2 (``eval`` section: ECCo, tau, T, lambda_cst, the lambda_egy grid, ``ce.lr``) with the
grid's own sizes (``grids.eval``: n_runs x n_individuals per lambda_egy), unconstrained (``free``).
Data sets without one-hot blocks run the stacked evaluation (``ctpaper.evaluation.stacked``, one
batched search per lambda for a group of models); Adult and Credit (categorical reconstruction) run
the per-model protocol of ``ctpaper.evaluation.protocol``. Every model of a grid, BL included,
shares the (factual class, target) pairs of each lambda (method 6.3). Predictive metrics use the
test set; maturity comes from the training logs (their ``prop_mature`` column).

Outputs (docs: prompts' interfaces, ``SCORES_COLUMNS`` etc.): ``scores.parquet`` one row per
(model, run, lam) with per-run means over valid CEs; ``performance.parquet`` one row per model;
``maturity.parquet`` one row per (CT model, epoch).
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np
import pandas as pd
import torch

log = logging.getLogger("ctpaper.grids")

FAMILY = "free"
SCORE_METRICS = ["ip", "cost", "validity", "n_valid"]
PERFORMANCE_METRICS = ["accuracy", "f1", "n_pred_classes"]
# the eval keys the grid evaluation takes from the main evaluation (method 6.2); sizes: grids.eval
EVAL_KEYS = ("generator", "tau", "T", "lambda_cst", "lambda_egy_grid", "redraw_pairs_per_run", "ip",
             "mmd", "redundancy_tol")


def grid_eval_config(config: dict) -> dict:
    """A config for ``EvalSettings.from_config(..., "free")``: the test-time generator of the
    ``eval`` section with ``grids.eval``'s run and individual counts (the same for every kind)."""
    ge = config["grids"]["eval"]
    ev = {k: config["eval"][k] for k in EVAL_KEYS if k in config["eval"]}
    n = int(ge["n_individuals"])
    ev.update(n_runs=int(ge["n_runs"]), n_individuals={"synthetic": n, "tabular": n, "image": n},
              families={"free": {}})
    return {"seed": {"global": config["seed"]["global"]}, "ce": {"lr": config["ce"]["lr"]},
            "train": {"adv_eps": config["train"]["adv_eps"],
                      "adv_eps_strict": config["train"]["adv_eps_strict"]},
            "eval": ev}


def pool_view(ds):
    """``ds`` with the pool (training + validation rows) in place of the test set, so that the
    test-time protocol draws its factuals and IP references from the pool."""
    return dataclasses.replace(ds, X_test=torch.cat([ds.X_train, ds.X_val]),
                               y_test=torch.cat([ds.y_train, ds.y_val]))


def _single_ces(ds, label: str, model, s, key: tuple) -> pd.DataFrame:
    """The ces frame of one model under the protocol of ``evaluate_counterfactuals`` (same draws as
    ``evaluate_stack``: pairs per lambda, factuals per model label), without IP*."""
    from ctpaper.evaluation import metrics
    from ctpaper.evaluation.protocol import (CES_COLUMNS, _clamp_mask, _ip, choose_factuals,
                                             draw_pairs, numpy_rng, torch_generator)
    from ctpaper.search import search

    X, K = ds.X_test, ds.n_classes
    pred = metrics.predict(model, X).numpy()
    blocks = ds.categorical_blocks or None
    clamp_mask = _clamp_mask(ds.n_features, ds.categorical_blocks)
    frames = []
    for li, lam in enumerate(s.lambda_egy_grid):
        shared = None if s.redraw_pairs_per_run else draw_pairs(
            s.n_individuals, K, numpy_rng(s.seed_global, *key, "pairs", li))
        drawn = [choose_factuals(pred, *(shared if shared is not None else draw_pairs(
            s.n_individuals, K, numpy_rng(s.seed_global, *key, "pairs", li, r))), K,
            numpy_rng(s.seed_global, *key, "factuals", label, li, r)) for r in range(s.n_runs)]
        idx, f, t = (np.concatenate(v) for v in zip(*drawn))
        x, target = X[torch.from_numpy(idx)], torch.from_numpy(t)
        res = search(model, x, target, s.search_config(lam), ds.lower, ds.upper, mutability=None,
                     categorical_blocks=blocks, clamp_mask=clamp_mask,
                     generator=torch_generator(s.seed_global, *key, "search", label, li))
        x_cf = res.x_cf.detach()
        frames.append(pd.DataFrame({
            "dataset": key[0], "family": key[1], "seed": np.int64(key[2]), "model": label,
            "lambda_egy": np.float64(lam),
            "run": np.repeat(np.arange(s.n_runs, dtype=np.int64), s.n_individuals),
            "individual": np.tile(np.arange(s.n_individuals, dtype=np.int64), s.n_runs),
            "factual_index": idx.astype(np.int64), "factual_class": f.astype(np.int64),
            "target": t.astype(np.int64), "valid": metrics.validity(model, x_cf, target).numpy(),
            "mature": res.mature.numpy().astype(bool), "steps": res.steps.numpy().astype(np.int64),
            "ip": _ip(x_cf, target, None if s.ip_reference == "per_ce" else _refs(ds, s, key),
                      ds, s, key, label, li),
            "cost": metrics.cost(x_cf, x).numpy(),
            "redundancy": metrics.redundancy(x_cf, x, s.redundancy_tol).numpy(),
            "ip_star": np.full(len(idx), np.nan)}))
    return pd.concat(frames, ignore_index=True)[CES_COLUMNS]


def _refs(ds, s, key):
    from ctpaper.evaluation.protocol import shared_ip_references

    return shared_ip_references(ds, s, key[0], key[2])


def grid_ces(pool, models: dict, config: dict, dataset: str, seed: int, group: int) -> pd.DataFrame:
    """The ces frame (``CES_COLUMNS``) of every model (label -> MLP) on the pool view ``pool``:
    stacked searches over groups of at most ``group`` models where the data set has no one-hot
    blocks, else one model at a time."""
    from ctpaper.evaluation.protocol import EvalSettings
    from ctpaper.evaluation.stacked import evaluate_stack

    cfg = grid_eval_config(config)
    labels = list(models)
    frames = []
    if not pool.categorical_blocks:
        for i in range(0, len(labels), group):
            part = {m: models[m] for m in labels[i:i + group]}
            frames.append(evaluate_stack(pool, part, cfg, dataset, FAMILY, seed))
    else:
        s = EvalSettings.from_config(cfg, dataset, FAMILY)
        for m in labels:
            models[m].requires_grad_(False)
            frames.append(_single_ces(pool, m, models[m], s, (dataset, FAMILY, int(seed))))
    return pd.concat(frames, ignore_index=True)


def _cell_frame(rows: list[dict], grid: str, dataset: str, vary: list[str]) -> pd.DataFrame:
    """One row per model: grid, dataset, model, objective and the vary columns (null where BL does
    not depend on a value; integer-valued columns as nullable Int64, other numbers as float64)."""
    df = pd.DataFrame({"grid": grid, "dataset": dataset, "model": [r["model"] for r in rows],
                       "objective": [r["objective"] for r in rows]})
    for k in vary:
        raw = [r["values"].get(k) for r in rows]
        vals = [v for v in raw if v is not None]
        if vals and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in vals):
            df[k] = pd.array(raw, dtype="Int64")
        elif vals and all(isinstance(v, (int, float, np.number)) for v in vals):
            df[k] = np.array([np.nan if v is None else float(v) for v in raw], dtype="float64")
        else:
            df[k] = pd.Series(raw, dtype="object")
    return df


def scores_frame(ces: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """Per (model, run, lam): mean IP and cost over valid CEs, the share of valid CEs and their
    number (method 7.1), joined to the model's cell columns."""
    ces = ces.assign(ip_v=ces["ip"].where(ces["valid"]), cost_v=ces["cost"].where(ces["valid"]))
    g = ces.groupby(["model", "run", "lambda_egy"], sort=False)
    out = pd.DataFrame({"ip": g["ip_v"].mean(), "cost": g["cost_v"].mean(),
                        "validity": g["valid"].mean().astype("float64"),
                        "n_valid": g["valid"].sum().astype("int64")}).reset_index()
    out = out.rename(columns={"lambda_egy": "lam"})
    out = cells.merge(out, on="model", how="inner", validate="one_to_many")
    return out.astype({"run": "int64", "lam": "float64"}).reset_index(drop=True)


def performance_frame(models: dict, ds, cells: pd.DataFrame) -> pd.DataFrame:
    """Test accuracy, macro-F1 and number of predicted classes of every model (method 7.6)."""
    from ctpaper.evaluation.performance import accuracy_f1

    perf = pd.DataFrame([(m, *accuracy_f1(model, ds.X_test, ds.y_test)) for m, model in models.items()],
                        columns=["model", *PERFORMANCE_METRICS])
    perf = perf.astype({"accuracy": "float64", "f1": "float64", "n_pred_classes": "int64"})
    return cells.merge(perf, on="model", how="left", validate="one_to_one")


def maturity_frame(logs: dict[str, pd.DataFrame], cells: pd.DataFrame) -> pd.DataFrame:
    """Proportion of mature CEs per epoch of every CT model (its training log's ``prop_mature``)."""
    ct = cells[cells["objective"] == "full"].drop(columns="objective")
    parts = [pd.DataFrame({"model": m, "epoch": logs[m]["epoch"].astype("int64"),
                           "prop_mature": logs[m]["prop_mature"].astype("float64")})
             for m in ct["model"]]
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        {"model": pd.Series(dtype=str), "epoch": pd.Series(dtype="int64"),
         "prop_mature": pd.Series(dtype="float64")})
    return ct.merge(frame, on="model", how="inner", validate="one_to_many").reset_index(drop=True)


def run_grid_evaluation(data_dir, grid: str, dataset: str, rows: list[dict], vary: list[str],
                        model_paths: dict, log_paths: dict, config: dict, out: dict,
                        seed: int) -> None:
    """Rule ``evaluate_grid``: ``rows`` (``plan.grid_models`` without members: model, objective,
    values), the model and log file of each model id -> ``out["scores"|"performance"|"maturity"]``;
    ``seed``: the training seed of the evaluation key; models per stacked search:
    ``grids.eval.group`` of the data set's kind (bounds memory; the results do not depend on it)."""
    from ctpaper.data.io import load_dataset
    from ctpaper.models import load_model
    from ctpaper.runtime import read_parquet, write_parquet
    from ctpaper.config import dataset_kind
    from ctpaper.search import tune_allocator

    tune_allocator()
    ds = load_dataset(data_dir)
    if ds.name != dataset:
        raise ValueError(f"{data_dir} holds dataset {ds.name!r}, expected {dataset!r}")
    models = {r["model"]: load_model(model_paths[r["model"]])[0] for r in rows}
    cells = _cell_frame(rows, grid, dataset, vary)
    t0 = time.perf_counter()
    group = int(config["grids"]["eval"]["group"][dataset_kind(dataset)])
    ces = grid_ces(pool_view(ds), models, config, dataset, seed, group)
    log.info("%s/%s: %d models, %d CEs on the pool (%.1f s)", grid, dataset, len(models), len(ces),
             time.perf_counter() - t0)
    write_parquet(scores_frame(ces, cells), out["scores"])
    write_parquet(performance_frame(models, ds, cells), out["performance"])
    logs = {r["model"]: read_parquet(log_paths[r["model"]]) for r in rows if r["objective"] == "full"}
    write_parquet(maturity_frame(logs, cells), out["maturity"])
