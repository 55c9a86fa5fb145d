"""Every rule depends on exactly the config it reads (src/ctpaper/config_reads.py).

Unit tests of the table's semantics, and the guard for every key: over the completed smoke run,
each leaf key of the config schema is changed on its own, and a dry run must schedule exactly the
jobs whose declared reads cover the key plus everything downstream of them: no fewer (a stale
result beside a new setting) and no more (a needless rerun). A schema key that no rule declares
fails with a message saying where to declare it.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent / "slurm"))
import smk  # noqa: E402  (tests/slurm/smk.py)

from ctpaper import config as C  # noqa: E402
from ctpaper.config_reads import (  # noqa: E402
    NO_RERUN,
    READS,
    STRUCTURAL,
    UndeclaredConfigRead,
    covers,
    declared_readers,
    declared_subset,
    declared_view,
    is_structural,
    reads_hash,
)

HOW_TO_DECLARE = ("declare the rules that read it in READS (or NO_RERUN / STRUCTURAL) of "
                  "src/ctpaper/config_reads.py; see docs/design.md, 'Adding a config key'")


# ---- the table's semantics ------------------------------------------------------------------------
def test_bl_reads_no_ct_setting(base_config):
    bl = {"dataset": "adult", "seed": "1", "model": "bl"}
    ct = {**bl, "model": "ct_free"}
    for key in ("train.tau", "train.per_dataset.adult.nce", "ce.lr", "train.lambda_div"):
        assert not covers("train_model", key, bl) and covers("train_model", key, ct), key
    assert covers("train_model", "train.per_dataset.adult.batch_size", bl)
    assert not covers("train_model", "train.per_dataset.ls.batch_size", bl)
    changed = copy.deepcopy(base_config)
    changed["train"]["lambda_div"] = 0.7
    assert reads_hash(changed, "train_model", bl) == reads_hash(base_config, "train_model", bl)
    assert reads_hash(changed, "train_model", ct) != reads_hash(base_config, "train_model", ct)


def test_kind_conditions_and_placeholders(base_config):
    sub = declared_subset(base_config, "prepare_data", {"dataset": "adult"})
    assert sub["data"] == {"domain_n_sigma": base_config["data"]["domain_n_sigma"],
                           "tabular_pool_fraction": base_config["data"]["tabular_pool_fraction"]}
    ev = declared_subset(base_config, "evaluate_ces", {"dataset": "mnist", "seed": "1",
                                                       "family": "free"})
    assert ev["eval"]["n_individuals"] == {"image": base_config["eval"]["n_individuals"]["image"]}


def test_undeclared_read_fails_with_where_to_declare(base_config):
    view = declared_view(base_config, "train_model", {"dataset": "ls", "seed": "1", "model": "bl"})
    assert view["model"]["lr"] == base_config["model"]["lr"]
    for read in (lambda: view["train"]["tau"], lambda: view["train"].get("tau", 0.5),
                 lambda: view["eval"]):
        with pytest.raises(UndeclaredConfigRead, match=r"config_reads\.py.*READS\['train_model'\]"):
            read()
    assert view["train"].get("no_such_key", 3) == 3  # optional keys keep their defaults
    # locations are readable but not rerun triggers
    fetch = declared_view(base_config, "fetch_raw", {"dataset": "adult"})
    assert fetch["paths"]["download"] == base_config["paths"]["download"]
    changed = copy.deepcopy(base_config)
    changed["paths"]["raw_mirror"] = "/elsewhere"
    assert reads_hash(changed, "fetch_raw", {"dataset": "adult"}) == reads_hash(
        base_config, "fetch_raw", {"dataset": "adult"})


def test_unknown_rule_fails():
    with pytest.raises(UndeclaredConfigRead, match="no entry in READS"):
        reads_hash({}, "no_such_rule")


def test_table_names_only_rules_of_the_workflow(tmp_path):
    rules = set(smk.list_rules(tmp_path / "wd", [smk.CONFIG]))
    targets = {"all", "data", "train", "evaluate", "tables", "figures", "fig1", "fig2", "fig3",
               "fig4", "fig5", "maturity", "paper", "appendix", "grid_generator", "grid_penalties",
               "grid_other", "tune", "tune_lr", "seed_study", "sensitivity", "studies"}
    assert set(READS) == rules - targets, \
        "READS must have one entry per rule that runs a job"
    assert set(NO_RERUN) <= set(READS)


# ---- schema leaves and their perturbations --------------------------------------------------------
def _resolve(node: dict, schema: dict) -> dict:
    while "$ref" in node:
        node = schema["definitions"][node["$ref"].split("/")[-1]]
    return node


def schema_leaves(schema: dict) -> dict[str, dict]:
    """{dotted key: schema node} of every leaf key (per-dataset maps expanded over datasets)."""
    out: dict[str, dict] = {}

    def walk(node: dict, path: list[str]) -> None:
        node = _resolve(node, schema)
        if node.get("type") == "object" and ("properties" in node or
                                             isinstance(node.get("additionalProperties"), dict)):
            for k, sub in node.get("properties", {}).items():
                walk(sub, path + [k])
            extra = node.get("additionalProperties")
            if isinstance(extra, dict):
                names = _resolve(node.get("propertyNames", {}), schema).get("enum", [])
                for k in names:
                    walk(extra, path + [k])
            return
        out[".".join(path)] = node

    walk(schema, [])
    return out


def _get(config: dict, key: str, default=None):
    node = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def _set(config: dict, key: str, value) -> None:
    parts = key.split(".")
    node = config
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def _candidates(node: dict, current):
    """Valid-looking values different from ``current``, most natural first."""
    if "enum" in node:
        return [v for v in node["enum"] if v != current]
    types = node.get("type")
    types = types if isinstance(types, list) else [types]
    if "oneOf" in node:  # data.synthetic.centers: null or two points
        return [[[-3.0, -3.0], [3.0, 3.0]]] if current is None else [None]
    if "boolean" in types:
        return [not current]
    if "array" in types:
        base = list(current or [])
        new = (max(base) + 1 if base else 1) if all(isinstance(v, (int, float)) for v in base) else None
        return [base + [new]] if new is not None else []
    if "integer" in types or "number" in types:
        lo = node.get("minimum", node.get("exclusiveMinimum", 0))
        hi = node.get("maximum", node.get("exclusiveMaximum", float("inf")))
        if current is None:
            cands = [1, 2, 0.3] if "integer" not in types else [max(1, lo), 2]
        elif "integer" in types:
            cands = [current + 1, current - 1]
        else:
            cands = [current / 2 if current else 0.5, current * 1.5 + 0.1, 0.3]
        return [c for c in cands if lo <= c <= hi and c != current]
    if "string" in types:
        return [f"{current}_changed" if current else "changed"]
    return []


def perturbations(config: dict) -> tuple[dict[str, object], list[str]]:
    """{key: a valid changed value} for every non-structural schema leaf, and the keys for which
    no valid change was found."""
    out, missing = {}, []
    for key, node in schema_leaves(C.load_schema()).items():
        if is_structural(key):
            continue
        current = _get(config, key)
        for value in _candidates(node, current):
            trial = copy.deepcopy(config)
            _set(trial, key, value)
            try:
                C.validate(trial)
            except C.ConfigError:
                continue
            out[key] = value
            break
        else:
            missing.append(key)
    return out, missing


def test_every_schema_key_is_declared_or_structural():
    undeclared = [k for k in schema_leaves(C.load_schema())
                  if not is_structural(k) and not any(declared_readers(k).values())]
    assert not undeclared, (f"config keys read by no rule: {', '.join(undeclared)}; "
                            + HOW_TO_DECLARE)


# ---- the guard: perturb every key over the completed smoke run ------------------------------------
def _job_id(job: smk.Job) -> str:
    return f"{job.rule}[{job.wildcards}]"


def _wildcards(job: smk.Job) -> dict[str, str]:
    return dict(item.split("=", 1) for item in job.wildcards.split(", ") if "=" in item)


def _files(job: smk.Job, field: str) -> set[str]:
    return {f.strip() for f in job.fields.get(field, "").split(",") if f.strip()}


def _dag(jobs: list[smk.Job]) -> dict[str, set[str]]:
    """{job id: ids of the jobs that consume its outputs} (jobs with outputs only)."""
    producer = {f: _job_id(j) for j in jobs for f in _files(j, "output")}
    down: dict[str, set[str]] = {_job_id(j): set() for j in jobs if _files(j, "output")}
    for j in jobs:
        for f in _files(j, "input"):
            if f in producer and _job_id(j) in down:
                down[producer[f]].add(_job_id(j))
    return down


def _closure(start: set[str], down: dict[str, set[str]]) -> set[str]:
    seen, todo = set(start), list(start)
    while todo:
        for nxt in down.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


@pytest.mark.slow
def test_perturbing_each_key_reruns_exactly_its_readers(smoke_run, tmp_path):
    """The guard for every config key (see module docstring). Dry runs are forked from this
    process, two at a time, over the smoke run's metadata."""
    base_files = ["config/config.yaml", "config/smoke.yaml", str(smoke_run["overlay"])]
    config = smoke_run["config"]
    changes, unchangeable = perturbations(config)
    assert not unchangeable, f"no valid change found for {unchangeable}: extend _candidates"

    overlays = []
    for i, (key, value) in enumerate(changes.items()):
        overlay = {}
        _set(overlay, key, value)
        path = tmp_path / f"perturb{i}.yaml"
        path.write_text(yaml.safe_dump(overlay))
        overlays.append(path)
    runs = [["all", "--forceall", "--configfile", *base_files],
            ["all", "--configfile", *base_files]] + [
        ["all", "--configfile", *base_files, str(p)] for p in overlays]
    results = smk.forked_dry_runs(runs, tmp_path / "out")
    for code, out in results:
        assert code == 0, out[-3000:]

    jobs = [j for j in smk.jobs(results[0][1]) if _files(j, "output")]
    down = _dag(jobs)
    # the completed run is up to date; jobs whose outputs another test deleted (only a missing
    # output may schedule a job here) are expected in every run below
    baseline = [j for j in smk.jobs(results[1][1]) if _files(j, "output")]
    assert all("Missing output files" in j.fields.get("reason", "")
               or "updated by another job" in j.fields.get("reason", "") for j in baseline), (
        "the completed smoke run is not up to date:\n" + results[1][1][-3000:])
    pending = _closure({_job_id(j) for j in baseline}, down)

    problems = []
    for (key, value), (_, out) in zip(changes.items(), results[2:]):
        direct = {_job_id(j) for j in jobs if covers(j.rule, key, _wildcards(j))}
        expected = _closure(direct, down) | pending
        scheduled = {_job_id(j) for j in smk.jobs(out) if _files(j, "output")}
        if scheduled != expected:
            stale = sorted(expected - scheduled)
            extra = sorted(scheduled - expected)
            problems.append(f"{key} -> {value!r}: " + "; ".join(
                part for part in (f"not rerun (stale): {', '.join(stale)}" if stale else "",
                                  f"rerun needlessly: {', '.join(extra)}" if extra else "")
                if part))
    assert not problems, ("config changes that do not rerun exactly their readers (fix the params "
                          "line of the rule, or " + HOW_TO_DECLARE + "):\n  "
                          + "\n  ".join(problems))
