"""The one vocabulary (ctpaper.names): light to import, and every other list of names agrees with it."""

import subprocess
import sys

import yaml

from ctpaper import names
from ctpaper.config import SCHEMA_PATH, dataset_kind


def test_names_imports_no_heavy_module():
    code = ("import sys, ctpaper.names; "
            "print(','.join(m for m in ('torch', 'numpy', 'pandas', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_schema_dataset_enum_is_the_names_table():
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    assert tuple(schema["definitions"]["dataset"]["enum"]) == names.DATASET_NAMES
    fams = schema["properties"]["families"]["items"]["enum"]
    assert tuple(fams) == names.FAMILY_NAMES
    ni = schema["properties"]["eval"]["properties"]["n_individuals"]
    assert tuple(ni["required"]) == tuple(names.KINDS)


def test_dataset_kinds_and_labels():
    assert names.datasets_of_kind("synthetic") == ("ls", "circ", "moon", "ol")
    assert names.datasets_of_kind("tabular") == ("adult", "ch", "credit", "gmsc")
    assert names.datasets_of_kind("image") == ("mnist",)
    assert dataset_kind("mnist") == "image"
    assert names.LABELS["credit"] == "Cred" and names.LABELS["mnist"] == "MNIST"


def test_roles():
    assert names.ROLE_KEYS == ("bl", "ct_free", "ct_protected")
    assert [names.ct_role(f).key for f in names.FAMILY_NAMES] == ["ct_free", "ct_protected"]
    assert {r.key: (r.family, r.objective) for r in names.ROLES.values()} == {
        "bl": ("free", "vanilla"), "ct_free": ("free", "full"), "ct_protected": ("protected", "full")}
    assert [names.role_of_tag(r.tag).key for r in names.ROLES.values()] == list(names.ROLE_KEYS)
    assert len({r.colour for r in names.ROLES.values()}) == 3


def test_registry_and_model_maps_use_the_names():
    from ctpaper.data import registry
    from ctpaper.evaluation.attributions import IG_MODELS
    from ctpaper.evaluation.performance import PERFORMANCE_MODELS
    from ctpaper.evaluation.robustness import ROBUSTNESS_MODELS

    assert {n: s.kind for n, s in registry.SPECS.items()} == {
        n: d.kind for n, d in names.DATASETS.items()}
    assert PERFORMANCE_MODELS == {"BL": "bl", "CT_free": "ct_free", "CT_protected": "ct_protected"}
    assert ROBUSTNESS_MODELS == {"BL": "bl", "CT": "ct_free"}
    assert IG_MODELS == {"BL": "bl", "CT_protected": "ct_protected"}
