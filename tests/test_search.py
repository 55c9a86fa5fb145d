"""Batched counterfactual search (method 4): values, gradients and properties on tiny problems."""

import math

import numpy as np
import pytest
import torch

from ctpaper.data.io import MUTABILITY_CODES as MUT
from ctpaper.models import build_model
from ctpaper.search import (apply_mutability, ecco_schedule, energy, energy_penalty,
                            energy_weight, p_target, protect, reconstruct_categoricals, search,
                            search_loss)
from ctpaper.vae import train_vae

from conftest import linear_model as _linear_model, search_config

torch.set_num_threads(1)

W = [[1.0, -1.0], [0.5, 2.0]]
B = [0.1, -0.2]


def linear_model(w=W, b=B):
    return _linear_model(w, b)


def small_mlp(d=6, k=3, seed=0):
    return build_model("mlp", d, k, hidden=8, seed=seed)


# ---- reference implementation (float64, hand-derived gradients of a linear model) ---------------
def ref_grad(w, b, xs, x, t, cfg, k):
    z = w @ xs + b
    p = np.exp(z - z.max())
    p /= p.sum()
    onehot = np.eye(len(b))[t]
    g = w.T @ (p - onehot)                                   # d CE / dx'
    g = g + cfg.lambda_cst * np.sign(xs - x)                 # d lambda |x' - x|_1 (0 at 0)
    if cfg.generator == "ecco":
        T = cfg.T
        bb = round(T / 25)
        a = bb / 10
        phi = a * (bb + k + 1) ** -0.9
        e = -z[t]
        g = g + cfg.lambda_egy * phi * (1 + 2e-3 * e) * (-w[t])   # d phi (E + 0.001 E^2)
    return g


def ref_search(w, b, x, t, cfg, lo, hi, mut=None):
    """Method 4.2 for one sample, written out plainly; returns (x_cf, x_adv, mature, steps, states)."""
    w, b, x = np.asarray(w, float), np.asarray(b, float), np.asarray(x, float)

    def pt(v):
        z = w @ v + b
        e = np.exp(z - z.max())
        return e[t] / e.sum()

    xs, adv, steps, active, states = x.copy(), x.copy(), 0, True, [x.copy()]
    for k in range(cfg.T):
        if cfg.convergence == "threshold":
            active = active and pt(xs) < cfg.tau
        if not active:
            break
        dx = -cfg.lr * ref_grad(w, b, xs, x, t, cfg, k)
        if mut is not None:
            dx = np.where(mut == MUT["none"], 0.0, dx)
            dx = np.where(mut == MUT["increase"], np.maximum(dx, 0), dx)
            dx = np.where(mut == MUT["decrease"], np.minimum(dx, 0), dx)
        xs = np.clip(xs + dx, lo, hi)
        steps += 1
        states.append(xs.copy())
        d = np.abs(xs - x).max()
        if (d < cfg.eps) if cfg.eps_strict else (d <= cfg.eps):
            adv = xs.copy()
    mature = True if cfg.convergence == "max_iter" else (steps > 0 and pt(xs) >= cfg.tau)
    return xs, adv, mature, steps, states


# ---- helpers and loss values --------------------------------------------------------------------
def test_ecco_schedule_values():
    assert ecco_schedule(30) == (0.1, 1)
    assert ecco_schedule(50) == (0.2, 2)
    assert ecco_schedule(25)[1] == 1
    assert ecco_schedule(100)[1] == 4
    assert ecco_schedule(1000) == (4.0, 40)
    assert ecco_schedule(5) == (0.0, 0)
    assert energy_weight(0, 30) == pytest.approx(0.1 * 2 ** -0.9)
    assert energy_weight(3, 50) == pytest.approx(0.2 * 6 ** -0.9)
    assert energy_weight(2, 5) == 0.0


def test_search_loss_value_and_gradient_match_hand_computation():
    m = linear_model()
    x = torch.tensor([[0.3, -0.4]])
    xs = torch.tensor([[0.5, 0.1]], requires_grad=True)
    t = torch.tensor([1])
    cfg = search_config(generator="ecco", T=30, lambda_cst=0.001, lambda_egy=5.0)
    k = 2
    # hand computation
    z0 = 1.0 * 0.5 - 1.0 * 0.1 + 0.1          # 0.5
    z1 = 0.5 * 0.5 + 2.0 * 0.1 - 0.2          # 0.25
    ce = math.log(math.exp(z0) + math.exp(z1)) - z1
    l1 = 0.001 * (abs(0.5 - 0.3) + abs(0.1 + 0.4))
    e = -z1
    phi = 0.1 * (1 + k + 1) ** -0.9
    pen = 5.0 * phi * (e + 0.001 * e * e)
    loss = search_loss(m, xs, x, t, cfg, k)
    assert float(loss.detach()) == pytest.approx(ce + l1 + pen, rel=1e-6)
    (g,) = torch.autograd.grad(loss.sum(), xs)
    ref = ref_grad(np.array(W), np.array(B), np.array([0.5, 0.1]), np.array([0.3, -0.4]), 1, cfg, k)
    assert np.allclose(g.numpy()[0], ref, atol=1e-6)
    # energy helpers
    logits = m(xs.detach()).detach()
    assert float(energy(logits, t)) == pytest.approx(e)
    assert float(energy_penalty(logits, t, k, 30)) == pytest.approx(phi * (e + 0.001 * e * e))
    assert float(p_target(m, xs.detach(), t).detach()) == pytest.approx(
        math.exp(z1) / (math.exp(z0) + math.exp(z1)), rel=1e-6)
    # generic drops the energy term
    g_cfg = search_config(generator="generic", T=30)
    assert float(search_loss(m, xs.detach(), x, t, g_cfg, k).detach()) == pytest.approx(ce + l1, rel=1e-6)


@pytest.mark.parametrize("generator,convergence,tau,mut", [
    ("ecco", "max_iter", 0.75, None),
    ("ecco", "threshold", 0.75, None),
    ("generic", "threshold", 0.9, None),
    ("ecco", "threshold", 0.95, [MUT["increase"], MUT["both"]]),
    ("generic", "max_iter", 0.75, [MUT["none"], MUT["decrease"]]),
])
def test_engine_matches_reference_loop(generator, convergence, tau, mut):
    cfg = search_config(generator=generator, convergence=convergence, tau=tau, T=30, lr=0.5,
                       lambda_cst=0.05, lambda_egy=5.0, eps=0.3)
    m = linear_model()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 2, generator=g)
    t = 1 - m(x).argmax(1)
    lo, hi = np.array([-1.5, -2.0]), np.array([1.5, 2.5])
    mut_t = None if mut is None else torch.tensor(mut)
    res = search(m, x, t, cfg, torch.tensor(lo, dtype=torch.float32),
                 torch.tensor(hi, dtype=torch.float32), mutability=mut_t)
    for i in range(len(x)):
        xr, adv, mature, steps, _ = ref_search(W, B, x[i].double().numpy(), int(t[i]), cfg, lo, hi,
                                               None if mut is None else np.array(mut))
        assert int(res.steps[i]) == steps
        assert bool(res.mature[i]) == mature
        assert np.allclose(res.x_cf[i].numpy(), xr, atol=1e-5)
        assert np.allclose(res.x_adv[i].numpy(), adv, atol=1e-5)


# ---- properties -----------------------------------------------------------------------------------
def test_model_parameters_get_no_gradient_and_stay_trainable():
    m = small_mlp()
    x = torch.randn(20, 6)
    t = (m(x).argmax(1) + 1) % 3
    search(m, x, t, search_config(), -3.0, 3.0)
    assert all(p.grad is None for p in m.parameters())
    assert all(p.requires_grad for p in m.parameters())


def test_protected_features_never_move_and_monotone_constraints_hold():
    m = linear_model()
    x = torch.tensor([[1.0, 1.0], [0.5, -0.5], [2.0, 0.0]])
    t = torch.tensor([1, 1, 1])
    # unconstrained, the search for t = 1 lowers feature 0 and raises feature 1
    cfg = search_config(generator="generic", tau=0.99, T=30, lr=0.5, convergence="max_iter")
    free = search(m, x, t, cfg, -5.0, 5.0)
    assert bool((free.x_cf[:, 0] < x[:, 0]).all()) and bool((free.x_cf[:, 1] > x[:, 1]).all())
    prot = search(m, x, t, cfg, -5.0, 5.0, mutability=torch.tensor([MUT["none"], MUT["none"]]))
    assert torch.equal(prot.x_cf, x) and torch.equal(prot.x_adv, x)
    inc = search(m, x, t, cfg, -5.0, 5.0,
                 mutability=torch.tensor([MUT["increase"], MUT["decrease"]]))
    assert torch.equal(inc.x_cf, x)           # both wanted directions are forbidden
    mixed = search(m, x, t, cfg, -5.0, 5.0,
                   mutability=torch.tensor([MUT["none"], MUT["increase"]]))
    assert torch.equal(mixed.x_cf[:, 0], x[:, 0])
    assert bool((mixed.x_cf[:, 1] > x[:, 1]).all())


def test_every_search_state_stays_within_bounds():
    m = linear_model()
    x = torch.tensor([[0.0, 0.0], [0.9, -0.9], [-0.5, 0.5]])
    t = torch.tensor([1, 1, 1])
    lo, hi = torch.tensor([-0.2, -1.0]), torch.tensor([1.0, 1.0])   # row 2 starts below lo[0]
    reached = torch.zeros(2, dtype=torch.bool)
    for T in range(1, 16):   # generic trajectories are prefixes of each other: final state = state T
        cfg = search_config(generator="generic", T=T, lr=0.8, convergence="max_iter")
        r = search(m, x, t, cfg, lo, hi)
        assert bool(((r.x_cf >= lo) & (r.x_cf <= hi)).all())
        # x_adv is a search state or (x'_0) the factual itself, which may lie outside the domain
        inside = ((r.x_adv >= lo) & (r.x_adv <= hi)).all(1)
        assert bool((inside | (r.x_adv == x).all(1)).all())
        reached |= ((r.x_cf == lo) | (r.x_cf == hi)).any(0)
    assert bool(reached.all())   # the bounds were binding, so clamping was exercised


def test_ecco_equals_generic_for_T5_and_differs_for_T30():
    m = small_mlp()
    x = torch.randn(30, 6, generator=torch.Generator().manual_seed(1))
    t = (m(x).argmax(1) + 1) % 3
    for T, same in ((5, True), (30, False)):
        e = search(m, x, t, search_config(generator="ecco", T=T, tau=0.99, lr=0.5), -4.0, 4.0)
        g = search(m, x, t, search_config(generator="generic", T=T, tau=0.99, lr=0.5), -4.0, 4.0)
        assert torch.equal(e.x_cf, g.x_cf) == same


def test_batch_equals_single_searches():
    m = small_mlp(seed=3)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(25, 6, generator=g)
    t = (m(x).argmax(1) + torch.randint(1, 3, (25,), generator=g)) % 3
    cfg = search_config(tau=0.7, T=30, lr=0.5, lambda_cst=0.01)
    mut = torch.tensor([MUT["none"], 0, 0, MUT["increase"], 0, MUT["decrease"]])
    batch = search(m, x, t, cfg, -3.0, 3.0, mutability=mut)
    assert 0 < int(batch.mature.sum()) < 25 and len(set(batch.steps.tolist())) > 2
    for i in range(25):
        one = search(m, x[i:i + 1], t[i:i + 1], cfg, -3.0, 3.0, mutability=mut)
        assert int(one.steps[0]) == int(batch.steps[i])
        assert bool(one.mature[0]) == bool(batch.mature[i])
        assert torch.allclose(one.x_cf[0], batch.x_cf[i], atol=1e-6, rtol=0)
        assert torch.allclose(one.x_adv[0], batch.x_adv[i], atol=1e-6, rtol=0)


def test_compaction_gives_identical_results():
    m = build_model("mlp", 40, 4, hidden=16, seed=4)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(600, 40, generator=g)
    t = (m(x).argmax(1) + torch.randint(1, 4, (600,), generator=g)) % 4
    cfg = search_config(tau=0.5, T=30, lr=0.5)
    a = search(m, x, t, cfg, -3.0, 3.0, compact=True)
    b = search(m, x, t, cfg, -3.0, 3.0, compact=False)
    assert len(set(a.steps.tolist())) > 5    # rows finish at many different steps
    for f in ("x_cf", "x_adv", "mature", "steps"):
        assert torch.equal(getattr(a, f), getattr(b, f)), f


def test_already_valid_factual_is_returned_unchanged_and_not_mature():
    m = linear_model()
    x = torch.tensor([[-3.0, 3.0], [3.0, -3.0]])   # row 0 strongly class 1, row 1 class 0
    t = torch.tensor([1, 1])
    r = search(m, x, t, search_config(tau=0.75, lr=0.5), -10.0, 10.0)
    assert int(r.steps[0]) == 0 and not bool(r.mature[0]) and torch.equal(r.x_cf[0], x[0])
    assert int(r.steps[1]) > 0 and bool(r.mature[1])
    mx = search(m, x, t, search_config(T=7, convergence="max_iter"), -10.0, 10.0)
    assert bool(mx.mature.all()) and mx.steps.tolist() == [7, 7]


def test_non_finite_update_is_zeroed():
    class Bad(torch.nn.Module):   # gradient NaN in feature 0, finite in feature 1
        def forward(self, x):
            return torch.stack([torch.zeros_like(x[:, 0]), torch.sqrt(x[:, 0] * 0) + x[:, 1]], 1)

    x = torch.tensor([[0.0, 0.0]])
    r = search(Bad(), x, torch.tensor([1]), search_config(generator="generic", T=3, lr=1.0,
                                                         convergence="max_iter"), -5.0, 5.0)
    assert float(r.x_cf[0, 0]) == 0.0 and float(r.x_cf[0, 1]) > 0.0


def test_nascent_adversarial_example_is_last_state_within_eps():
    m = linear_model()
    x = torch.tensor([[0.4, -0.2], [1.0, 0.5], [0.0, 0.0]])
    t = torch.tensor([1, 1, 1])
    lo, hi = np.array([-5.0, -5.0]), np.array([5.0, 5.0])
    for strict in (False, True):
        cfg = search_config(generator="generic", T=20, lr=0.12, eps=0.3, eps_strict=strict,
                           convergence="max_iter", lambda_cst=0.0)
        r = search(m, x, t, cfg, torch.tensor(lo, dtype=torch.float32),
                   torch.tensor(hi, dtype=torch.float32))
        assert bool(((r.x_adv - x).abs().amax(1) <= 0.3 + 1e-7).all())
        for i in range(3):
            _, _, _, _, states = ref_search(W, B, x[i].double().numpy(), 1, cfg, lo, hi)
            within = [s for s in states if (np.abs(s - x[i].numpy()).max() < 0.3 if strict
                                            else np.abs(s - x[i].numpy()).max() <= 0.3)]
            assert 1 < len(within) < len(states)   # the search leaves the eps ball
            assert np.allclose(r.x_adv[i].numpy(), within[-1], atol=1e-6)


@pytest.mark.parametrize("blocks", [None, [[1, 2, 3]]])
def test_search_without_the_nascent_ae_gives_the_same_ces(blocks):
    """Test time does not track the nascent AE (track_adversarial=False): every other output is
    the same, with and without compaction, one-hot blocks, mutability and an initial state."""
    m = build_model("mlp", 40, 4, hidden=16, seed=4)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(600, 40, generator=g)
    if blocks:
        x[:, 1:4] = torch.nn.functional.one_hot(torch.randint(0, 3, (600,), generator=g), 3).float()
    t = (m(x).argmax(1) + torch.randint(1, 4, (600,), generator=g)) % 4
    mut = torch.zeros(40, dtype=torch.long)
    mut[0], mut[5], mut[6] = MUT["none"], MUT["increase"], MUT["decrease"]
    cfg = search_config(tau=0.5, T=30, lr=0.5)
    for compact in (True, False):
        for x_init in (None, x + 0.01):
            kw = dict(mutability=mut, categorical_blocks=blocks, compact=compact, x_init=x_init,
                      generator=torch.Generator().manual_seed(0))
            a = search(m, x, t, cfg, -3.0, 3.0, **kw)
            kw["generator"] = torch.Generator().manual_seed(0)
            b = search(m, x, t, cfg, -3.0, 3.0, track_adversarial=False, **kw)
            assert b.x_adv is None and a.x_adv is not None
            for f in ("x_cf", "mature", "steps"):
                assert torch.equal(getattr(a, f), getattr(b, f)), (f, compact, x_init is None)
    assert len(set(a.steps.tolist())) > 5
    empty = search(m, x[:0], t[:0], cfg, -3.0, 3.0, track_adversarial=False)
    assert empty.x_adv is None and empty.x_cf.shape == (0, 40)


def test_categorical_blocks_stay_one_hot_and_are_not_clamped():
    d = 7          # features: [num, block(1..3), num, block(5..6)]
    blocks = [[1, 2, 3], [5, 6]]
    m = build_model("mlp", d, 2, hidden=8, seed=7)
    g = torch.Generator().manual_seed(5)
    n = 40
    x = torch.randn(n, d, generator=g)
    x[:, 1:4] = torch.nn.functional.one_hot(torch.randint(0, 3, (n,), generator=g), 3).float()
    x[:, 5:7] = torch.nn.functional.one_hot(torch.randint(0, 2, (n,), generator=g), 2).float()
    t = 1 - m(x).argmax(1)
    clamp = torch.tensor([True, False, False, False, True, False, False])
    lo, hi = torch.full((d,), -0.5), torch.full((d,), 0.5)   # would destroy one-hot if clamped
    changed = False
    for T in (1, 3, 10, 30):
        r = search(m, x, t, search_config(T=T, tau=0.9, lr=2.0), lo, hi, categorical_blocks=blocks,
                   clamp_mask=clamp, generator=torch.Generator().manual_seed(0))
        for cols in blocks:
            blk = r.x_cf[:, cols]
            assert torch.equal(blk.sum(1), torch.ones(n))
            assert bool(((blk == 0) | (blk == 1)).all())
        changed |= not torch.equal(r.x_cf[:, 1:4], x[:, 1:4])
        moved = r.steps > 0
        assert bool((r.x_cf[moved][:, [0, 4]].abs() <= 0.5).all())
    assert changed   # some category actually switched


def test_categorical_ties_broken_at_random():
    outcomes = set()
    for seed in range(20):
        x = torch.tensor([[0.5, 0.5, 0.2]])
        reconstruct_categoricals(x, [slice(0, 3)], torch.Generator().manual_seed(seed))
        outcomes.add(tuple(x[0].tolist()))
    assert outcomes == {(1.0, 0.0, 0.0), (0.0, 1.0, 0.0)}


def test_mutability_and_protect_helpers():
    dx = torch.tensor([[-1.0, -1.0, -1.0, -1.0], [1.0, 1.0, 1.0, 1.0]])
    mut = torch.tensor([MUT["both"], MUT["none"], MUT["increase"], MUT["decrease"]])
    assert apply_mutability(dx, mut).tolist() == [[-1, 0, 0, -1], [1, 0, 1, 0]]
    x_plus = torch.tensor([[1.0, 1.0, 1.0, 1.0]])
    x_ce = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    assert protect(x_plus, x_ce, mut).tolist() == [[1.0, 0.0, 2.0, 1.0]]


def test_revise_search_runs_in_latent_space():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (300,), generator=g)
    X = torch.tensor([[-2.0, 0.0], [2.0, 0.0]])[y] + 0.3 * torch.randn(300, 2, generator=g)
    vae, vlog = train_vae(X, seed=1, n_epochs=15)
    assert vlog["loss"].iloc[-1] < vlog["loss"].iloc[0]
    m = build_model("linear", 2, 2, seed=0)
    with torch.no_grad():
        m.fc.weight.copy_(torch.tensor([[-2.0, 0.0], [2.0, 0.0]]))
        m.fc.bias.zero_()
    x = X[:20]
    t = 1 - m(x).argmax(1)
    cfg = search_config(generator="revise", T=30, tau=0.75, lr=0.5, lambda_cst=0.001)
    r = search(m, x, t, cfg, -3.0, 3.0, vae=vae, generator=torch.Generator().manual_seed(3))
    r2 = search(m, x, t, cfg, -3.0, 3.0, vae=vae, generator=torch.Generator().manual_seed(3))
    assert torch.equal(r.x_cf, r2.x_cf)                 # seeded
    assert float(r.mature.float().mean()) > 0.5
    assert bool(((r.x_adv - x).abs().amax(1) <= 0.3).all())
    assert all(p.grad is None for p in list(m.parameters()) + list(vae.parameters()))
    with pytest.raises(ValueError):
        search(m, x, t, cfg, -3.0, 3.0)
