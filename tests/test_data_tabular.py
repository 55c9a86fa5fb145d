"""Tabular datasets (method 2.3): readers, balancing, positional split, standardisation, one-hot layout."""

import gzip
import json

import numpy as np
import pandas as pd
import pytest

from ctpaper.data import tabular
from ctpaper.data.splits import DataFormatError, undersample_and_shuffle
from ctpaper.data.tabular import Table, encode

SIZES = {"adult": (26049, 6512, 108), "ch": (16504, 4126, 8), "credit": (10618, 2654, 33),
         "gmsc": (13371, 3343, 10)}


def frames(directory):
    meta = json.loads((directory / "meta.json").read_text())
    return (pd.read_parquet(directory / "train.parquet"), pd.read_parquet(directory / "test.parquet"),
            meta)


def numeric_columns(meta):
    onehot = {i for block in meta["categorical_blocks"] for i in block}
    return [n for i, n in enumerate(meta["feature_names"]) if i not in onehot]


@pytest.mark.parametrize("dataset", sorted(SIZES))
def test_sizes_and_widths(prepared_data, dataset):
    pool, test, meta = frames(prepared_data(dataset))
    n_pool, n_test, width = SIZES[dataset]
    assert (len(pool), len(test), len(meta["feature_names"])) == (n_pool, n_test, width)
    assert list(pool.columns) == meta["feature_names"] + ["y", "is_val"]
    assert list(test.columns) == meta["feature_names"] + ["y"]
    assert all(pool[c].dtype == np.float32 for c in meta["feature_names"])
    assert pool["y"].dtype == np.int64 and pool["is_val"].dtype == bool


@pytest.mark.parametrize("dataset", ["ch", "credit", "gmsc"])
def test_balanced_datasets_are_exactly_balanced(prepared_data, dataset):
    pool, test, _ = frames(prepared_data(dataset))
    y = np.concatenate([pool["y"], test["y"]])
    assert np.bincount(y).tolist() == [len(y) // 2] * 2
    assert 0.4 < pool["y"].mean() < 0.6  # shuffled before the positional split


@pytest.mark.parametrize("dataset", sorted(SIZES))
def test_standardisation_is_fitted_on_the_pool_only(prepared_data, dataset):
    pool, test, meta = frames(prepared_data(dataset))
    cols = numeric_columns(meta)
    X = pool[cols].to_numpy(np.float64)
    np.testing.assert_allclose(X.mean(0), 0, atol=1e-6)
    np.testing.assert_allclose(X.std(0, ddof=1), 1, atol=1e-5)
    T = test[cols].to_numpy(np.float64)
    assert np.abs(T.mean(0)).max() > 1e-3  # the test rows were not used for fitting
    assert set(meta["standardisation"]) == set(cols)


@pytest.mark.parametrize("dataset, widths", [("adult", [9, 16, 7, 15, 6, 5, 2, 42]),
                                             ("credit", [2, 7, 4])])
def test_one_hot_blocks_in_place(prepared_data, dataset, widths):
    pool, test, meta = frames(prepared_data(dataset))
    blocks = meta["categorical_blocks"]
    assert [len(b) for b in blocks] == widths
    for block in blocks:
        assert block == list(range(block[0], block[0] + len(block)))  # contiguous
        for frame in (pool, test):
            values = frame.iloc[:, block].to_numpy()
            assert set(np.unique(values)) <= {0.0, 1.0}
            np.testing.assert_array_equal(values.sum(1), 1.0)


def test_credit_layout(prepared_data):
    _, _, meta = frames(prepared_data("credit"))
    names = meta["feature_names"]
    assert names.index("AGE") == 14 and meta["protected"] == [14]
    assert names[:3] == ["LIMIT_BAL", "SEX=1", "SEX=2"]
    assert meta["categorical_blocks"] == [[1, 2], list(range(3, 10)), list(range(10, 14))]


def test_adult_layout_and_original_row_order(prepared_data, raw_mirror):
    pool, test, meta = frames(prepared_data("adult"))
    names = meta["feature_names"]
    assert names[0] == "age" and meta["protected"] == [0]
    assert "workclass=?" in names and "country=?" in names  # "?" is a level
    raw = pd.read_csv(raw_mirror / "adult" / "adult.data", header=None, skipinitialspace=True)
    y = (raw[14] == ">50K").to_numpy(np.int64)
    np.testing.assert_array_equal(np.concatenate([pool["y"], test["y"]]), y)
    scale = meta["standardisation"]["age"]
    ages = np.concatenate([pool["age"], test["age"]]) * scale["sd"] + scale["mean"]
    np.testing.assert_allclose(ages, raw[0].to_numpy(), atol=1e-3)
    assert scale["mean"] == pytest.approx(raw[0][:26049].mean())
    assert scale["sd"] == pytest.approx(raw[0][:26049].std(ddof=1))
    col = names.index("workclass=Private")
    np.testing.assert_array_equal(pool.iloc[:, col], (raw[1][:26049] == "Private").astype(np.float32))


def test_protected_columns_of_ch_and_gmsc(prepared_data):
    for dataset, name in (("ch", "HouseAge"), ("gmsc", "age")):
        _, _, meta = frames(prepared_data(dataset))
        assert meta["feature_names"][1] == name and meta["protected"] == [1]
        assert meta["categorical_blocks"] == []


def test_california_housing_features(raw_mirror):
    table = tabular.read_california_housing((raw_mirror / "california_housing/cal_housing.data").read_bytes())
    assert list(table.frame.columns) == tabular.CH_FEATURES and len(table.frame) == 20640
    documented = {"MedInc": 3.870671, "HouseAge": 28.639486, "AveRooms": 5.428999, "AveBedrms": 1.096675,
                  "Population": 1425.476744, "AveOccup": 3.070655, "Latitude": 35.631861,
                  "Longitude": -119.569704}
    for col, mean in documented.items():
        assert table.frame[col].mean() == pytest.approx(mean, abs=1e-6)
    assert np.bincount(table.y).tolist() == [10315, 10325]  # label: value >= median


def test_gmsc_drops_incomplete_rows(raw_mirror):
    table = tabular.read_gmsc((raw_mirror / "give_me_some_credit/cs-training.csv.gz").read_bytes())
    assert len(table.frame) == 120269 and not table.frame.isna().any().any()
    assert list(table.frame.columns) == tabular.GMSC_FEATURES
    assert np.bincount(table.y).tolist() == [8357, 111912]  # 1 = no serious delinquency


def test_encode_by_hand():
    frame = pd.DataFrame({"num": [1.0, 2.0, 3.0, 4.0, 10.0], "cat": ["b", "a", "b", "a", "c"],
                          "cnt": [0, 0, 1, 1, 5]})
    table = Table(frame, np.array([0, 1, 0, 1, 1]), {"cat": ["a", "b", "c"]})
    prep = encode(table, 0.8)  # round(4.0) = 4 pool rows
    assert prep.feature_names == ["num", "cat=a", "cat=b", "cat=c", "cnt"]
    assert prep.categorical_blocks == [[1, 2, 3]]
    sd = np.std([1, 2, 3, 4], ddof=1)
    np.testing.assert_allclose(prep.X_pool[:, 0], (np.array([1, 2, 3, 4]) - 2.5) / sd, rtol=1e-6)
    np.testing.assert_allclose(prep.X_test[:, 0], [(10 - 2.5) / sd], rtol=1e-6)
    np.testing.assert_array_equal(prep.X_test[0, 1:4], [0, 0, 1])  # level absent from the pool kept
    np.testing.assert_allclose(prep.X_test[0, 4], (5 - 0.5) / np.std([0, 0, 1, 1], ddof=1), rtol=1e-6)


def test_undersampling_keeps_minority_and_shuffles():
    y = np.array([0] * 10 + [1] * 3)
    rows = undersample_and_shuffle(y, 1, 2)
    assert len(rows) == 6 and len(set(rows)) == 6
    assert set(rows) >= {10, 11, 12}
    np.testing.assert_array_equal(rows, undersample_and_shuffle(y, 1, 2))


@pytest.mark.parametrize("reader, data, needle", [
    (tabular.read_adult, b"39, State-gov, 77516\n50, Self-emp, 83311\n", "adult.data"),
    (tabular.read_adult, b"x, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, "
                         b"Not-in-family, White, Male, 2174, 0, 40, United-States, <=50K\n" * 3,
     "adult.data"),
    (tabular.read_adult, b"39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, "
                         b"Not-in-family, White, Male, 2174, 0, 40, United-States, maybe\n" * 3,
     "unexpected income labels"),
    (tabular.read_california_housing, b"-122.23,37.88,41,880,129,322,126,8.3252,abc\n" * 3,
     "cal_housing.data"),
    (tabular.read_credit, b'"ID","LIMIT_BAL"\n1,20000\n2,3000\n', "unexpected columns"),
    (tabular.read_gmsc, gzip.compress(b",SeriousDlqin2yrs,age\n1,0,45\n2,1,40\n"), "cs-training.csv.gz"),
    (tabular.read_gmsc, gzip.compress(b"x" * 100)[:-6], "malformed gzip"),
    (tabular.read_adult, b"", "adult.data"),
])
def test_malformed_input_gives_a_clear_error(reader, data, needle):
    with pytest.raises(DataFormatError, match=needle):
        reader(data)
