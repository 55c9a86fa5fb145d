"""Prepare one dataset: raw bytes -> pool/test in model-input scale -> train/test.parquet, meta.json."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ctpaper.config import section_hash
from ctpaper.data import registry
from ctpaper.data.io import write_frames
from ctpaper.data.mnist import prepare_mnist
from ctpaper.data.raw import raw_checksums, read_verified
from ctpaper.data.splits import Prepared, domain_bounds, validation_split
from ctpaper.data.synthetic import prepare_synthetic
from ctpaper.data.tabular import prepare_tabular
from ctpaper.runtime import write_json, write_parquet

log = logging.getLogger("ctpaper.data")


def build(dataset: str, config: dict, raw: dict[str, bytes]) -> Prepared:
    """Pool and test arrays of ``dataset`` in model-input scale (method 2.2-2.4)."""
    kind = registry.get(dataset).kind
    if kind == "synthetic":
        return prepare_synthetic(dataset, config)
    if kind == "tabular":
        return prepare_tabular(dataset, raw, config)
    return prepare_mnist(raw, config)


def finalize(dataset: str, config: dict, prep: Prepared):
    """Validation split, bounds, protected features and meta data; returns (pool_df, test_df, meta)."""
    spec = registry.get(dataset)
    n_pool = len(prep.y_pool)
    nominal_pool = spec.n_pool_nominal or n_pool
    is_val = validation_split(prep.y_pool, spec.n_val_nominal, nominal_pool, config["seed"]["global"])

    n_sigma = float(config["data"]["domain_n_sigma"])
    if spec.kind == "image":  # method 2.6: fixed pixel domain
        d = len(prep.feature_names)
        lower, upper, n_sigma_used = [-1.0] * d, [1.0] * d, None
    else:
        lower, upper = domain_bounds(prep.X_pool, n_sigma)
        n_sigma_used = n_sigma

    protected = list(spec.protected)
    got = [prep.feature_names[i] for i in spec.protected[:len(spec.protected_names)]]
    if got != list(spec.protected_names):
        raise AssertionError(f"{dataset}: protected indices {protected} point at {got}, "
                             f"expected {list(spec.protected_names)}")

    meta = {
        "dataset": dataset,
        "kind": spec.kind,
        "feature_names": list(prep.feature_names),
        "classes": list(prep.classes),
        "n_pool": int(n_pool),
        "n_train": int((~is_val).sum()),
        "n_val": int(is_val.sum()),
        "n_test": int(len(prep.y_test)),
        "bounds": {"lower": lower, "upper": upper},
        "domain_n_sigma": n_sigma_used,
        "protected": protected,
        "categorical_blocks": [list(map(int, b)) for b in prep.categorical_blocks],
        "image_shape": prep.image_shape,
        "class_counts": {"pool": _counts(prep.y_pool, prep.classes),
                         "val": _counts(prep.y_pool[is_val], prep.classes),
                         "test": _counts(prep.y_test, prep.classes)},
        "raw": raw_checksums(dataset),
        "config_hash": section_hash(config, registry.CONFIG_SECTIONS),
        **prep.extra,
    }
    pool = write_frames(prep.X_pool, prep.y_pool, prep.feature_names, is_val)
    test = write_frames(prep.X_test, prep.y_test, prep.feature_names)
    return pool, test, meta


def _counts(y: np.ndarray, classes: list[int]) -> list[int]:
    return [int((y == c).sum()) for c in classes]


def prepare_dataset(dataset: str, config: dict, manifest: str | Path | None,
                    train_path: str | Path, test_path: str | Path, meta_path: str | Path) -> dict:
    """Prepare ``dataset`` and write its three files (each atomically, after everything is computed)."""
    raw = read_verified(dataset, manifest)
    for name, data in raw.items():
        log.info("%s: read %s (%d bytes, sha256 verified)", dataset, name, len(data))
    prep = build(dataset, config, raw)
    pool, test, meta = finalize(dataset, config, prep)
    log.info("%s: %d features, pool %d (train %d, val %d), test %d", dataset, len(meta["feature_names"]),
             meta["n_pool"], meta["n_train"], meta["n_val"], meta["n_test"])
    write_parquet(pool, train_path)
    write_parquet(test, test_path)
    write_json(meta, meta_path)
    return meta
