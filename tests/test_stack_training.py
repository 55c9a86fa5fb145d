"""Model stacks (issue 15): a member trained in a stack equals the same model trained alone."""

import math

import pytest
import torch

from ctpaper import config as C
from ctpaper.data.io import Dataset, load_dataset
from ctpaper.stack.adam import StackedAdam
from ctpaper.stack.mlp import StackedMLP
from ctpaper.stack.training import MemberSpec, train_stack
from ctpaper.training import LOG_COLUMNS, model_settings, train

from test_training import blob_dataset, settings

torch.set_num_threads(1)

EXACT_COLUMNS = ["epoch", "train_acc", "val_acc", "loss_div", "loss_reg", "prop_mature",
                 "mean_steps", "n_skipped"]
# loss_clf and loss_adv are float32 means: torch's nll_loss 'mean' kernel sums in another order than
# the per-member row mean of a stack (the gradients are the same), so the logged values may differ
# in the last bit.
ULP_COLUMNS = ["loss_clf", "loss_adv"]


def _max_rel(model_a, model_b) -> float:
    pairs = zip(model_a.state_dict().values(), model_b.state_dict().values())
    return max(float((a - b).abs().max() / b.abs().max().clamp(min=1e-30)) for a, b in pairs)


def _alone(ds, spec, vae=None):
    return train(ds, spec.settings, spec.objective, spec.family, spec.seed, vae=vae)


@pytest.fixture(scope="module")
def ls(prepared_data):
    return load_dataset(prepared_data("ls"))


@pytest.fixture(scope="module")
def ls_vae(ls):
    from ctpaper.vae import train_vae

    return train_vae(ls.X_train, seed=1, n_epochs=5)[0]


def _spec(base, objective="full", family="free", seed=2025, **over):
    return MemberSpec({**base, **over}, objective, family, seed)


def test_stack_of_one_equals_the_single_model_path_exactly(ls):
    base = {**model_settings(C.load(), "ls"), "n_epochs": 2}
    spec = _spec(base)
    [(model, log)] = train_stack(ls, [spec])
    alone, log_alone = _alone(ls, spec)
    for a, b in zip(model.state_dict().values(), alone.state_dict().values()):
        assert torch.equal(a, b)
    assert log[EXACT_COLUMNS].equals(log_alone[EXACT_COLUMNS])
    for col in ULP_COLUMNS:
        assert ((log[col] - log_alone[col]).abs() <= 1e-6 * log_alone[col].abs()).all()
    assert list(log.columns) == LOG_COLUMNS


def test_mixed_stack_members_equal_their_single_runs(ls, ls_vae):
    """Generators (ECCo, Generic, REVISE), taus, Ts, nces, lambdas, burn-ins, epochs, objectives and
    families in one stack: after 3 epochs every member's parameters are within 1e-5 (relative) of
    the model trained alone, and its searches took the same steps."""
    base = {**model_settings(C.load(), "ls"), "n_epochs": 3}
    members = [
        _spec(base),
        _spec(base, generator="generic", tau=0.9, T=5, seed=1),
        _spec(base, nce=100, lambda_div=0.1, lambda_adv=1.0, seed=2),
        _spec(base, objective="vanilla", seed=3),
        _spec(base, T=50, lambda_egy=20.0, tau=0.95, seed=4),
        _spec(base, burnin=0.5, n_epochs=2, seed=5),
        _spec(base, family="protected", lambda_reg=0.5, seed=6),
        _spec(base, objective="energy", T=25, seed=7),
        _spec(base, generator="revise", seed=8),
        _spec(base, generator="revise", T=5, tau=0.9, nce=200, seed=9),
    ]
    stacked = train_stack(ls, members, vae=ls_vae)
    for spec, (model, log) in zip(members, stacked):
        alone, log_alone = _alone(ls, spec, ls_vae)
        assert _max_rel(model, alone) < 1e-5, spec
        assert len(log) == spec.settings["n_epochs"]
        for col in ("mean_steps", "prop_mature", "n_skipped", "epoch"):
            assert log[col].equals(log_alone[col]), (spec, col)


def test_per_batch_members_equal_their_single_runs(ls, ls_vae):
    """ce_frequency: batch members (CEs generated before every batch with the current parameters)
    beside per-epoch and BL members: each ends within 1e-5 (relative) of the model trained alone,
    with the same search steps and maturity in every epoch; a stack of one is exact at the
    published nce (about 10 rows per batch: the stacked search keeps them on the gemm, see
    ``stack.mlp.gemm_rows``), and within float32 rounding at 2 rows per batch (measured 1.5e-8)."""
    base = {**model_settings(C.load(), "ls"), "n_epochs": 2}
    one = _spec(base, ce_frequency="batch", seed=21)
    [(model, log)] = train_stack(ls, [one])
    alone, log_alone = _alone(ls, one)
    for a, b in zip(model.state_dict().values(), alone.state_dict().values()):
        assert torch.equal(a, b)
    assert log[EXACT_COLUMNS].equals(log_alone[EXACT_COLUMNS])
    few = _spec(base, ce_frequency="batch", nce=200, seed=28)    # 2 factuals per batch
    [(model, log)] = train_stack(ls, [few])
    alone, log_alone = _alone(ls, few)
    assert _max_rel(model, alone) < 1e-6
    assert log["mean_steps"].equals(log_alone["mean_steps"])
    members = [
        _spec(base, ce_frequency="batch", seed=22),
        _spec(base, ce_frequency="batch", family="protected", nce=200, tau=0.9, seed=23),
        _spec(base, ce_frequency="batch", generator="revise", T=5, seed=24),
        _spec(base, ce_frequency="batch", burnin=0.5, lambda_adv=1.0, seed=25),
        _spec(base, ce_frequency="batch", n_epochs=1, tau=0.75, seed=29),
        _spec(base, seed=26),
        _spec(base, objective="vanilla", seed=27),
    ]
    for spec, (model, log) in zip(members, train_stack(ls, members, vae=ls_vae)):
        alone, log_alone = _alone(ls, spec, ls_vae)
        assert _max_rel(model, alone) < 1e-5, spec
        for col in ("mean_steps", "prop_mature", "n_skipped", "epoch"):
            assert log[col].equals(log_alone[col]), (spec, col)


def test_member_result_does_not_depend_on_its_stack(ls):
    base = {**model_settings(C.load(), "ls"), "n_epochs": 2}
    target = _spec(base, tau=0.75, seed=11)
    small = train_stack(ls, [target, _spec(base, seed=12)])[0][0]
    large = train_stack(ls, [_spec(base, objective="vanilla", seed=13), _spec(base, nce=300, seed=14),
                             target])[2][0]
    assert _max_rel(small, large) < 1e-5


def test_non_finite_loss_skips_the_update_of_every_affected_member():
    ds = blob_dataset()
    X = ds.X_train.clone()
    X[45, 0] = math.nan                                   # poisons batch 1 (rows 30-59)
    bad = Dataset(ds.name, X, ds.y_train, ds.X_val, ds.y_val, ds.X_test, ds.y_test, ds.meta)
    specs = [MemberSpec(settings(n_epochs=2), "vanilla", "free", s) for s in (1, 2)]
    for spec, (model, log) in zip(specs, train_stack(bad, specs)):
        alone, log_alone = _alone(bad, spec)
        assert log["n_skipped"].tolist() == [1, 1]
        for a, b in zip(model.state_dict().values(), alone.state_dict().values()):
            assert torch.equal(a, b)


def test_masked_adam_step_equals_torch_adam_and_skips_masked_members():
    g = torch.Generator().manual_seed(0)
    W = torch.randn(3, 4, 2, generator=g)
    grads = [torch.randn(3, 4, 2, generator=g) for _ in range(4)]
    masks = [[True, True, True], [True, False, True], [False, True, True], [True, True, True]]
    param = W.clone()
    opt = StackedAdam([param], lr=[1e-3, 1e-3, 0.01])
    for grad, mask in zip(grads, masks):
        param.grad = grad.clone()
        opt.step(torch.tensor(mask))
    for k in range(3):
        p = W[k].clone().requires_grad_(True)
        ref = torch.optim.Adam([p], lr=[1e-3, 1e-3, 0.01][k])
        for grad, mask in zip(grads, masks):
            if mask[k]:
                p.grad = grad[k].clone()
                ref.step()
        assert torch.equal(param[k], p.detach())


def test_stack_rejects_members_that_cannot_share_a_program():
    ds = blob_dataset()
    with pytest.raises(ValueError, match="batch_size"):
        train_stack(ds, [MemberSpec(settings(), "full", "free", 1),
                         MemberSpec(settings(batch_size=60), "full", "free", 2)])
    with pytest.raises(ValueError, match="VAE"):
        train_stack(ds, [MemberSpec(settings(generator="revise"), "full", "free", 1)])
    with pytest.raises(ValueError, match="ce_frequency"):
        train_stack(ds, [MemberSpec(settings(ce_frequency="hourly"), "full", "free", 1)])


def test_stacked_mlp_members_compute_what_the_mlp_computes():
    from ctpaper.models import build_model

    models = [build_model("mlp", 3, 2, seed=s) for s in range(4)]
    net = StackedMLP.from_models(models)
    x = torch.randn(4, 50, 3, generator=torch.Generator().manual_seed(1))
    out = net(x)
    for k, m in enumerate(models):
        assert torch.equal(out[k], m(x[k]))
        assert torch.equal(net.member(k)(x[k]), m(x[k]))
    assert torch.equal(net(x[[1, 3]], torch.tensor([1, 3])), out[[1, 3]])
