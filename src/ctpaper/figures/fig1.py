"""Figure 1 (method 8): proof of concept with a linear model on linearly separable data.

Four panels: (a) BL, all features mutable; (b) CT, all mutable; (c) BL, feature 1 ("age", y-axis)
immutable; (d) CT, feature 1 immutable. Each panel trains its own model:

* data: ``figures.fig1.n_train`` points of the LS generator (``ctpaper.data.synthetic``) drawn and
  shuffled with ``figures.seed`` (blob centres from ``data.synthetic.centers``, else random),
  domain bounds inferred from these points (``data.domain_n_sigma``);
* model and training: ``ctpaper.training.train`` (the code path of the paper's models) with the
  settings of ``fig1_settings``: Linear(2, 2), ``model.init``; plain SGD with ``figures.fig1.lr``,
  ``n_epochs`` epochs, unshuffled batches of ``batch_size``; CT = the ``full`` objective with loss
  weights clf 1, div 1, ridge 0, adv 1 (method 8), of the ``protected`` family (feature 1
  immutable) in panels (c) and (d); BL = ``vanilla``;
* every CT epoch: ``nce`` factuals drawn without replacement, target = the other class of the
  current prediction, Generic search with ``lambda_cst`` and step size ``ce.lr``, ``max_iter``
  convergence with T steps (all CEs mature), nascent AEs within ``train.adv_eps``; x+ = one
  training point of the target class per CE, protected on immutable features. BL generates no
  CEs while training; the CEs its panels show are generated the same way, from its model at the
  start of the final epoch, with a generator of their own (seeded with ``figures.seed``).

The panels show the training points by true label, the decision boundary
{x : (w_1 - w_0) . x + (c_1 - c_0) = 0}, and as stars the final epoch's CEs of factuals predicted as
class 0 (target 1) with their search paths. The paths are recomputed step by step with single-step
searches started from the previous state (exact for Generic, whose objective does not depend on k).
The same seed is used for all four panels, so BL and CT start from the same weights.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from dataclasses import dataclass

import numpy as np
import torch

from ctpaper import training
from ctpaper.data.io import Dataset
from ctpaper.data.splits import domain_bounds
from ctpaper.data.synthetic import generate
from ctpaper.models import build_model
from ctpaper.search import SearchConfig, search

log = logging.getLogger(__name__)

LOSS_WEIGHTS = {"clf": 1.0, "div": 1.0, "reg": 0.0, "adv": 1.0}   # method 8, Figure 1
PANELS = (("a", "BL", False), ("b", "CT", False), ("c", "BL", True), ("d", "CT", True))
IMMUTABLE_FEATURE = 1


@dataclass
class PanelResult:
    weight: np.ndarray        # (2, 2) rows w_k
    bias: np.ndarray          # (2,)
    ces: np.ndarray           # (m, 2) final-epoch CEs of factuals predicted as class 0
    paths: np.ndarray         # (m, T + 1, 2) search paths (state 0 = factual)
    train_acc: float
    valid_share: float        # share of the shown CEs the final model assigns to class 1
    dist_class1: float        # mean L2 distance of the shown CEs to the class-1 training mean
    cost: float               # mean L1 distance of the shown CEs to their factuals

    def stats(self) -> dict:
        return {"train_acc": self.train_acc, "valid_share": self.valid_share,
                "dist_class1": self.dist_class1, "cost": self.cost, "n_ces": int(len(self.ces))}


def fig1_data(config: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The Figure-1 training set (X, y) and its inferred domain bounds (lower, upper)."""
    f1 = config["figures"]["fig1"]
    rng = np.random.default_rng(int(config["figures"]["seed"]))
    X, y = generate("ls", int(f1["n_train"]), rng, config["data"]["synthetic"].get("centers"))
    order = rng.permutation(len(y))
    X, y = X[order].astype(np.float32), y[order]
    lo, hi = domain_bounds(X, float(config["data"]["domain_n_sigma"]))
    return (torch.from_numpy(X), torch.from_numpy(y).long(), torch.tensor(lo, dtype=torch.float32),
            torch.tensor(hi, dtype=torch.float32))


def fig1_settings(config: dict) -> dict:
    """Figure 1's training settings (method 8) in the format of ``ctpaper.training``: a linear model
    trained with plain SGD, Generic search with a fixed number of steps (``max_iter``: every CE is
    mature), loss weights clf 1, div 1, ridge 0, adv 1; the rest as the main experiments."""
    f1, t = config["figures"]["fig1"], config["train"]
    return {"objective": "full", "arch": "linear", "hidden": 0,  # linear: no hidden layer
            "init": config["model"]["init"],
            "model_lr": float(f1["lr"]), "n_epochs": int(f1["n_epochs"]),
            "batch_size": int(f1["batch_size"]), "nce": int(f1["nce"]), "burnin": 0.0,
            "ce_frequency": "epoch", "generator": "generic", "tau": 0.5, "T": int(f1["T"]),
            "ce_lr": float(config["ce"]["lr"]), "lambda_cst": float(f1["lambda_cst"]),
            "lambda_egy": 0.0, "convergence": "max_iter", "adv_eps": float(t["adv_eps"]),
            "adv_eps_strict": bool(t["adv_eps_strict"]), "adv_label": "predicted",
            "maturity": "threshold", "ridge_form": "sum_sq",
            **{f"lambda_{k}": v for k, v in LOSS_WEIGHTS.items()}}


def fig1_dataset(X: torch.Tensor, y: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> Dataset:
    """The Figure-1 points as a training set (no validation or test rows); the ``protected`` family
    makes feature 1 ("age") immutable."""
    meta = {"classes": [0, 1], "bounds": {"lower": lo.tolist(), "upper": hi.tolist()},
            "protected": [IMMUTABLE_FEATURE]}
    return Dataset("fig1", X, y, X[:0], y[:0], X[:0], y[:0], meta)


def search_paths(model, x0: torch.Tensor, t: torch.Tensor, cfg: SearchConfig, lo, hi,
                 mutability) -> torch.Tensor:
    """(n, T + 1, D) states of a Generic max_iter search, one single-step search at a time."""
    one = dataclasses.replace(cfg, T=1)
    states = [x0.clone()]
    x = x0.clone()
    for _ in range(cfg.T):
        x = search(model, x0, t, one, lo, hi, mutability=mutability, x_init=x).x_cf
        states.append(x.clone())
    return torch.stack(states, 1)


def train_panel(ds: Dataset, objective: str, immutable: bool, config: dict) -> PanelResult:
    """Train one Figure-1 model with ``ctpaper.training.train`` (objective 'CT': the full CT
    objective of the ``protected`` family if ``immutable``, else ``free``; 'BL': vanilla) and
    collect the CEs generated at the start of its final epoch: CT's own training CEs; for BL, which
    generates none, CEs generated the same way from its model at that time (for plotting only)."""
    settings = fig1_settings(config)
    seed = int(config["figures"]["seed"])
    family = "protected" if immutable else "free"
    mut = ds.mutability(family)
    mut = None if bool((mut == 0).all()) else mut
    cfg = training.search_config(settings)
    # the model at the start of the final epoch (its CEs and search paths); epoch 0 = the initial
    # model, built from the seed's first draws exactly as train() builds it
    start = {0: build_model("linear", ds.n_features, 2, init=settings["init"],
                            generator=torch.Generator().manual_seed(seed))}
    final_ce = {}

    def on_epoch_end(epoch, model, ce):
        if epoch == settings["n_epochs"] - 1:
            start[0] = copy.deepcopy(model)
        if epoch == settings["n_epochs"]:
            final_ce["ce"] = ce

    model, _ = training.train(ds, settings, "full" if objective == "CT" else "vanilla", family, seed,
                              on_epoch_end=on_epoch_end, label="Figure 1", optimizer="sgd")
    before = start[0]
    ce = final_ce["ce"]
    if ce is None:   # BL: the CEs it would have been shown, from an own generator of the seed
        ce = training.generate_ces(before, ds.X_train, ds.y_train, settings["nce"], settings, cfg,
                                   ds.lower, ds.upper, mut, training.ClassSampler(ds.y_train, 2), 2,
                                   torch.Generator().manual_seed(seed))
    return panel_result(model, before, ce, ds, cfg, mut)


def panel_result(model, before, ce, ds: Dataset, cfg: SearchConfig, mut) -> PanelResult:
    """The panel's statistics and the search paths of the CEs ``ce`` of factuals that ``before``
    (the model that generated them) predicted as class 0."""
    X, y = ds.X_train, ds.y_train
    x0, yhat = X[ce.factual_index], ce.adv_label          # adv_label: the prediction at generation
    paths = search_paths(before, x0, ce.target, cfg, ds.lower, ds.upper, mut)
    if not torch.allclose(paths[:, -1], ce.x_cf, atol=1e-5):
        raise RuntimeError("Figure 1: step-wise search paths do not reproduce the search result")
    with torch.no_grad():
        acc = float((model(X).argmax(1) == y).float().mean())
    sel = (yhat == 0).nonzero().squeeze(1)
    w = model.fc.weight.detach().numpy().astype(float)
    c = model.fc.bias.detach().numpy().astype(float)
    ces = ce.x_cf[sel]
    with torch.no_grad():
        valid = float((model(ces).argmax(1) == 1).float().mean()) if len(ces) else float("nan")
    centre = X[y == 1].mean(0)
    dist = float(torch.linalg.vector_norm(ces - centre, dim=1).mean()) if len(ces) else float("nan")
    cost = float((ces - x0[sel]).abs().sum(1).mean()) if len(ces) else float("nan")
    return PanelResult(w, c, ces.numpy(), paths[sel].numpy(), acc, valid, dist, cost)


def compute(config: dict) -> tuple[np.ndarray, np.ndarray, dict[str, PanelResult]]:
    X, y, lo, hi = fig1_data(config)
    ds = fig1_dataset(X, y, lo, hi)
    results = {}
    for key, objective, immutable in PANELS:
        results[key] = train_panel(ds, objective, immutable, config)
        log.info("Figure 1 panel (%s) %s immutable=%s: train accuracy %.3f, %d CEs shown", key,
                 objective, immutable, results[key].train_acc, len(results[key].ces))
    return X.numpy(), y.numpy(), results


def boundary_segment(w: np.ndarray, c: np.ndarray, xlim, ylim) -> tuple[np.ndarray, np.ndarray]:
    """End points of the line (w1 - w0) . x + (c1 - c0) = 0 within the axis box."""
    a, b = w[1] - w[0]
    d = c[1] - c[0]
    if abs(b) >= abs(a):
        xs = np.array(xlim, dtype=float)
        return xs, -(a * xs + d) / b
    ys = np.array(ylim, dtype=float)
    return -(b * ys + d) / a, ys


def plot(X: np.ndarray, y: np.ndarray, results: dict[str, PanelResult]):
    """The 1x4 figure from the computed panels."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from ctpaper.figures import style

    style.setup()
    fig, axes = plt.subplots(1, 4, figsize=(style.TEXT_WIDTH, 2.05), sharex=True, sharey=True)
    pts = [X] + [r.ces for r in results.values()]
    allp = np.concatenate([p.reshape(-1, 2) for p in pts if len(p)])
    pad = 0.08 * (allp.max(0) - allp.min(0))
    xlim = (allp[:, 0].min() - pad[0], allp[:, 0].max() + pad[0])
    ylim = (allp[:, 1].min() - pad[1], allp[:, 1].max() + pad[1])
    titles = {"a": "(a) BL, all mutable", "b": "(b) CT, all mutable",
              "c": "(c) BL, age immutable", "d": "(d) CT, age immutable"}
    for ax, (key, res) in zip(axes, results.items()):
        for k in (0, 1):
            m = y == k
            ax.scatter(X[m, 0], X[m, 1], s=4, color=style.CLASS_COLORS[k], alpha=0.45, lw=0)
        bx, by = boundary_segment(res.weight, res.bias, xlim, ylim)
        ax.plot(bx, by, color=style.BOUNDARY_COLOR, lw=1.4)
        for path in res.paths:
            ax.plot(path[:, 0], path[:, 1], color="0.25", lw=0.5, alpha=0.7)
        if len(res.ces):
            ax.scatter(res.ces[:, 0], res.ces[:, 1], marker="*", s=38, color=style.CLASS_COLORS[1],
                       edgecolor="black", linewidth=0.4, zorder=5)
        ax.set_xlim(xlim)
        ax.set_ylim(ylim)
        ax.set_title(titles[key])
        ax.set_xlabel("feature 0")
    axes[0].set_ylabel("age (feature 1)")
    handles = [Line2D([], [], ls="", marker="o", ms=4, color=style.CLASS_COLORS[0],
                      label="loan withheld (class 0)"),
               Line2D([], [], ls="", marker="o", ms=4, color=style.CLASS_COLORS[1],
                      label="loan provided (class 1)"),
               Line2D([], [], color=style.BOUNDARY_COLOR, lw=1.4, label="decision boundary"),
               Line2D([], [], ls="-", color="0.25", lw=0.6, marker="*", ms=7,
                      markerfacecolor=style.CLASS_COLORS[1], markeredgecolor="black",
                      markeredgewidth=0.4, label="counterfactual and search path")]
    fig.legend(handles=handles, loc="lower center", ncol=4, frameon=False,
               bbox_to_anchor=(0.5, -0.02))
    fig.tight_layout(rect=(0, 0.1, 1, 1), w_pad=0.6)
    return fig


def make(config: dict, out_png: str, out_pdf: str, out_stats: str | None = None
         ) -> dict[str, PanelResult]:
    """Compute and draw Figure 1; ``out_stats`` (JSON) receives per-panel summary statistics that
    the paper's text quotes."""
    from ctpaper.figures import style
    from ctpaper.runtime import write_json

    X, y, results = compute(config)
    style.save(plot(X, y, results), out_png, out_pdf)
    if out_stats is not None:
        write_json({key: r.stats() for key, r in results.items()}, out_stats)
    return results
