"""MNIST (method 2.4): idx parsing, pixel scale, class-balanced resampled pool, full test set."""

import gzip
import json

import numpy as np
import pandas as pd
import pytest

from ctpaper.data import mnist
from ctpaper.data.splits import DataFormatError

TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def idx_bytes(array: np.ndarray) -> bytes:
    magic = bytes([0, 0, 8, array.ndim])
    dims = b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return gzip.compress(magic + dims + array.astype(np.uint8).tobytes())


def test_pixel_scale():
    px = np.array([[[0, 51, 255]]], dtype=np.uint8)
    out = mnist.to_model_scale(px)
    assert out.dtype == np.float32 and out.shape == (1, 3)
    np.testing.assert_allclose(out[0], [-1.0, -0.6, 1.0], atol=1e-7)
    assert out[0, 0] == -1.0 and out[0, 2] == 1.0


def test_idx_round_trip_and_errors():
    imgs = np.arange(2 * 28 * 28).reshape(2, 28, 28) % 256
    np.testing.assert_array_equal(mnist.read_idx(idx_bytes(imgs), "x"), imgs)
    with pytest.raises(DataFormatError, match="images.gz: not a valid gzip"):
        mnist.read_idx(b"plain bytes", "images.gz")
    with pytest.raises(DataFormatError, match="bad magic"):
        mnist.read_idx(gzip.compress(b"\x00\x00\x0d\x03" + b"\x00" * 20), "f")
    with pytest.raises(DataFormatError, match="payload"):
        mnist.read_idx(gzip.compress(gzip.decompress(idx_bytes(imgs))[:-5]), "f")


def test_balanced_resample_with_replacement_in_ascending_order():
    labels = np.array([0] * 5 + [1] * 2 + [2] * 3)
    rows = mnist.balanced_resample(labels, 4, seed=1)
    assert len(rows) == 12 and np.all(np.diff(rows) >= 0)
    assert np.bincount(labels[rows]).tolist() == [4, 4, 4]
    assert len(np.unique(rows[labels[rows] == 1])) <= 2  # class 1 has 2 images: repeats


def test_prepared_mnist(prepared_data, raw_mirror):
    directory = prepared_data("mnist")
    meta = json.loads((directory / "meta.json").read_text())
    pool, test = pd.read_parquet(directory / "train.parquet"), pd.read_parquet(directory / "test.parquet")
    names = meta["feature_names"]
    assert len(names) == 784 and meta["image_shape"] == [28, 28] and meta["classes"] == list(range(10))
    assert (len(pool), len(test)) == (11000, 10000)
    assert np.bincount(pool["y"]).tolist() == [1100] * 10
    assert np.bincount(test["y"]).tolist() == TEST_COUNTS
    X = pool[names].to_numpy()
    assert X.dtype == np.float32 and X.min() == -1.0 and X.max() == 1.0
    assert test[names].to_numpy().min() == -1.0 and test[names].to_numpy().max() == 1.0
    assert meta["bounds"] == {"lower": [-1.0] * 784, "upper": [1.0] * 784}

    # Rows are the seed.data resample in ascending original-index order; test = the file's order.
    raw = {f: (raw_mirror / "mnist" / f).read_bytes() for f in (mnist.TRAIN_IMAGES, mnist.TRAIN_LABELS,
                                                               mnist.TEST_IMAGES)}
    images = mnist.read_idx(raw[mnist.TRAIN_IMAGES], "train")
    labels = mnist.read_idx(raw[mnist.TRAIN_LABELS], "labels")
    rows = mnist.balanced_resample(labels, 1100, seed=42)
    np.testing.assert_array_equal(X, mnist.to_model_scale(images[rows]))
    np.testing.assert_array_equal(pool["y"], labels[rows])
    test_images = mnist.read_idx(raw[mnist.TEST_IMAGES], "test")
    np.testing.assert_array_equal(test[names].to_numpy(), mnist.to_model_scale(test_images))
    assert len(np.unique(rows)) < len(rows)  # with replacement: some images repeat
