"""Stacked evaluation: every model's CEs and metrics equal the protocol's for that model."""

import pandas as pd
import pytest
import torch

from ctpaper import config as C
from ctpaper.data.io import load_dataset
from ctpaper.evaluation.protocol import CES_COLUMNS, evaluate_counterfactuals
from ctpaper.evaluation.stacked import evaluate_stack
from ctpaper.training import model_settings, train

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def setup(prepared_data):
    ds = load_dataset(prepared_data("ls"))
    config = C.load()
    config["eval"].update(n_runs=3, lambda_egy_grid=[0.5, 5.0])
    config["eval"]["n_individuals"]["synthetic"] = 40
    config["eval"]["ip"]["n_ref"] = 100
    config["eval"]["families"] = {}          # both families with the eval section's sizes
    s = {**model_settings(config, "ls"), "n_epochs": 2}
    models = {"CT": train(ds, s, "full", "free", 2025)[0],
              "BL": train(ds, s, "vanilla", "free", 2025)[0],
              "CT_tau0.9": train(ds, {**s, "tau": 0.9}, "full", "free", 7)[0]}
    return ds, config, models


@pytest.mark.parametrize("family", ["free", "protected"])
def test_stacked_evaluation_equals_the_protocol_per_model(setup, family):
    ds, config, models = setup
    stacked = evaluate_stack(ds, models, config, "ls", family, 2025)
    assert list(stacked.columns) == CES_COLUMNS
    alone, _ = evaluate_counterfactuals(ds, {m: models[m] for m in ("CT", "BL")}, config, "ls",
                                        family, 2025)
    cols = [c for c in CES_COLUMNS if c != "ip_star"]
    pair = stacked[stacked["model"].isin(["CT", "BL"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(pair[cols], alone[cols])
    assert stacked["ip_star"].isna().all()
    third = stacked[stacked["model"] == "CT_tau0.9"]
    assert len(third) == 2 * 3 * 40 and third["valid"].any()


def test_stacked_evaluation_rejects_one_hot_blocks(setup):
    ds, config, models = setup
    ds.meta = {**ds.meta, "categorical_blocks": [[0, 1]]}
    try:
        with pytest.raises(ValueError, match="one-hot"):
            evaluate_stack(ds, models, config, "ls", "free", 2025)
    finally:
        ds.meta = {**ds.meta, "categorical_blocks": []}
