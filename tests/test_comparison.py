"""The side-by-side comparison with the original's published tables, on worked frames."""

import copy
import math
from pathlib import Path

import pandas as pd
import pytest

from ctpaper import comparison as C
from ctpaper.config import load as load_config
from ctpaper.paper import values

ROOT = Path(__file__).resolve().parents[1]
ORIGINAL = C.load_original(ROOT / "config" / "original_results.yaml")


def test_original_results_are_the_shared_reference_data():
    import json

    shared = ROOT.parent / "shared" / "data" / "original_results.json"
    if not shared.is_file():
        pytest.fail(f"{shared} missing: the reference data this file was copied from", pytrace=False)
    assert ORIGINAL == json.loads(shared.read_text())
    assert len(ORIGINAL["table1"]) == 27 and len(ORIGINAL["table3"]) == 27


@pytest.mark.parametrize("value, significant, cls", [
    (12.0, True, "better"), (-3.0, True, "worse"), (12.0, False, "n.s."), (-3.0, False, "n.s."),
    (math.nan, True, "n.s."), (0.0, True, "n.s."),
])
def test_sig_class(value, significant, cls):
    assert C.sig_class(value, significant) == cls


def _t1(rows):
    """A Table-1 frame (the columns table1.csv has) from {dataset: {metric: (value, pm, sig)}}."""
    out = []
    for d, cells in rows.items():
        r = {"dataset": d, "label": d}
        for m in ("ip", "ip_star", "cost"):
            v, pm, sig = cells.get(m, (math.nan, math.nan, False))
            r.update({f"{m}_value": v, f"{m}_pm": pm, f"{m}_significant": sig})
        out.append(r)
    out.append({"dataset": "avg", "label": "Avg", **{f"{m}_value": 1.0 for m in ("ip", "ip_star",
                                                                               "cost")}})
    return pd.DataFrame(out)


def _ctx(**kw):
    cfg = load_config(ROOT / "config" / "config.yaml")
    ctx = C.context(cfg)
    ctx.update(kw)
    return ctx


def test_table1_comparison_classes_agreement_and_known_differences():
    # original: LS IP 29.05*, LS Cost 14.07*, Adult IP 0.77 ± 1.34, GMSC Cost 62.64*, MNIST IP* -25.09
    t1 = _t1({"ls": {"ip": (20.0, 1.0, True), "cost": (-5.0, 1.0, True)},
              "adult": {"ip": (3.0, 0.5, True)},
              "gmsc": {"cost": (-2.0, 4.0, False)},
              "mnist": {"ip_star": (-10.0, 90.0, False)}})
    c1 = C.table1_comparison(t1, ORIGINAL, _ctx(synthetic_rng="numpy", synthetic_original=False))
    got = {(r["dataset"], r["metric"]): r for _, r in c1.iterrows()}
    assert len(c1) == 4 * 3                 # every metric of every dataset in the frame
    assert {k for k, r in got.items() if not math.isnan(r["ours"])} == {
        ("ls", "ip"), ("ls", "cost"), ("adult", "ip"), ("gmsc", "cost"), ("mnist", "ip_star")}
    assert (c1.loc[c1["ours"].isna(), "ours_class"] == "n.s.").all()   # a missing cell is n.s.
    r = got[("ls", "ip")]
    assert (r["ours_class"], r["original_class"], r["agree"]) == ("better", "better", True)
    assert r["original"] == 29.05 and r["original_pm"] == 0.67 and r["known"] == ""
    r = got[("ls", "cost")]
    assert (r["ours_class"], r["original_class"], r["agree"]) == ("worse", "better", False)
    assert "`data.synthetic.rng` = numpy" in r["known"]
    assert "not documented" in r["known"] and "τ = 0.5, 50 runs" in r["known"]   # inferred
    r = got[("adult", "ip")]
    assert (r["ours_class"], r["original_class"], r["agree"]) == ("better", "n.s.", False)
    assert r["known"] == "the original's value lies within one ± of zero, so its class is " \
        "sensitive to the random draws"                                          # |0.77| < 1.34
    r = got[("gmsc", "cost")]
    assert (r["ours_class"], r["original_class"], r["agree"]) == ("n.s.", "better", False)
    assert "ours value lies within one ±" in r["known"]
    assert "synthetic" not in r["known"] and "committed" not in r["known"]   # published settings
    r = got[("mnist", "ip_star")]
    assert (r["ours_class"], r["original_class"], r["agree"]) == ("n.s.", "n.s.", True)
    # with the Julia stream the synthetic explanation changes; other IP references are named
    c1 = C.table1_comparison(t1, ORIGINAL, _ctx(synthetic_rng="julia", synthetic_original=True,
                                                 ip_reference="fixed"))
    known = c1.set_index(["dataset", "metric"])["known"]
    assert "synthetic points are the original's" in known[("ls", "cost")]
    assert "`eval.ip.reference` = fixed" in known[("adult", "ip")]


def test_synthetic_stream_is_original_only_with_the_original_seeds_and_sizes():
    cfg = load_config(ROOT / "config" / "config.yaml")
    cfg["data"]["synthetic"]["rng"] = "julia"
    assert C.synthetic_stream_is_original(cfg)
    for section, key, value in (("synthetic", "rng", "numpy"), ("synthetic", "n_generate", 5000),
                                ("seed", "data", 1)):
        other = copy.deepcopy(cfg)
        (other["data"]["synthetic"] if section == "synthetic" else other["seed"])[key] = value
        assert not C.synthetic_stream_is_original(other)


def test_known_differences_name_changed_protected_settings():
    ctx = _ctx()
    ctx["protected"] = dict(ctx["protected"], ch={"tau": 0.95, "T": 50, "n_runs": 50,
                                                  "n_individuals": 100})
    cell = {"value": 10.0, "pm": 1.0}
    known = C.known_differences("ch", "cost", ctx, cell, cell)
    assert known and "τ = 0.95" in known[0] and "τ = 0.5" in known[0]
    assert C.known_differences("adult", "cost", _ctx(), cell, cell) == []


def test_table3_comparison_relative_difference_and_tolerance():
    t3 = pd.DataFrame([
        {"metric": "cost", "metric_label": "Cost", "dataset": "adult", "label": "Adult",
         "ct": 2.26 * 1.2, "bl": 2.2 * 0.7},                 # original CT 2.26, BL 2.20
        {"metric": "ip_star", "metric_label": "IP*", "dataset": "circ", "label": "Circ",
         "ct": 0.002, "bl": 0.004},                          # original prints 0.00 for both
    ])
    c3 = C.table3_comparison(t3, ORIGINAL, 0.25)
    assert list(c3["model"]) == ["CT", "BL", "CT", "BL"]
    assert c3["rel_diff"].iloc[0] == pytest.approx(0.2) and c3["within"].iloc[0]
    assert c3["rel_diff"].iloc[1] == pytest.approx(-0.3) and not c3["within"].iloc[1]
    assert c3["rel_diff"].iloc[2:].isna().all() and not c3["within"].iloc[2:].any()
    md = C.comparison_markdown(C.table1_comparison(_t1({"ls": {"ip": (20.0, 1.0, True)}}),
                                                   ORIGINAL, _ctx()), c3, 0.25)
    assert "{#tbl-comparison}" in md and "{#tbl-comparison3}" in md
    assert "1 of 4 means lie within 25%" in md and "+20%" in md and "-30%" in md


def test_comparison_values_and_notes():
    t1 = _t1({"ls": {"ip": (20.0, 1.0, True), "cost": (-5.0, 1.0, True)},
              "adult": {"ip": (0.5, 1.0, False)}})
    c1 = C.table1_comparison(t1, ORIGINAL, _ctx())
    c3 = C.table3_comparison(pd.DataFrame([{"metric": "ip", "metric_label": "IP",
                                            "dataset": "ls", "label": "LS", "ct": 2.41,
                                            "bl": 100.0}]), ORIGINAL, 0.25)
    v = values.comparison_values(c1, c3, 0.25)
    n_defined = int(c1["ours"].notna().sum())
    assert v["n_cells"] == len(c1) and v["n_agree"] == int(c1["agree"].sum())
    assert v["n_within"] == 1 and v["n_means"] == 2 and v["tol_pct"] == "25"
    assert n_defined == 3
    notes = C.notes_markdown(c1)
    assert "**LS, Cost**: CT sig. worse here (-5.00), CT sig. better in the original (14.07)" in notes
    assert "**LS, IP**" not in notes and "**Adult, IP**" not in notes      # agreeing cells
    agree_all = c1.assign(agree=True)
    assert "Every cell" in C.notes_markdown(agree_all)
