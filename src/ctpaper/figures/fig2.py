"""Figure 2 (method 8): MNIST counterfactuals and integrated-gradient maps of the `protected` models.

Two rows (top BL, bottom CT_protected) x 10 columns:
* column 0: one test image of true label 0 that both models predict as 0 (test images of label 0 are
  visited in a random order drawn with ``figures.seed`` until one qualifies), tinted blue;
* columns 1-4: counterfactuals for targets 1-4: ECCo with ``figures.fig2.lambda_egy``,
  ``lambda_cst``, step size ``ce.lr``, ``max_iter`` convergence with ``figures.fig2.T`` steps, the
  protected pixel rows immutable, domain [-1, 1]; initial state clamp(x + N(0, init_noise^2)) on the
  mutable pixels (the same noise draw for both models);
* columns 5-9: normalised class-average IG maps of classes 5-9 (``ig_maps.parquet``).
Images are shown as (x + 1) / 2 in grey.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch

from ctpaper import names
from ctpaper.search import SearchConfig, search
from ctpaper.runtime import read_parquet

log = logging.getLogger(__name__)

TARGETS = (1, 2, 3, 4)
IG_CLASSES = (5, 6, 7, 8, 9)
ROLES = (names.BL, names.ct_role("protected"))   # rows; keyed by their tags in ig_maps and ``models``
ROWS = tuple((r.tag, r.label) for r in ROLES)      # (tag, row label)


def pick_factual(X: torch.Tensor, y: torch.Tensor, models: list, seed: int, label: int = 0) -> int:
    """Index of a random test image with true ``label`` that every model predicts as ``label``."""
    rng = np.random.default_rng(seed)
    candidates = np.flatnonzero(y.numpy() == label)
    for i in rng.permutation(candidates):
        x = X[int(i)][None]
        with torch.no_grad():
            if all(int(m(x).argmax(1)) == label for m in models):
                return int(i)
    raise ValueError(f"no test image of class {label} is predicted as {label} by every model")


def initial_state(x: torch.Tensor, mutable: torch.Tensor, noise: float, lower, upper,
                  seed: int) -> torch.Tensor:
    """clamp(x + N(0, noise^2) on the mutable features, lower, upper)."""
    gen = torch.Generator().manual_seed(seed)
    eps = torch.randn(x.shape, generator=gen) * noise
    return torch.clamp(x + eps * mutable.to(x.dtype), lower, upper)


def compute(ds, models: dict, config: dict) -> dict:
    """CEs of both models for the Figure-2 factual. ``models``: {'BL': m, 'CT_protected': m}."""
    f2 = config["figures"]["fig2"]
    seed = int(config["figures"]["seed"])
    idx = pick_factual(ds.X_test, ds.y_test, list(models.values()), seed)
    x = ds.X_test[idx][None].repeat(len(TARGETS), 1)
    t = torch.tensor(TARGETS)
    mut = ds.mutability("protected")
    x_init = initial_state(x, (mut == 0), float(f2["init_noise"]), ds.lower, ds.upper, seed)
    cfg = SearchConfig(generator="ecco", tau=0.5, T=int(f2["T"]), lr=float(config["ce"]["lr"]),
                       lambda_cst=float(f2["lambda_cst"]), lambda_egy=float(f2["lambda_egy"]),
                       convergence="max_iter", eps=float(config["train"]["adv_eps"]),
                       eps_strict=bool(config["train"]["adv_eps_strict"]))
    out = {"index": idx, "factual": ds.X_test[idx].numpy(), "ces": {}, "pred": {}, "prob": {}}
    for label, model in models.items():
        res = search(model, x, t, cfg, ds.lower, ds.upper, mutability=mut, x_init=x_init)
        with torch.no_grad():
            p = model(res.x_cf).softmax(1)
        out["ces"][label] = res.x_cf.numpy()
        out["pred"][label] = p.argmax(1).numpy()
        out["prob"][label] = p.gather(1, t[:, None]).squeeze(1).numpy()
        moved = (res.x_cf - x).abs()[:, ~(mut == 0)].max().item() if (mut != 0).any() else 0.0
        if moved > 0:
            raise RuntimeError(f"Figure 2: protected pixels changed by {moved} for {label}")
        log.info("Figure 2 %s: predictions %s, p(target) %s", label, out["pred"][label].tolist(),
                 np.round(out["prob"][label], 3).tolist())
    return out


def ig_images(ig_maps: pd.DataFrame, label: str, classes=IG_CLASSES, side: int = 28) -> list[np.ndarray]:
    """The normalised class-average maps of ``classes`` for model ``label`` as side x side arrays."""
    sub = ig_maps[ig_maps["model"] == label]
    out = []
    for c in classes:
        m = sub[sub["class"] == c].sort_values("pixel")["attribution"].to_numpy(dtype=float)
        if len(m) != side * side:
            raise ValueError(f"IG map of {label}, class {c} has {len(m)} pixels, expected {side ** 2}")
        out.append(m.reshape(side, side))
    return out


def plot(result: dict, ig_maps: pd.DataFrame, side: int = 28):
    import matplotlib.pyplot as plt

    from ctpaper.figures import style

    style.setup()
    fig, axes = plt.subplots(2, 10, figsize=(style.TEXT_WIDTH, 1.72),
                             gridspec_kw={"wspace": 0.06, "hspace": 0.08})
    im = None
    for r, (label, row_label) in enumerate(ROWS):
        cells = [style.tint_blue(style.to_unit(result["factual"]).reshape(side, side))]
        cells += [style.grey_rgb(style.to_unit(ce).reshape(side, side)) for ce in result["ces"][label]]
        for c, img in enumerate(cells):
            axes[r, c].imshow(img, interpolation="nearest")
        for j, m in enumerate(ig_images(ig_maps, label, side=side)):
            im = axes[r, 5 + j].imshow(m, cmap=style.IG_CMAP, vmin=0, vmax=1, interpolation="nearest")
        for ax in axes[r]:
            style.image_axis(ax)
        axes[r, 0].set_ylabel(row_label, rotation=0, ha="right", va="center", fontsize=8)
    titles = ["factual 0"] + [f"CE → {t}" for t in TARGETS] + [f"IG {c}" for c in IG_CLASSES]
    for c, title in enumerate(titles):
        axes[0, c].set_title(title, fontsize=7, pad=2)
    cax = fig.add_axes([0.915, 0.16, 0.008, 0.68])
    cb = fig.colorbar(im, cax=cax, ticks=[0, 1])
    cb.ax.tick_params(labelsize=6, length=2)
    fig.subplots_adjust(left=0.05, right=0.905, top=0.86, bottom=0.04)
    return fig


def stats(result: dict) -> dict:
    """Summary quoted by the paper: per model, how many of the CEs reach their target."""
    out = {"index": int(result["index"]), "targets": list(TARGETS)}
    for label, pred in result["pred"].items():
        out[label] = {"n_valid": int((pred == np.array(TARGETS)).sum()),
                      "pred": [int(p) for p in pred],
                      "p_target": [float(p) for p in result["prob"][label]]}
    return out


def make(data_dir: str, model_paths: dict, ig_maps_path: str, config: dict, out_png: str,
         out_pdf: str, out_stats: str | None = None) -> dict:
    from ctpaper.data.io import load_dataset
    from ctpaper.figures import style
    from ctpaper.models import load_models
    from ctpaper.runtime import write_json

    ds = load_dataset(data_dir)
    models = load_models(model_paths)
    result = compute(ds, models, config)
    side = int(ds.meta.get("image_shape", [28, 28])[0])
    style.save(plot(result, read_parquet(ig_maps_path), side=side), out_png, out_pdf)
    if out_stats is not None:
        write_json(stats(result), out_stats)
    return result
