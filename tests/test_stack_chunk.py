"""Grid chunks: many models in one process, one model file and log per member."""

import json
from pathlib import Path
import subprocess
import sys

import pandas as pd
import pytest
import torch

from ctpaper import config as C
from ctpaper.data.io import load_dataset
from ctpaper.models import load_model
from ctpaper.stack.chunk import member_spec, run_chunk, stack_groups
from ctpaper.training import LOG_COLUMNS, model_settings, train

from conftest import REPO


def _members(n_epochs=2):
    base = {**model_settings(C.load(), "ls"), "n_epochs": n_epochs}
    return [
        {"name": "ct_tau0.9", "objective": "full", "family": "free", "seed": 2025,
         "settings": {**base, "tau": 0.9}},
        {"name": "ct_generic_T5", "objective": "full", "family": "free", "seed": 2025,
         "settings": {**base, "generator": "generic", "T": 5, "nce": 100}},
        {"name": "bl", "objective": "vanilla", "family": "free", "seed": 2025, "settings": base},
    ]


def _paths(root, members):
    return ([root / m["name"] / "model.pt" for m in members],
            [root / m["name"] / "log.parquet" for m in members])


@pytest.mark.parametrize("mode", ["auto", "sequential"])
def test_chunk_writes_one_model_and_log_per_member(prepared_data, tmp_path, mode):
    data_dir = prepared_data("ls")
    members = _members()
    models, logs = _paths(tmp_path, members)
    run_chunk(data_dir, "ls", members, models, logs, mode=mode)
    ds = load_dataset(data_dir)
    for m, model_path, log_path in zip(members, models, logs):
        model, spec = load_model(model_path)
        assert spec["model"] == m["name"] and spec["settings"] == m["settings"]
        assert spec["objective"] == m["objective"] and spec["seed"] == m["seed"]
        frame = pd.read_parquet(log_path)
        assert list(frame.columns) == LOG_COLUMNS and len(frame) == 2
        alone, _ = train(ds, m["settings"], m["objective"], m["family"], m["seed"])
        for a, b in zip(model.state_dict().values(), alone.state_dict().values()):
            if mode == "sequential":
                assert torch.equal(a, b)
            else:
                assert float((a - b).abs().max()) <= 1e-5 * float(b.abs().max())


def test_chunk_command_line(prepared_data, tmp_path):
    members = _members(n_epochs=1)[1:]
    chunk = tmp_path / "chunk.json"
    chunk.write_text(json.dumps(members))
    out = subprocess.run([sys.executable, "-m", "ctpaper.stack.chunk", str(prepared_data("ls")),
                          str(chunk), str(tmp_path / "out")], capture_output=True, text=True,
                         cwd=REPO, timeout=600)
    assert out.returncode == 0, out.stderr
    for m in members:
        assert load_model(tmp_path / "out" / m["name"] / "model.pt")[1]["model"] == m["name"]


def test_chunk_groups_members_that_share_a_program_and_checks_specs():
    members = _members()
    members[2]["settings"] = {**members[2]["settings"], "batch_size": 60}
    assert stack_groups([member_spec(m) for m in members]) == [[0, 1], [2]]
    with pytest.raises(ValueError, match="seed"):
        member_spec({"name": "x", "objective": "full", "family": "free", "settings": {}})
    with pytest.raises(ValueError, match="2 model"):
        run_chunk("unused", "ls", members, ["a", "b"], ["a", "b", "c"])


def test_train_chunk_script_runs_as_a_snakemake_rule(prepared_data, tmp_path):
    """The rule shape the appendix grids use: one job per chunk, every member file an output."""
    data_dir = prepared_data("ls")
    members = _members(n_epochs=1)[1:]
    names = [m["name"] for m in members]
    (tmp_path / "Snakefile").write_text(f'''
MEMBERS = {members!r}
rule train_chunk:
    input:
        meta="{data_dir}/meta.json",
    output:
        models=[f"chunks/{{{{dataset}}}}/{{name}}/model.pt" for name in {names!r}],
        logs=[f"chunks/{{{{dataset}}}}/{{name}}/log.parquet" for name in {names!r}],
    params:
        members=MEMBERS,
    log:
        "logs/train_chunk/{{dataset}}.log",
    threads: 1
    script:
        "{REPO}/workflow/scripts/train_chunk.py"
''')
    snakemake = str(Path(sys.executable).parent / "snakemake")
    targets = [f"chunks/ls/{n}/model.pt" for n in names]
    out = subprocess.run([snakemake, "--cores", "1", *targets], cwd=tmp_path, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    for n in names:
        assert load_model(tmp_path / "chunks" / "ls" / n / "model.pt")[1]["model"] == n
        assert len(pd.read_parquet(tmp_path / "chunks" / "ls" / n / "log.parquet")) == 1
    assert "chunk of 2 ls models" in (tmp_path / "logs" / "train_chunk" / "ls.log").read_text()


@pytest.mark.parametrize("dataset, groups", [("ls", [[0], [1], [2, 3]]), ("adult", [[0], [1]]),
                                             ("mnist", [])])
def test_auto_mode_stacks_synthetic_members_and_per_batch_tabular_ones(monkeypatch, dataset, groups):
    """auto: every member on synthetic data; on tabular data only the ``ce_frequency: batch`` CT
    members (their searches are small); none on MNIST. Per-batch members are stacks of one (exact);
    the others train alone, in chunk order."""
    from types import SimpleNamespace

    from ctpaper.stack import chunk

    calls = {"stack": [], "alone": []}

    def fake_stack(ds, specs, vae=None):
        calls["stack"].append([s.seed for s in specs])
        return [("stacked", s.seed) for s in specs]

    def fake_train(ds, settings, objective, family, seed, vae=None):
        calls["alone"].append(seed)
        return ("alone", seed)

    monkeypatch.setattr(chunk, "train_stack", fake_stack)
    monkeypatch.setattr(chunk, "train", fake_train)
    base = model_settings(C.load(), "ls")
    specs = [member_spec({"name": f"m{i}", "objective": obj, "family": "free", "seed": i,
                          "settings": {**base, "ce_frequency": freq}})
             for i, (obj, freq) in enumerate([("full", "batch"), ("full", "batch"), ("full", "epoch"),
                                              ("vanilla", "batch")])]
    out = chunk.train_chunk(SimpleNamespace(name=dataset), specs)
    assert calls["stack"] == groups
    stacked = [seed for group in groups for seed in group]
    assert calls["alone"] == [i for i in range(4) if i not in stacked]
    assert out == [("stacked" if i in stacked else "alone", i) for i in range(4)]
