"""Tables (method 7) on small synthetic score tables with hand-computed answers."""

import json
import logging
import math

import numpy as np
import pandas as pd
import pytest

from ctpaper import config as cfgmod
from ctpaper import tables

torch = pytest.importorskip("torch")
torch.set_num_threads(1)


def _rows(dataset, family, seed, run, lam, model, values, valid=True):
    return [{"dataset": dataset, "family": family, "seed": seed, "model": model, "lambda_egy": lam,
             "run": run, "valid": valid, "ip": v, "ip_star": v / 10, "cost": v} for v in values]


def known_frame(dataset="ls", family="free", seed=2025, scale=1.0):
    """Per-run means m(r, CT) = [1, 3, 1, 5], m(r, BL) = [2, 4, 0, 5] (x scale).

    Run 0, CT: lambda 0.5 has mean 0.5 over 3 CEs and lambda 5 mean 1.5 over 1 CE, so the lambda
    marginalisation (plain mean of per-lambda means) gives 1.0 while pooling would give 0.75.
    Run 1, CT: lambda 5 has no valid CE (NaN configuration skipped) -> m = 3.
    Invalid CEs carry huge values that must be ignored. Run 2 has m(r, BL) == 0 and is dropped.
    """
    s = scale
    rows = []
    rows += _rows(dataset, family, seed, 0, 0.5, "CT", [0.5 * s] * 3)
    rows += _rows(dataset, family, seed, 0, 5.0, "CT", [1.5 * s])
    rows += _rows(dataset, family, seed, 0, 5.0, "CT", [1e6], valid=False)
    rows += _rows(dataset, family, seed, 0, 0.5, "BL", [1 * s, 3 * s])
    rows += _rows(dataset, family, seed, 0, 5.0, "BL", [2 * s])
    rows += _rows(dataset, family, seed, 1, 0.5, "CT", [2 * s, 4 * s])
    rows += _rows(dataset, family, seed, 1, 5.0, "CT", [1e6, 1e6], valid=False)
    rows += _rows(dataset, family, seed, 1, 0.5, "BL", [4 * s])
    rows += _rows(dataset, family, seed, 1, 5.0, "BL", [4 * s])
    rows += _rows(dataset, family, seed, 2, 0.5, "CT", [1 * s])
    rows += _rows(dataset, family, seed, 2, 0.5, "BL", [0.0])
    rows += _rows(dataset, family, seed, 3, 0.5, "CT", [5 * s])
    rows += _rows(dataset, family, seed, 3, 5.0, "BL", [5 * s])
    return pd.DataFrame(rows)


def test_per_run_means_marginalise_lambda_without_pooling():
    m = tables.per_run_means(known_frame(), "ip")
    assert m["CT"].tolist() == pytest.approx([1.0, 3.0, 1.0, 5.0])
    assert m["BL"].tolist() == pytest.approx([2.0, 4.0, 0.0, 5.0])


@pytest.mark.parametrize("rule, pm", [("sd", 25.0), ("se", 25.0 / math.sqrt(3)), ("2sd", 50.0)])
def test_compare_known_answer(rule, pm, caplog):
    m = tables.per_run_means(known_frame(), "ip")
    with caplog.at_level(logging.WARNING):
        res = tables.compare(m, rule, 0.99, what="ls/free/ip")
    assert "m(r, BL) == 0" in caplog.text
    # ratios of the kept runs 0, 1, 3: 0.5, 0.75, 1.0 -> value 25 %, sd 0.25
    assert res["n_runs"] == 3 and res["n_dropped"] == 1
    assert res["value"] == pytest.approx(25.0)
    assert res["pm"] == pytest.approx(pm)
    # deltas -1, -1, 0: linear quantiles at 0.005 / 0.995 -> -1 and -0.01
    assert res["ci_lb"] == pytest.approx(-1.0)
    assert res["ci_ub"] == pytest.approx(-0.01)
    assert res["significant"] is True
    assert res["ct_mean"] == pytest.approx(3.0) and res["bl_mean"] == pytest.approx(11 / 3)


def test_asterisk_only_when_zero_outside_interval():
    m = pd.DataFrame({"CT": [1.0, 3.0, 2.0], "BL": [2.0, 2.0, 2.0]})
    res = tables.compare(m, "sd", 0.99)
    assert res["ci_lb"] < 0 < res["ci_ub"] and res["significant"] is False
    m = pd.DataFrame({"CT": [3.0, 4.0, 5.0], "BL": [2.0, 2.0, 2.0]})
    res = tables.compare(m, "sd", 0.99)
    assert res["ci_lb"] > 0 and res["significant"] is True
    assert res["value"] == pytest.approx(-100.0)  # CT worse: negative reduction


def test_ci_quantiles_match_numpy_linear():
    x = np.array([3.0, -1.0, 2.0, 7.0, 0.5])
    lo, hi = tables.ci_quantiles(x, 0.9)
    assert lo == pytest.approx(np.quantile(x, 0.05)) and hi == pytest.approx(np.quantile(x, 0.95))


def test_seeds_are_separate_runs():
    both = pd.concat([known_frame(seed=1), known_frame(seed=2, scale=2.0)])
    m = tables.per_run_means(both, "ip")
    assert len(m) == 8
    res = tables.compare(m, "sd", 0.99)
    assert res["n_runs"] == 6 and res["n_dropped"] == 2
    assert res["value"] == pytest.approx(25.0)  # ratios are scale-free


def _comp():
    ces = {("ls", "free"): known_frame("ls", "free"),
           ("ls", "protected"): known_frame("ls", "protected", scale=3.0),
           ("moon", "free"): known_frame("moon", "free").assign(
               ip=lambda d: np.where(d["model"] == "CT", d["ip"] * 0.5, d["ip"])),
           ("moon", "protected"): known_frame("moon", "protected")}
    return tables.comparisons(ces, "sd", 0.99)


def test_table1_rows_and_avg():
    t1 = tables.table1(_comp())
    assert t1["dataset"].tolist() == ["ls", "moon", "avg"]  # TABLE_ORDER, Avg last
    ls, moon, avg = (t1.iloc[i] for i in range(3))
    assert ls["ip_value"] == pytest.approx(25.0)
    # moon: CT IP halved -> ratios 0.25, 0.375, 0.5 -> 62.5 %
    assert moon["ip_value"] == pytest.approx(62.5)
    assert avg["ip_value"] == pytest.approx((25.0 + 62.5) / 2)
    assert math.isnan(avg["ip_pm"]) and not avg["ip_significant"]
    assert ls["cost_value"] == pytest.approx(25.0) and ls["cost_n_dropped"] == 1
    # IP* = IP / 10 within each group -> same ratios
    assert ls["ip_star_value"] == pytest.approx(25.0)
    md = tables.table1_markdown(t1, "sd", 0.99)
    assert "| LS " in md and "| Avg " in md
    assert r"25.00 ± 25.00\*" in md
    assert "43.75 |" in md  # Avg of IP, two decimals, no pm
    assert md.rstrip().endswith("{#tbl-table1}")
    assert "one standard deviation" in md and "3 runs" in md


def test_metric_zero_at_double_precision_for_bl_gives_no_reduction(caplog):
    """IP* under a length-scale far below the data's distances (method 10.1 item 3 on MNIST): BL's
    typical MMD^2 is 0 (underflow), a few groups are not, and CT / BL is a ratio of residues. The
    cell is undefined and left out of the average, not a -1e9 % reduction."""
    rng = np.random.default_rng(0)
    frame = known_frame("mnist", "free")
    tiny = np.where(rng.random(len(frame)) < 0.9, 0.0, 1e-14)
    tiny[(frame["model"] == "CT").to_numpy() & (frame["run"] == 0).to_numpy()] = 0.05
    degenerate = frame.assign(ip_star=tiny)
    assert tables.degenerate(degenerate, "ip_star") and not tables.degenerate(frame, "ip_star")
    ces = {("ls", "free"): known_frame("ls", "free"), ("mnist", "free"): degenerate}
    with caplog.at_level(logging.WARNING):
        t1 = tables.table1(tables.comparisons(ces, "sd", 0.99))
    assert "zero at double precision" in caplog.text
    ls, mnist, avg = (t1.iloc[i] for i in range(3))
    assert mnist["ip_star_degenerate"] and math.isnan(mnist["ip_star_value"])
    assert not mnist["ip_star_significant"] and not ls["ip_star_degenerate"]
    assert mnist["ip_value"] == pytest.approx(25.0)          # the other columns are unaffected
    assert avg["ip_star_value"] == pytest.approx(ls["ip_star_value"])
    assert "–" in tables.table1_markdown(t1, "sd", 0.99)


def test_table3_alphabetical_and_values():
    t3 = tables.table3(_comp())
    assert t3["metric"].tolist() == ["cost", "cost", "ip_star", "ip_star", "ip", "ip"]
    assert t3["label"].tolist() == ["LS", "Moon"] * 3
    row = t3[(t3["metric"] == "cost") & (t3["dataset"] == "ls")].iloc[0]
    assert row["ct"] == pytest.approx(9.0) and row["bl"] == pytest.approx(11.0)
    assert row["ci_lb"] == pytest.approx(-3.0) and row["ci_ub"] == pytest.approx(-0.03)
    md = tables.table3_markdown(t3, 0.99)
    assert "| Cost " in md and "9.00" in md and "-0.03" in md
    # IP* of moon is tiny (values / 10 and CT halved) but still printed readably
    assert "{#tbl-table3}" in md


def test_fmt_two_decimals_and_tiny_values():
    assert tables.fmt(1.23456) == "1.23"
    assert tables.fmt(0.001234) == "1.23e-03"
    assert tables.fmt(0.0) == "0.00"
    assert tables.fmt(float("nan")) == "–"


def test_table2_from_config_and_meta():
    config = cfgmod.load()
    metas = {d: {"dataset": d, "n_pool": 100 + i, "n_train": 90 + i, "n_val": 10, "n_test": 7 + i}
             for i, d in enumerate(["mnist", "ls", "credit"])}
    t2 = tables.table2(config, metas)
    assert t2["dataset"].tolist() == ["ls", "credit", "mnist"]
    ls = t2.iloc[0]
    assert ls["n_pool"] == 101 and ls["n_test"] == 8 and ls["batch_size"] == 30
    assert ls["tau"] == 0.5 and ls["nce"] == 1000 and ls["lambda_reg"] == 0.01
    assert ls["domain"] == "inferred" and t2.iloc[2]["domain"] == "(-1.0, 1.0)"
    credit = t2.iloc[1]
    assert credit["batch_size"] == 1000 and credit["lambda_reg"] == 0.25 and credit["nce"] == 5000
    assert ls["shared.ce_lr"] == config["ce"]["lr"]
    md = tables.table2_markdown(t2, config)
    assert "{#tbl-table2}" in md and md.count("{#tbl-") == 1   # shared settings: a list, no table
    assert "| Cred " in md and "actually used" in md
    assert "SGD, 0.1" in md  # CE step size read from the config
    changed = cfgmod.deep_merge(config, {"ce": {"lr": 0.25}, "data": {"domain_n_sigma": 3}})
    md2 = tables.table2_markdown(tables.table2(changed, metas), changed)
    assert "SGD, 0.25" in md2 and "mean ± 3 SD" in md2


def test_performance_table():
    perf = pd.DataFrame([
        {"dataset": "ls", "seed": 1, "model": "BL", "accuracy": 0.9, "f1": 0.8},
        {"dataset": "ls", "seed": 1, "model": "CT_free", "accuracy": 0.85, "f1": 0.84},
        {"dataset": "ls", "seed": 1, "model": "CT_protected", "accuracy": 0.8, "f1": 0.79},
        {"dataset": "adult", "seed": 1, "model": "BL", "accuracy": 0.7, "f1": 0.6},
        {"dataset": "adult", "seed": 1, "model": "CT_free", "accuracy": 0.75, "f1": 0.65},
        {"dataset": "adult", "seed": 1, "model": "CT_protected", "accuracy": 0.72, "f1": 0.61},
    ]).assign(n_pred_classes=2)
    pt = tables.performance(perf)
    assert pt["CT_free_min_pred_classes"].tolist() == [2, 2]
    assert pt["dataset"].tolist() == ["ls", "adult"]
    assert pt.iloc[0]["CT_free_accuracy"] == pytest.approx(0.85)
    md = tables.performance_markdown(pt)
    cells = [c.strip() for c in md.splitlines()[2].strip("|").split("|")]
    assert cells == ["LS", "0.90", "0.85", "0.80", "0.80", "0.84", "0.79"]
    assert "{#tbl-performance}" in md and "±" not in md.split("\n:")[0]
    perf2 = pd.concat([perf, perf.assign(seed=2, accuracy=perf["accuracy"] - 0.1)])
    pt2 = tables.performance(perf2)
    assert pt2.iloc[0]["BL_accuracy"] == pytest.approx(0.85)
    assert pt2.iloc[0]["BL_accuracy_sd"] == pytest.approx(np.std([0.9, 0.8], ddof=1))
    assert "±" in tables.performance_markdown(pt2)


def test_make_table_writes_csv_and_md(tmp_path):
    config = cfgmod.load()
    paths = []
    for (d, fam), frame in {("ls", "free"): known_frame("ls", "free"),
                            ("ls", "protected"): known_frame("ls", "protected")}.items():
        p = tmp_path / "eval" / d / "seed2025" / fam / "ces.parquet"
        p.parent.mkdir(parents=True)
        frame.to_parquet(p)
        paths.append(str(p))
    csv, md = tmp_path / "t1.csv", tmp_path / "t1.md"
    tables.make_table("table1", paths, str(csv), str(md), config)
    back = pd.read_csv(csv)
    assert back.loc[0, "ip_value"] == pytest.approx(25.0, abs=1e-12)
    assert back.loc[0, "ip_pm"] == pytest.approx(25.0)
    assert md.read_text().count("\n|") >= 3
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"dataset": "ls", "n_pool": 3600, "n_train": 3000, "n_val": 600,
                                "n_test": 900}))
    tables.make_table("table2", [str(meta)], str(tmp_path / "t2.csv"), str(tmp_path / "t2.md"), config)
    assert "| LS   |      3600 |      900 |" in (tmp_path / "t2.md").read_text()
