"""Shared preparation steps: the prepared arrays, validation split (method 2.1) and bounds (2.6)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class DataFormatError(ValueError):
    """A raw file does not have the expected layout; the message names the file."""


@dataclass
class Prepared:
    """A dataset in model-input scale before the validation split: pool rows in pool order + test."""

    feature_names: list[str]
    X_pool: np.ndarray
    y_pool: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    classes: list[int]
    categorical_blocks: list[list[int]] = field(default_factory=list)
    image_shape: list[int] | None = None
    extra: dict = field(default_factory=dict)  # additional meta.json entries

    def __post_init__(self) -> None:
        self.X_pool = np.ascontiguousarray(self.X_pool, dtype=np.float32)
        self.X_test = np.ascontiguousarray(self.X_test, dtype=np.float32)
        self.y_pool = np.asarray(self.y_pool, dtype=np.int64)
        self.y_test = np.asarray(self.y_test, dtype=np.int64)
        d = len(self.feature_names)
        if self.X_pool.shape[1:] != (d,) or self.X_test.shape[1:] != (d,):
            raise ValueError(f"feature arrays {self.X_pool.shape}, {self.X_test.shape} do not match "
                             f"{d} feature names")
        if len(self.X_pool) != len(self.y_pool) or len(self.X_test) != len(self.y_test):
            raise ValueError("features and labels differ in length")


def validation_split(y_pool: np.ndarray, n_val: int, n_pool: int, seed: int) -> np.ndarray:
    """Boolean ``is_val`` mask: per class c, floor(f * |pool_c|) rows drawn without replacement.

    f = n_val / n_pool with the nominal sizes of method 2.5, evaluated in exact integer arithmetic
    (n_val * |pool_c| // n_pool); classes are drawn in ascending order from one Generator(seed).
    All other rows are training rows and keep their pool order.
    """
    y_pool = np.asarray(y_pool)
    rng = np.random.default_rng(seed)
    is_val = np.zeros(len(y_pool), dtype=bool)
    for c in np.unique(y_pool):
        members = np.flatnonzero(y_pool == c)
        k = (n_val * len(members)) // n_pool
        is_val[rng.choice(members, size=k, replace=False)] = True
    return is_val


def domain_bounds(X_pool: np.ndarray, n_sigma: float) -> tuple[list[float], list[float]]:
    """Per-feature [LB, UB] on the pool (method 2.6): mean -/+ n_sigma * sd (ddof=1), widened to min/max."""
    X = np.asarray(X_pool, dtype=np.float64)
    mu = X.mean(axis=0)
    sd = X.std(axis=0, ddof=1) if len(X) > 1 else np.zeros(X.shape[1])
    lower = np.minimum(mu - n_sigma * sd, X.min(axis=0))
    upper = np.maximum(mu + n_sigma * sd, X.max(axis=0))
    return [float(v) for v in lower], [float(v) for v in upper]


def undersample_and_shuffle(y: np.ndarray, undersample_seed: int, shuffle_seed: int) -> np.ndarray:
    """Row indices after random undersampling of the majority class(es) to the minority size
    (Generator(undersample_seed)), then a shuffle (Generator(shuffle_seed))."""
    y = np.asarray(y)
    classes, counts = np.unique(y, return_counts=True)
    n_min = int(counts.min())
    rng = np.random.default_rng(undersample_seed)
    keep = []
    for c in classes:
        members = np.flatnonzero(y == c)
        keep.append(members if len(members) == n_min
                    else rng.choice(members, size=n_min, replace=False))
    rows = np.sort(np.concatenate(keep))
    return rows[np.random.default_rng(shuffle_seed).permutation(len(rows))]
