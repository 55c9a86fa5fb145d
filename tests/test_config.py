"""Config loading, overlays and schema validation name the offending key."""

import copy

import pytest

from ctpaper import config as C


@pytest.fixture(scope="module")
def cfg():
    return C.load(C.DEFAULT_CONFIG)


def test_paper_config_is_valid_and_lists_nine_datasets(cfg):
    assert cfg["datasets"] == list(C.TABLE_ORDER)
    assert set(cfg["train"]["per_dataset"]) == set(C.ALL_DATASETS)


def test_published_settings_are_the_defaults(cfg):
    # method.md section 10.1: the defaults are the settings that produced the published results.
    assert cfg["ce"]["lr"] == 0.1
    assert cfg["data"]["domain_n_sigma"] == 2
    assert cfg["eval"]["mmd"]["length_scale"] == 5.0
    assert cfg["eval"]["lambda_cst"] == 0.0
    assert cfg["train"]["adv_label"] == "predicted"
    assert cfg["train"]["ce_frequency"] == "epoch"
    assert cfg["tables"]["pm_rule"] == "sd"


def test_table2_overrides_note1(cfg):
    s = C.train_settings(cfg, "moon")
    assert (s["tau"], s["lambda_reg"], s["batch_size"], s["nce"]) == (0.9, 0.25, 30, 1000)
    s = C.train_settings(cfg, "mnist")
    assert (s["tau"], s["lambda_reg"], s["nce"], s["lambda_div"]) == (0.5, 0.01, 5000, 0.5)
    assert s["ce_lr"] == 0.1 and s["n_epochs"] == 100


def test_overlay_merges_deeply(cfg):
    smoke = C.load(C.DEFAULT_CONFIG, C.ROOT / "config" / "smoke.yaml")
    assert smoke["model"]["n_epochs"] == 3
    assert smoke["model"]["hidden"] == cfg["model"]["hidden"]  # untouched sibling keys survive
    assert smoke["eval"]["mmd"] == cfg["eval"]["mmd"]


@pytest.mark.parametrize("mutate, key", [
    (lambda c: c["train"].__setitem__("tua", 0.5), "train.tua"),
    (lambda c: c["eval"].__setitem__("n_runs", "many"), "eval.n_runs"),
    (lambda c: c.__setitem__("datasets", ["ls", "iris"]), "datasets.1"),
    (lambda c: c["train"]["per_dataset"]["ls"].__setitem__("batch", 3), "train.per_dataset.ls.batch"),
    (lambda c: c["tables"].__setitem__("pm_rule", "3sd"), "tables.pm_rule"),
])
def test_bad_config_names_the_key(cfg, mutate, key):
    bad = copy.deepcopy(cfg)
    mutate(bad)
    with pytest.raises(C.ConfigError, match=key.replace(".", r"\.")):
        C.validate(bad)


def test_config_hash_is_stable_and_sensitive(cfg):
    other = copy.deepcopy(cfg)
    assert C.config_hash(cfg) == C.config_hash(other)
    other["seed"]["global"] += 1
    assert C.config_hash(cfg) != C.config_hash(other)


def test_both_families_are_required(cfg):
    bad = copy.deepcopy(cfg)
    bad["families"] = ["free"]
    with pytest.raises(C.ConfigError, match=r"families: must include 'protected'"):
        C.validate(bad)
