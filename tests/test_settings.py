"""Typed settings (ctpaper.settings): built from the config, strict about keys, BL's dependence
derived from the fields marked ct_only, defaults only in the schema."""

import copy
import dataclasses

import pytest

from ctpaper import config as C
from ctpaper import settings as S
from ctpaper.config_reads import reads_hash

BASE = C.load()


def test_train_settings_merge_note1_with_the_table2_row():
    s = S.TrainSettings.from_config(BASE, "moon")
    row = BASE["train"]["per_dataset"]["moon"]
    assert (s.tau, s.nce, s.lambda_reg, s.batch_size) == (row["tau"], row["nce"], row["lambda_reg"],
                                                         row["batch_size"])
    assert s.lambda_div == BASE["train"]["lambda_div"] and s.T == BASE["train"]["T"]
    assert (s.ce_lr, s.model_lr, s.n_epochs) == (BASE["ce"]["lr"], BASE["model"]["lr"],
                                                 BASE["model"]["n_epochs"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.tau = 0.1


def test_override_fields_are_the_schema_table2_keys():
    schema = C.load_schema()
    assert set(schema["definitions"]["per_dataset_train"]["properties"]) == {
        *S.override_fields(), "batch_size"}


def test_train_section_keys_are_fields():
    """Every train key of the schema that is a method setting is a TrainSettings field."""
    schema = C.load_schema()
    keys = set(schema["properties"]["train"]["properties"]) - {"seeds", "per_dataset", "max_skipped_share"}
    assert keys == {f.name for f in dataclasses.fields(S.TrainSettings)
                    if f.metadata["path"] == f"train.{f.name}"}


def test_unknown_or_missing_keys_fail_naming_the_key():
    s = S.TrainSettings.from_config(BASE, "ls")
    with pytest.raises(TypeError, match="'lr'"):
        s.replace(lr=0.1)                          # the CE step size is ce_lr
    with pytest.raises(TypeError, match="'lr'"):
        S.TrainSettings.from_dict({**s.to_dict(), "lr": 0.1})
    d = s.to_dict()
    del d["tau"]
    with pytest.raises(TypeError, match="'tau'"):
        S.TrainSettings.from_dict(d)
    assert s.replace(ce_lr=0.5).ce_lr == 0.5


def test_train_rejects_a_mistyped_key():
    from ctpaper.training import settings_dict

    d = {**S.TrainSettings.from_config(BASE, "ls").to_dict(), "lr": 0.1}
    with pytest.raises(TypeError, match="'lr'"):
        settings_dict(d, "full")
    with pytest.raises(TypeError, match="'lr'"):
        settings_dict(d, "vanilla")


def test_to_dict_from_dict_is_lossless():
    for cls, s in ((S.TrainSettings, S.TrainSettings.from_config(BASE, "adult")),
                   (S.BaselineSettings, S.BaselineSettings.from_config(BASE, "adult"))):
        d = s.to_dict()
        back = cls.from_dict(d)
        assert back == s and list(back.to_dict().items()) == list(d.items())
    e = S.EvalSettings.from_config(BASE, "ch", "protected")
    assert S.EvalSettings.from_dict(e.to_dict()) == e


def test_baseline_is_the_fields_not_marked_ct_only():
    ct_only = set(S.ct_only_fields())
    assert set(S.BaselineSettings.field_names()) == set(S.TrainSettings.field_names()) - ct_only
    s = S.TrainSettings.from_config(BASE, "gmsc")
    assert s.baseline() == S.BaselineSettings.from_config(BASE, "gmsc")


def _perturbed(config, path, dataset):
    c = copy.deepcopy(config)
    node = c
    parts = path.format(dataset=dataset).split(".")
    for p in parts[:-1]:
        node = node[p]
    v = node[parts[-1]]
    node[parts[-1]] = (not v if isinstance(v, bool) else v + 1 if isinstance(v, (int, float))
                       else v + "_x")
    return c


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(S.TrainSettings)])
def test_bl_rerun_trigger_follows_ct_only(field):
    """Changing a CT-only setting leaves BL's settings and rerun hash unchanged; any other changes
    both (and every setting changes CT's)."""
    from ctpaper.training import model_settings

    f = next(f for f in dataclasses.fields(S.TrainSettings) if f.name == field)
    d = "ls"
    paths = [f.metadata["path"]] + ([f"train.per_dataset.{{dataset}}.{field}"]
                                    if f.metadata["override"] and field in BASE["train"]["per_dataset"][d]
                                    else [])
    for path in paths:
        c = _perturbed(BASE, path, d)
        if path == f.metadata["path"] and f.metadata["override"] and field in BASE["train"]["per_dataset"][d]:
            continue                               # the Table-2 row hides the Note-1 value here
        for model, changes in (("bl", not f.metadata["ct_only"]), ("ct_free", True)):
            wc = {"dataset": d, "model": model}
            assert (reads_hash(c, "train_model", wc) != reads_hash(BASE, "train_model", wc)) == changes
            assert (model_settings(c, d, model) != model_settings(BASE, d, model)) == changes


def test_schema_defaults_are_applied_by_the_loader():
    c = copy.deepcopy(BASE)
    del c["train"]["burnin"], c["eval"]["ip"]["reference"], c["eval"]["redundancy_tol"]
    C.validate(c)
    assert (c["train"]["burnin"], c["eval"]["ip"]["reference"], c["eval"]["redundancy_tol"]) == (
        0.0, "per_ce", 1e-5)
    c = copy.deepcopy(BASE)
    del c["train"]["tau"]                       # no default: required
    with pytest.raises(C.ConfigError, match="tau"):
        C.validate(c)


def test_published_config_sets_every_defaulted_key():
    """config.yaml stays the published configuration: the loader adds nothing to it."""
    raw = C.read_yaml(C.DEFAULT_CONFIG)
    assert C.apply_defaults(copy.deepcopy(raw)) == raw


def test_search_settings_from_training_and_evaluation():
    t = S.TrainSettings.from_config(BASE, "ls")
    s = S.SearchSettings.for_training(t.to_dict())
    assert (s.generator, s.tau, s.T, s.lr, s.eps) == (t.generator, t.tau, t.T, t.ce_lr, t.adv_eps)
    e = S.EvalSettings.from_config(BASE, "ls", "free").search(5.0)
    assert (e.lambda_egy, e.convergence, e.tau) == (5.0, "threshold", BASE["eval"]["tau"])
    with pytest.raises(TypeError):
        S.SearchSettings(generator="ecco")      # no defaults in code


def test_chunk_member_settings_are_checked():
    from ctpaper.stack.chunk import member_spec
    from ctpaper.training import model_settings

    good = {"name": "ct_0000", "objective": "full", "family": "free", "seed": 1,
            "settings": model_settings(BASE, "ls", "ct_free")}
    assert member_spec(good).settings == good["settings"]
    bl = {**good, "objective": "vanilla", "settings": model_settings(BASE, "ls", "bl")}
    assert member_spec(bl).settings == bl["settings"]
    with pytest.raises(TypeError, match="'eta_ce'"):
        member_spec({**good, "settings": {**good["settings"], "eta_ce": 0.5}})
