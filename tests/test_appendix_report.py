"""Appendix report (issue 12): pct vs BL, the figures' data, Tables 4-6 and the claim verdicts,
each against answers computed by hand or built into the frames (tests/appendix_fakes.py)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import appendix_fakes as F  # noqa: E402

from ctpaper.appendix import claims as C  # noqa: E402
from ctpaper.appendix.data import pct_change  # noqa: E402
from ctpaper.appendix.tables import performance_markdown, performance_table  # noqa: E402
from ctpaper.figures import appendix as A  # noqa: E402

VARY_T = ["generator", "T"]


def _row(model, objective, run, lam, ip, cost=1.0, **values):
    return {"grid": "g", "dataset": "ls", "model": model, "objective": objective, **values, "run": run,
            "lam": lam, "ip": ip, "cost": cost, "validity": 1.0, "n_valid": 5}


def test_pct_matches_bl_by_run_and_lambda():
    rows = [_row("bl", "vanilla", 0, 0.1, 2.0, generator=None, T=None),
            _row("bl", "vanilla", 1, 0.1, 4.0, generator=None, T=None),
            _row("bl", "vanilla", 0, 1.0, 0.0, generator=None, T=None),      # BL 0: dropped
            _row("ct_0000", "full", 0, 0.1, 1.0, generator="ecco", T=5),
            _row("ct_0000", "full", 1, 0.1, 5.0, generator="ecco", T=5),
            _row("ct_0000", "full", 0, 1.0, 3.0, generator="ecco", T=5),
            _row("ct_0001", "full", 0, 0.1, float("nan"), generator="generic", T=5),  # no valid CE
            _row("ct_0001", "full", 1, 0.1, 3.0, generator="generic", T=5)]
    pct = pct_change(pd.DataFrame(rows), VARY_T, "ip")
    got = {(r.model, r.run, r.lam): r.pct for r in pct.itertuples()}
    assert got == {("ct_0000", 0, 0.1): -50.0, ("ct_0000", 1, 0.1): 25.0, ("ct_0001", 1, 0.1): -25.0}


def test_pct_matches_bl_by_n_epochs():
    vary = ["generator", "n_epochs"]
    rows = [_row("bl_n_epochs50", "vanilla", 0, 0.1, 2.0, generator=None, n_epochs=50),
            _row("bl_n_epochs100", "vanilla", 0, 0.1, 10.0, generator=None, n_epochs=100),
            _row("ct_0000", "full", 0, 0.1, 3.0, generator="ecco", n_epochs=50),
            _row("ct_0001", "full", 0, 0.1, 3.0, generator="ecco", n_epochs=100)]
    pct = pct_change(pd.DataFrame(rows), vary, "ip").set_index("model")["pct"]
    assert pct["ct_0000"] == pytest.approx(50.0) and pct["ct_0001"] == pytest.approx(-70.0)


def _scores(grid, seed=0, **kw):
    vary = F.VARY[grid]
    eff = lambda c: -0.1 * (vary.get("T", [0]).index(c["T"]) if "T" in c else 0)  # noqa: E731
    return F.scores(grid, "ls", vary, F.noisy(seed, eff, 0.2), runs=range(4), lams=(0.1, 1.0, 5.0), **kw)


@pytest.mark.parametrize("grid", ["generator", "tune"])
def test_box_figure_draws_its_data(grid, tmp_path):
    from ctpaper.runtime import write_parquet

    vary = list(F.VARY[grid])
    scores = _scores(grid)
    write_parquet(scores, tmp_path / "scores.parquet")
    out = {k: tmp_path / f"f.{k}" for k in ("png", "pdf", "csv")}
    A.make_boxes(str(tmp_path / "scores.parquet"), grid, vary, "ip", "LS", out["png"], out["pdf"], out["csv"])
    written = pd.read_csv(out["csv"])
    # by hand: per CT cell (and test-time lambda in the E grids) the median of 100 (ct - bl) / bl
    ct, bl = scores[scores.objective == "full"], scores[scores.objective == "vanilla"]
    m = ct.merge(bl[["run", "lam", "ip"]], on=["run", "lam"], suffixes=("", "_bl"))
    m["p"] = 100 * (m["ip"] - m["ip_bl"]) / m["ip_bl"]
    keys = vary if grid == "generator" else vary + ["lam"]
    expect = m.groupby(keys)["p"].agg(["median", "size"])
    assert len(written) == len(expect) == int(np.prod([len(v) for v in F.VARY[grid].values()])) * \
        (1 if grid == "generator" else 3)
    facets = A.box_facets(grid, vary)
    cols = [facets[k] for k in ("col", "x", "hue", "row")]
    renamed = {"col": cols[0], "x": cols[1], "hue": cols[2], "row": cols[3]}
    by = written.rename(columns={k: v for k, v in renamed.items() if v}).set_index(keys).sort_index()
    np.testing.assert_allclose(by["med"].to_numpy(), expect.sort_index()["median"].to_numpy(), rtol=1e-12)
    assert (by["n"].to_numpy() == expect.sort_index()["size"].to_numpy()).all()
    # the figure's median lines are the written medians
    stats = A.box_stats(pct_change(scores, vary, "ip"), facets)
    fig = A.plot_boxes(stats, facets, "ip", "LS")
    drawn = sorted(round(ln.get_ydata()[0], 9) for ax in fig.axes for ln in ax.lines
                   if ln.get_gid() == "median")
    assert drawn == sorted(round(v, 9) for v in written["med"])


def test_maturity_figure_data_equal_frame(tmp_path):
    from ctpaper.runtime import write_parquet

    vary = F.VARY["tune_lr"]
    mat = F.maturity("tune_lr", "ls", vary, lambda c, e: math.nan if e == 1 else e / 4 * c["eta_ce"], n_epochs=4)
    write_parquet(mat, tmp_path / "m.parquet")
    out = {k: tmp_path / f"f.{k}" for k in ("png", "pdf", "csv")}
    A.make_maturity(str(tmp_path / "m.parquet"), list(vary), "LS", out["png"], out["pdf"], out["csv"])
    written = pd.read_csv(out["csv"])
    assert len(written) == 9 * 3                      # epoch 1 (no CEs) is not drawn
    assert set(written["col"]) == set(vary["lambda_reg"]) and set(written["row"]) == set(vary["eta_ce"])
    np.testing.assert_allclose(written["prop_mature"], written["epoch"] / 4 * written["row"])


def test_performance_table_by_hand():
    vary = {"generator": ["ecco", "generic"], "T": [5, 50]}
    acc = {("ecco", 5): 0.8, ("ecco", 50): 0.9, ("generic", 5): 0.7, ("generic", 50): 0.6}
    perf = F.performance("generator", "ls", vary, lambda c: acc[(c["generator"], c["T"])], bl_acc=0.95)
    pt = performance_table(perf).set_index("objective")
    assert pt.loc["full", "n_models"] == 4
    assert pt.loc["full", "accuracy_mean"] == pytest.approx(0.75)
    assert pt.loc["full", "accuracy_sd"] == pytest.approx(math.sqrt((0.05**2 + 0.15**2 + 0.05**2 + 0.15**2) / 3))
    assert pt.loc["full", "f1_mean"] == pytest.approx(0.74)
    assert pt.loc["vanilla", "accuracy_mean"] == pytest.approx(0.95) and math.isnan(pt.loc["vanilla", "accuracy_sd"])
    md = performance_markdown(pt.reset_index(), "generator")
    assert "0.75 ± 0.13" in md and "{#tbl-grid-generator}" in md


@pytest.mark.parametrize("k,n,verdict", [(3, 3, C.SUPPORTS), (2, 4, C.PARTLY), (1, 3, C.NOT), (0, 0, C.NA)])
def test_share_verdict(k, n, verdict):
    assert C.share_verdict(k, n) == verdict


def test_combine():
    assert C.combine(C.SUPPORTS, C.SUPPORTS, C.NA) == C.SUPPORTS
    assert C.combine(C.NOT, C.NOT) == C.NOT
    assert C.combine(C.SUPPORTS, C.NOT) == C.PARTLY
    assert C.combine(C.NA) == C.NA


# ---- claims on frames built to give each verdict ------------------------------------------------
# ratio CT/BL = 1 + eff(dataset, cell) + spread(cell) * (run - 1) over runs 0, 1, 2: the median pct of a
# cell is 100 * eff and its IQR (over runs x lambda) is 100 * spread.

def _frames(grid, datasets, eff, spread=lambda c: 0.0, prop=lambda d, c, e: 0.5, acc=lambda d, c: 0.9):
    vary = F.VARY[grid.replace("_applied", "")]
    bk = ("n_epochs",) if "n_epochs" in vary else ()
    s, p, m = [], [], []
    for d in datasets:
        def ratio(cell, run, lam, d=d):
            r = 1 + eff(d, cell) + spread(cell) * (run - 1)
            return r, r
        s.append(F.scores(grid, d, vary, ratio, runs=(0, 1, 2), lams=(0.1, 1.0), bl_keys=bk))
        p.append(F.performance(grid, d, vary, lambda c, d=d: acc(d, c), bl_acc=0.9, bl_keys=bk))
        m.append(F.maturity(grid, d, vary, lambda c, e, d=d: prop(d, c, e), n_epochs=3))
    return {"scores": pd.concat(s), "performance": pd.concat(p), "maturity": pd.concat(m)}, list(vary)


def _verdict(claim, *grids):
    frames = {g: f for g, (f, _) in grids}
    varies = {g: v for g, (_, v) in grids}
    return C.evaluate(frames, varies)[claim]


GEN = {"ecco": 0, "generic": 1, "revise": 2}
T_IX = {5: 0, 25: 1, 50: 2}
TAU_IX = {0.5: 0, 0.75: 1, 0.9: 2}


@pytest.mark.parametrize("case,verdict", [("order", C.SUPPORTS), ("one_swapped", C.PARTLY), ("reversed", C.NOT)])
def test_claim_a(case, verdict):
    def eff(d, c):
        e = {"ecco": -0.5, "generic": -0.2, "revise": 0.2}[c["generator"]]
        if case == "reversed" or (case == "one_swapped" and d == "ol" and c["generator"] != "revise"):
            e = {"ecco": -0.1, "generic": -0.6, "revise": -0.8}[c["generator"]] if case == "reversed" else \
                {"ecco": -0.2, "generic": -0.5}[c["generator"]]
        return e
    assert _verdict("a", ("generator", _frames("generator", ["ls", "ol"], eff)))["verdict"] == verdict


@pytest.mark.parametrize("case,verdict", [("both", C.SUPPORTS), ("ip_only", C.PARTLY), ("neither", C.NOT)])
def test_claim_b(case, verdict):
    sign = 1 if case == "neither" else -1
    mat_up = case == "both"
    g = _frames("generator", ["ls", "ol"], lambda d, c: sign * 0.1 * T_IX[c["T"]],
                prop=lambda d, c, e: 0.3 + (0.2 if mat_up else -0.2) * T_IX[c["T"]] / 2)
    assert _verdict("b", ("generator", g))["verdict"] == verdict


@pytest.mark.parametrize("case,verdict", [("both", C.SUPPORTS), ("effective", C.PARTLY), ("neither", C.NOT)])
def test_claim_c(case, verdict):
    better = case != "neither"
    g = _frames("other", ["circ", "moon", "ls"],
                lambda d, c: (-0.2 if (c["nce"] == 1000) == better else -0.1),
                spread=lambda c: (0.05 if (c["nce"] == 1000) == (case == "both") else 0.2))
    r = _verdict("c", ("other", g))
    assert r["verdict"] == verdict and r["n"] == 2       # only Circles and Moons count


@pytest.mark.parametrize("case,verdict", [("as_claimed", C.SUPPORTS), ("maturity_up", C.PARTLY), ("opposite", C.NOT)])
def test_claim_d(case, verdict):
    def eff(d, c):
        i = TAU_IX[c["tau"]]
        if case == "opposite":
            return -0.1 * i if d != "moon" else 0.1 * i
        if d == "moon":
            return [-0.2, -0.3, -0.1][i]
        if d == "ol":
            return [-0.3, -0.1, 0.1][i]
        return -0.3 + 0.1 * i
    down = case == "as_claimed"
    g = _frames("tune", ["ls", "circ", "moon", "ol"], eff,
                prop=lambda d, c, e: 0.8 - (0.2 if down else -0.1) * TAU_IX[c["tau"]])
    assert _verdict("d", ("tune", g))["verdict"] == verdict


REG_IX = {0.0: 0, 0.01: 1, 0.1: 2, 0.25: 3, 0.5: 4}
DIV_IX = {0.01: 0, 0.1: 1, 1.0: 2}


@pytest.mark.parametrize("case,verdict", [("reg", C.SUPPORTS), ("reg_reversed", C.PARTLY), ("div", C.NOT)])
def test_claim_e(case, verdict):
    eff = {"reg": lambda d, c: -0.1 * REG_IX[c["lambda_reg"]],
           "reg_reversed": lambda d, c: 0.1 * REG_IX[c["lambda_reg"]],
           "div": lambda d, c: -0.1 * DIV_IX[c["lambda_div"]]}[case]
    assert _verdict("e", ("penalties", _frames("penalties", ["ls", "moon"], eff)))["verdict"] == verdict


@pytest.mark.parametrize("case,verdict", [("both", C.SUPPORTS), ("epochs", C.PARTLY), ("neither", C.NOT)])
def test_claim_f(case, verdict):
    def eff(d, c):
        e = (-0.2 if c["n_epochs"] == 100 else -0.1) if case != "neither" else (-0.1 if c["n_epochs"] == 100 else -0.2)
        if c["burnin"] > 0 and case != "both":
            e += 0.3          # the burn-in loses more than half of the improvement
        return e
    assert _verdict("f", ("other", _frames("other", ["ls", "moon"], eff)))["verdict"] == verdict


@pytest.mark.parametrize("case,verdict", [("both", C.SUPPORTS), ("low_only", C.PARTLY), ("neither", C.NOT),
                                          ("no_mnist", C.NA)])
def test_claim_g(case, verdict):
    low_best = case in ("both", "low_only", "no_mnist")
    eff = (lambda d, c: -0.3 + 0.1 * (c["lambda_reg"] > 0.1)) if low_best else (lambda d, c: -c["lambda_reg"])
    full = case in ("both", "no_mnist")
    g = _frames("tune", ["ls" if case == "no_mnist" else "mnist"], eff,
                prop=lambda d, c, e: (1.0 if full else 0.6) if e == 3 else 0.2)
    assert _verdict("g", ("tune", g))["verdict"] == verdict


ETA_IX = {0.1: 0, 0.5: 1, 1.0: 2}


@pytest.mark.parametrize("case,verdict", [("flat", C.SUPPORTS), ("one", C.PARTLY), ("strong", C.NOT)])
def test_claim_h_both_variants(case, verdict):
    def eff(d, c):
        strong = case == "strong" or (case == "one" and d == "moon")
        return -0.2 * ETA_IX[c["eta_ce"]] if strong else -0.2
    published = _frames("tune_lr", ["ls", "moon"], lambda d, c: -0.2, spread=lambda c: 0.1)
    applied = _frames("tune_lr_applied", ["ls", "moon"], eff, spread=lambda c: 0.1,
                      prop=lambda d, c, e: 0.5 + 0.2 * ETA_IX[c["eta_ce"]])
    r = _verdict("h", ("tune_lr", published), ("tune_lr_applied", applied))
    assert r["verdict"] == r["published"]["verdict"] == C.SUPPORTS
    assert r["applied"]["verdict"] == verdict
    assert r["applied"]["k_larger_more_mature"] == 2
    assert r["applied"]["k_larger_better"] == {"flat": 0, "one": 1, "strong": 2}[case]


@pytest.mark.parametrize("case,verdict", [("small", C.SUPPORTS), ("one", C.PARTLY), ("large", C.NOT)])
def test_claim_i(case, verdict):
    def acc(d, c):
        return 0.895 if case == "small" or (case == "one" and d == "ls") else 0.85
    g = _frames("generator", ["ls", "moon"], lambda d, c: -0.1, acc=acc)
    r = _verdict("i", ("generator", g))
    assert r["verdict"] == verdict and r["max_drop"] == pytest.approx(0.5 if case == "small" else 5.0)
