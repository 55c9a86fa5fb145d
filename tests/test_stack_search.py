"""The stacked CE search equals ``ctpaper.search.search`` / ``revise_search`` per member, bit for bit."""

import pytest
import torch

from ctpaper.search import revise_search, search
from ctpaper.stack.mlp import StackedMLP
from ctpaper.stack.revise import stacked_revise_search
from ctpaper.stack.search import stacked_search
from ctpaper.training import train

from conftest import search_config
from test_training import blob_dataset, settings

torch.set_num_threads(1)

CONFIGS = [search_config("ecco", 0.5, 30), search_config("generic", 0.9, 5),
           search_config("ecco", 0.75, 50, lambda_egy=0.1, lr=0.3),
           search_config("ecco", 0.95, 25, lambda_egy=20.0), search_config("generic", 0.75, 30, lambda_cst=0.0),
           search_config("ecco", 0.9, 5)]
N_ROWS = [300, 100, 250, 300, 64, 7]


@pytest.fixture(scope="module")
def setup():
    ds = blob_dataset(n_train=600, seed=2)
    models = [train(ds, settings(n_epochs=1), "vanilla", "free", s)[0] for s in range(len(CONFIGS))]
    g = torch.Generator().manual_seed(0)
    K, N = len(CONFIGS), max(N_ROWS)
    x = torch.zeros(K, N, 2)
    t = torch.zeros(K, N, dtype=torch.long)
    valid = torch.zeros(K, N, dtype=torch.bool)
    for k, n in enumerate(N_ROWS):
        idx = torch.randperm(ds.X_train.shape[0], generator=g)[:n]
        x[k, :n] = ds.X_train[idx]
        valid[k, :n] = True
        with torch.no_grad():
            t[k, :n] = 1 - models[k](ds.X_train[idx]).argmax(1)
    return ds, models, x, t, valid


def _same(res, k, n, alone):
    for name in ("x_cf", "x_adv", "mature", "steps"):
        assert torch.equal(getattr(res, name)[k, :n], getattr(alone, name)), (k, name)


@pytest.mark.parametrize("compact", [True, False])
def test_stacked_search_equals_single_searches(setup, compact, monkeypatch):
    from ctpaper.stack import search as stack_search

    ds, models, x, t, valid = setup
    mut = [None, ds.mutability("protected"), None, None, ds.mutability("protected"), None]
    widths = []
    compact_fn = stack_search._WorkingSet.compact

    def counted(ws, alive):
        out = compact_fn(ws, alive)
        widths.append(tuple(out.shape))
        return out

    monkeypatch.setattr(stack_search._WorkingSet, "compact", counted)
    res = stacked_search(StackedMLP.from_models(models), x, t, valid, CONFIGS, ds.lower, ds.upper,
                         mutability=mut, compact=compact)
    assert bool(widths) == compact        # the fast path shrank the working set
    steps = []
    for k, n in enumerate(N_ROWS):
        alone = search(models[k], x[k, :n], t[k, :n], CONFIGS[k], ds.lower, ds.upper,
                       mutability=mut[k])
        _same(res, k, n, alone)
        steps.append(alone.steps)
    assert len({int(s.max()) for s in steps}) > 2           # members stop at different budgets
    assert bool((res.steps[~valid] == 0).all())
    assert bool((ds.lower <= res.x_cf[valid]).all() and (res.x_cf[valid] <= ds.upper).all())


def test_stacked_search_with_max_iter_and_already_valid_factuals(setup):
    ds, models, x, t, valid = setup
    cfgs = [search_config("ecco", 0.5, T, convergence="max_iter") for T in (3, 7)]
    t2 = t[:2].clone()
    t2[0, :5] = 1 - t2[0, :5]              # factuals already predicted as the target
    res = stacked_search(StackedMLP.from_models(models[:2]), x[:2], t2, valid[:2], cfgs, ds.lower,
                         ds.upper)
    for k in range(2):
        n = N_ROWS[k]
        _same(res, k, n, search(models[k], x[k, :n], t2[k, :n], cfgs[k], ds.lower, ds.upper))
    cfgs = [search_config("generic", 0.5, 10)] * 2
    res = stacked_search(StackedMLP.from_models(models[:2]), x[:2], t2, valid[:2], cfgs, ds.lower,
                         ds.upper)
    alone = search(models[0], x[0, :300], t2[0, :300], cfgs[0], ds.lower, ds.upper)
    _same(res, 0, 300, alone)
    assert bool((alone.steps[:5] == 0).all()) and not bool(alone.mature[:5].any())


def test_stacked_revise_search_equals_revise_search(setup):
    from ctpaper.vae import train_vae

    ds, models, x, t, valid = setup
    vae, _ = train_vae(ds.X_train, seed=0, n_epochs=3)
    cfgs = [search_config("revise", 0.5, 30), search_config("revise", 0.9, 5, lambda_cst=0.0),
            search_config("revise", 0.75, 50, lr=0.3)]
    gens = [torch.Generator().manual_seed(s) for s in range(3)]
    res = stacked_revise_search(StackedMLP.from_models(models[:3]), vae, x[:3], t[:3], valid[:3],
                                cfgs, ds.lower, ds.upper, gens)
    for k in range(3):
        n = N_ROWS[k]
        g = torch.Generator().manual_seed(k)
        alone = revise_search(models[k], vae, x[k, :n], t[k, :n], cfgs[k], ds.lower, ds.upper,
                              generator=g)
        _same(res, k, n, alone)
        assert torch.equal(torch.rand(3, generator=g), torch.rand(3, generator=gens[k]))


def test_stacked_search_rejects_revise_and_mixed_convergence(setup):
    ds, models, x, t, valid = setup
    net = StackedMLP.from_models(models[:2])
    with pytest.raises(ValueError, match="REVISE"):
        stacked_search(net, x[:2], t[:2], valid[:2], [CONFIGS[0], search_config("revise")],
                       ds.lower, ds.upper)
    with pytest.raises(ValueError, match="convergence"):
        stacked_search(net, x[:2], t[:2], valid[:2],
                       [CONFIGS[0], search_config(convergence="max_iter")], ds.lower, ds.upper)


def test_searches_of_a_few_rows_equal_the_single_search(setup):
    """Per-batch CE generation searches about 10 factuals per member: below ``gemm_rows`` the
    stacked search pads the rows and never compacts them below what the single search runs (torch
    multiplies tiny batched matrices with a naive loop that rounds differently), so a member of one
    equals the single search for every row count."""
    from ctpaper.stack.mlp import gemm_rows

    ds, models, x, t, _ = setup
    assert gemm_rows(2, 32, 2) == 7
    net = StackedMLP.from_models(models[:1])
    for n in range(1, 13):
        valid = torch.ones(1, n, dtype=torch.bool)
        res = stacked_search(net, x[:1, :n], t[:1, :n], valid, CONFIGS[:1], ds.lower, ds.upper)
        alone = search(models[0], x[0, :n], t[0, :n], CONFIGS[0], ds.lower, ds.upper)
        _same(res, 0, n, alone)
