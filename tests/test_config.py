"""Config loading, overlays and schema validation name the offending key."""

import copy

import pytest

from ctpaper import config as C
from ctpaper import names
from ctpaper.settings import TrainSettings


@pytest.fixture(scope="module")
def cfg():
    return C.load(C.DEFAULT_CONFIG)


def test_paper_config_is_valid_and_lists_nine_datasets(cfg):
    assert cfg["datasets"] == list(names.DATASET_NAMES)
    assert set(cfg["train"]["per_dataset"]) == set(names.DATASET_NAMES)


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
    s = TrainSettings.from_config(cfg, "moon").to_dict()
    assert (s["tau"], s["lambda_reg"], s["batch_size"], s["nce"]) == (0.9, 0.25, 30, 1000)
    s = TrainSettings.from_config(cfg, "mnist").to_dict()
    assert (s["tau"], s["lambda_reg"], s["nce"], s["lambda_div"]) == (0.5, 0.01, 5000, 0.5)
    assert s["ce_lr"] == 0.1 and s["n_epochs"] == 100


def test_per_family_evaluation_defaults(cfg):
    """method.md 6.2: the protected (Cost) evaluations of the original ran with tau 0.5 (Adult
    0.95), 50 runs and 100 individuals per lambda (MNIST 50); the free ones with the eval keys."""
    for d in ("ls", "circ", "moon", "ol", "ch", "credit", "gmsc"):
        assert C.eval_settings(cfg, d, "protected") == {"tau": 0.5, "T": 50, "n_runs": 50,
                                                        "n_individuals": 100}
    assert C.eval_settings(cfg, "adult", "protected")["tau"] == 0.95
    assert C.eval_settings(cfg, "mnist", "protected") == {"tau": 0.5, "T": 50, "n_runs": 50,
                                                          "n_individuals": 50}
    free = {d: C.eval_settings(cfg, d, "free") for d in cfg["datasets"]}
    assert all((s["tau"], s["T"], s["n_runs"]) == (0.95, 50, 100) for s in free.values())
    assert [free[d]["n_individuals"] for d in ("ls", "adult", "mnist")] == [250, 100, 25]
    assert cfg["eval"]["ip"]["reference"] == "per_ce"


def test_eval_settings_precedence(cfg):
    c = copy.deepcopy(cfg)
    c["eval"]["families"]["free"] = {"T": 20, "n_individuals": {"tabular": 7},
                                     "per_dataset": {"ch": {"n_individuals": 3, "tau": 0.8}}}
    C.validate(c)
    assert C.eval_settings(c, "adult", "free") == {"tau": 0.95, "T": 20, "n_runs": 100,
                                                   "n_individuals": 7}
    assert C.eval_settings(c, "ch", "free") == {"tau": 0.8, "T": 20, "n_runs": 100,
                                                "n_individuals": 3}
    assert C.eval_settings(c, "ls", "free")["n_individuals"] == 250   # other kinds: eval section
    del c["eval"]["families"]
    C.validate(c)
    assert C.eval_settings(c, "adult", "protected")["tau"] == 0.95    # no overrides at all


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
    # the schema refuses what cannot work (issue 9, case 5)
    (lambda c: c["eval"].__setitem__("n_runs", 1_000_000_000), "eval.n_runs"),
    (lambda c: c["eval"].__setitem__("tau", 1.0), "eval.tau"),
    (lambda c: c["train"]["per_dataset"]["ls"].__setitem__("tau", 0.0), "train.per_dataset.ls.tau"),
    (lambda c: c["eval"].__setitem__("lambda_egy_grid", [0.5, 0.5]), "eval.lambda_egy_grid"),
    (lambda c: c["model"].__setitem__("n_epochs", 10_000_000), "model.n_epochs"),
    (lambda c: c["model"].__setitem__("lr", 1e6), "model.lr"),
    (lambda c: c["train"].__setitem__("nce", 10**9), "train.nce"),
    (lambda c: c["eval"]["n_individuals"].__setitem__("mnist", 10**8), "eval.n_individuals.mnist"),
    (lambda c: c["data"]["synthetic"].update(n_pool=90_000, n_test=20_000), "data.synthetic"),
    (lambda c: c["eval"]["families"]["protected"].__setitem__("taus", 0.5),
     "eval.families.protected.taus"),
    (lambda c: c["eval"]["families"].__setitem__("prot", {}), "eval.families.prot"),
    (lambda c: c["eval"]["families"]["protected"]["per_dataset"]["adult"].__setitem__("n_run", 5),
     "eval.families.protected.per_dataset.adult.n_run"),
    (lambda c: c["eval"]["families"]["protected"]["per_dataset"].__setitem__("iris", {}),
     "eval.families.protected.per_dataset"),
    (lambda c: c["eval"]["families"]["protected"].__setitem__("tau", 1.5),
     "eval.families.protected.tau"),
    (lambda c: c["eval"]["families"]["free"].__setitem__("n_runs", 0), "eval.families.free.n_runs"),
    (lambda c: c["eval"]["ip"].__setitem__("reference", "once"), "eval.ip.reference"),
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


def test_yaml_error_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("eval:\n  tau: 0.9\n  T: [1\n")
    with pytest.raises(C.ConfigError, match=rf"config file {bad}, line \d+, column \d+: invalid YAML"):
        C.load(C.DEFAULT_CONFIG, bad)


def test_missing_config_file_says_where_it_was_looked_for(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(C.ConfigError, match=rf"config file my.yaml not found \(looked for {tmp_path}/my.yaml\)"):
        C.load(C.DEFAULT_CONFIG, "my.yaml")


def test_config_check_command(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("eval: {tau: 1.0}\n")
    assert C.main([str(C.DEFAULT_CONFIG), str(bad)]) == 1
    assert "config key eval.tau" in capsys.readouterr().err
    assert C.main([str(C.DEFAULT_CONFIG)]) == 0


def test_schema_ships_as_package_data_of_a_wheel(tmp_path):
    """A non-editable install (a wheel, no checkout on sys.path) holds the schema and validates the
    paper's config with it: the library never reads the checkout's workflow/ directory."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    src = tmp_path / "src_copy"  # build from a copy: setuptools writes build/ into the tree
    shutil.copytree(repo / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(repo / name, src / name)
    run = dict(capture_output=True, text=True, timeout=300)
    wheel = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                            str(src), "-w", str(tmp_path / "dist")], **run)
    assert wheel.returncode == 0, wheel.stderr
    site = tmp_path / "site"
    (whl,) = (tmp_path / "dist").glob("ctpaper-*.whl")
    inst = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site),
                           str(whl)], **run)
    assert inst.returncode == 0, inst.stderr
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from ctpaper import config as C; "
            "assert C.SCHEMA_PATH.is_relative_to(sys.argv[1]), C.SCHEMA_PATH; "
            "C.validate(C.read_yaml(sys.argv[2])); print(C.SCHEMA_PATH)")
    check = subprocess.run([sys.executable, "-I", "-c", code, str(site), str(repo / "config" / "config.yaml")],
                           cwd=tmp_path, **run)
    assert check.returncode == 0, check.stderr
    assert check.stdout.strip() == str(site / "ctpaper" / "config.schema.yaml")
