"""Synthetic generators (method 2.2): formulas, sizes, shuffling and the pool/test positions.

The numpy stream (``data.synthetic.rng: numpy``); the julia stream is tested in test_julia_rng.py.
"""

import hashlib

import numpy as np
import pytest

from ctpaper import config as cfg
from ctpaper.data.synthetic import generate, prepare_synthetic

N = 100_000


def rng(seed=42):
    return np.random.default_rng(seed)


@pytest.mark.parametrize("name", ["ls", "ol", "circ", "moon"])
def test_generated_classes_are_balanced(name):
    X, y = generate(name, N, rng())
    assert X.shape == (N, 2) and y.shape == (N,)
    assert np.bincount(y).tolist() == [N // 2, N // 2]
    assert np.isfinite(X).all()


@pytest.mark.parametrize("name, sd", [("ls", 0.5), ("ol", 2.0)])
def test_blobs_centres_and_spread(name, sd):
    centres = np.random.default_rng(42).uniform(-10, 10, size=(2, 2))
    X, y = generate(name, N, rng())
    for c in (0, 1):
        assert np.allclose(X[y == c].mean(0), centres[c], atol=0.05)
        assert np.allclose(X[y == c].std(0), sd, rtol=0.02)
    fixed = [[1.0, 2.0], [-3.0, 4.0]]
    X, y = generate(name, N, rng(), centers=fixed)
    assert np.allclose(X[y == 1].mean(0), [-3.0, 4.0], atol=0.05)


def test_ls_and_ol_share_their_centres():
    X_ls, y = generate("ls", N, rng())
    X_ol, _ = generate("ol", N, rng())
    assert np.allclose(X_ls[y == 0].mean(0), X_ol[y == 0].mean(0), atol=0.1)


def test_circles_radii_and_noise():
    X, y = generate("circ", N, rng())
    r = np.linalg.norm(X, axis=1)
    assert np.allclose(X[y == 0].mean(0), 0, atol=0.01)
    assert np.allclose(X[y == 0].std(0), 0.15, rtol=0.03)  # radius 0.01 + N(0, 0.15^2)
    assert abs(np.median(r[y == 1]) - 1.0) < 0.02


def test_moons_use_the_method_shift_not_sklearns():
    X, y = generate("moon", N, rng())
    # E[cos] = 0 and E[sin] = 2/pi for theta ~ U[0, pi]
    assert np.allclose(X[y == 0].mean(0), [0.0, 2 / np.pi], atol=0.02)
    assert np.allclose(X[y == 1].mean(0), [1.0, 0.3 - 2 / np.pi], atol=0.02)
    assert X[y == 0, 1].min() > -0.6 and X[y == 1, 1].max() < 0.9


@pytest.fixture
def numpy_config(base_config):
    base_config["data"]["synthetic"]["rng"] = "numpy"
    return base_config


# sha256 of X_pool, y_pool, X_test, y_test bytes with the default config and rng numpy, recorded
# before the julia stream was added: the numpy path must keep producing exactly these data.
NUMPY_DIGESTS = {
    "ls": "3dbbe5f7aeb3a77ffc678adc8c29ceea9aae2c31a53c4e71c07e32d05174ee62",
    "ol": "3829ba6943e37156ba7c1f594c53b539aec703441d152498e09c05652fb35e00",
    "circ": "e527a1067c7fce93afcc7f11c24b89496497052f823856c0fc999efdfe876324",
    "moon": "3fc18b9c8f0ce242e73474b1b597c9bbedc4036b60ff73d201ad2aa598233d2a",
}


@pytest.mark.parametrize("name", list(NUMPY_DIGESTS))
def test_numpy_stream_is_unchanged(numpy_config, name):
    prep = prepare_synthetic(name, numpy_config)
    h = hashlib.sha256()
    for a in (prep.X_pool, prep.y_pool, prep.X_test, prep.y_test):
        h.update(np.ascontiguousarray(a).tobytes())
    assert h.hexdigest() == NUMPY_DIGESTS[name]


def test_the_streams_differ_and_julia_is_the_default(base_config):
    assert base_config["data"]["synthetic"]["rng"] == "julia"
    julia = prepare_synthetic("ls", base_config)
    base_config["data"]["synthetic"]["rng"] = "numpy"
    numpy = prepare_synthetic("ls", base_config)
    assert not np.allclose(julia.X_pool, numpy.X_pool)


def test_rng_key_is_validated(base_config):
    base_config["data"]["synthetic"]["rng"] = "mersenne"
    with pytest.raises(cfg.ConfigError, match="data.synthetic.rng"):
        cfg.validate(base_config)


@pytest.mark.parametrize("stream", ["julia", "numpy"])
def test_pool_is_first_n_pool_and_test_last_n_test_of_the_shuffle(base_config, stream):
    """Pool and test are the head and the tail of one shuffle of the generated points: their sizes
    are the configured ones, they are disjoint rows of the generated data (as Float32), and changing
    the sizes keeps the head and the tail (a prefix / suffix of the same shuffled order)."""
    base_config["data"]["synthetic"]["rng"] = stream
    syn = base_config["data"]["synthetic"]
    prep = prepare_synthetic("moon", base_config)
    assert prep.X_pool.shape == (syn["n_pool"], 2) and prep.X_test.shape == (syn["n_test"], 2)
    assert prep.X_pool.dtype == np.float32 and prep.y_pool.dtype == np.int64
    assert prep.feature_names == ["x1", "x2"] and prep.classes == [0, 1]
    rows = np.concatenate([prep.X_pool, prep.X_test])
    assert len(np.unique(rows, axis=0)) == len(rows)                      # disjoint, no repeats
    if stream == "numpy":    # every row is a generated point with its label
        X, y = generate("moon", N, np.random.default_rng(base_config["seed"]["data"]))
        index = {tuple(r): int(lab) for r, lab in zip(X.astype(np.float32).tolist(), y)}
        labels = np.concatenate([prep.y_pool, prep.y_test])
        assert [index[tuple(r)] for r in rows.tolist()] == labels.tolist()
    small = {**base_config, "data": {**base_config["data"],
                                     "synthetic": {**syn, "n_pool": 1000, "n_test": 500}}}
    part = prepare_synthetic("moon", small)
    np.testing.assert_array_equal(part.X_pool, prep.X_pool[:1000])
    np.testing.assert_array_equal(part.X_test, prep.X_test[-500:])
    np.testing.assert_array_equal(part.y_test, prep.y_test[-500:])


@pytest.mark.parametrize("stream", ["julia", "numpy"])
def test_generation_is_deterministic_and_seeded(base_config, stream):
    base_config["data"]["synthetic"]["rng"] = stream
    a, b = prepare_synthetic("ls", base_config), prepare_synthetic("ls", base_config)
    np.testing.assert_array_equal(a.X_pool, b.X_pool)
    base_config["seed"]["data"] = 7
    c = prepare_synthetic("ls", base_config)
    assert not np.allclose(a.X_pool, c.X_pool)
    base_config["seed"]["data"], base_config["seed"]["global"] = 42, 7
    d = prepare_synthetic("ls", base_config)
    assert not np.array_equal(a.X_pool, d.X_pool)
    assert sorted(map(tuple, np.concatenate([a.X_pool, a.X_test]).tolist())) != \
        sorted(map(tuple, np.concatenate([d.X_pool, d.X_test]).tolist()))  # other rows, not reordered


@pytest.mark.parametrize("stream", ["julia", "numpy"])
def test_configured_centres_are_used(base_config, stream):
    base_config["data"]["synthetic"]["rng"] = stream
    base_config["data"]["synthetic"]["centers"] = [[5.0, 5.0], [-5.0, -5.0]]
    prep = prepare_synthetic("ls", base_config)
    assert np.allclose(prep.X_pool[prep.y_pool == 0].mean(0), [5, 5], atol=0.1)


@pytest.mark.parametrize("stream", ["julia", "numpy"])
def test_inconsistent_sizes_are_rejected(base_config, stream):
    base_config["data"]["synthetic"]["rng"] = stream
    base_config["data"]["synthetic"].update(n_generate=1000, n_pool=900, n_test=200)
    with pytest.raises(ValueError, match="data.synthetic"):
        prepare_synthetic("circ", base_config)


def test_unknown_generator():
    with pytest.raises(ValueError, match="no synthetic generator"):
        generate("spiral", 10, rng())
