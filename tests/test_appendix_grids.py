"""The appendix grids (ctpaper.grids): the plan against method 9's table, the settings of each
member, chunking, the SLURM job budget, the pool-not-test rule, and a smoke run of every grid."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from ctpaper import config as C
from ctpaper.grids import plan

sys.path.insert(0, str(Path(__file__).resolve().parent / "slurm"))
import smk  # noqa: E402  (tests/slurm/smk.py)

REPO = Path(__file__).resolve().parents[1]
# method 9's table: cells incl. objective
METHOD9_CELLS = {"generator": 270, "penalties": 270, "other": 48, "tune": 18, "tune_lr": 18,
                 "tune_lr_applied": 18}


@pytest.fixture(scope="module")
def full():
    return C.load(C.DEFAULT_CONFIG)


def test_cell_counts_are_method_9s(full):
    assert {g: len(plan.grid_cells(full, g)) for g in plan.grid_ids(full)} == METHOD9_CELLS
    assert plan.grid_datasets(full, "generator") == ["ls", "ol", "circ", "moon"]
    assert len(plan.grid_datasets(full, "tune")) == len(plan.grid_datasets(full, "tune_lr")) == 9


def test_bl_once_per_dataset_and_n_epochs(full):
    for grid in plan.grid_ids(full):
        for d in plan.grid_datasets(full, grid):
            models = plan.grid_models(full, grid, d)
            bl = [m for m in models if m["objective"] == "vanilla"]
            ct = [m for m in models if m["objective"] == "full"]
            assert len(ct) == METHOD9_CELLS[grid] // 2
            assert [m["model"] for m in bl] == (["bl_n_epochs50", "bl_n_epochs100"] if grid == "other"
                                                else ["bl"])
            assert len({m["model"] for m in models}) == len(models)
    # BL depends on no CT value: the same model in every grid of a data set (plus the 50-epoch one)
    ls_bl = {m["member"]["name"] for g in plan.grid_ids(full)
             for m in plan.grid_models(full, g, "ls") if m["objective"] == "vanilla"}
    assert len(ls_bl) == 2
    bl = next(m for m in plan.grid_models(full, "other", "ls") if m["model"] == "bl_n_epochs50")
    assert bl["values"] == {"generator": None, "burnin": None, "nce": None, "n_epochs": 50}
    assert bl["member"]["settings"]["n_epochs"] == 50


def _ct(config, grid, dataset, **values):
    for m in plan.grid_models(config, grid, dataset):
        if m["objective"] == "full" and all(m["values"][k] == v for k, v in values.items()):
            return m["member"]
    raise KeyError(values)


def test_note1_defaults_and_table2_columns(full):
    # D grids: Note 1 for everything not varied (not Table 2's tau/lambda_reg); batch 30
    s = _ct(full, "generator", "circ", generator="ecco", T=25, lambda_egy=0.1, tau=0.75)["settings"]
    assert (s["lambda_reg"], s["lambda_div"], s["lambda_adv"], s["nce"], s["batch_size"]) == \
        (0.1, 0.5, 0.25, 1000, 30)
    assert (s["T"], s["lambda_egy"], s["tau"], s["lambda_cst"], s["n_epochs"]) == \
        (25, 0.1, 0.75, 0.001, 100)
    s = _ct(full, "penalties", "moon", generator="revise", lambda_div=1.0, lambda_adv=0.1,
            lambda_reg=0.0)["settings"]
    assert (s["generator"], s["tau"], s["T"], s["lambda_egy"], s["lambda_reg"]) == \
        ("revise", 0.75, 30, 0.0, 0.0)         # lambda_egy: inert for REVISE, recorded as 0
    # E grids: Table 2's batch size and nce, Note 1 otherwise; E.2 fixes tau 0.5
    s = _ct(full, "tune", "adult", lambda_reg=0.5, tau=0.9)["settings"]
    assert (s["batch_size"], s["nce"], s["lambda_reg"], s["tau"], s["T"]) == (1000, 5000, 0.5, 0.9, 30)
    s = _ct(full, "tune_lr_applied", "mnist", eta_ce=1.0, lambda_reg=0.1)["settings"]
    assert (s["ce_lr"], s["tau"], s["nce"], s["batch_size"]) == (1.0, 0.5, 5000, 1000)


def test_published_lr_grid_does_not_apply_the_step_size(full):
    for lam in (0.01, 0.1, 0.5):
        pub = {_ct(full, "tune_lr", "ls", eta_ce=e, lambda_reg=lam)["name"] for e in (0.1, 0.5, 1.0)}
        app = [_ct(full, "tune_lr_applied", "ls", eta_ce=e, lambda_reg=lam) for e in (0.1, 0.5, 1.0)]
        assert len(pub) == 1 and len({m["name"] for m in app}) == 3
        assert pub == {app[0]["name"]}          # the published cells train with ce.lr = 0.1
        assert [m["settings"]["ce_lr"] for m in app] == [0.1, 0.5, 1.0]
    # E.1's cells with tau 0.5 are E.2's (published) cells: one model
    assert _ct(full, "tune", "gmsc", lambda_reg=0.1, tau=0.5)["name"] == \
        _ct(full, "tune_lr", "gmsc", eta_ce=1.0, lambda_reg=0.1)["name"]


def test_inert_energy_weight_is_one_model(full):
    from ctpaper.search import ecco_schedule

    for T in range(1, 200):
        assert plan.energy_term_on({"generator": "ecco", "T": T}) == (ecco_schedule(T)[0] > 0)
    for gen, T, n in (("generic", 25, 1), ("revise", 50, 1), ("ecco", 5, 1), ("ecco", 25, 5)):
        names = {_ct(full, "generator", "ls", generator=gen, T=T, lambda_egy=lam, tau=0.9)["name"]
                 for lam in full["grids"]["generator"]["vary"]["lambda_egy"]}
        assert len(names) == n, (gen, T)
    s = _ct(full, "generator", "ls", generator="generic", T=25, lambda_egy=20.0, tau=0.9)["settings"]
    assert s["lambda_egy"] == 0.0
    assert _ct(full, "generator", "ls", generator="ecco", T=50, lambda_egy=20.0,
               tau=0.9)["settings"]["lambda_egy"] == 20.0


def test_chunks_cover_every_model_once(full):
    for d in plan.appendix_datasets(full):
        chunks = plan.dataset_chunks(full, d)
        names = [m["name"] for c in chunks for m in c["members"]]
        assert sorted(names) == sorted(m["name"] for m in plan.dataset_members(full, d))
        size = full["grids"]["chunk_size"][C.dataset_kind(d)]
        assert max(len(c["members"]) for c in chunks) <= size
        assert max(len(c["members"]) for c in chunks) - min(len(c["members"]) for c in chunks) <= 1
        assert any(c["vae"] for c in chunks) == (C.dataset_kind(d) == "synthetic")
    n_models = sum(len(plan.dataset_members(full, d)) for d in plan.appendix_datasets(full))
    # synthetic: 135 - 84 inert lambda_egy cells (Generic/REVISE x 3 T x 3 tau x 4, ECCo T=5 x 3 tau
    # x 4) + 135 + 24 + 16 - 1 shared (E.1 tau 0.75 = D.4's ECCo default) + 2 BL; others 16 + BL
    assert n_models == 4 * 227 + 5 * 17


def test_changing_one_grid_value_keeps_other_models(full):
    other = copy.deepcopy(full)
    other["grids"]["penalties"]["vary"]["lambda_reg"] = [0.0, 0.01]
    before = {m["name"] for m in plan.dataset_members(full, "ls")}
    after = {m["name"] for m in plan.dataset_members(other, "ls")}
    assert {m["member"]["name"] for m in plan.grid_models(full, "generator", "ls")} <= after
    assert len(before - after) == 81


def test_full_config_slurm_dry_run_plans_at_most_300_jobs(tmp_path):
    """The appendix's jobs (all grid files requested) plus the paper's (with the robustness studies)
    stay within 300 SLURM jobs: the grid chunks and evaluations are their own jobs, the per-dataset
    chains are group jobs and the report stage runs beside Snakemake."""
    full = C.load(C.DEFAULT_CONFIG)
    root = full["paths"]["results"]
    targets = [f"{root}/appendix/{g}/{d}/{f}.parquet" for g in plan.grid_ids(full)
               for d in plan.grid_datasets(full, g) for f in ("scores", "performance", "maturity")]
    proc = smk.check(smk.run(["all", *targets, "-n", "--profile", smk.SLURM_PROFILE], tmp_path / "wd",
                             [smk.CONFIG], timeout=600), "full dry run")
    stats = smk.job_stats(proc.output)
    assert stats["evaluate_grid"] == len(targets) // 3
    assert {r: stats[r] for r in plan.job_counts(full)} == plan.job_counts(full) == \
        {"train_chunk": 18, "evaluate_grid": 39, "train_vae": 4}
    n_slurm = smk.cluster_jobs(smk.jobs(proc.output), smk.local_rules() | {"all"})
    print(f"\nfull config: {sum(stats.values())} jobs, {n_slurm} SLURM jobs")
    assert n_slurm <= 300, stats


# ---- the pool, never the test set -----------------------------------------------------------------
def test_grid_evaluation_draws_from_the_pool_never_the_test_set(prepared_data, base_config):
    from ctpaper.data.io import load_dataset
    from ctpaper.grids.eval import grid_ces, pool_view
    from ctpaper.models import build_model

    cfg = copy.deepcopy(base_config)
    cfg["grids"]["eval"].update(n_runs=2, n_individuals=6)
    cfg["eval"]["lambda_egy_grid"] = [0.5, 5.0]
    for name in ("ls", "adult"):
        ds = load_dataset(prepared_data(name))
        models = {m: build_model("mlp", ds.n_features, ds.n_classes, seed=i)
                  for i, m in enumerate(("bl", "ct_0000"))}
        a = grid_ces(pool_view(ds), copy.deepcopy(models), cfg, name, 2025, group=8)
        moved = copy.copy(ds)
        moved.X_test = ds.X_test + 1000.0           # a test set nowhere near the pool
        moved.y_test = 1 - ds.y_test
        b = grid_ces(pool_view(moved), copy.deepcopy(models), cfg, name, 2025, group=8)
        pd.testing.assert_frame_equal(a, b)
        # the stacked-search group size (grids.eval.group, NO_RERUN) does not change a result
        c = grid_ces(pool_view(ds), copy.deepcopy(models), cfg, name, 2025, group=1)
        order = ["model", "lambda_egy", "run", "individual"]
        pd.testing.assert_frame_equal(a.sort_values(order, ignore_index=True),
                                      c.sort_values(order, ignore_index=True))
        n_pool = len(ds.y_train) + len(ds.y_val)
        assert a["factual_index"].max() < n_pool and len(a) == 2 * 2 * 6 * 2
        # a factual is the pool row it names: its cost is measured from that row
        pool = torch.cat([ds.X_train, ds.X_val])
        assert pool.shape[0] == n_pool and a["ip"].notna().any()


# ---- smoke run of every grid ----------------------------------------------------------------------
SCORES = ["grid", "dataset", "model", "objective", "run", "lam", "ip", "cost", "validity", "n_valid"]
PERFORMANCE = ["grid", "dataset", "model", "objective", "accuracy", "f1", "n_pred_classes"]
MATURITY = ["grid", "dataset", "model", "epoch", "prop_mature"]


@pytest.mark.slow
def test_smoke_run_of_every_grid(smoke_run):
    """Every grid's three files of the session's smoke run (conftest.smoke_run, which runs the
    appendix with the paper): their columns and one row per model (scores: per run and lambda)."""
    from ctpaper.runtime import read_parquet

    results, config = smoke_run["results"], smoke_run["config"]
    assert plan.grid_ids(config) == list(METHOD9_CELLS)
    ge = config["grids"]["eval"]
    n_lam = len(config["eval"]["lambda_egy_grid"])
    for g in plan.grid_ids(config):
        vary = list(config["grids"][g]["vary"])
        for d in plan.grid_datasets(config, g):
            base = results / "appendix" / g / d
            scores = read_parquet(base / "scores.parquet")
            perf = read_parquet(base / "performance.parquet")
            mat = read_parquet(base / "maturity.parquet")
            assert set(SCORES + vary) == set(scores.columns)
            assert set(PERFORMANCE + vary) == set(perf.columns)
            assert set(MATURITY + vary) == set(mat.columns)
            models = plan.grid_models(config, g, d)
            assert len(perf) == len(models) and len(scores) == len(models) * ge["n_runs"] * n_lam
            assert (scores["grid"] == g).all() and (scores["dataset"] == d).all()
            assert scores["validity"].between(0, 1).all()
            assert (scores["n_valid"] <= ge["n_individuals"]).all()
            n_ct = METHOD9_CELLS[g] // 2 if g not in ("generator", "penalties", "other") else None
            ct = perf[perf["objective"] == "full"]
            assert n_ct is None or len(ct) == len(plan.grid_cells(config, g)) // 2
            assert set(mat["model"]) == set(ct["model"])
            # NaN only in burn-in epochs (no CEs generated): D.4's burnin > 0
            assert mat["prop_mature"].dropna().between(0, 1).all()
            nan = mat["prop_mature"].isna()
            assert not nan.any() or (mat.loc[nan, "burnin"] > 0).all()
            bl = perf[perf["objective"] == "vanilla"]
            if "n_epochs" in vary:
                assert sorted(bl["n_epochs"].tolist()) == sorted(config["grids"][g]["vary"]["n_epochs"])
            else:
                assert bl[vary].isna().all().all()


def test_bl_member_in_a_stack_equals_train(prepared_data, base_config):
    """BL settings (model_settings "bl": no CT keys) train in a stack, as ``training.train`` does."""
    from ctpaper.data.io import load_dataset
    from ctpaper.stack.training import MemberSpec, train_stack
    from ctpaper.training import model_settings, train

    cfg = copy.deepcopy(base_config)
    cfg["model"]["n_epochs"] = 2
    ds = load_dataset(prepared_data("ls"))
    s = model_settings(cfg, "ls", "bl")
    (stacked, log_s), = train_stack(ds, [MemberSpec(s, "vanilla", "free", 2025)])
    alone, log_a = train(ds, s, "vanilla", "free", 2025)
    for a, b in zip(stacked.state_dict().values(), alone.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=0)
    assert log_s["train_acc"].tolist() == pytest.approx(log_a["train_acc"].tolist())
