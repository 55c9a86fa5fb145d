"""Julia's Xoshiro stream and the original's synthetic data, against tests/data/julia_rng_vectors.json.

The vectors file (a copy of shared/data/julia_rng_vectors.json) holds values printed by Julia's own
documentation (doctests), values derived from the public algorithms (seeding) and, per dataset, the
blob centres, first/last points, label counts and summary statistics of the regenerated data, whose
linearly separable points match the original's published figure.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

from ctpaper.data import julia_rng, mljbase
from ctpaper.data.julia_rng import Xoshiro, lane_outputs, lane_outputs_sequential, seed_state
from ctpaper.data.synthetic import generate_julia, prepare_synthetic

VECTORS = json.loads((Path(__file__).parent / "data" / "julia_rng_vectors.json").read_text())
DOCTESTS = {t["name"]: t["expected"] for t in VECTORS["doctests"]}
N = 100_000
DATASETS = {"ls": "linearly_separable", "ol": "overlapping", "circ": "circles", "moon": "moons"}
JULIA_LABEL_OFFSET = {"ls": 1, "ol": 1, "circ": 0, "moon": 0}  # blobs are labelled 1/2 in Julia


def entry(d: dict, prefix: str):
    """The value of the one key of ``d`` that starts with ``prefix`` (keys carry explanations)."""
    (key,) = [k for k in d if k.startswith(prefix)]
    return d[key]


def f64(v) -> float:
    return float.fromhex(v["hex"])


def f32_bits(point) -> list[int]:
    return [int(v["bits"], 16) for v in point]


def bits_of(x: np.ndarray) -> list[int]:
    return np.asarray(x, dtype=np.float32).view(np.uint32).tolist()


def julia_compact(x) -> str:
    """How Julia prints a Float32 inside a matrix: 6 significant digits."""
    return f"{float(np.float32(x)):.6g}"


# ---- part a: Random ---------------------------------------------------------------------------

@pytest.mark.parametrize("seed", sorted(VECTORS["seeding"], key=int))
def test_seeding_hashes_the_32_bit_words(seed):
    v = VECTORS["seeding"][seed]
    message = bytes.fromhex(v["sha256_input_hex"])
    assert hashlib.sha256(message).hexdigest() == v["sha256_digest_hex"]
    assert [hex(w) for w in seed_state(int(seed))] == v["state_s0_s3_hex"]
    rng = Xoshiro(int(seed))
    assert [hex(rng.next_u64()) for _ in range(5)] == v["first_5_uint64_hex"]


def test_seeding_of_large_and_negative_seeds():
    big = 2**32 + 5
    assert seed_state(big) == seed_state_of(bytes([5, 0, 0, 0, 1, 0, 0, 0]))
    assert seed_state(-1) == seed_state_of(bytes([0, 0, 0, 0, 1]))  # ~(-1) = 0, then 0x01
    assert seed_state(-43) == seed_state_of(bytes([42, 0, 0, 0, 1]))
    assert seed_state(0) == seed_state_of(bytes(4))


def seed_state_of(message: bytes) -> tuple[int, ...]:
    d = hashlib.sha256(message).digest()
    return tuple(int.from_bytes(d[8 * i: 8 * i + 8], "little") for i in range(4))


def test_doctest_rand_scalar_and_short_array():
    assert Xoshiro(1234).rand_array(2).tolist() == DOCTESTS["seed!/Xoshiro(1234) rand(rng,2)"]
    rng = Xoshiro(1234)
    assert [rng.rand(), rng.rand()] == DOCTESTS["seed!/Xoshiro(1234) rand(rng,2)"]
    assert Xoshiro(123).rand_array(5).tolist() == DOCTESTS["rand!(Xoshiro(123), zeros(5))"]


def test_doctest_sum_of_1000_uniforms_uses_the_bulk_path():
    expected = entry(DOCTESTS, "sum of rand(1000)")
    x = Xoshiro(1234).rand_array(1000)
    total = 0.0
    for v in x:  # Julia's loop: left-to-right Float64 additions
        total += float(v)
    assert [total] == expected
    sequential = Xoshiro(1234)
    assert [sequential.rand() for _ in range(1000)] != x.tolist()  # really not the scalar stream


def test_doctest_randn_and_randexp_short_arrays():
    assert Xoshiro(123).randn_array(5).tolist() == DOCTESTS["randn!(Xoshiro(123), zeros(5))"]
    assert Xoshiro(123).randexp_array(5).tolist() == DOCTESTS["randexp!(Xoshiro(123), zeros(5))"]


def test_doctest_randexp_float32_then_bulk_3x3():
    expected = entry(DOCTESTS, "randexp(rng, Float32)")
    rng = Xoshiro(123)
    first = np.float32(rng.randexp())
    assert repr(float(first)) == repr(float(np.float32(expected[0])))
    assert [julia_compact(v) for v in rng.randexp_array(9)] == [julia_compact(v) for v in expected[1:]]


def test_doctest_randn_float32_then_complex():
    expected = entry(DOCTESTS, "randn(rng, Float32)")
    rng = Xoshiro(123)
    assert np.float32(rng.randn()) == np.float32(expected[0])
    # randn(rng, ComplexF32): (re, im) = sqrt(1/2) * two Float32 normals. The printed values agree
    # with the product in Float32 (the first one lies on a 6-digit rounding boundary in Float64).
    half = np.float32(math.sqrt(0.5))
    parts = [half * np.float32(rng.randn()) for _ in range(12)]
    assert [julia_compact(v) for v in parts] == [julia_compact(v) for v in expected[1:]]


def test_doctest_randperm_and_randcycle():
    assert Xoshiro(123).randperm(4).tolist() == DOCTESTS["randperm(Xoshiro(123), 4)"]
    assert Xoshiro(123).randcycle(6).tolist() == DOCTESTS["randcycle(Xoshiro(123), 6)"]


def test_randperm_of_100000_with_xoshiro_2025():
    v = VECTORS["randperm_Xoshiro2025_100000"]
    perm = Xoshiro(2025).randperm(N)
    assert perm[:10].tolist() == v["first_10"] and perm[-10:].tolist() == v["last_10"]
    checksum = sum(i * int(p) for i, p in enumerate(perm.tolist(), start=1)) % (2**61 - 1)
    assert checksum == v["sum_of_squares_check"]
    assert np.array_equal(np.sort(perm), np.arange(1, N + 1))


def reference_inside_out(rng: Xoshiro, n: int, shift: int) -> list[int]:
    """a6 with one scalar draw per attempt and the mask in closed form: the smallest 2^k - 1 >= i - 1,
    at least 3."""
    a = [1] if n else []
    for i in range(2, n + 1):
        mask = max(3, (1 << (i - 1).bit_length()) - 1)
        v = next(v for v in iter(lambda: (rng.next_u64() >> 12) & mask, None) if v <= i - shift)
        if v == i - 1:
            a.append(i)
        else:
            a.append(a[v])
            a[v] = i
    return a


@pytest.mark.parametrize("n", [0, 1, 2, 5, 64, 300, 5000])
def test_randperm_and_randcycle_consume_exactly_the_scalar_draws(n):
    for method, shift in (("randperm", 1), ("randcycle", 2)):
        fast, ref = Xoshiro(9), Xoshiro(9)
        assert getattr(fast, method)(n).tolist() == reference_inside_out(ref, n, shift)
        assert fast.state == ref.state and fast.next_u64() == ref.next_u64()


@pytest.mark.parametrize("n_steps", [1, 2, 3, 7, 64, 65, 1000, 12_500])
def test_jump_ahead_lanes_equal_the_sequential_lanes(n_steps):
    lanes = np.array([Xoshiro(s).rand_u64_array(4) for s in range(8)], dtype=np.uint64).T
    np.testing.assert_array_equal(lane_outputs(lanes, n_steps), lane_outputs_sequential(lanes, n_steps))


@pytest.mark.parametrize("log2_k", [0, 3, 6])
def test_jump_equals_stepping_for_many_states_in_chunks(log2_k):
    states = np.array([Xoshiro(s).rand_u64_array(4) for s in range(300)], dtype=np.uint64)
    stepped = states.T.copy()
    for _ in range(2**log2_k):
        julia_rng._step_lanes(stepped)
    np.testing.assert_array_equal(julia_rng._apply(julia_rng._jump(log2_k), states, chunk=128), stepped.T)


def reference_bulk(seed: int, n: int) -> tuple[list[int], tuple]:
    """a4 written out with scalar steps: 32 fork draws, lanes interleaved, remainder from the parent."""
    parent = Xoshiro(seed)
    if n < 8:
        return [parent.next_u64() for _ in range(n)], parent.state
    fork = [parent.next_u64() for _ in range(32)]
    lanes = [[(fork[8 * w + k] * julia_rng.FORK_MULTIPLIERS[w]) & julia_rng.MASK64 for w in range(4)]
             for k in range(8)]
    out = []
    for _ in range(n // 8):
        for k in range(8):
            o, *lanes[k] = julia_rng._step(*lanes[k])
            out.append(o)
    out += [parent.next_u64() for _ in range(n % 8)]
    return out, parent.state


@pytest.mark.parametrize("n", [1, 7, 8, 9, 15, 1000, 1003])
def test_bulk_fill_threshold_fork_and_remainder(n):
    rng = Xoshiro(42)
    expected, parent_after = reference_bulk(42, n)
    assert rng.rand_u64_array(n).tolist() == expected
    assert rng.state == parent_after


# ---- ziggurat tail ----------------------------------------------------------------------------

def tail_positions(rng: Xoshiro, n: int) -> np.ndarray:
    """1-based positions whose raw word falls in the ziggurat's tail (idx 0, rabs >= ki[0])."""
    r = rng.rand_u64_array(n) >> np.uint64(12)
    rabs = (r >> np.uint64(1)).astype(np.int64)
    return np.flatnonzero(((rabs & 0xFF) == 0) & (rabs >= julia_rng.KI[0])) + 1


@pytest.mark.parametrize("key, skip", [("blobs_randn", "four_uniforms"), ("circles_moons_randn", "bulk_uniforms")])
def test_ziggurat_tail_hits(key, skip):
    v = entry(VECTORS["ziggurat_tail_hits"], key)
    rngs = [Xoshiro(42), Xoshiro(42)]
    for rng in rngs:
        if skip == "four_uniforms":
            [rng.rand() for _ in range(4)]
        else:
            rng.rand_array(N)
    positions = tail_positions(rngs[0], 2 * N)
    z = rngs[1].randn_array(2 * N)
    assert len(positions) == v["count"]
    for position, value in entry(v, "first_3"):
        assert position in positions
        assert z[position - 1] == f64(value) and abs(z[position - 1]) > julia_rng.NOR_R


# ---- parts b and c: MLJBase and CounterfactualTraining.jl ------------------------------------

@pytest.fixture(scope="module")
def taija():
    """name -> (X, y) as TaijaData returns them (Float64, MLJBase order, labels 0/1)."""
    return {name: generate_julia(name, N, 42) for name in DATASETS}


@pytest.fixture(scope="module")
def ct_data(_default_config):
    """name -> Prepared with the default config (rng julia, seeds 42 / 2025)."""
    assert _default_config["data"]["synthetic"]["rng"] == "julia"
    return {name: prepare_synthetic(name, _default_config) for name in DATASETS}


def test_blob_centres():
    v = VECTORS["blobs_centres"]
    rng = Xoshiro(42)
    u = rng.rand_array(4)
    assert u.tolist() == [f64(x) for x in v["uniforms"]]
    centres = 20.0 * u.reshape(2, 2).T - 10.0
    assert centres[0].tolist() == [f64(x) for x in v["centre_label1"]]
    assert centres[1].tolist() == [f64(x) for x in v["centre_label2"]]
    X, y = mljbase.make_blobs(Xoshiro(42), N, 0.5, shuffle=False)
    assert np.allclose(X[:49_999].mean(0), centres[0], atol=0.01)
    assert np.allclose(X[50_000:].mean(0), centres[1], atol=0.01)


@pytest.mark.parametrize("name", ["ls", "ol"])
def test_blob_intermediates(name):
    v = VECTORS["datasets"][DATASETS[name]]["intermediate"]
    rng = Xoshiro(42)
    rng.rand_array(4)
    z = rng.randn_array(2 * N)
    assert z[:5].tolist() == [f64(x) for x in entry(v, "first_5_randn_column1")]
    assert z[N: N + 5].tolist() == [f64(x) for x in entry(v, "first_5_randn_column2")]
    rng = Xoshiro(42)
    sd = {"ls": 0.5, "ol": 2.0}[name]
    X, y = mljbase.make_blobs(rng, N, sd, shuffle=False)
    assert X[49_999].tolist() == [f64(x) for x in entry(v, "unshuffled_row_50000")] and y[49_999] == 1
    assert X[50_000].tolist() == [f64(x) for x in entry(v, "unshuffled_row_50001")] and y[50_000] == 2
    assert rng.randperm(N)[:10].tolist() == v["mljbase_perm_first_10"]


@pytest.mark.parametrize("name", ["circ", "moon"])
def test_circle_and_moon_intermediates(name):
    v = VECTORS["datasets"][DATASETS[name]]["intermediate"]
    u = Xoshiro(42).rand_array(N)
    assert u[:5].tolist() == [f64(x) for x in entry(v, "first_5_uniforms")]
    if "uniform_at_row_100000" in v:
        assert u[-1] == f64(v["uniform_at_row_100000"])
    rng = Xoshiro(42)
    make = (lambda r: mljbase.make_circles(r, N, 0.15, 0.01, shuffle=False)) if name == "circ" else \
        (lambda r: mljbase.make_moons(r, N, 0.1, 1.0, 0.3, shuffle=False))
    X, _ = make(rng)
    assert X[:5].tolist() == [[f64(a), f64(b)] for a, b in v["first_5_unshuffled_rows"]]
    if "unshuffled_row_50001" in v:
        assert X[50_000].tolist() == [f64(x) for x in v["unshuffled_row_50001"]]
    assert rng.randperm(N)[:10].tolist() == v["mljbase_perm_first_10"]


@pytest.mark.parametrize("name", list(DATASETS))
def test_taija_points_labels_and_summary(taija, name):
    v = VECTORS["datasets"][DATASETS[name]]
    X, y = taija[name]
    offset = JULIA_LABEL_OFFSET[name]
    assert X.dtype == np.float64 and X.shape == (N, 2)
    assert X[:10].tolist() == [[f64(a), f64(b)] for a, b in v["taija_first_10_points_float64"]]
    assert (y[:10] + offset).tolist() == v["taija_first_10_labels"]
    for label, s in v["summary_float64_all_100000"].items():
        Xc = X[y + offset == int(label)]
        assert len(Xc) == s["n"]
        np.testing.assert_allclose(Xc.mean(0), s["mean"], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(Xc.std(0, ddof=1), s["std_corrected_ddof1"], rtol=1e-12)
        assert Xc.min(0).tolist() == s["min"] and Xc.max(0).tolist() == s["max"]


@pytest.mark.parametrize("name", list(DATASETS))
def test_ct_pool_and_test_are_the_originals(ct_data, name):
    v = VECTORS["datasets"][DATASETS[name]]
    prep, offset = ct_data[name], JULIA_LABEL_OFFSET[name]
    assert prep.X_pool.shape == (3600, 2) and prep.X_test.shape == (900, 2)
    assert [bits_of(p) for p in prep.X_pool[:10]] == [f32_bits(p) for p in v["ct_first_10_points_float32"]]
    assert (prep.y_pool[:10] + offset).tolist() == v["ct_first_10_labels"]
    assert bits_of(prep.X_test[0]) == f32_bits(entry(v, "ct_test_first_point_float32"))
    assert bits_of(prep.X_test[-1]) == f32_bits(entry(v, "ct_test_last_point_float32"))
    assert prep.y_test[-1] + offset == v["ct_test_last_label"]
    counts = lambda y: {str(c + offset): int(k) for c, k in enumerate(np.bincount(y, minlength=2))}
    assert counts(prep.y_pool) == v["ct_pool_label_counts"]
    assert counts(prep.y_test) == v["ct_test_label_counts"]
    assert prep.classes == [0, 1]


def test_ct_shuffle_is_randperm_of_xoshiro_2025_on_float32(taija, ct_data):
    X, y = taija["moon"]
    order = Xoshiro(2025).randperm(N) - 1
    np.testing.assert_array_equal(ct_data["moon"].X_pool, X.astype(np.float32)[order[:3600]])
    np.testing.assert_array_equal(ct_data["moon"].y_test, y[order[-900:]])


def test_configured_centres_replace_the_centre_draws():
    centres = [[5.0, 5.0], [-5.0, -5.0]]
    X, y = generate_julia("ls", 10_000, 42, centres)
    assert np.allclose(X[y == 0].mean(0), centres[0], atol=0.05)
    # no uniforms are drawn: the normals start with the seed's first words
    z = Xoshiro(42).randn_array(20_000)
    X_raw, _ = mljbase.make_blobs(Xoshiro(42), 10_000, 0.5, centers=centres, shuffle=False)
    assert X_raw[0, 0] == z[0] * 0.5 + 5.0
