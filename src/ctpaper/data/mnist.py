"""MNIST from the four idx .gz files (method 2.4), with numpy and gzip only."""

from __future__ import annotations

import gzip
import zlib

import numpy as np

from ctpaper.data.splits import DataFormatError, Prepared

SIDE = 28
N_PIXELS = SIDE * SIDE
FEATURES = [f"px{i}" for i in range(N_PIXELS)]
TRAIN_IMAGES, TRAIN_LABELS = "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"


def read_idx(data: bytes, source: str) -> np.ndarray:
    """Parse a gzipped idx file of unsigned bytes (magic 2049 labels / 2051 images) into uint8."""
    try:
        raw = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as err:
        raise DataFormatError(f"{source}: not a valid gzip file ({err})") from None
    if len(raw) < 8 or raw[:2] != b"\x00\x00" or raw[2] != 0x08 or raw[3] not in (1, 3):
        raise DataFormatError(f"{source}: not an idx file of unsigned bytes (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) != header + int(np.prod(dims)):
        raise DataFormatError(f"{source}: idx header announces shape {dims} but the payload has "
                              f"{len(raw) - header} bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def to_model_scale(images: np.ndarray) -> np.ndarray:
    """uint8 images (n, 28, 28) -> float32 (n, 784) in [-1, 1]: pixel / 255 * 2 - 1."""
    flat = images.reshape(len(images), -1).astype(np.float32)
    return flat / np.float32(255.0) * np.float32(2.0) - np.float32(1.0)


def balanced_resample(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Indices of a class-balanced resample with replacement, ``per_class`` per class, ascending."""
    rng = np.random.default_rng(seed)
    picks = [rng.choice(np.flatnonzero(labels == c), size=per_class, replace=True)
             for c in np.unique(labels)]
    return np.sort(np.concatenate(picks), kind="stable")


def _images_and_labels(raw: dict[str, bytes], images: str, labels: str) -> tuple[np.ndarray, np.ndarray]:
    X, y = read_idx(raw[images], images), read_idx(raw[labels], labels)
    if X.ndim != 3 or X.shape[1:] != (SIDE, SIDE):
        raise DataFormatError(f"{images}: images of shape {X.shape[1:]}, expected ({SIDE}, {SIDE})")
    if y.ndim != 1 or len(y) != len(X):
        raise DataFormatError(f"{labels}: {len(y)} labels for {len(X)} images in {images}")
    if y.max(initial=0) > 9:
        raise DataFormatError(f"{labels}: labels outside 0..9")
    return X, y


def prepare_mnist(raw: dict[str, bytes], config: dict) -> Prepared:
    """Pool: 1,100 per class resampled with replacement (seed.data), ascending index; test: all 10,000."""
    X_train, y_train = _images_and_labels(raw, TRAIN_IMAGES, TRAIN_LABELS)
    X_test, y_test = _images_and_labels(raw, TEST_IMAGES, TEST_LABELS)
    rows = balanced_resample(y_train, int(config["data"]["mnist_per_class"]), config["seed"]["data"])
    return Prepared(FEATURES, to_model_scale(X_train[rows]), y_train[rows], to_model_scale(X_test),
                    y_test, classes=list(range(10)), image_shape=[SIDE, SIDE])
