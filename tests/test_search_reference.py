"""The fast path of the search (``ctpaper.search.search``) against the reference implementation
(``ctpaper.search.reference_search``), bit for bit (torch.equal)."""

import pytest
import torch

from ctpaper.data.io import MUTABILITY_CODES as MUT
from ctpaper.models import build_model
from ctpaper.search import CompactingSearch, reference_search, run_search, search

from conftest import search_config

torch.set_num_threads(1)

D = 9
BLOCKS = [[2, 3, 4], [6, 7]]
MUTABILITY = torch.tensor([MUT["both"], MUT["none"], MUT["both"], MUT["both"], MUT["both"],
                           MUT["increase"], MUT["both"], MUT["both"], MUT["decrease"]])
CLAMP = torch.tensor([True, True, False, False, False, True, False, False, True])
FIELDS = ("x_cf", "x_adv", "mature", "steps")


def problem(n: int, seed: int, blocks: bool, x_init: bool, model=None):
    """A model (an MLP unless given), n factuals (one-hot blocks if ``blocks``), targets and an
    optional initial state. The first n/10 factuals are the most confidently predicted of a large
    pool, with their predicted class as target: they converge before their first step."""
    g = torch.Generator().manual_seed(seed)
    if model is None:
        m = build_model("mlp", D, 3, hidden=16, seed=seed)
        with torch.no_grad():           # confident enough to reach tau = 0.95 within the domain
            m.fc2.weight.mul_(4.0)
    else:
        m = model
    pool = 2.0 * torch.randn(20 * n, D, generator=g)
    if blocks:
        pool[:, 2:5] = torch.nn.functional.one_hot(torch.randint(0, 3, (20 * n,), generator=g), 3)
        pool[:, 6:8] = torch.nn.functional.one_hot(torch.randint(0, 2, (20 * n,), generator=g), 2)
    with torch.no_grad():
        p_max, pred = m(pool).softmax(1).max(1)
    confident = p_max.argsort(descending=True)[: n // 10]
    x = torch.cat([pool[confident], pool[-(n - n // 10):] / 2.0])
    pred = torch.cat([pred[confident], pred[-(n - n // 10):]])
    if blocks:
        x[:, 2:5], x[:, 6:8] = x[:, 2:5].sign().abs(), x[:, 6:8].sign().abs()   # undo / 2
    t = (pred + torch.randint(1, 3, (n,), generator=g)) % 3
    t[: n // 10] = pred[: n // 10]
    init = x + 0.1 * torch.randn(n, D, generator=g) if x_init else None
    return m, x, t, init


def run_both(cfg, m, x, t, init, mutability, domain, blocks, compact):
    lo, hi = (-2.0, 2.0) if domain == "scalar" else (-torch.linspace(1.0, 3.0, D),
                                                      torch.linspace(1.5, 2.5, D))
    kw = dict(mutability=mutability, x_init=init, categorical_blocks=BLOCKS if blocks else None,
              clamp_mask=CLAMP if blocks else None)
    fast = search(m, x, t, cfg, lo, hi, generator=torch.Generator().manual_seed(1), compact=compact,
                  **kw)
    ref = reference_search(m, x, t, cfg, lo, hi, generator=torch.Generator().manual_seed(1), **kw)
    return fast, ref


CASES = [  # generator, convergence, tau, T, lambda_cst, mutability, domain, one-hot blocks, x_init
    ("ecco", "threshold", 0.75, 30, 0.001, False, "scalar", False, False),
    ("ecco", "threshold", 0.9, 30, 0.0, True, "vector", False, False),
    ("ecco", "threshold", 0.5, 50, 0.01, True, "scalar", True, False),
    ("ecco", "max_iter", 0.75, 30, 0.01, False, "vector", True, True),
    ("ecco", "threshold", 0.75, 5, 0.01, True, "vector", False, True),
    ("ecco", "max_iter", 0.9, 5, 0.0, False, "scalar", False, False),
    ("generic", "threshold", 0.75, 30, 0.01, False, "vector", False, False),
    ("generic", "threshold", 0.9, 30, 0.001, True, "scalar", True, True),
    ("generic", "threshold", 0.5, 5, 0.0, False, "scalar", True, False),
    ("generic", "max_iter", 0.75, 30, 0.0, True, "vector", False, True),
    ("generic", "max_iter", 0.5, 50, 0.01, False, "scalar", True, False),
    ("generic", "threshold", 0.95, 50, 0.01, True, "vector", True, True),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c)))
def test_masked_fast_path_equals_reference_bit_for_bit(case):
    gen, conv, tau, T, lcst, mut, domain, blocks, x_init = case
    cfg = search_config(generator=gen, convergence=conv, tau=tau, T=T, lr=0.5, lambda_cst=lcst,
                       lambda_egy=5.0)
    m, x, t, init = problem(200, seed=len(CASES) + CASES.index(case), blocks=blocks, x_init=x_init)
    fast, ref = run_both(cfg, m, x, t, init, MUTABILITY if mut else None, domain, blocks,
                         compact=False)
    for f in FIELDS:
        assert torch.equal(getattr(fast, f), getattr(ref, f)), f
    if conv == "threshold":     # rows stop at many different steps, some before their first step
        assert len(set(ref.steps.tolist())) > 3 and bool((ref.steps == 0).any())
    assert not torch.equal(ref.x_cf, x if init is None else init)   # the search moved


class RowwiseModel(torch.nn.Module):
    """Logits from element-wise operations and row sums only: a row's outputs and gradients do not
    depend on the other rows of the batch (unlike a matrix product, whose kernels may round a row
    differently for another batch size). The input enters one operation, as in an MLP, so the L1
    subgradient is added to the model's gradient last in both paths."""

    def __init__(self, seed: int):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = torch.nn.Parameter(torch.randn(3, D, generator=g))
        self.v = torch.nn.Parameter(0.1 * torch.randn(3, D, generator=g))

    def forward(self, x):
        h = x.unsqueeze(1)
        return (h * self.w + h * h * self.v).sum(2)


def test_rowwise_model_is_batch_independent():
    m = RowwiseModel(0)
    x = torch.randn(600, D)
    rows = torch.randperm(600)[:150].sort().values
    for sub, full in ((m(x[rows]), m(x)[rows]),):
        assert torch.equal(sub, full)
    xa, xb = x.clone().requires_grad_(True), x[rows].clone().requires_grad_(True)
    (ga,) = torch.autograd.grad(m(xa).log_softmax(1)[:, 0].sum(), xa)
    (gb,) = torch.autograd.grad(m(xb).log_softmax(1)[:, 0].sum(), xb)
    assert torch.equal(ga[rows], gb)


@pytest.mark.parametrize("case", CASES[:3] + CASES[6:9] + CASES[11:], ids=lambda c: "-".join(map(str, c)))
def test_compacting_fast_path_equals_reference_bit_for_bit(case):
    """Compaction (finished rows written back, working set shrunk, repeatedly) changes no bit when
    the model's row results do not depend on the batch."""
    gen, conv, tau, T, lcst, mut, domain, blocks, x_init = case
    cfg = search_config(generator=gen, convergence=conv, tau=tau, T=T, lr=0.5, lambda_cst=lcst,
                       lambda_egy=5.0)
    m, x, t, init = problem(600, seed=CASES.index(case), blocks=blocks, x_init=x_init,
                            model=RowwiseModel(CASES.index(case)))
    fast, ref = run_both(cfg, m, x, t, init, MUTABILITY if mut else None, domain, blocks,
                         compact=True)
    for f in FIELDS:
        assert torch.equal(getattr(fast, f), getattr(ref, f)), f
    lo, hi = (-2.0, 2.0) if domain == "scalar" else (-torch.linspace(1.0, 3.0, D),
                                                      torch.linspace(1.5, 2.5, D))
    engine = CompactingSearch(m, x, t, cfg, lo, hi, MUTABILITY if mut else None,
                              BLOCKS if blocks else None, CLAMP if blocks else None, init,
                              torch.Generator().manual_seed(1), compact=True)
    again = run_search(engine, cfg)
    assert engine.batch_rows is not None and len(engine.batch_rows) < 600   # it did compact
    assert torch.equal(again.x_cf, fast.x_cf)


def test_compaction_with_matrix_products_changes_only_rounding():
    """With an MLP, a compacted working set is multiplied in smaller batches, and MKL may round a row
    of a matrix product differently for another batch size: same steps and maturity, states equal
    to float32 rounding."""
    cfg = search_config(generator="ecco", tau=0.5, T=30, lr=0.5, lambda_cst=0.01)
    m, x, t, _ = problem(300, seed=0, blocks=False, x_init=False)
    fast, ref = run_both(cfg, m, x, t, None, None, "scalar", False, compact=True)
    assert len(set(ref.steps.tolist())) > 10
    assert torch.equal(fast.steps, ref.steps) and torch.equal(fast.mature, ref.mature)
    torch.testing.assert_close(fast.x_cf, ref.x_cf, rtol=0, atol=1e-6)
    torch.testing.assert_close(fast.x_adv, ref.x_adv, rtol=0, atol=1e-6)
