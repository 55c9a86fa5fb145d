"""The prepared-dataset contract between the data stage and everything downstream.

``results/data/{dataset}/train.parquet`` holds the pool (training + validation rows) in pool order:
one float32 column per feature (model-input scale), ``y`` (int64 class index) and ``is_val`` (bool,
the class-ratio preserving validation split of method.md 2.1). ``test.parquet`` holds the held-out
test set (features + ``y``). ``meta.json`` describes both (see ``Dataset.meta``): feature_names,
classes, n_pool/n_train/n_val/n_test, bounds {lower, upper}, protected, categorical_blocks,
image_shape (MNIST), raw checksums and the config hash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ctpaper.runtime import read_json, read_parquet

MUTABILITY_CODES = {"both": 0, "none": 1, "increase": 2, "decrease": 3}


@dataclass
class Dataset:
    """A prepared dataset as tensors (float32 features, int64 labels) plus its meta data."""

    name: str
    X_train: torch.Tensor
    y_train: torch.Tensor
    X_val: torch.Tensor
    y_val: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    meta: dict = field(repr=False)

    @property
    def n_features(self) -> int:
        return self.X_train.shape[1]

    @property
    def n_classes(self) -> int:
        return len(self.meta["classes"])

    @property
    def lower(self) -> torch.Tensor:
        return torch.tensor(self.meta["bounds"]["lower"], dtype=torch.float32)

    @property
    def upper(self) -> torch.Tensor:
        return torch.tensor(self.meta["bounds"]["upper"], dtype=torch.float32)

    @property
    def categorical_blocks(self) -> list[list[int]]:
        return [list(b) for b in self.meta.get("categorical_blocks", [])]

    def mutability(self, family: str) -> torch.Tensor:
        """Per-feature mutability codes (MUTABILITY_CODES) for an experiment family."""
        codes = torch.zeros(self.n_features, dtype=torch.long)
        if family == "protected":
            codes[list(self.meta["protected"])] = MUTABILITY_CODES["none"]
        elif family != "free":
            raise ValueError(f"unknown family {family!r}")
        return codes


def write_frames(features: np.ndarray, y: np.ndarray, names: list[str],
                 is_val: np.ndarray | None = None) -> pd.DataFrame:
    """Build the on-disk frame: float32 feature columns, ``y`` and (pool only) ``is_val``."""
    df = pd.DataFrame(np.asarray(features, dtype=np.float32), columns=list(names))
    df["y"] = np.asarray(y, dtype=np.int64)
    if is_val is not None:
        df["is_val"] = np.asarray(is_val, dtype=bool)
    return df


def load_meta(directory: str | Path) -> dict:
    return read_json(Path(directory) / "meta.json")


def load_dataset(directory: str | Path) -> Dataset:
    """Load ``train.parquet``, ``test.parquet`` and ``meta.json`` from a prepared-dataset directory."""
    directory = Path(directory)
    meta = load_meta(directory)
    names = meta["feature_names"]
    pool = read_parquet(directory / "train.parquet")
    test = read_parquet(directory / "test.parquet")
    val = pool["is_val"].to_numpy()

    def tens(df: pd.DataFrame, mask=None):
        X = df[names].to_numpy(dtype=np.float32)
        y = df["y"].to_numpy(dtype=np.int64)
        if mask is not None:
            X, y = X[mask], y[mask]
        # pandas may hand out read-only views (copy-on-write); torch needs writable memory
        X, y = np.require(X, requirements=["C", "W"]), np.require(y, requirements=["C", "W"])
        return torch.from_numpy(X), torch.from_numpy(y)

    X_tr, y_tr = tens(pool, ~val)
    X_va, y_va = tens(pool, val)
    X_te, y_te = tens(test)
    return Dataset(meta["dataset"], X_tr, y_tr, X_va, y_va, X_te, y_te, meta)
