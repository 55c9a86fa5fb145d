"""Loading, merging and validating the pipeline configuration.

The config is the single source of truth for the paper's settings (Notes 1-2 and Table 2). It is
validated against the schema shipped with the package (``ctpaper/config.schema.yaml``, package
data); errors name the offending key path.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any, Iterable

import jsonschema
import yaml

from ctpaper import names
from ctpaper.runtime import UserError

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = Path(__file__).with_name("config.schema.yaml")  # package data (pyproject.toml)
DEFAULT_CONFIG = ROOT / "config" / "config.yaml"

class ConfigError(UserError, ValueError):
    """A configuration problem a user can fix; the message names the key."""


def dataset_kind(dataset: str) -> str:
    """Return the kind of a dataset ('synthetic', 'tabular' or 'image'; ``ctpaper.names``)."""
    if dataset not in names.DATASETS:
        raise ConfigError(f"unknown dataset {dataset!r}; known: {', '.join(names.DATASETS)}")
    return names.DATASETS[dataset].kind


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


def resolve_ref(node: dict, schema: dict) -> dict:
    """``node`` with a local ``$ref`` replaced by the definition it names (its own keys kept)."""
    ref = node.get("$ref")
    if not ref:
        return node
    target = schema
    for part in ref.lstrip("#/").split("/"):
        target = target[part]
    return {**resolve_ref(target, schema), **{k: v for k, v in node.items() if k != "$ref"}}


def apply_defaults(config: dict, schema: dict | None = None) -> dict:
    """Fill in, in place, every key the schema gives a ``default:`` and ``config`` lacks (below
    sections that exist); the schema is the only place defaults are defined."""
    schema = load_schema() if schema is None else schema

    def walk(node: dict, cfg: dict) -> None:
        for key, sub in resolve_ref(node, schema).get("properties", {}).items():
            sub = resolve_ref(sub, schema)
            if key not in cfg and "default" in sub:
                cfg[key] = copy.deepcopy(sub["default"])
            elif isinstance(cfg.get(key), dict):
                walk(sub, cfg[key])

    walk(schema, config)
    return config


def validate(config: dict) -> dict:
    """Apply the schema's defaults (in place) and validate ``config`` against the schema; raise
    ConfigError naming every offending key."""
    schema = load_schema()
    if isinstance(config, dict):
        apply_defaults(config, schema)
    validator = jsonschema.Draft202012Validator(schema)
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
    syn = config["data"]["synthetic"]
    if syn["n_pool"] + syn["n_test"] > syn["n_generate"]:
        raise ConfigError(f"config key data.synthetic: n_pool + n_test = "
                          f"{syn['n_pool'] + syn['n_test']} exceeds n_generate = "
                          f"{syn['n_generate']} (pool and test are drawn from the generated points)")


def load(*paths: str | Path) -> dict:
    """Load and merge config files in order (later overlays win) and validate the result."""
    files = list(paths) or [DEFAULT_CONFIG]
    config: dict = {}
    for p in files:
        config = deep_merge(config, read_yaml(p))
    return validate(config)


def read_yaml(path: str | Path) -> dict:
    """A config file's mapping; ConfigError naming the file (and line) when it is missing or not
    valid YAML."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found (looked for {path.absolute()})")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"config file {where}: invalid YAML ({problem})") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping of config keys, got "
                          f"{type(data).__name__}")
    return data or {}


def config_hash(config: dict) -> str:
    """A short, stable hash of the whole config (sorted-key JSON), recorded with every output."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def section_hash(config: dict, keys: Iterable[str]) -> str:
    """Hash of selected top-level sections (e.g. the ones a stage depends on)."""
    return config_hash({k: config.get(k) for k in keys})


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


def main(argv: list[str] | None = None) -> int:
    """``python -m ctpaper.config FILE...``: load, merge and validate config files the way the
    workflow does, naming the file and line of a YAML error (Snakemake's own message does not)."""
    import sys

    files = list(sys.argv[1:] if argv is None else argv)
    try:
        load(*files)
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 1
    print(f"valid configuration: {' + '.join(map(str, files)) or DEFAULT_CONFIG}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
