"""The four synthetic 2-D datasets (method 2.2): LS, OL, Circ, Moon.

Two streams (``data.synthetic.rng``): ``julia`` regenerates the original's points bit for bit
(Julia's Xoshiro through MLJBase, julia_rng.md parts b and c); ``numpy`` draws the same generators
from numpy's Generator.
"""

from __future__ import annotations

import numpy as np

from ctpaper.data import mljbase
from ctpaper.data.julia_rng import Xoshiro
from ctpaper.data.splits import Prepared

FEATURES = ["x1", "x2"]
BLOB_SD = {"ls": 0.5, "ol": 2.0}
CIRCLE_RADII = (0.01, 1.0)
CIRCLE_NOISE = 0.15
MOON_SHIFT = (1.0, 0.3)  # not scikit-learn's (1.0, 0.5)
MOON_NOISE = 0.1


def _class_sizes(n: int) -> tuple[int, int]:
    return n // 2, n - n // 2


def blob_centers(rng: np.random.Generator, centers) -> np.ndarray:
    """The two blob centres: ``centers`` from the config, or drawn from U([-10, 10]^2)."""
    if centers is None:
        return rng.uniform(-10.0, 10.0, size=(2, 2))
    return np.asarray(centers, dtype=np.float64).reshape(2, 2)


def generate(name: str, n: int, rng: np.random.Generator, centers=None) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points of generator ``name`` (class 0 block first, then class 1; not shuffled)."""
    n0, n1 = _class_sizes(n)
    y = np.concatenate([np.zeros(n0, dtype=np.int64), np.ones(n1, dtype=np.int64)])
    if name in BLOB_SD:
        c = blob_centers(rng, centers)
        X = np.concatenate([c[0] + BLOB_SD[name] * rng.standard_normal((n0, 2)),
                            c[1] + BLOB_SD[name] * rng.standard_normal((n1, 2))])
    elif name == "circ":
        theta = rng.uniform(0.0, 2 * np.pi, size=n)
        r = np.where(y == 0, CIRCLE_RADII[0], CIRCLE_RADII[1])
        X = r[:, None] * np.column_stack([np.cos(theta), np.sin(theta)])
        X = X + CIRCLE_NOISE * rng.standard_normal((n, 2))
    elif name == "moon":
        theta = rng.uniform(0.0, np.pi, size=n)
        X = np.column_stack([np.cos(theta), np.sin(theta)])
        X[y == 1] = np.column_stack([np.cos(theta[y == 1]) + MOON_SHIFT[0],
                                     -np.sin(theta[y == 1]) + MOON_SHIFT[1]])
        X = X + MOON_NOISE * rng.standard_normal((n, 2))
    else:
        raise ValueError(f"no synthetic generator named {name!r}")
    return X, y


def generate_julia(name: str, n: int, seed: int, centers=None) -> tuple[np.ndarray, np.ndarray]:
    """``n`` Float64 points of generator ``name`` as TaijaData 1.1.7 makes them: MLJBase on a fresh
    ``Xoshiro(seed)``, rows already in MLJBase's shuffled order; labels 0/1 (blobs' 1/2 minus one)."""
    rng = Xoshiro(seed)
    if name in BLOB_SD:
        X, y = mljbase.make_blobs(rng, n, BLOB_SD[name], centers)
        return X, y - 1
    if name == "circ":
        return mljbase.make_circles(rng, n, CIRCLE_NOISE, CIRCLE_RADII[0] / CIRCLE_RADII[1])
    if name == "moon":
        return mljbase.make_moons(rng, n, MOON_NOISE, *MOON_SHIFT)
    raise ValueError(f"no synthetic generator named {name!r}")


def prepare_synthetic(name: str, config: dict) -> Prepared:
    """Generate n_generate points (seed.data) and shuffle them (seed.global).

    The first n_pool rows are the pool, the last n_test rows the test set (method 2.2). With
    ``rng: julia`` the shuffle is CounterfactualTraining.jl's ``randperm(Xoshiro(seed.global), n)``
    of the Float32 data (julia_rng.md c1).
    """
    syn = config["data"]["synthetic"]
    n, n_pool, n_test = int(syn["n_generate"]), int(syn["n_pool"]), int(syn["n_test"])
    if n_pool + n_test > n:
        raise ValueError(f"config key data.synthetic: n_pool + n_test ({n_pool + n_test}) exceeds "
                         f"n_generate ({n})")
    if syn["rng"] == "julia":
        X, y = generate_julia(name, n, config["seed"]["data"], syn.get("centers"))
        X = X.astype(np.float32)
        order = Xoshiro(config["seed"]["global"]).randperm(n) - 1
    else:
        X, y = generate(name, n, np.random.default_rng(config["seed"]["data"]), syn.get("centers"))
        order = np.random.default_rng(config["seed"]["global"]).permutation(n)
    X, y = X[order], y[order]
    return Prepared(FEATURES, X[:n_pool], y[:n_pool], X[n - n_test:], y[n - n_test:], classes=[0, 1])
