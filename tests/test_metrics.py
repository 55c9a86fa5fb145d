"""Metric values of the evaluation stage on tiny hand-made sets (method 6.4-6.8)."""

import math

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
