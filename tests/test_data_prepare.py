"""Preparation as a whole: sizes of method 2.5, validation split, bounds, meta.json, determinism."""

import json

import numpy as np
import pandas as pd
import pytest

from ctpaper.config import section_hash
from ctpaper.names import DATASET_NAMES as ALL_DATASETS
from ctpaper.data import registry
from ctpaper.data.io import load_dataset
from ctpaper.data.prepare import prepare_dataset
from ctpaper.data.splits import domain_bounds, validation_split

SIZES = {"ls": (3600, 900), "circ": (3600, 900), "moon": (3600, 900), "ol": (3600, 900),
         "adult": (26049, 6512), "ch": (16504, 4126), "credit": (10618, 2654), "gmsc": (13371, 3343),
         "mnist": (11000, 10000)}
META_KEYS = {"dataset", "kind", "feature_names", "classes", "n_pool", "n_train", "n_val", "n_test",
             "bounds", "protected", "categorical_blocks", "image_shape", "raw", "config_hash"}


def test_validation_split_per_class_floor():
    y = np.array([0] * 7 + [1] * 13 + [0] * 5)  # 12 of class 0, 13 of class 1
    is_val = validation_split(y, n_val=1, n_pool=3, seed=0)  # f = 1/3
    assert is_val.dtype == bool and len(is_val) == len(y)
    assert [int(is_val[y == c].sum()) for c in (0, 1)] == [4, 4]  # floor(12/3), floor(13/3)
    np.testing.assert_array_equal(is_val, validation_split(y, 1, 3, seed=0))
    assert not np.array_equal(is_val, validation_split(y, 1, 3, seed=1))


def test_bounds_by_hand():
    X = np.array([[0.0, 10.0], [1.0, 10.0], [2.0, 10.0], [9.0, 10.0]], dtype=np.float32)
    lower, upper = domain_bounds(X, n_sigma=2)
    mu, sd = 3.0, np.sqrt(((0 - 3) ** 2 + (1 - 3) ** 2 + (2 - 3) ** 2 + (9 - 3) ** 2) / 3)
    assert lower[0] == pytest.approx(min(mu - 2 * sd, 0.0))
    assert upper[0] == pytest.approx(max(mu + 2 * sd, 9.0))
    lower, upper = domain_bounds(X, n_sigma=0.5)  # narrow: widened to the observed min/max
    assert lower[0] == pytest.approx(0.0) and upper[0] == pytest.approx(9.0)
    assert (lower[1], upper[1]) == (10.0, 10.0)  # constant column


@pytest.mark.parametrize("dataset", ALL_DATASETS)
def test_prepared_dataset_contract(prepared_data, base_config, dataset):
    directory = prepared_data(dataset)
    meta = json.loads((directory / "meta.json").read_text())
    assert META_KEYS <= set(meta) and meta["dataset"] == dataset
    n_pool, n_test = SIZES[dataset]
    assert (meta["n_pool"], meta["n_test"]) == (n_pool, n_test)
    assert meta["n_train"] + meta["n_val"] == n_pool
    assert meta["config_hash"] == section_hash(base_config, ["seed", "data"])
    assert meta["raw"] == {f.name: f.sha256 for f in registry.get(dataset).raw_files}
    assert meta["protected"] == list(registry.get(dataset).protected)

    pool = pd.read_parquet(directory / "train.parquet")
    is_val, y = pool["is_val"].to_numpy(), pool["y"].to_numpy()
    assert int(is_val.sum()) == meta["n_val"]
    spec = registry.get(dataset)
    f_num, f_den = spec.n_val_nominal, spec.n_pool_nominal or n_pool
    for c in meta["classes"]:
        assert int(is_val[y == c].sum()) == (f_num * int((y == c).sum())) // f_den

    if dataset != "mnist":
        lower, upper = domain_bounds(pool[meta["feature_names"]].to_numpy(), 2.0)
        np.testing.assert_allclose(meta["bounds"]["lower"], lower, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(meta["bounds"]["upper"], upper, rtol=1e-12, atol=1e-12)
        X = pool[meta["feature_names"]].to_numpy()
        assert (X.min(0) >= np.array(lower) - 1e-6).all() and (X.max(0) <= np.array(upper) + 1e-6).all()

    data = load_dataset(directory)
    assert data.X_train.shape == (meta["n_train"], len(meta["feature_names"]))
    assert data.X_val.shape[0] == meta["n_val"] and data.X_test.shape[0] == n_test
    assert data.mutability("protected")[meta["protected"]].eq(1).all()
    assert int(data.mutability("protected").ne(0).sum()) == len(meta["protected"])


def test_validation_sizes(prepared_data):
    sizes = {d: json.loads((prepared_data(d) / "meta.json").read_text())["n_val"]
             for d in ("moon", "mnist", "credit")}
    # per-class floors: moon 600*n_c//3600, mnist 100 per class, credit 1000*n_c//10618
    assert sizes["mnist"] == 1000 and 995 <= sizes["credit"] <= 1000 and 595 <= sizes["moon"] <= 600


def _prepare(dataset, config, manifest, out):
    prepare_dataset(dataset, config, manifest, out / "train.parquet", out / "test.parquet",
                    out / "meta.json")
    return {name: (out / name).read_bytes() for name in ("train.parquet", "test.parquet", "meta.json")}


@pytest.mark.parametrize("dataset", ["ls", "credit"])
def test_prepare_twice_gives_identical_bytes(prepared_data, base_config, tmp_path, dataset):
    manifest = prepared_data(dataset) / "raw_manifest.json"
    manifest = manifest if manifest.exists() else None
    first = _prepare(dataset, base_config, manifest, tmp_path / "a")
    second = _prepare(dataset, base_config, manifest, tmp_path / "b")
    assert first == second
    assert first == {n: (prepared_data(dataset) / n).read_bytes() for n in first}


def test_data_config_changes_the_hash_and_bounds(prepared_data, base_config, tmp_path):
    base_config["data"]["domain_n_sigma"] = 3
    _prepare("circ", base_config, None, tmp_path)
    meta = json.loads((tmp_path / "meta.json").read_text())
    ref = json.loads((prepared_data("circ") / "meta.json").read_text())
    assert meta["config_hash"] != ref["config_hash"]
    assert all(a <= b for a, b in zip(meta["bounds"]["lower"], ref["bounds"]["lower"]))
    assert (tmp_path / "train.parquet").read_bytes() == (prepared_data("circ") / "train.parquet").read_bytes()
