"""Loading, merging and validating the pipeline configuration.

The config is the single source of truth for the paper's settings (Notes 1-2 and Table 2). It is
validated against ``workflow/schemas/config.schema.yaml``; errors name the offending key path.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any, Iterable

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = ROOT / "workflow" / "schemas" / "config.schema.yaml"
DEFAULT_CONFIG = ROOT / "config" / "config.yaml"

SYNTHETIC = ("ls", "circ", "moon", "ol")
TABULAR = ("adult", "ch", "credit", "gmsc")
IMAGE = ("mnist",)
ALL_DATASETS = SYNTHETIC + TABULAR + IMAGE
# Row order of Table 1 (synthetic, tabular, image) and the labels the paper prints.
TABLE_ORDER = ALL_DATASETS
LABELS = {"ls": "LS", "circ": "Circ", "moon": "Moon", "ol": "OL", "adult": "Adult", "ch": "CH",
          "credit": "Cred", "gmsc": "GMSC", "mnist": "MNIST"}


class ConfigError(ValueError):
    """A configuration problem a user can fix; the message names the key."""


def dataset_kind(dataset: str) -> str:
    """Return 'synthetic', 'tabular' or 'mnist' for a dataset name."""
    if dataset in SYNTHETIC:
        return "synthetic"
    if dataset in TABULAR:
        return "tabular"
    if dataset in IMAGE:
        return "mnist"
    raise ConfigError(f"unknown dataset {dataset!r}; known: {', '.join(ALL_DATASETS)}")


def deep_merge(base: dict, overlay: dict) -> dict:
    """Return ``base`` updated recursively with ``overlay`` (overlay wins; dicts merge, lists replace)."""
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_schema() -> dict:
    with open(SCHEMA_PATH) as fh:
        return yaml.safe_load(fh)


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "<top level>"


def validate(config: dict) -> dict:
    """Validate ``config`` against the schema; raise ConfigError naming every offending key."""
    validator = jsonschema.Draft202012Validator(load_schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = []
        for err in errors:
            where = _key_path(err)
            if err.validator == "additionalProperties":
                unknown = sorted(set(err.instance) - set(err.schema.get("properties", {})))
                where = ".".join([*map(str, err.absolute_path), *unknown]) if unknown else where
                lines.append(f"config key {where}: unknown key (allowed: "
                             f"{', '.join(sorted(err.schema.get('properties', {})))})")
            elif err.validator == "contains" and "const" in err.validator_value:
                lines.append(f"config key {where}: must include {err.validator_value['const']!r} "
                             f"(got {err.instance!r})")
            else:
                lines.append(f"config key {where}: {err.message}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines))
    _check_consistency(config)
    return config


def _check_consistency(config: dict) -> None:
    per = config.get("train", {}).get("per_dataset", {})
    missing = [d for d in config["datasets"] if dataset_kind(d) and d not in per]
    if missing:
        raise ConfigError(f"config key train.per_dataset: no Table-2 settings for {', '.join(missing)}")
    grid = config["robust"].get("eps_grid", {})
    if grid and grid["stop"] < grid["start"]:
        raise ConfigError("config key robust.eps_grid: stop must be >= start")


def load(*paths: str | Path) -> dict:
    """Load and merge config files in order (later overlays win) and validate the result."""
    files = list(paths) or [DEFAULT_CONFIG]
    config: dict = {}
    for p in files:
        with open(p) as fh:
            config = deep_merge(config, yaml.safe_load(fh) or {})
    return validate(config)


def config_hash(config: dict) -> str:
    """A short, stable hash of the whole config (sorted-key JSON), recorded with every output."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def section_hash(config: dict, keys: Iterable[str]) -> str:
    """Hash of selected top-level sections (e.g. the ones a stage depends on)."""
    return config_hash({k: config.get(k) for k in keys})


def train_settings(config: dict, dataset: str) -> dict[str, Any]:
    """The training settings for ``dataset``: Note-1 defaults overridden by its Table-2 row."""
    train = {k: v for k, v in config["train"].items() if k not in ("per_dataset", "seeds")}
    train.update(config["train"].get("per_dataset", {}).get(dataset, {}))
    train["ce_lr"] = config["ce"]["lr"]
    train["n_epochs"] = config["model"]["n_epochs"]
    train["model_lr"] = config["model"]["lr"]
    return train


def eval_settings(config: dict, dataset: str, family: str) -> dict[str, Any]:
    """Test-time tau, T, n_runs and n_individuals (per lambda_egy) of ``dataset`` in ``family``.

    The eval section's values, overridden by ``eval.families.<family>`` and then by that family's
    ``per_dataset.<dataset>`` (method.md 6.2-6.3: the protected family ran with other settings).
    """
    ev = config["eval"]
    fam = (ev.get("families") or {}).get(family) or {}
    own = (fam.get("per_dataset") or {}).get(dataset) or {}
    kind = dataset_kind(dataset)
    out = {}
    for key in ("tau", "T", "n_runs"):
        out[key] = own.get(key, fam.get(key, ev[key]))
    per_kind = {**ev["n_individuals"], **(fam.get("n_individuals") or {})}
    out["n_individuals"] = own.get("n_individuals", per_kind[kind])
    return {"tau": float(out["tau"]), "T": int(out["T"]), "n_runs": int(out["n_runs"]),
            "n_individuals": int(out["n_individuals"])}


def eps_grid(config: dict) -> list[float]:
    """The FGSM epsilon grid, numpy.linspace(start, stop, num)."""
    import numpy as np

    g = config["robust"]["eps_grid"]
    return [float(e) for e in np.linspace(g["start"], g["stop"], g["num"])]
