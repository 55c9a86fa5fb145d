"""The evaluation stage: sampling protocol, constraints, IP/IP* wiring, determinism, IG, end to end."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ctpaper.config import eval_settings, load as load_config, validate
from ctpaper.data.io import Dataset
from ctpaper.evaluation import attributions, metrics, protocol

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]


# ---- fixtures: small datasets and models built from plain tensors --------------------------------

def make_dataset(n_features=3, n_classes=3, n_test=60, n_train=80, blocks=(), protected=(0,),
                 seed=0, name="toy"):
    g = torch.Generator().manual_seed(seed)

    def rows(n):
        X = torch.randn(n, n_features, generator=g)
        for b in blocks:  # one-hot blocks
            X[:, b] = 0.0
            X[torch.arange(n), torch.tensor(b)[torch.randint(len(b), (n,), generator=g)]] = 1.0
        y = torch.randint(0, n_classes, (n,), generator=g)
        return X, y

    Xtr, ytr = rows(n_train)
    Xte, yte = rows(n_test)
    meta = {"dataset": name, "classes": list(range(n_classes)),
            "bounds": {"lower": [-3.0] * n_features, "upper": [3.0] * n_features},
            "protected": list(protected), "categorical_blocks": [list(b) for b in blocks],
            "feature_names": [f"x{i}" for i in range(n_features)]}
    return Dataset(name, Xtr, ytr, Xtr[:0], ytr[:0], Xte, yte, meta)


def make_model(n_features, n_classes, seed):
    g = torch.Generator().manual_seed(seed)
    m = torch.nn.Sequential(torch.nn.Linear(n_features, 8), torch.nn.ReLU(),
                            torch.nn.Linear(8, n_classes))
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return m.eval()


def small_config(**eval_overrides):
    cfg = load_config(ROOT / "config" / "config.yaml")
    cfg["eval"].update({"lambda_egy_grid": [0.5, 5.0], "n_runs": 3,
                        "n_individuals": {"synthetic": 7, "tabular": 7, "image": 7},
                        "ip": {"n_ref": 50}})
    cfg["eval"]["mmd"] = dict(cfg["eval"]["mmd"], n_samples=4)
    # the protected family keeps its own tau (config.yaml) at the small sizes
    cfg["eval"]["families"]["protected"].update(
        n_runs=3, n_individuals={"synthetic": 7, "tabular": 7, "image": 7})
    cfg["eval"].update(eval_overrides)
    return validate(cfg)                 # applies the schema's defaults, as the loader does


def evaluate(ds, family="free", cfg=None, dataset="ls", seed=2025, model_seeds=(1, 2)):
    models = {"CT": make_model(ds.n_features, ds.n_classes, model_seeds[0]),
              "BL": make_model(ds.n_features, ds.n_classes, model_seeds[1])}
    ces, mmd = protocol.evaluate_counterfactuals(ds, models, cfg or small_config(), dataset,
                                                 family, seed)
    return ces, mmd, models


@pytest.fixture(scope="module")
def toy():
    ds = make_dataset()
    ces, mmd, models = evaluate(ds)
    return ds, ces, mmd, models


# ---- sampling protocol (6.3) --------------------------------------------------------------------

def test_draw_pairs_targets_differ_and_cover_classes():
    f, t = protocol.draw_pairs(5000, 4, np.random.default_rng(0))
    assert (f != t).all()
    assert set(np.unique(f)) == set(range(4)) and set(np.unique(t)) == set(range(4))
    # t uniform over the 3 other classes: each (f, t) cell ~ 5000/12
    counts = pd.crosstab(f, t).to_numpy()
    assert np.diag(counts).sum() == 0
    assert (counts[~np.eye(4, dtype=bool)] > 300).all()


def test_choose_factuals_predicted_class_and_redraw():
    pred = np.array([0, 0, 2, 2, 2, 0])           # class 1 is never predicted
    f = np.array([0, 1, 2, 1, 1])
    t = np.array([1, 0, 0, 2, 0])
    rng = np.random.default_rng(3)
    idx, f2, t2 = protocol.choose_factuals(pred, f, t, 3, rng)
    assert (pred[idx] == f2).all()
    assert (f2 != t2).all() and (t2 == t).all()
    assert f2[0] == 0 and f2[2] == 2                 # untouched where class f was predicted
    assert f2[1] == 2 and f2[4] == 2                 # t = 0 -> only predicted class != 0 is 2
    assert f2[3] == 0                                # t = 2 -> only predicted class != 2 is 0
    # a model that predicts only the target: the pair is redrawn
    idx, f3, t3 = protocol.choose_factuals(np.zeros(4, dtype=int), np.array([1]), np.array([0]), 2,
                                           np.random.default_rng(0))
    assert f3[0] == 0 and t3[0] == 1


def test_protocol_counts_factuals_and_targets(toy):
    ds, ces, _, models = toy
    cfg = small_config()
    n_runs, n_ind = cfg["eval"]["n_runs"], 7
    assert list(ces.columns) == protocol.CES_COLUMNS
    assert len(ces) == 2 * 2 * n_runs * n_ind
    for (m, lam, r), g in ces.groupby(["model", "lambda_egy", "run"]):
        assert sorted(g["individual"]) == list(range(n_ind))
    assert (ces["factual_class"] != ces["target"]).all()
    for m, model in models.items():
        sub = ces[ces["model"] == m]
        pred = metrics.predict(model, ds.X_test[torch.tensor(sub["factual_index"].to_numpy())])
        assert (pred.numpy() == sub["factual_class"].to_numpy()).all()   # predicted by its model
    # pairs shared by both models and all runs (no redraw needed: every class is predicted)
    for lam, g in ces.groupby("lambda_egy"):
        pairs = {(m, r): tuple(zip(s["factual_class"], s["target"]))
                 for (m, r), s in g.groupby(["model", "run"])}
        assert len(set(pairs.values())) == 1
        # ... but the explained individuals differ between the models and runs
        fi = {k: tuple(s["factual_index"]) for k, s in g.groupby(["model", "run"])}
        assert len(set(fi.values())) > 1


def test_redraw_pairs_per_run():
    ds = make_dataset(seed=5)
    ces, _, _ = evaluate(ds, cfg=small_config(redraw_pairs_per_run=True))
    g = ces[ces["model"] == "CT"]
    pairs = {r: tuple(zip(s["factual_class"], s["target"])) for r, s in g.groupby(["lambda_egy", "run"])}
    assert len(set(pairs.values())) > 1


def _rerun_search(ds, models, cfg, model="BL", family="free"):
    """The CEs of one (model, lambda) block of ``evaluate``, recomputed by the reference search
    (``ctpaper.search.reference_search``; LS has no one-hot blocks, so no random tie-breaking)."""
    from ctpaper.search import reference_search

    s = protocol.EvalSettings.from_config(cfg, "ls", family)
    return s, lambda sub, lam: reference_search(
        models[model], ds.X_test[torch.tensor(sub["factual_index"].to_numpy())],
        torch.tensor(sub["target"].to_numpy()), s.search_config(lam), ds.lower, ds.upper,
        mutability=ds.mutability(family))


def test_metrics_columns_match_direct_computation(toy):
    ds, ces, mmd, models = toy
    s, rerun = _rerun_search(ds, models, small_config())
    assert s.ip_reference == "per_ce"
    # rerun the searches of one (model, lambda) to get the CEs and check every metric column
    sub = ces[(ces["model"] == "BL") & (ces["lambda_egy"] == 5.0)]
    x = ds.X_test[torch.tensor(sub["factual_index"].to_numpy())]
    t = torch.tensor(sub["target"].to_numpy())
    res = rerun(sub, 5.0)
    assert (res.steps.numpy() == sub["steps"].to_numpy()).all()
    assert (res.mature.numpy() == sub["mature"].to_numpy()).all()
    valid = models["BL"](res.x_cf).argmax(1) == t
    assert (valid.numpy() == sub["valid"].to_numpy()).all()
    assert 0 < sub["valid"].mean()
    np.testing.assert_allclose(sub["cost"], (res.x_cf - x).abs().sum(1).double(), atol=1e-5)
    # IP (per_ce): the draws of the (family, model, lambda) stream, recomputed row by row
    rng = protocol.numpy_rng(s.seed_global, "ls", "free", 2025, "ip", "BL", 1)
    m = metrics.balanced_per_class(len(ds.y_test), ds.n_classes, s.n_balanced)
    y_np, t_np = ds.y_test.numpy(), t.numpy()
    want = np.full(len(t_np), np.nan)
    for c in np.unique(t_np):           # one draw block (< RESAMPLE_BLOCK rows), classes in order
        sel = np.flatnonzero(t_np == c)
        cls_rows = np.flatnonzero(y_np == c)
        rows, picks = metrics.resample_reference_draws(len(sel), len(cls_rows), m, s.n_ref, rng)
        for i, j in enumerate(sel):
            ref = ds.X_test[torch.from_numpy(cls_rows[rows[i][picks[i]]])]
            assert len(ref) == s.n_ref
            want[j] = float(torch.cdist(res.x_cf[j:j + 1].double(), ref.double(), p=1).mean())
    np.testing.assert_allclose(sub["ip"].to_numpy(), want, rtol=1e-9)
    # redundancy: 3 free features; unchanged features are counted
    np.testing.assert_allclose(sub["redundancy"],
                               ((res.x_cf - x).abs() < 1e-5).double().mean(1), atol=0)


def test_ip_fixed_and_exact_references():
    """``fixed``: one set of n_ref target-class rows per class (the stage's former IP); ``exact``:
    the mean distance to all target-class test rows."""
    ds = make_dataset(seed=3)
    y_np = ds.y_test.numpy()
    for variant in ("fixed", "exact"):
        cfg = small_config(ip={"reference": variant, "n_balanced": 1000, "n_ref": 50})
        ces, _, models = evaluate(ds, cfg=cfg)
        s, rerun = _rerun_search(ds, models, cfg)
        sub = ces[(ces["model"] == "BL") & (ces["lambda_egy"] == 5.0)]
        res = rerun(sub, 5.0)
        t = sub["target"].to_numpy()
        for c in range(ds.n_classes):
            rows = np.flatnonzero(y_np == c)
            idx = (protocol.numpy_rng(s.seed_global, "ls", 2025, "ip_ref", c).choice(rows, size=50)
                   if variant == "fixed" else rows)
            assert (ds.y_test[idx] == c).all()
            sel = np.flatnonzero(t == c)
            direct = torch.cdist(res.x_cf[sel].double(), ds.X_test[idx].double(), p=1).mean(1)
            np.testing.assert_allclose(sub["ip"].to_numpy()[sel], direct.numpy(), rtol=1e-9)


def test_protected_family_uses_its_own_settings():
    """eval.families.protected (and its per_dataset) set tau, T, runs and individuals."""
    ds = make_dataset(seed=4)
    cfg = small_config(families={"free": {}, "protected": {
        "tau": 0.6, "n_runs": 2, "n_individuals": {"synthetic": 5},
        "per_dataset": {"ls": {"T": 7}}}})
    s = protocol.EvalSettings.from_config(cfg, "ls", "protected")
    assert (s.tau, s.T, s.n_runs, s.n_individuals) == (0.6, 7, 2, 5)
    assert protocol.EvalSettings.from_config(cfg, "moon", "protected").T == cfg["eval"]["T"]
    free = protocol.EvalSettings.from_config(cfg, "ls", "free")
    assert (free.tau, free.T, free.n_runs, free.n_individuals) == (0.95, 50, 3, 7)
    ces, _, _ = evaluate(ds, family="protected", cfg=cfg)
    assert len(ces) == 2 * 2 * 2 * 5 and ces["run"].max() == 1
    assert ces["steps"].max() <= 7
    ces_free, _, _ = evaluate(ds, family="free", cfg=cfg)
    assert len(ces_free) == 2 * 2 * 3 * 7


def test_ip_star_groups(toy):
    ds, ces, mmd, models = toy
    assert list(mmd.columns) == protocol.MMD_COLUMNS
    # one MMD row per (model, lambda, run, target) group that has CEs
    groups = ces.groupby(["model", "lambda_egy", "run", "target"]).size()
    assert len(mmd) == len(groups)
    n_s = 4
    by_group = mmd.set_index(["model", "lambda_egy", "run", "target"])
    for key, n in groups.items():
        row = by_group.loc[key]
        assert row["n_ce"] == min(n, n_s)
        assert row["n_ref"] == min(n_s, int((ds.y_test == key[3]).sum()))
        if row["n_ce"] < 2:
            assert np.isnan(row["mmd2"]) and np.isnan(row["ip_star"])
        else:
            assert row["ip_star"] == max(row["mmd2"], 0.0)
        got = ces.set_index(["model", "lambda_egy", "run", "target"]).loc[[key], "ip_star"]
        assert np.allclose(got.to_numpy(), row["ip_star"], equal_nan=True)
    assert mmd["ip_star"].notna().any() and (mmd["n_ce"] == n_s).any()
    # recompute every group of one lambda for both models: X = the group's CEs (subsampled with the
    # "mmd_ce" stream when larger than n_samples), Y = test rows of class t drawn with the
    # model-independent "mmd_ref" stream, i.e. the same Y for CT and BL
    from ctpaper.search import reference_search

    s = protocol.EvalSettings.from_config(small_config(), "ls")
    y_np = ds.y_test.numpy()
    li, lam = 1, s.lambda_egy_grid[1]
    n_checked = 0
    for m, model in models.items():
        sub = ces[(ces["model"] == m) & (ces["lambda_egy"] == lam)].reset_index(drop=True)
        x = ds.X_test[torch.tensor(sub["factual_index"].to_numpy())]
        t = torch.tensor(sub["target"].to_numpy())
        res = reference_search(model, x, t, s.search_config(lam), ds.lower, ds.upper,
                               mutability=ds.mutability("free"))   # LS: no one-hot blocks
        for (r, tc), g in sub.groupby(["run", "target"]):
            rows = g.index.to_numpy().copy()  # pandas hands out a read-only view
            if len(rows) > n_s:
                rows = protocol.numpy_rng(s.seed_global, "ls", "free", 2025, "mmd_ce", m, li, r,
                                          tc).choice(rows, size=n_s, replace=False)
            cand = np.flatnonzero(y_np == tc)
            take = protocol.numpy_rng(s.seed_global, "ls", "free", 2025, "mmd_ref", li, r,
                                      tc).choice(cand, size=min(n_s, len(cand)), replace=False)
            want = metrics.mmd2_unbiased(res.x_cf[torch.from_numpy(rows)],
                                         ds.X_test[torch.from_numpy(np.sort(take))],
                                         s.mmd_length_scale)
            got = by_group.loc[(m, lam, r, tc), "mmd2"]
            if len(rows) < 2:
                assert np.isnan(got) and np.isnan(want)
            else:
                assert got == pytest.approx(want, abs=1e-12)
                n_checked += 1
    assert n_checked >= 10


def test_ip_star_train_all_reference():
    ds = make_dataset(seed=7)
    cfg = small_config()
    cfg["eval"]["mmd"] = dict(cfg["eval"]["mmd"], n_samples=100, reference="train_all")
    ces, mmd, models = evaluate(ds, cfg=cfg)
    counts = {c: int((ds.y_train == c).sum()) for c in range(ds.n_classes)}
    assert (mmd["n_ref"] == mmd["target"].map(counts)).all()
    # all CEs of a group enter X (n_samples = 100 > group size): recompute one group directly
    from ctpaper.search import reference_search

    s = protocol.EvalSettings.from_config(cfg, "ls")
    sub = ces[(ces["model"] == "CT") & (ces["lambda_egy"] == 0.5)]
    x = ds.X_test[torch.tensor(sub["factual_index"].to_numpy())]
    t = torch.tensor(sub["target"].to_numpy())
    res = reference_search(models["CT"], x, t, s.search_config(0.5), ds.lower, ds.upper,
                           mutability=ds.mutability("free"))
    row = mmd[(mmd["model"] == "CT") & (mmd["lambda_egy"] == 0.5) & (mmd["n_ce"] >= 2)].iloc[0]
    sel = ((sub["run"] == row["run"]) & (sub["target"] == row["target"])).to_numpy()
    want = metrics.mmd2_unbiased(res.x_cf[torch.tensor(sel)],
                                 ds.X_train[ds.y_train == row["target"]], s.mmd_length_scale)
    assert row["mmd2"] == pytest.approx(want, abs=1e-10)


def test_protected_family_keeps_protected_features_and_has_no_ip_star():
    ds = make_dataset(protected=(0, 2), seed=11)
    ces, mmd, models = evaluate(ds, family="protected")
    assert ces["ip_star"].isna().all() and len(mmd) == 0
    assert list(mmd.columns) == protocol.MMD_COLUMNS
    # re-run one configuration and check the CEs directly
    from ctpaper.search import reference_search

    s = protocol.EvalSettings.from_config(small_config(), "ls", "protected")
    for m in ("CT", "BL"):
        sub = ces[(ces["model"] == m) & (ces["lambda_egy"] == 5.0)]
        x = ds.X_test[torch.tensor(sub["factual_index"].to_numpy())]
        t = torch.tensor(sub["target"].to_numpy())
        res = reference_search(models[m], x, t, s.search_config(5.0), ds.lower, ds.upper,
                               mutability=ds.mutability("protected"))
        assert (res.steps.numpy() == sub["steps"].to_numpy()).all()
        assert torch.equal(res.x_cf[:, [0, 2]], x[:, [0, 2]])
        assert (res.x_cf[:, 1] != x[:, 1]).any()          # the mutable feature does move
        # redundancy counts the two frozen features
        assert (sub["redundancy"] >= 2 / 3).all()


def test_categorical_blocks_stay_one_hot():
    blocks = ([1, 2, 3], [5, 6])
    ds = make_dataset(n_features=7, n_classes=2, blocks=blocks, protected=(0,), seed=13)
    for family in ("free", "protected"):
        ces, _, models = evaluate(ds, family=family, dataset="adult", model_seeds=(4, 6))
        s = protocol.EvalSettings.from_config(small_config(), "adult")
        from ctpaper.search import reference_search

        for lam in s.lambda_egy_grid:
            for m in ("CT", "BL"):
                sub = ces[(ces["model"] == m) & (ces["lambda_egy"] == lam)]
                x = ds.X_test[torch.tensor(sub["factual_index"].to_numpy())]
                t = torch.tensor(sub["target"].to_numpy())
                # the reference search with its own tie-breaking stream: after a gradient step
                # the values of a block are (almost surely) never tied
                res = reference_search(models[m], x, t, s.search_config(lam), ds.lower, ds.upper,
                                       mutability=ds.mutability(family),
                                       categorical_blocks=list(blocks),
                                       clamp_mask=protocol._clamp_mask(7, list(blocks)))
                assert (res.steps.numpy() == sub["steps"].to_numpy()).all()
                assert np.allclose(sub["cost"], (res.x_cf - x).abs().sum(1).double(), atol=1e-5)
                for b in blocks:
                    v = res.x_cf[:, b]
                    assert ((v == 0) | (v == 1)).all() and (v.sum(1) == 1).all()
                if family == "protected":
                    assert torch.equal(res.x_cf[:, 0], x[:, 0])
        # some categories do change somewhere (the reconstruction is exercised)
        assert (ces["steps"] > 0).any()


def test_deterministic_frames_and_bytes(tmp_path, toy):
    ds, ces, mmd, _ = toy
    ces2, mmd2, _ = evaluate(make_dataset())
    pd.testing.assert_frame_equal(ces, ces2)
    pd.testing.assert_frame_equal(mmd, mmd2)
    from ctpaper.runtime import write_parquet

    write_parquet(ces, tmp_path / "a.parquet")
    write_parquet(ces2, tmp_path / "b.parquet")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    # a different training seed gives different draws
    ces3, _, _ = evaluate(make_dataset(), seed=7)
    assert not ces3["factual_index"].equals(ces["factual_index"])


@pytest.mark.parametrize("family,reference", [("free", "sample"), ("free", "train_all"),
                                              ("protected", "sample")])
def test_a_model_evaluated_alone_gets_its_rows_of_the_joint_evaluation(tmp_path, family, reference):
    """The study variants that retrain only CT score it alone and take the BL's rows from the main
    results: each model's rows must not depend on the other model. In the free family 8 classes x
    10 runs give more IP* groups per lambda than one batch (MMD_GROUP_CHUNK) holds, and groups of
    up to 20 CEs of varying size: a batch mixing the two models' groups pads them differently and
    changes some IP* values in the last bits (as the evaluation before this contract did)."""
    ds = make_dataset(n_features=4, n_classes=8, n_test=400, n_train=200, seed=3)
    cfg = small_config(n_runs=10, n_individuals={"synthetic": 40, "tabular": 40, "image": 40})
    cfg["eval"]["mmd"] = dict(cfg["eval"]["mmd"], n_samples=20, reference=reference)
    models = {"CT": make_model(4, 8, 11), "BL": make_model(4, 8, 12)}
    joint = protocol.evaluate_counterfactuals(ds, models, cfg, "ls", family, 2025)
    if family == "free":
        assert joint[1].groupby(["model", "lambda_egy"]).size().min() > metrics.MMD_GROUP_CHUNK
        assert joint[1]["n_ce"].nunique() > 3
    alone = {m: protocol.evaluate_counterfactuals(ds, models, cfg, "ls", family, 2025, labels=[m])
             for m in ("BL", "CT")}
    for k in (0, 1):   # ces, mmd
        merged = protocol.merge_model_rows([alone["BL"][k], alone["CT"][k]])
        pd.testing.assert_frame_equal(merged, joint[k], check_exact=True)
    # the file-level path: CT searched, BL's rows read from the joint evaluation's files
    from ctpaper.runtime import write_parquet

    paths = tmp_path / "main_ces.parquet", tmp_path / "main_mmd.parquet"
    write_parquet(joint[0], paths[0])
    write_parquet(joint[1], paths[1])
    ces, mmd = protocol.reused_rows(*paths, "BL", "ls", family, 2025)
    pd.testing.assert_frame_equal(protocol.merge_model_rows([alone["CT"][0], ces]), joint[0])
    pd.testing.assert_frame_equal(protocol.merge_model_rows([alone["CT"][1], mmd]), joint[1])
    protocol._check_reused(ces, alone["CT"][0], "BL", paths[0])
    with pytest.raises(ValueError, match="other evaluation settings"):   # a stale file
        protocol._check_reused(ces[ces["run"] < ces["run"].max()], alone["CT"][0], "BL", paths[0])
    with pytest.raises(ValueError, match=f"not ls/{family}/seed 7"):
        protocol.reused_rows(*paths, "BL", "ls", family, 7)
    write_parquet(joint[0][joint[0]["model"] == "CT"], tmp_path / "ct_only.parquet")
    with pytest.raises(ValueError, match="no row of model BL"):
        protocol.reused_rows(tmp_path / "ct_only.parquet", paths[1], "BL", "ls", family, 2025)
    with pytest.raises(ValueError, match="no model to evaluate"):
        protocol.evaluate_counterfactuals(ds, models, cfg, "ls", family, 2025, labels=[])
    with pytest.raises(ValueError, match="unknown model labels"):
        protocol.evaluate_counterfactuals(ds, models, cfg, "ls", family, 2025, labels=["bl"])


# ---- integrated gradients (6.9) -------------------------------------------------------------------

def ig_reference(model, x, target, baseline, n_steps):
    """IG_d = (x_d - b_d) * mean_{s=1..n} dF_c/dx_d at b + (s/n)(x - b), one row at a time."""
    out = torch.zeros_like(x, dtype=torch.float64)
    for i in range(len(x)):
        grads = []
        for s in range(1, n_steps + 1):
            p = (baseline[i] + (s / n_steps) * (x[i] - baseline[i])).clone().requires_grad_(True)
            (g,) = torch.autograd.grad(model(p[None])[0, target[i]], p)
            grads.append(g.double())
        out[i] = (x[i] - baseline[i]).double() * torch.stack(grads).mean(0)
    return out


def test_ig_matches_hand_written_reference():
    model = make_model(5, 3, seed=21)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(9, 5, generator=g)
    target = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2])
    base = attributions.uniform_baseline(9, -torch.ones(5), torch.ones(5), g)
    assert (base.abs() <= 1).all()
    want = ig_reference(model, x, target, base, 50)
    got = attributions.integrated_gradients(model, x, target, base, 50, rows_per_pass=100)
    torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-4)
    # captum's IntegratedGradients (riemann_right) computes the same quantity
    cap = attributions.integrated_gradients_captum(model, x, target, base, 50)
    torch.testing.assert_close(cap.double(), want, atol=1e-5, rtol=1e-4)
    # completeness: sum_d IG_d ~ F_c(x) - F_c(b) (up to the Riemann error)
    fx = (model(x) - model(base)).gather(1, target[:, None]).squeeze(1)
    torch.testing.assert_close(got.sum(1), fx.detach(), atol=0.05, rtol=0.05)
    # the probability output attributes softmax(M(x))[c] instead of the logit
    prob = attributions.integrated_gradients(model, x, target, base, 50, "probability")
    cap_p = attributions.integrated_gradients_captum(model, x, target, base, 50, "probability")
    torch.testing.assert_close(prob, cap_p, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(prob, got, atol=1e-3)
    # a different step count gives a (slightly) different value: the rule really is riemann_right
    other = ig_reference(model, x, target, base, 7)
    got7 = attributions.integrated_gradients(model, x, target, base, 7)
    torch.testing.assert_close(got7.double(), other, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(got7.double(), want, atol=1e-4)


def test_class_average_maps_and_frames():
    model = make_model(6, 3, seed=22)
    g = torch.Generator().manual_seed(1)
    X = torch.randn(30, 6, generator=g)
    y = torch.arange(30) % 3
    base = attributions.uniform_baseline(30, -torch.ones(6), torch.ones(6), g)
    maps = attributions.class_average_maps(model, X, y, 3, base, 10)
    ref = ig_reference(model, X, y, base, 10)
    for c in range(3):
        avg = ref[y == c].mean(0)
        torch.testing.assert_close(maps[c], (avg - avg.min()) / (avg.max() - avg.min()),
                                   atol=1e-5, rtol=1e-4)
        assert maps[c].min() == 0 and maps[c].max() == 1
    df = attributions.ig_maps_frame({"BL": maps, "CT_protected": maps * 0.5})
    assert list(df.columns) == attributions.IG_MAP_COLUMNS and len(df) == 2 * 3 * 6
    summ = attributions.maps_summary(df, [0, 5], "mnist", 1, 30)
    bl = summ[summ["model"] == "BL"].iloc[0]
    assert bl["mean"] == pytest.approx(float(maps[:, [0, 5]].mean()))
    ct = summ[summ["model"] == "CT_protected"].iloc[0]
    assert ct["mean"] == pytest.approx(0.5 * bl["mean"])


def test_ig_rounds_normalisation_and_summary():
    ds = make_dataset(n_features=2, n_classes=2, seed=3)
    model = make_model(2, 2, seed=5)
    r = attributions.ig_rounds(model, ds.X_test, ds.y_test, ds.lower, ds.upper, 4, 20, 10, 2025,
                               ("ls", 1))
    assert r.shape == (4, 2)
    assert (r >= 0).all()
    r2 = attributions.ig_rounds(model, ds.X_test, ds.y_test, ds.lower, ds.upper, 4, 20, 10, 2025,
                                ("ls", 1))
    assert torch.equal(r, r2)
    # by hand for round 0
    idx = protocol.numpy_rng(2025, "ls", 1, "ig_rows", 0).integers(0, len(ds.X_test), 20)
    base = attributions.uniform_baseline(20, ds.lower, ds.upper,
                                         protocol.torch_generator(2025, "ls", 1, "ig_baseline", 0))
    gbar = ig_reference(model, ds.X_test[idx], ds.y_test[idx], base, 10).mean(0)
    torch.testing.assert_close(r[0], gbar.abs() / (gbar.max() - gbar.min()), atol=1e-5, rtol=1e-4)
    summ = attributions.rounds_summary({"BL": r}, [0], "ls", 1, 20)
    assert summ["mean"].iloc[0] == pytest.approx(float(r[:, 0].mean()))
    assert summ["sd"].iloc[0] == pytest.approx(float(r[:, 0].std()))
    # more than two features: min-max to [0, 1]
    g = torch.tensor([[1.0, -1.0, 3.0]])
    assert attributions.normalise(g).tolist() == [[0.5, 0.0, 1.0]]


# ---- end to end on the smoke config --------------------------------------------------------------

@pytest.mark.slow
def test_smoke_evaluate_end_to_end(smoke_run):
    """The evaluation outputs of the session's smoke run (conftest.smoke_run) and a byte-identical
    rerun of one evaluation job."""
    from conftest import smoke_snakemake

    cfg = smoke_run["config"]
    res = smoke_run["results"] / "eval"
    for d in cfg["datasets"]:
        for fam in cfg["families"]:
            ces = pd.read_parquet(res / d / "seed2025" / fam / "ces.parquet")
            assert list(ces.columns) == protocol.CES_COLUMNS
            own = eval_settings(cfg, d, fam)        # the family's (and dataset's) settings
            assert len(ces) == 2 * len(cfg["eval"]["lambda_egy_grid"]) * own["n_runs"] * \
                own["n_individuals"]
            assert ces["run"].nunique() == own["n_runs"] and ces["steps"].max() <= own["T"]
            assert (ces["factual_class"] != ces["target"]).all()
            assert ces["ip_star"].isna().all() == (fam == "protected")
            assert ces["valid"].any()
        rob = pd.read_parquet(res / d / "seed2025" / "robustness.parquet")
        assert sorted(rob["model"].unique()) == ["BL", "CT"]
        assert len(rob) == 2 * cfg["robust"]["eps_grid"]["num"]
        perf = pd.read_parquet(res / d / "seed2025" / "performance.parquet")
        assert sorted(perf["model"]) == ["BL", "CT_free", "CT_protected"]
        summ = pd.read_parquet(res / d / "seed2025" / "ig_summary.parquet")
        assert set(summ["model"]) == {"BL", "CT_protected"}
        assert set(summ["source"]) == ({"rounds", "class_maps"} if d == "mnist" else {"rounds"})
        # method 6.9: min-max to [0, 1], but 2-D data use |g| / (max g - min g), which exceeds 1
        # when the two attributions are close (LS with the original's Julia points)
        assert (summ["mean"] >= 0).all()
        if d not in ("ls", "circ", "moon", "ol"):
            assert (summ["mean"] <= 1).all()
    maps = pd.read_parquet(res / "mnist" / "seed2025" / "ig_maps.parquet")
    assert len(maps) == 2 * 10 * 784
    assert maps.groupby(["model", "class"])["attribution"].agg(["min", "max"]).eq([0, 1]).all().all()
    # rerun of one evaluation job: byte-identical output
    ces_file = res / "ls" / "seed2025" / "free" / "ces.parquet"
    before = ces_file.read_bytes()
    proc = smoke_snakemake([str(ces_file), "--forcerun", "evaluate_ces"], smoke_run["overlay"],
                           smoke_run["env"], timeout=600)
    assert proc.returncode == 0, proc.stderr[-5000:]
    assert ces_file.read_bytes() == before
