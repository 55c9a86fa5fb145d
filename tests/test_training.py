"""Counterfactual training (method 5): loss terms, CE data, schedule, determinism, convergence."""

import copy
import math

import numpy as np
import pytest
import torch

from ctpaper import config as C
from ctpaper.data.io import Dataset
from ctpaper.models import build_model
from ctpaper.search import SearchConfig
from ctpaper.settings import TrainSettings
from ctpaper.training import (LOG_COLUMNS, CEData, ClassSampler, batch_loss, chunk_sizes,
                              TrainingFailed, generate_ces, search_config, train)

from conftest import linear_model

torch.set_num_threads(1)

BASE = C.load()


def blob_dataset(n_train=300, n_val=60, n_test=200, k=2, seed=0, sd=0.5, name="ls"):
    """Well separated Gaussian blobs in 2-D (a linearly separable toy of the LS kind)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[-3.0, 2.0], [4.0, -1.0], [0.0, -6.0]])[:k]

    def draw(n):
        y = torch.randint(0, k, (n,), generator=g)
        return centres[y] + sd * torch.randn(n, 2, generator=g), y

    (Xtr, ytr), (Xva, yva), (Xte, yte) = draw(n_train), draw(n_val), draw(n_test)
    pool = torch.cat([Xtr, Xva])
    mu, s = pool.mean(0), pool.std(0)
    lo = torch.minimum(mu - 2 * s, pool.min(0).values)
    hi = torch.maximum(mu + 2 * s, pool.max(0).values)
    meta = {"dataset": name, "classes": list(range(k)), "protected": [0], "categorical_blocks": [],
            "bounds": {"lower": lo.tolist(), "upper": hi.tolist()}}
    return Dataset(name, Xtr, ytr, Xva, yva, Xte, yte, meta)


def settings(**over):
    s = TrainSettings.from_config(BASE, "ls").replace(n_epochs=3, batch_size=30, nce=60)
    return s.replace(**over).to_dict()


# ---- loss terms: values and gradients against hand computation ---------------------------------
W = [[1.0, -0.5], [0.25, 2.0]]
B = [0.1, -0.3]


def _np_logits(x):
    return np.asarray(x, float) @ np.asarray(W).T + np.asarray(B)


def _np_ce(x, y):
    z = _np_logits(x)
    lse = np.log(np.exp(z).sum(1))
    return np.mean(lse - z[np.arange(len(y)), y])


def _ce_data():
    x_ce = torch.tensor([[0.5, 1.0], [-1.0, 0.2], [0.3, -0.7]])
    x_plus = torch.tensor([[1.5, 0.0], [-0.5, 1.0], [0.0, 0.0]])
    x_adv = torch.tensor([[0.1, 0.2], [-0.2, 0.1], [0.3, 0.3]])
    t = torch.tensor([1, 0, 1])
    a = torch.tensor([0, 1, 0])
    z = torch.zeros(3)
    return CEData(x_ce, x_plus, x_adv, t, a, z.bool(), z.long(), z.long(), z.long(), x_ce)


@pytest.mark.parametrize("ridge", ["sum_sq", "l2_norm"])
def test_batch_loss_terms_match_hand_computation(ridge):
    m = linear_model(W, B)
    xb = torch.tensor([[0.2, 0.4], [1.0, -1.0]])
    yb = torch.tensor([0, 1])
    ce = _ce_data()
    s = settings(lambda_clf=1.0, lambda_div=0.5, lambda_reg=0.1, lambda_adv=0.25, ridge_form=ridge)
    loss, parts = batch_loss(m, xb, yb, ce, "full", s)
    t = ce.target.numpy()
    z_ce = _np_logits(ce.x_ce)[np.arange(3), t]
    z_pl = _np_logits(ce.x_plus)[np.arange(3), t]
    clf = _np_ce(xb, yb.numpy())
    div = np.mean(z_ce - z_pl)
    reg = np.mean(z_pl ** 2 + z_ce ** 2) if ridge == "sum_sq" else np.mean(np.sqrt(z_pl ** 2 + z_ce ** 2))
    adv = _np_ce(ce.x_adv, ce.adv_label.numpy())
    for k, v in (("clf", clf), ("div", div), ("reg", reg), ("adv", adv)):
        assert float(parts[k].detach()) == pytest.approx(v, rel=1e-5), k
    assert float(loss.detach()) == pytest.approx(clf + 0.5 * div + 0.1 * reg + 0.25 * adv, rel=1e-5)

    # gradients w.r.t. the weights and biases, hand-derived for the linear model
    def grads(term):
        gw, gb = torch.autograd.grad(parts[term], [m.fc.weight, m.fc.bias], retain_graph=True)
        return gw.numpy(), gb.numpy()

    def ce_grads(x, y):
        z = _np_logits(x)
        p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
        r = (p - np.eye(2)[y]) / len(y)
        return r.T @ np.asarray(x, float), r.sum(0)

    onehot = np.eye(2)[t]                                  # (3, K)
    xc, xp = ce.x_ce.numpy(), ce.x_plus.numpy()
    want = {
        "clf": ce_grads(xb.numpy(), yb.numpy()),
        "div": ((onehot.T @ (xc - xp)) / 3, np.zeros(2)),
        "adv": ce_grads(ce.x_adv.numpy(), ce.adv_label.numpy()),
    }
    if ridge == "sum_sq":
        want["reg"] = ((onehot.T @ (2 * z_ce[:, None] * xc + 2 * z_pl[:, None] * xp)) / 3,
                       onehot.T @ (2 * z_ce + 2 * z_pl) / 3)
    else:
        nrm = np.sqrt(z_ce ** 2 + z_pl ** 2)
        want["reg"] = ((onehot.T @ ((z_ce / nrm)[:, None] * xc + (z_pl / nrm)[:, None] * xp)) / 3,
                       onehot.T @ ((z_ce + z_pl) / nrm) / 3)
    for k, (gw, gb) in want.items():
        hw, hb = grads(k)
        assert np.allclose(hw, gw, atol=1e-5), k
        assert np.allclose(hb, gb, atol=1e-5), k


def test_objective_variants_select_terms():
    m = linear_model(W, B)
    xb, yb, ce = torch.tensor([[0.2, 0.4]]), torch.tensor([0]), _ce_data()
    s = settings()
    assert set(batch_loss(m, xb, yb, ce, "full", s)[1]) == {"clf", "div", "reg", "adv"}
    assert set(batch_loss(m, xb, yb, ce, "energy", s)[1]) == {"clf", "div", "reg"}
    assert set(batch_loss(m, xb, yb, ce, "adversarial", s)[1]) == {"clf", "adv"}
    loss, parts = batch_loss(m, xb, yb, None, "full", s)     # burn-in epoch: no CE data
    assert set(parts) == {"clf"} and float(loss.detach()) == pytest.approx(
        float(parts["clf"].detach()))


def test_immature_ce_gives_zero_divergence():
    ds = blob_dataset()
    m = build_model("mlp", 2, 2, seed=1)
    s = settings(T=1, tau=0.999, ce_lr=0.1)              # one step: nothing can mature
    cfg = search_config(s)
    g = torch.Generator().manual_seed(0)
    ce = generate_ces(m, ds.X_train, ds.y_train, 50, s, cfg, ds.lower, ds.upper, None,
                      ClassSampler(ds.y_train, 2), 2, g)
    assert not bool(ce.mature.any())
    assert torch.equal(ce.x_ce, ce.x_plus)               # x_ce := x+
    assert not torch.equal(ce.x_cf, ce.x_plus)           # (the raw CE was something else)
    _, parts = batch_loss(m, ds.X_train[:30], ds.y_train[:30], ce, "full", s)
    assert float(parts["div"].detach()) == 0.0
    assert float(parts["reg"].detach()) > 0.0            # ridge and adversarial terms still count
    # threshold_or_exhausted counts exhausted CEs as mature: the CE is kept
    s2 = settings(T=1, tau=0.999, maturity="threshold_or_exhausted")
    ce2 = generate_ces(m, ds.X_train, ds.y_train, 50, s2, search_config(s2), ds.lower, ds.upper,
                       None, ClassSampler(ds.y_train, 2), 2, torch.Generator().manual_seed(0))
    assert bool(ce2.mature.all()) and torch.equal(ce2.x_ce, ce2.x_cf)


def test_generated_ce_data_follow_method_5_2():
    ds = blob_dataset(n_train=400, k=3)
    m = build_model("mlp", 2, 3, seed=2)
    y = ds.y_train
    for label, family in (("predicted", "free"), ("true", "protected")):
        s = settings(adv_label=label, tau=0.6, ce_lr=1.0)
        mut = ds.mutability(family)
        g = torch.Generator().manual_seed(1)
        ce = generate_ces(m, ds.X_train, y, 300, s, search_config(s), ds.lower, ds.upper,
                          mut if family == "protected" else None, ClassSampler(y, 3), 3, g)
        fi = ce.factual_index
        assert len(fi) == 300 and len(set(fi.tolist())) == 300        # without replacement
        yhat = m(ds.X_train[fi]).argmax(1)
        assert bool((ce.target != yhat).all())
        assert len(set((ce.target - yhat).remainder(3).tolist())) == 2   # both other classes drawn
        assert torch.equal(y[ce.plus_index], ce.target)                   # x+ has label t
        assert torch.equal(ce.adv_label, yhat if label == "predicted" else y[fi])
        assert bool(((ce.x_adv - ds.X_train[fi]).abs().amax(1) <= s["adv_eps"]).all())
        if family == "protected":    # protected feature 0: x+ takes the CE's value
            assert torch.equal(ce.x_plus[:, 0], ce.x_ce[:, 0])
            assert torch.equal(ce.x_cf[:, 0], ds.X_train[fi, 0])
        else:
            assert torch.equal(ce.x_plus, ds.X_train[ce.plus_index])
        assert 0 < int(ce.mature.sum()) < 300


def test_chunk_sizes_follow_tensor_split():
    assert chunk_sizes(1000, 100) == [10] * 100
    assert chunk_sizes(5000, 10) == [500] * 10
    adult = chunk_sizes(5000, 26)
    assert adult[:8] == [193] * 8 and adult[8:] == [192] * 18 and sum(adult) == 5000
    ch = chunk_sizes(5000, 16)
    assert set(ch) == {312, 313} and sum(ch) == 5000 and ch[0] == 313


def test_epoch_schedule_nce_chunks_and_log():
    ds = blob_dataset(n_train=300)                         # 10 batches of 30
    seen = []
    s = settings(nce=7, n_epochs=2)                        # nce < n_batches -> 10
    model, log = train(ds, s, "full", "free", 3, on_epoch_end=lambda e, m, ce: seen.append(ce))
    assert list(log.columns) == LOG_COLUMNS
    assert log["epoch"].tolist() == [1, 2] and str(log["n_skipped"].dtype) == "int64"
    assert all(len(ce) == 10 for ce in seen)
    assert log["prop_mature"].notna().all() and log["loss_div"].notna().all()
    # burn-in: first half of the epochs without CEs
    seen.clear()
    _, log = train(ds, settings(n_epochs=4, burnin=0.5), "full", "free", 3,
                   on_epoch_end=lambda e, m, ce: seen.append(ce))
    assert seen[0] is None and seen[1] is None and len(seen[2]) == 60
    assert log["prop_mature"].isna().tolist() == [True, True, False, False]
    assert log["loss_adv"].isna().tolist() == [True, True, False, False]
    # per-batch generation: same number of CEs per epoch, from fresh searches
    seen.clear()
    _, log = train(ds, settings(n_epochs=1, ce_frequency="batch"), "full", "free", 3,
                   on_epoch_end=lambda e, m, ce: seen.append(ce))
    assert len(seen[0]) == 60


def test_baseline_ignores_ct_only_settings():
    ds = blob_dataset()
    a = settings(n_epochs=3)
    b = settings(n_epochs=3, tau=0.9, T=5, lambda_div=1.0, lambda_reg=0.5, lambda_adv=1.0,
                 lambda_egy=0.1, lambda_cst=0.1, nce=200, generator="generic", burnin=0.5,
                 ce_frequency="batch", adv_label="true", maturity="threshold_or_exhausted",
                 ridge_form="l2_norm", ce_lr=0.5, convergence="max_iter", adv_eps=0.1)
    ma, la = train(ds, a, "vanilla", "free", 9)
    mb, lb = train(ds, b, "vanilla", "protected", 9)
    for (ka, va), (kb, vb) in zip(ma.state_dict().items(), mb.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    cols = [c for c in LOG_COLUMNS if c != "seconds"]
    assert la[cols].equals(lb[cols])
    assert la["loss_div"].isna().all() and la["prop_mature"].isna().all()
    # ... whereas the CT model does depend on them (the comparison can fail)
    ca, _ = train(ds, a, "full", "free", 9)
    cb, _ = train(ds, b, "full", "free", 9)
    assert not torch.equal(ca.fc1.weight, cb.fc1.weight)
    assert not torch.equal(ca.fc1.weight, ma.fc1.weight)


def test_training_is_deterministic_given_the_seed():
    ds = blob_dataset()
    m1, l1 = train(ds, settings(), "full", "protected", 4)
    m2, l2 = train(ds, settings(), "full", "protected", 4)
    m3, _ = train(ds, settings(), "full", "protected", 5)
    assert torch.equal(m1.fc2.weight, m2.fc2.weight)
    cols = [c for c in LOG_COLUMNS if c != "seconds"]
    assert l1[cols].equals(l2[cols])
    assert not torch.equal(m1.fc2.weight, m3.fc2.weight)


def test_non_finite_loss_is_skipped_and_counted():
    ds = blob_dataset()
    X = ds.X_train.clone()
    X[45, 0] = math.nan                                   # poisons batch 1 (rows 30-59)
    bad = Dataset(ds.name, X, ds.y_train, ds.X_val, ds.y_val, ds.X_test, ds.y_test, ds.meta)
    model, log = train(bad, settings(n_epochs=2), "vanilla", "free", 1)
    assert log["n_skipped"].tolist() == [1, 1]
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
    assert log["loss_clf"].notna().all()


def test_skipped_share_is_logged_and_bounded():
    ds = blob_dataset()
    X = ds.X_train.clone()
    X[45, 0] = math.nan                                   # 1 of 10 batches per epoch
    bad = Dataset(ds.name, X, ds.y_train, ds.X_val, ds.y_val, ds.X_test, ds.y_test, ds.meta)
    _, log = train(bad, settings(n_epochs=2), "vanilla", "free", 1, max_skipped_share=0.1)
    assert log["skipped_share"].tolist() == [0.1, 0.1]
    with pytest.raises(TrainingFailed, match=r"dataset ls, model bl: epoch 1: 1 of 10 updates "
                                             r"skipped .* train.max_skipped_share = 0.05"):
        train(bad, settings(n_epochs=2), "vanilla", "free", 1, max_skipped_share=0.05,
              label="dataset ls, model bl")


@pytest.mark.parametrize("lr, message", [
    (1e30, r"epoch 1: 9 of 10 updates skipped"),  # every loss after the first update is NaN
    (1e38, r"epoch 1 batch 0: the optimiser step failed .* model.lr = 1e\+38 is too large"),
])
def test_diverging_training_fails_with_dataset_model_epoch(lr, message):
    ds = blob_dataset()
    with pytest.raises(TrainingFailed, match=r"dataset ls, model ct_free, seed 1: " + message):
        train(ds, settings(model_lr=lr, n_epochs=2), "vanilla", "free", 1, max_skipped_share=0.1,
              label="dataset ls, model ct_free, seed 1")


def test_non_finite_parameters_fail():
    from ctpaper.models import build_model
    from ctpaper.training import _check_health

    model = build_model("mlp", 2, 2, seed=0)
    _check_health(model, 3, 0, 10, 0.1, "dataset ls, model bl")
    with torch.no_grad():
        model.fc2.bias[0] = math.inf
    with pytest.raises(TrainingFailed, match=r"dataset ls, model bl: epoch 3: model parameters "
                                             r"became non-finite \(fc2.bias\)"):
        _check_health(model, 3, 0, 10, 0.1, "dataset ls, model bl")


def test_ct_and_bl_reach_high_accuracy_on_separable_data():
    ds = blob_dataset(n_train=600, n_val=100, n_test=400, seed=3)
    s = settings(n_epochs=6, nce=200, tau=0.5, lambda_reg=0.01)
    for objective, family in (("vanilla", "free"), ("full", "free"), ("full", "protected")):
        model, log = train(ds, s, objective, family, 2025)
        with torch.no_grad():
            acc = float((model(ds.X_test).argmax(1) == ds.y_test).float().mean())
        assert acc > 0.95, (objective, family, acc)
        assert log["val_acc"].iloc[-1] > 0.95
        if family == "free" and objective == "full":
            assert 0 < log["prop_mature"].iloc[-1] <= 1
            assert 0 < log["mean_steps"].iloc[-1] <= s["T"]


def test_search_config_from_settings():
    cfg = search_config(settings(tau=0.9, T=25, ce_lr=0.3, adv_eps=0.2, adv_eps_strict=True))
    assert cfg == SearchConfig(generator="ecco", tau=0.9, T=25, lr=0.3, lambda_cst=0.001,
                               lambda_egy=5.0, convergence="threshold", eps=0.2, eps_strict=True)
    s = copy.deepcopy(settings())
    assert s["ce_lr"] == BASE["ce"]["lr"] and s["model_lr"] == BASE["model"]["lr"]


def test_revise_training_needs_and_uses_a_vae():
    from ctpaper.vae import train_vae

    ds = blob_dataset()
    s = settings(generator="revise", n_epochs=1)
    with pytest.raises(ValueError):
        train(ds, s, "full", "free", 1)
    vae, _ = train_vae(ds.X_train, seed=0, n_epochs=2)
    seen = []
    train(ds, s, "full", "free", 1, vae=vae, on_epoch_end=lambda e, m, ce: seen.append(ce))
    assert len(seen[0]) == 60 and bool(torch.isfinite(seen[0].x_ce).all())


def test_sgd_option_takes_plain_gradient_steps():
    """``optimizer="sgd"`` (Figure 1): with one batch and the vanilla objective, one epoch is one
    step w <- w - lr * grad of the mean cross-entropy, computed here by hand for a linear model."""
    ds = blob_dataset(n_train=40)
    s = settings(arch="linear", model_lr=0.3, n_epochs=1, batch_size=40)
    model, _ = train(ds, s, "vanilla", "free", 3, optimizer="sgd")
    init = build_model("linear", 2, 2, init=s.get("init", "xavier_zeros"),
                       generator=torch.Generator().manual_seed(3))
    W0, b0 = init.fc.weight.detach().double(), init.fc.bias.detach().double()
    X, y = ds.X_train.double(), ds.y_train
    p = torch.softmax(X @ W0.T + b0, 1)
    g = (p - torch.nn.functional.one_hot(y, 2).double()) / len(y)      # d mean CE / d logits
    torch.testing.assert_close(model.fc.weight.double(), W0 - 0.3 * g.T @ X, rtol=0, atol=1e-6)
    torch.testing.assert_close(model.fc.bias.double(), b0 - 0.3 * g.sum(0), rtol=0, atol=1e-6)
    adam, _ = train(ds, s, "vanilla", "free", 3)
    assert not torch.allclose(adam.fc.weight, model.fc.weight)
    with pytest.raises(ValueError, match="unknown optimizer"):
        train(ds, s, "vanilla", "free", 3, optimizer="rmsprop")
