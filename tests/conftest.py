"""Shared test fixtures: the repository root, the verified raw-data mirror, configs, prepared datasets."""

from __future__ import annotations

import copy
import functools
import os
from pathlib import Path

import pytest
import torch

from ctpaper import config as cfg
from ctpaper.data.raw import MIRROR_ENV

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]


def mirror_path() -> Path:
    """$CTPAPER_RAW_MIRROR, else ``shared/data/raw`` beside the repository root."""
    env = os.environ.get(MIRROR_ENV)
    return Path(env).resolve() if env else (REPO.parent / "shared" / "data" / "raw").resolve()


def linear_model(w, b):
    """ctpaper's ``linear`` classifier with weights ``w`` (K x D) and biases ``b`` (K)."""
    from ctpaper.models import build_model

    m = build_model("linear", len(w[0]), len(w), seed=0)
    with torch.no_grad():
        m.fc.weight.copy_(torch.tensor(w))
        m.fc.bias.copy_(torch.tensor(b))
    return m


def search_config(*args, **overrides):
    """``ctpaper.search.SearchConfig`` at the schema's training defaults (config/config.yaml's train
    and ce sections, no per-dataset override: ECCo, tau 0.75, T 30, ...), with ``args`` for the
    leading fields (generator, tau, T) and ``overrides`` by name."""
    from dataclasses import fields

    from ctpaper.search import SearchConfig

    base = dict(_training_search_defaults())
    base.update(zip([f.name for f in fields(SearchConfig)], args))
    return SearchConfig(**{**base, **overrides})


@functools.lru_cache(maxsize=1)
def _training_search_defaults() -> tuple:
    """The training search's settings of config/config.yaml (loaded and validated once)."""
    from ctpaper.settings import SearchSettings

    c = cfg.load(cfg.DEFAULT_CONFIG)
    return tuple(SearchSettings.for_training({**c["train"], "ce_lr": c["ce"]["lr"]}).to_dict().items())


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def raw_mirror() -> Path:
    """The verified offline copy of the raw data. Missing mirror = failure, never a skip."""
    path = mirror_path()
    if not path.is_dir():
        pytest.fail(f"raw-data mirror {path} not found: set {MIRROR_ENV} to a directory holding "
                    "adult/, california_housing/, credit_default/, give_me_some_credit/ and mnist/",
                    pytrace=False)
    return path


@pytest.fixture(scope="session")
def _default_config() -> dict:
    return cfg.load(cfg.DEFAULT_CONFIG)


@pytest.fixture
def base_config(_default_config) -> dict:
    """A fresh, mutable copy of the validated default config (config/config.yaml)."""
    return copy.deepcopy(_default_config)


@pytest.fixture(scope="session")
def prepared_data(raw_mirror, _default_config, tmp_path_factory):
    """``get(dataset) -> Path``: the dataset prepared once per session with the default config.

    Raw files come from the mirror (empty project raw dir, downloads off); the directory holds
    train.parquet, test.parquet, meta.json and raw_manifest.json.
    """
    from ctpaper.data.prepare import prepare_dataset
    from ctpaper.data.raw import fetch_dataset

    root = tmp_path_factory.mktemp("prepared")
    config = copy.deepcopy(_default_config)
    config["paths"].update(raw_dir=str(root / "raw"), raw_mirror=str(raw_mirror), download=False)
    cache: dict[str, Path] = {}

    def get(dataset: str) -> Path:
        if dataset not in cache:
            out = root / dataset
            manifest = None
            if cfg.dataset_kind(dataset) != "synthetic":
                manifest = out / "raw_manifest.json"
                fetch_dataset(dataset, config, manifest)
            prepare_dataset(dataset, config, manifest, out / "train.parquet", out / "test.parquet",
                            out / "meta.json")
            cache[dataset] = out
        return cache[dataset]

    return get


# ---- the smoke config end to end, run once per session -------------------------------------------
SMOKE_TIMEOUT = 1800


def smoke_snakemake(args: list[str], overlay: Path, env: dict, timeout: int = SMOKE_TIMEOUT):
    """Run Snakemake from the repository on config.yaml + smoke.yaml + ``overlay`` (2 cores)."""
    import subprocess
    import sys

    snakemake = str(Path(sys.executable).parent / "snakemake")
    cmd = [snakemake, *args, "--cores", "2", "--configfile", "config/config.yaml",
           "config/smoke.yaml", str(overlay)]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def pdftotext():
    """poppler's pdftotext, installed with apt when missing (root on Debian), so that the render
    step and the tests check the PDF's text; None where it cannot be had."""
    import shutil

    if shutil.which("pdftotext") is None:
        from slurm.smk import apt_install

        apt_install("poppler-utils")
    return shutil.which("pdftotext")


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, raw_mirror, pdftotext):
    """The whole DAG (target ``paper``) on the smoke config, from raw data, into a temporary results
    directory. Shared by the end-to-end tests of every stage (data, evaluation, report) and the
    reference of the SLURM run (tests/test_slurm_cluster.py); ``wall`` is its wall time in seconds."""
    import time

    import yaml

    root = tmp_path_factory.mktemp("smoke")
    results = root / "results"
    overlay = root / "overlay.yaml"
    overlay.write_text(yaml.safe_dump({"paths": {"results": str(results),
                                                 "raw_dir": str(root / "raw"), "download": False}}))
    env = {**os.environ, MIRROR_ENV: str(raw_mirror), "OMP_NUM_THREADS": "1"}
    t0 = time.monotonic()
    out = smoke_snakemake(["paper"], overlay, env)
    wall = time.monotonic() - t0
    if out.returncode != 0:
        pytest.fail(f"snakemake paper (smoke) failed ({out.returncode}):\n{out.stderr[-6000:]}",
                    pytrace=False)
    config = cfg.load(REPO / "config" / "config.yaml", REPO / "config" / "smoke.yaml", overlay)
    return {"results": results, "overlay": overlay, "env": env, "config": config, "wall": wall}
