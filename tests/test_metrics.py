"""Metric values of the evaluation stage on tiny hand-made sets (method 6.4-6.8)."""

import math

import numpy as np
import pytest
import torch

from ctpaper.evaluation import metrics
from ctpaper.evaluation.performance import accuracy_f1
from ctpaper.evaluation.robustness import fgsm_accuracy, fgsm_direction

torch.set_num_threads(1)


def linear(weight, bias):
    m = torch.nn.Linear(len(weight[0]), len(weight))
    with torch.no_grad():
        m.weight.copy_(torch.tensor(weight, dtype=torch.float32))
        m.bias.copy_(torch.tensor(bias, dtype=torch.float32))
    return m


# ---- validity, cost, redundancy ----------------------------------------------------------------

def test_validity_is_argmax_equals_target():
    model = linear([[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0])     # predicts the larger coordinate
    x = torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, 4.0]])
    t = torch.tensor([0, 0, 1])
    assert metrics.validity(model, x, t).tolist() == [True, False, False]


def test_cost_and_redundancy_by_hand():
    x = torch.tensor([[0.0, 1.0, 2.0, 3.0], [1.0, 1.0, 1.0, 1.0]])
    x_cf = torch.tensor([[0.5, 1.0, 1.0, 3.0 + 5e-6], [1.0, 1.0, 1.0, 1.0]])
    assert metrics.cost(x_cf, x).tolist() == pytest.approx([0.5 + 1.0 + 5e-6, 0.0], abs=1e-6)
    # feature 3 moved by 5e-6 < 1e-5 -> counts as unchanged
    assert metrics.redundancy(x_cf, x, 1e-5).tolist() == [0.5, 1.0]
    assert metrics.redundancy(x_cf, x, 1e-6).tolist() == [0.25, 1.0]


# ---- IP ----------------------------------------------------------------------------------------

def test_ip_by_hand():
    ref = torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.0, 2.0]])
    x = torch.tensor([[0.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    # row 0: (1 + 2 + 2) / 3; row 1: (3 + 0 + 0) / 3; row 2: (1 + 2 + 2) / 3
    assert metrics.implausibility(x, ref).tolist() == pytest.approx([5 / 3, 1.0, 5 / 3])


def test_ip_matches_double_loop_and_cdist_with_ties_and_chunks():
    g = torch.Generator().manual_seed(0)
    ref = torch.randint(-3, 4, (37, 5), generator=g).float()   # many ties with x
    x = torch.cat([torch.randint(-4, 5, (20, 5), generator=g).float(),
                   torch.randn(13, 5, generator=g) * 3])
    xd, rd = x.double(), ref.double()
    loop = torch.tensor([sum(float((xi - r).abs().sum()) for r in rd) / len(rd) for xi in xd],
                        dtype=torch.float64)
    got = metrics.implausibility(x, ref, chunk=7)
    assert torch.allclose(got, loop, rtol=0, atol=1e-10)
    assert torch.allclose(got, torch.cdist(x.double(), ref.double(), p=1).mean(1), atol=1e-10)


def test_ip_by_target_uses_own_reference_and_nan_when_missing():
    refs = {0: torch.zeros(4, 2), 1: torch.ones(2, 2)}
    x = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]])
    out = metrics.implausibility_by_target(x, torch.tensor([0, 1, 2]), refs)
    assert out[:2].tolist() == [2.0, 0.0] and math.isnan(out[2])


# ---- IP*: unbiased MMD^2 -----------------------------------------------------------------------

def mmd2_loop(X, Y, l):
    X, Y = X.double(), Y.double()
    k = lambda a, b: math.exp(-float(((a - b) ** 2).sum()) / (2 * l * l))  # noqa: E731
    n, m = len(X), len(Y)
    xx = sum(k(X[i], X[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(Y[i], Y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(X[i], Y[j]) for i in range(n) for j in range(m)) / (n * m)
    return xx + yy - 2 * xy


def test_mmd2_tiny_by_hand():
    # X = {0, 1}, Y = {0, 2} on a line, l = 1: k(0,1)=e^-.5, k(0,2)=e^-2, k(1,2)=e^-.5
    X = torch.tensor([[0.0], [1.0]])
    Y = torch.tensor([[0.0], [2.0]])
    e = math.exp
    want = e(-0.5) + e(-2) - 2 * (1 + e(-2) + e(-0.5) + e(-0.5)) / 4
    assert metrics.mmd2_unbiased(X, Y, 1.0) == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize("l", [0.5, 5.0])
def test_mmd2_matches_double_loop(l):
    g = torch.Generator().manual_seed(1)
    X = torch.randn(7, 3, generator=g)
    Y = torch.randn(9, 3, generator=g) + 0.5
    assert metrics.mmd2_unbiased(X, Y, l) == pytest.approx(mmd2_loop(X, Y, l), abs=1e-10)
    # unbiased: can be negative for samples of the same distribution
    assert math.isnan(metrics.mmd2_unbiased(X[:1], Y, l))


def test_mmd2_groups_batched_equals_single():
    g = torch.Generator().manual_seed(2)
    sizes = [(5, 8), (1, 8), (12, 3), (2, 2), (3, 1), (9, 11)]
    X = [torch.randn(n, 4, generator=g) for n, _ in sizes]
    Y = [torch.randn(m, 4, generator=g) * 2 for _, m in sizes]
    want = [metrics.mmd2_unbiased(x, y, 2.0) for x, y in zip(X, Y)]
    for chunk in (1, 4, 64):
        got = metrics.mmd2_unbiased_groups(X, Y, 2.0, group_chunk=chunk)
        for a, b in zip(got.tolist(), want):
            assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-10)
    # the large-Y path (cross term in Y chunks) and a supplied Y-Y term agree too
    yy = [metrics.kernel_offdiag_mean(y, 2.0) for y in Y]
    got = metrics.mmd2_unbiased_groups(X, Y, 2.0, yy=yy, max_padded_y=2)
    for a, b in zip(got.tolist(), want):
        assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-10)


def test_kernel_offdiag_mean_chunked():
    g = torch.Generator().manual_seed(3)
    Y = torch.randn(50, 3, generator=g)
    k = torch.exp(-torch.cdist(Y.double(), Y.double()) ** 2 / (2 * 1.5 ** 2))
    want = float((k.sum() - k.diagonal().sum()) / (50 * 49))
    assert metrics.kernel_offdiag_mean(Y, 1.5, chunk=7) == pytest.approx(want, abs=1e-12)


# ---- FGSM (6.8) and performance (6.10) ---------------------------------------------------------

def test_fgsm_linear_model_by_hand():
    # logits z = W x + c; dCE/dx = W^T (softmax(z) - onehot(y))
    W = [[1.0, -2.0], [-1.0, 0.5]]
    model = linear(W, [0.0, 0.0])
    x = torch.tensor([[0.1, 0.05], [0.3, -0.2], [0.02, 0.01]])
    y = torch.tensor([0, 1, 0])
    Wt = torch.tensor(W)
    p = torch.softmax(x @ Wt.T, 1)
    grad = (p - torch.nn.functional.one_hot(y, 2).float()) @ Wt
    assert torch.equal(fgsm_direction(model, x, y), grad.sign())
    eps = [0.0, 0.01, 0.05, 0.2]
    want = []
    for e in eps:
        xa = x + e * grad.sign()
        want.append(int(((xa @ Wt.T).argmax(1) == y).sum()) / len(y))
    assert fgsm_accuracy(model, x, y, eps) == want
    # by hand: clean logit gaps z0 - z1 = 2x0 - 2.5x1 = [0.075, 1.1, 0.015] -> predictions
    # [0, 0, 0], accuracy 2/3; the step moves each gap by -eps*4.5 for y=0 rows, so eps = 0.01
    # flips only row 2 (0.015 < 0.045), eps = 0.05 flips row 0 too; row 1 (y=1) stays wrong.
    assert want == [2 / 3, 1 / 3, 0.0, 0.0]


def test_accuracy_and_macro_f1():
    model = linear([[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0])
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    y = torch.tensor([0, 0, 1, 1])                 # predictions 0, 0, 1, 0
    acc, f1, n_pred = accuracy_f1(model, x, y)
    # class 0: P = 2/3, R = 1 -> F1 0.8; class 1: P = 1, R = 1/2 -> F1 2/3
    assert acc == 0.75 and f1 == pytest.approx((0.8 + 2 / 3) / 2) and n_pred == 2
    # a model that predicts class 0 everywhere is counted as single-class
    assert accuracy_f1(linear([[1.0, 0.0], [0.0, 0.0]], [10.0, 0.0]), x, y)[2] == 1


# ---- IP with per-counterfactual reference draws (the original's, eval.ip.reference: per_ce) ------

def _eval_set(n_per_class=(12, 30, 18), d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.cat([torch.full((n,), c) for c, n in enumerate(n_per_class)])
    X = torch.randn(len(y), d, generator=g) + 2.0 * y[:, None]
    return X, y


def _literal_original_ip(x, t, X, y, n_balanced, n_draws, rng):
    """CE.jl's find_potential_neighbours written out for one CE: the whole class-balanced resample
    (every class, round(min(N, n)/K) rows each, with replacement), then n_draws draws with
    replacement among its rows of true label t."""
    K = int(y.max()) + 1
    per = int(round(min(len(y), n_balanced) / K))
    idx = np.sort(np.concatenate([rng.choice(np.flatnonzero(y.numpy() == c), per) for c in range(K)]))
    ids = idx[y.numpy()[idx] == t]
    ref = X[torch.from_numpy(rng.choice(ids, n_draws))]
    return float(torch.cdist(x[None].double(), ref.double(), p=1).mean())


def test_balanced_per_class_rounds_like_julia():
    assert metrics.balanced_per_class(10000, 10, 1000) == 100     # MNIST test set
    assert metrics.balanced_per_class(2654, 2, 1000) == 500       # a binary tabular test set
    assert metrics.balanced_per_class(60, 3, 1000) == 20          # N < 1000: min(N, 1000)
    assert metrics.balanced_per_class(5, 2, 1000) == 2            # round(2.5) == 2 (half to even)
    assert metrics.balanced_per_class(7, 2, 1000) == 4            # round(3.5) == 4


def test_resample_draws_shapes_ranges_and_counts():
    rows, picks = metrics.resample_reference_draws(50, 13, 20, 1000, np.random.default_rng(0))
    assert rows.shape == (50, 20) and picks.shape == (50, 1000)
    assert rows.min() == 0 and rows.max() == 12
    assert picks.min() == 0 and picks.max() == 19


def test_per_ce_ip_mean_equals_exact_mean_within_standard_error():
    """Every draw is marginally uniform over the target-class rows, so the per-CE estimator is
    unbiased for the exact mean L1 distance to all of them."""
    X, y = _eval_set()
    x = torch.tensor([[0.5, -1.0, 2.0], [3.0, 1.0, 0.0]])
    n_rep = 3000
    for t in range(3):
        xs = x.repeat(n_rep, 1)                       # every row gets its own reference draws
        est = metrics.implausibility_resampled(xs, torch.full((len(xs),), t), X, y, 3, 1000, 1000,
                                               np.random.default_rng(t), block=256).numpy()
        exact = metrics.implausibility(x, X[y == t]).numpy()
        for i in range(2):
            e = est[i::2]
            se = e.std(ddof=1) / np.sqrt(len(e))
            assert abs(e.mean() - exact[i]) < 3 * se, (t, i, e.mean(), exact[i], se)
            assert e.std() > 0                          # the reference set differs between CEs


def test_per_ce_ip_is_distributed_as_the_original_draw():
    """Mean and spread of the batched estimator equal those of CE.jl's literal two-stage draw (the
    spread is set by the class-balanced resample's size: round(min(N, n_balanced)/K) target rows)."""
    X, y = _eval_set()
    x = torch.tensor([1.0, 0.0, 2.0])
    n_rep, t = 3000, 1
    ours = metrics.implausibility_resampled(x.repeat(n_rep, 1), torch.full((n_rep,), t), X, y, 3,
                                            1000, 1000, np.random.default_rng(1)).numpy()
    rng = np.random.default_rng(2)
    lit = np.array([_literal_original_ip(x, t, X, y, 1000, 1000, rng) for _ in range(n_rep)])
    assert abs(ours.mean() - lit.mean()) < 4 * np.sqrt(ours.var() / n_rep + lit.var() / n_rep)
    assert 0.85 < ours.std() / lit.std() < 1.15
    # the spread is that of a two-stage draw with m = 20 resampled target rows (60 rows, 3 classes),
    # sigma^2 (1/m + 1/n_draws - 1/(m n_draws)); a single-stage draw of 1000 rows would be ~7x less
    d = (X[y == t].double() - x.double()).abs().sum(1)
    var = float(d.var(unbiased=False)) * (1 / 20 + 1 / 1000 - 1 / 20000)
    assert 0.9 < ours.std() / np.sqrt(var) < 1.1


@pytest.mark.parametrize("n_balanced", [1000, 6])   # 6: m = 2 << N_t, the batched-gather path
def test_per_ce_ip_batched_equals_row_by_row_and_is_reproducible(n_balanced):
    X, y = _eval_set(seed=4)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(700, 3, generator=g)
    t = torch.randint(0, 3, (700,), generator=g)
    a = metrics.implausibility_resampled(x, t, X, y, 3, n_balanced, 1000,
                                         np.random.default_rng(7), block=300)
    b = metrics.implausibility_resampled(x, t, X, y, 3, n_balanced, 1000,
                                         np.random.default_rng(7), block=300, max_elems=64)
    assert torch.equal(a, b)                          # the memory bound does not change the draws
    # row by row with the same draws: block by block, class by class
    rng = np.random.default_rng(7)
    m = metrics.balanced_per_class(len(y), 3, n_balanced)
    want = torch.empty(700, dtype=torch.float64)
    for b0 in range(0, 700, 300):
        tb = t[b0:b0 + 300].numpy()
        for c in np.unique(tb):
            sel = b0 + np.flatnonzero(tb == c)
            cls = X[y == c]
            rows, picks = metrics.resample_reference_draws(len(sel), len(cls), m, 1000, rng)
            for i, j in enumerate(sel):
                ref = cls[torch.from_numpy(rows[i][picks[i]])]
                want[j] = (x[j].double() - ref.double()).abs().sum(1).mean()
    torch.testing.assert_close(a, want, rtol=1e-12, atol=1e-12)
    assert torch.isnan(metrics.implausibility_resampled(x[:3], torch.tensor([0, 1, 3]), X, y, 4,
                                                        1000, 10, np.random.default_rng(0))[2])
