"""Figures 4 and 5 (method 8): 10 x 10 grids of MNIST counterfactuals of the `free` models.

Figure 4 shows CT (``ct_free``), Figure 5 BL (``bl``). Row = factual class, column = target class.
One random test image per class with that true label (``figures.seed``; the same images for both
figures). Off-diagonal cells: ECCo with ``figures.fig45.lambda_egy``, ``lambda_cst``, step size
``ce.lr``, identity initialisation, ``max_iter`` convergence with ``figures.fig45.T`` steps, no
mutability constraints, domain [-1, 1]. Diagonal: the factual itself, tinted blue.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from ctpaper import names
from ctpaper.search import SearchConfig, search

log = logging.getLogger(__name__)

MODEL_OF = {f: (r.key, r.label) for f, r in (("fig4", names.ROLES["ct_free"]), ("fig5", names.BL))}


def pick_factuals(y: torch.Tensor, n_classes: int, seed: int) -> list[int]:
    """One random test index per class (classes in ascending order, one Generator(seed))."""
    rng = np.random.default_rng(seed)
    y = y.numpy()
    out = []
    for c in range(n_classes):
        members = np.flatnonzero(y == c)
        if len(members) == 0:
            raise ValueError(f"the test set has no image of class {c}")
        out.append(int(rng.choice(members)))
    return out


def compute(ds, model, config: dict) -> dict:
    """Factuals (K, D) and CE grid (K, K, D); the diagonal holds the factuals."""
    f = config["figures"]["fig45"]
    K = ds.n_classes
    idx = pick_factuals(ds.y_test, K, int(config["figures"]["seed"]))
    factuals = ds.X_test[idx]
    pairs = [(i, j) for i in range(K) for j in range(K) if i != j]
    x = factuals[[i for i, _ in pairs]]
    t = torch.tensor([j for _, j in pairs])
    cfg = SearchConfig(generator="ecco", tau=0.5, T=int(f["T"]), lr=float(config["ce"]["lr"]),
                       lambda_cst=float(f["lambda_cst"]), lambda_egy=float(f["lambda_egy"]),
                       convergence="max_iter", eps=float(config["train"]["adv_eps"]),
                       eps_strict=bool(config["train"]["adv_eps_strict"]))
    res = search(model, x, t, cfg, ds.lower, ds.upper)
    grid = factuals[:, None, :].repeat(1, K, 1).clone()
    for n, (i, j) in enumerate(pairs):
        grid[i, j] = res.x_cf[n]
    with torch.no_grad():
        pred = model(res.x_cf).argmax(1)
    valid = float((pred == t).float().mean())
    log.info("CE grid: %d counterfactuals, %.0f%% reach their target class", len(pairs), 100 * valid)
    return {"indices": idx, "factuals": factuals.numpy(), "grid": grid.numpy(), "valid": valid,
            "n_valid": int((pred == t).sum()), "n_pairs": len(pairs)}


def plot(result: dict, title: str, side: int = 28):
    import matplotlib.pyplot as plt

    from ctpaper.figures import style

    style.setup()
    grid = result["grid"]
    K = grid.shape[0]
    size = min(style.TEXT_WIDTH, 5.6)
    fig, axes = plt.subplots(K, K, figsize=(size, size),
                             gridspec_kw={"wspace": 0.04, "hspace": 0.04})
    for i in range(K):
        for j in range(K):
            img = style.to_unit(grid[i, j]).reshape(side, side)
            rgb = style.tint_blue(img) if i == j else style.grey_rgb(img)
            ax = axes[i, j]
            ax.imshow(rgb, interpolation="nearest")
            style.image_axis(ax)
            if i == 0:
                ax.set_title(str(j), fontsize=8, pad=2)
            if j == 0:
                ax.set_ylabel(str(i), rotation=0, ha="right", va="center", fontsize=8)
    fig.text(0.5, 0.935, f"target class ({title})", ha="center", fontsize=8)
    fig.text(0.015, 0.5, "factual class", va="center", rotation=90, fontsize=8)
    fig.subplots_adjust(left=0.085, right=0.99, top=0.9, bottom=0.01)
    return fig


def make(name: str, data_dir: str, model_path: str, config: dict, out_png: str, out_pdf: str,
         out_stats: str | None = None) -> dict:
    from ctpaper.data.io import load_dataset
    from ctpaper.figures import style
    from ctpaper.models import load_model
    from ctpaper.runtime import write_json

    if name not in MODEL_OF:
        raise ValueError(f"unknown CE-grid figure {name!r}; known: {', '.join(MODEL_OF)}")
    ds = load_dataset(data_dir)
    model, _ = load_model(model_path)
    result = compute(ds, model, config)
    side = int(ds.meta.get("image_shape", [28, 28])[0])
    style.save(plot(result, MODEL_OF[name][1], side=side), out_png, out_pdf)
    if out_stats is not None:
        write_json({"model": MODEL_OF[name][0], "indices": result["indices"],
                    "n_valid": result["n_valid"], "n_pairs": result["n_pairs"]}, out_stats)
    return result
