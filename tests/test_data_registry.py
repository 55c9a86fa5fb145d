"""The dataset registry: raw files and checksums, protected features, unknown names."""

import pytest
import yaml

from ctpaper import config as cfg
from ctpaper import names
from ctpaper.config import ConfigError
from ctpaper.data import registry
from ctpaper.data.raw import sha256_file

RAW_DIRS = {"adult": "adult", "ch": "california_housing", "credit": "credit_default",
            "gmsc": "give_me_some_credit", "mnist": "mnist"}


def test_every_configurable_dataset_has_a_spec():
    assert set(registry.SPECS) == set(names.DATASET_NAMES)
    for name in names.datasets_of_kind("synthetic"):
        spec = registry.get(name)
        assert spec.kind == "synthetic" and spec.raw_files == () and spec.raw_dir is None
    for name, rawdir in RAW_DIRS.items():
        spec = registry.get(name)
        assert spec.raw_dir == rawdir
        assert all(f.dataset_dir == rawdir for f in spec.raw_files)


def test_raw_file_names():
    names = {d: sorted(f.name for f in registry.get(d).raw_files) for d in RAW_DIRS}
    assert names == {
        "adult": ["adult.data"], "ch": ["cal_housing.data"], "credit": ["UCI_Credit_Card.csv"],
        "gmsc": ["cs-training.csv.gz"],
        "mnist": sorted(["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]),
    }


def test_registry_checksums_match_the_mirror(raw_mirror):
    for dataset in RAW_DIRS:
        for raw in registry.get(dataset).raw_files:
            assert sha256_file(raw_mirror / raw.relpath) == raw.sha256, raw.relpath


def test_every_raw_file_says_how_to_obtain_it():
    for dataset in RAW_DIRS:
        for raw in registry.get(dataset).raw_files:
            assert raw.obtain
            assert all(u.startswith(("https://", "http://")) for u in raw.urls)
    gmsc = registry.get("gmsc").raw_files[0]
    assert gmsc.urls == ()  # Kaggle login required
    assert "kaggle competitions download -c GiveMeSomeCredit" in gmsc.obtain
    assert "gzip -n -9" in gmsc.obtain
    credit = registry.get("credit").raw_files[0]
    assert credit.urls == () and "kaggle datasets download" in credit.obtain
    assert registry.get("ch").raw_files[0].member == "CaliforniaHousing/cal_housing.data"


def test_protected_indices_match_method_2_7():
    expected = {"ls": [0], "ol": [0], "circ": [0], "moon": [0], "adult": [0], "ch": [1],
                "credit": [14], "gmsc": [1],
                "mnist": list(range(0, 140)) + list(range(644, 784))}
    assert {d: list(registry.get(d).protected) for d in expected} == expected
    assert len(registry.get("mnist").protected) == 280


def test_unknown_dataset_name_raises_config_error():
    with pytest.raises(ConfigError, match="datasets.*'german'"):
        registry.get("german")


def test_unknown_dataset_in_config_is_a_config_error_naming_datasets(tmp_path):
    overlay = tmp_path / "bad.yaml"
    overlay.write_text(yaml.safe_dump({"datasets": ["ls", "mnist_fashion"]}))
    with pytest.raises(ConfigError, match=r"config key datasets"):
        cfg.load(cfg.DEFAULT_CONFIG, overlay)
