"""MLJBase 0.21.14's make_blobs / make_circles / make_moons on a Julia ``Xoshiro`` (julia_rng.md part b).

Each returns (X, y) as MLJBase does after ``finalize_Xy``: X (n, 2) Float64, with shuffle=True (as
TaijaData calls them) in the row order of ``randperm(rng, n)`` drawn after every other draw; y the
Julia labels (blobs 1..2, circles and moons 0/1). Arithmetic is elementwise IEEE Float64 in Julia's order of operations;
sin/cos are the C library's (``math``), see julia_rng.md b3 on the last ulp.
"""

from __future__ import annotations

import math

import numpy as np

from ctpaper.data.julia_rng import Xoshiro


def _runif_ab(rng: Xoshiro, n: int, p: int, a: float, b: float) -> np.ndarray:
    """(b - a) .* rand(rng, n, p) .+ a, as an (n, p) array (one column-major bulk draw)."""
    u = rng.rand_array(n * p).reshape(p, n).T
    return (b - a) * u + a


def _randn(rng: Xoshiro, n: int, p: int) -> np.ndarray:
    """randn(rng, n, p) as an (n, p) array (one column-major bulk draw)."""
    return rng.randn_array(n * p).reshape(p, n).T.copy()


def _cos_sin(theta: np.ndarray) -> np.ndarray:
    """hcat(cos.(theta), sin.(theta))."""
    return np.column_stack([[math.cos(t) for t in theta], [math.sin(t) for t in theta]])


def _finalize(rng: Xoshiro, X: np.ndarray, y: np.ndarray, shuffle: bool) -> tuple[np.ndarray, np.ndarray]:
    """finalize_Xy's shuffle: rows reordered by randperm(rng, n), the last draw."""
    if not shuffle:
        return X, y
    perm = rng.randperm(len(y)) - 1
    return X[perm], y[perm]


def make_blobs(rng: Xoshiro, n: int, cluster_std: float, centers=None,
               center_box: tuple[float, float] = (-10.0, 10.0),
               shuffle: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """make_blobs(n, 2; centers=2 or a 2x2 matrix, cluster_std): labels 1..2 in blocks of n div 2.

    Rows nss[c]..nss[c+1] (1-based, inclusive) of class c are scaled and shifted, so the last row of
    class 1 is transformed by class 2 as well (MLJBase's overlapping ranges).
    """
    if centers is None:
        centres = _runif_ab(rng, 2, 2, *center_box)
    else:
        centres = np.asarray(centers, dtype=np.float64).reshape(2, 2)
    ns = [n // 2, n // 2]
    ns[-1] += n % 2
    y = np.concatenate([np.full(k, c + 1, dtype=np.int64) for c, k in enumerate(ns)])
    X = _randn(rng, n, 2)
    nss = [1, *np.cumsum(ns).tolist()]
    for c in range(2):
        rows = slice(nss[c] - 1, nss[c + 1])
        X[rows] *= cluster_std
        X[rows] += centres[c]
    return _finalize(rng, X, y, shuffle)


def make_circles(rng: Xoshiro, n: int, noise: float, factor: float,
                 shuffle: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """make_circles(n; noise, factor): inner circle (radius factor) label 0, outer label 1."""
    theta = _runif_ab(rng, n, 1, 0.0, 2 * math.pi)[:, 0]
    n0 = n // 2
    X = _cos_sin(theta)
    X[:n0] *= factor
    y = np.ones(n, dtype=np.int64)
    y[:n0] = 0
    if noise != 0:
        X += noise * _randn(rng, n, 2)
    return _finalize(rng, X, y, shuffle)


def make_moons(rng: Xoshiro, n: int, noise: float, xshift: float, yshift: float,
               shuffle: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """make_moons(n; noise, xshift, yshift): upper moon label 0, lower shifted moon label 1."""
    n1 = n // 2
    n2 = n - n1
    theta = _runif_ab(rng, n, 1, 0.0, math.pi)[:, 0]
    theta[n2:] *= -1
    X = _cos_sin(theta)
    X[n2:, 0] += xshift
    X[n2:, 1] += yshift
    y = np.ones(n, dtype=np.int64)
    y[:n1] = 0
    if noise != 0:
        X += noise * _randn(rng, n, 2)
    return _finalize(rng, X, y, shuffle)
