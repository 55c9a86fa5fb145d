"""Study variants (issue 13): the published settings with method 10.1 differences applied.

A *variant* is a named config overlay. ``base`` is the configured (published) settings; each name of
``VARIANTS`` sets one difference of method 10.1 to the value the paper's text states, taken from
``config/paper_text.yaml``; ``paper_text`` sets all of them at once (the whole file). ``variant_config``
is the one place a variant's settings are built: the study rules' params hash it and
``runtime.rule_context`` hands it to their scripts, so every existing stage runs unchanged under a
variant.

Which stages a variant redoes follows from ``ctpaper.config_reads``: a stage is rerun under a variant
iff it declares a key the variant sets (or an input it reads was redone), otherwise
the study reuses the main results' file (``tree``); a ces evaluation redone only because the CT
models were retrained reuses the main file's BL rows (``stage_tree`` of the BL alone; workflow
studies_common.smk). No torch/numpy import here (the workflow imports it while parsing).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Iterable, Mapping

from ctpaper.config import ROOT, ConfigError, deep_merge, read_yaml

PAPER_TEXT = ROOT / "config" / "paper_text.yaml"

# name -> (method 10.1 item, short label, the keys of paper_text.yaml it sets)
VARIANTS: dict[str, tuple[int, str, tuple[str, ...]]] = {
    "ce_lr": (1, "CE step size 0.25", ("ce.lr",)),
    "domain_n_sigma": (2, "domain ±3σ", ("data.domain_n_sigma",)),
    "mmd_length_scale": (3, "MMD length-scale 0.5", ("eval.mmd.length_scale",)),
    "mmd_reference": (4, "MMD reference: all training rows", ("eval.mmd.reference",)),
    "maturity": (5, "mature = converged or exhausted", ("train.maturity",)),
    "adv_label": (6, "adversarial label = true label", ("train.adv_label",)),
    "adv_eps_strict": (7, "strict adversarial radius", ("train.adv_eps_strict",)),
    "ridge_form": (8, "ridge = l2-norm of energies", ("train.ridge_form",)),
    "ce_frequency": (9, "CEs generated per batch", ("train.ce_frequency",)),
    "lambda_cst": (10, "test-time λ_cst 0.001", ("eval.lambda_cst",)),
    "eval_size": (11, "Note 2: 5 runs × 100, τ 0.95", (
        "eval.n_runs", "eval.n_individuals", "eval.families.protected.tau",
        "eval.families.protected.n_runs", "eval.families.protected.n_individuals")),
}
BASE, ALL = "base", "paper_text"
LABELS = {BASE: "published settings", ALL: "all stated settings", **{k: v[1] for k, v in VARIANTS.items()}}


@lru_cache(maxsize=None)
def _paper_text(path: str) -> dict:
    return read_yaml(path)


def paper_text(path: str | Path = PAPER_TEXT) -> dict:
    """The overlay of config/paper_text.yaml (a fresh copy)."""
    import copy

    return copy.deepcopy(_paper_text(str(path)))


def _get(tree: Mapping, key: str):
    node = tree
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise ConfigError(f"{PAPER_TEXT.name} lacks {key} (needed by a study variant)")
        node = node[part]
    return node


def _nest(key: str, value) -> dict:
    out: dict = {}
    node = out
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def overlay(variant: str, path: str | Path = PAPER_TEXT) -> dict:
    """The config overlay of ``variant`` (``base``: empty; ``paper_text``: the whole file)."""
    if variant == BASE:
        return {}
    text = paper_text(path)
    if variant == ALL:
        return text
    if variant not in VARIANTS:
        raise ConfigError(f"unknown study variant {variant!r}; known: {', '.join([BASE, ALL, *VARIANTS])}")
    out: dict = {}
    for key in VARIANTS[variant][2]:
        out = deep_merge(out, _nest(key, _get(text, key)))
    return out


def variant_config(config: Mapping, variant: str | None) -> dict:
    """The full config of a study variant: ``config`` with the variant's overlay merged in. The one
    function that builds per-variant settings (every stage derives its settings from this config)."""
    if variant in (None, BASE):
        return dict(config)
    return deep_merge(dict(config), overlay(variant))


def overlay_hash(variant: str) -> str:
    """Hash of the variant's overlay values: with the stage's declared keys (less those the overlay
    sets) it makes a variant job's params, so editing config/paper_text.yaml reruns its jobs."""
    import hashlib
    import json

    blob = json.dumps(overlay(variant), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def overlay_leaves(variant: str) -> list[str]:
    """Dotted keys of every leaf the variant sets (what it takes out of the published config)."""
    out: list[str] = []

    def walk(node, path):
        if isinstance(node, Mapping) and node:
            for k, v in node.items():
                walk(v, path + [str(k)])
        else:
            out.append(".".join(path))

    walk(overlay(variant), [])
    return [k for k in out if k]


def study_variants(config: Mapping) -> list[str]:
    """The variants the sensitivity study runs: ``studies.variants`` (+ ``paper_text`` when
    ``studies.all_at_once``)."""
    st = config.get("studies", {})
    names = list(st.get("variants", []))
    return names + ([ALL] if st.get("all_at_once", True) else [])


def differs(config: Mapping, variant: str, rule: str, wildcards: Mapping[str, str]) -> bool:
    """Whether a job of ``rule`` reads a key that ``variant`` sets (``config_reads.covers``). By
    the keys, not their values, so the study's jobs do not depend on the published values (a
    variant whose value equals the published one still runs: its results then equal the main ones)."""
    from ctpaper.config_reads import covers

    return any(covers(rule, leaf, wildcards) for leaf in overlay_leaves(variant))


def data_tree(config: Mapping, variant: str, dataset: str) -> str:
    """``main`` when the variant's prepared data equal the main results', else ``variant``."""
    return variant if differs(config, variant, "prepare_data", {"dataset": dataset}) else "main"


def model_tree(config: Mapping, variant: str, dataset: str, seed, model: str) -> str:
    """Where the variant's model lives: ``main`` (the main results' model), ``base`` (a seed of the
    seed study at the published settings) or the variant's own tree (retrained)."""
    wc = {"dataset": dataset, "seed": str(seed), "model": model}
    if data_tree(config, variant, dataset) != "main" or differs(config, variant, "train_model", wc):
        return variant
    main_seeds = {str(s) for s in config["train"]["seeds"]}
    return "main" if str(seed) in main_seeds else BASE


def variant_seeds(config: Mapping, variant: str) -> list[str]:
    """The training seeds a variant's study tree holds: for ``base`` the seed study's seeds that are
    not main training seeds (the others are the main results), for a difference the first
    training seed (the sensitivity study varies that seed's settings)."""
    main_seeds = [str(s) for s in config["train"]["seeds"]]
    if variant == BASE:
        return [str(s) for s in config["studies"]["seeds"] if str(s) not in main_seeds]
    return main_seeds[:1]


def trained_models(config: Mapping, variant: str, dataset: str, models: Iterable[str]
                   ) -> list[tuple[str, str]]:
    """``(seed, model)`` of every model of ``models`` the variant trains itself on ``dataset``
    (its ``model_tree`` is the variant's own), seed by seed: one ``study_train`` job's members."""
    return [(s, m) for s in variant_seeds(config, variant) for m in models
            if model_tree(config, variant, dataset, s, m) == variant]


def eval_tree(config: Mapping, variant: str, seed) -> str:
    """Where a variant's evaluation files live: the main results' for the published settings at a
    main training seed, else the variant's tree."""
    main_seeds = {str(s) for s in config["train"]["seeds"]}
    return "main" if variant == BASE and str(seed) in main_seeds else variant


def stage_tree(config: Mapping, variant: str, rule: str, dataset: str, seed, models: Iterable[str],
               family: str | None = None) -> str:
    """Where the file of evaluation stage ``rule`` (evaluate_ces, robustness, performance) of a
    variant lives. A stage whose data, ``models`` and config keys are those of the published
    settings at this seed would compute the same file: it is that file (``eval_tree`` of BASE);
    otherwise the variant's tree. So an evaluation-only variant (say the test-time lambda_cst)
    redoes evaluate_ces but reuses robustness and performance."""
    if variant == BASE:
        return eval_tree(config, BASE, seed)
    wc = {"dataset": dataset, "seed": str(seed), **({"family": family} if family else {})}
    if (data_tree(config, variant, dataset) != "main"
            or any(model_tree(config, variant, dataset, seed, m) == variant for m in models)
            or differs(config, variant, rule, wc)):
        return variant
    return eval_tree(config, BASE, seed)
