"""Which config keys each rule reads: the one table rerun decisions are derived from.

``READS[rule]`` lists the config key paths whose values the rule's results depend on. A rule's
Snakemake ``params`` carry a hash of exactly those values (``reads_hash``), so changing a key reruns
the rules that read it (and, through their outputs, everything downstream) and nothing else.
``NO_RERUN[rule]`` lists keys a rule reads that cannot change its outputs (where raw files lie,
health-check thresholds that only decide whether a job fails); they are not rerun triggers.

At run time a rule script sees only its declared keys (``declared_view``, applied by
``runtime.rule_context``): reading any other key fails the job and names the key and this file,
so the table cannot silently fall behind the code.

Entry syntax, applied in order (the last entry that covers a key decides):
  ``eval.tau``                         the key and everything below it
  ``!train.seeds``                     exclude a subtree included by an earlier entry
  ``train.per_dataset.{dataset}``      ``{dataset}`` / ``{kind}`` / any wildcard of the rule
  ``data.synthetic if kind=synthetic`` only for jobs whose wildcard (or ``kind``) matches
                                       (``fnmatch`` patterns, e.g. ``if model=ct_*``)
Keys in ``STRUCTURAL`` change which jobs exist (datasets, seeds, the results root); Snakemake's
missing-output and changed-input-set triggers handle them.
"""

from __future__ import annotations

import hashlib
import json
from fnmatch import fnmatch
from typing import Any, Iterable, Mapping

from ctpaper.config import ConfigError, dataset_kind
from ctpaper.settings import train_model_reads

READS_FILE = "src/ctpaper/config_reads.py"

_CE_SEARCH_BOUNDS = ["ce.lr", "train.adv_eps", "train.adv_eps_strict"]
_EVERYTHING = ["seed", "datasets", "families", "data", "model", "ce", "train", "eval", "robust",
               "ig", "tables", "figures"]

# the grids of the appendix (ctpaper.appendix.GRIDS; repeated: no import of the report modules here)
_APPENDIX_GRIDS = ("generator", "penalties", "other", "tune", "tune_lr", "tune_lr_applied")

READS: dict[str, list[str]] = {
    "fetch_raw": [],
    "prepare_data": [
        "seed.global", "seed.data", "data.domain_n_sigma",
        "data.synthetic if kind=synthetic",
        "data.tabular_pool_fraction if kind=tabular",
        "data.mnist_per_class if kind=image",
    ],
    # the keys of the TrainSettings fields; those marked ct_only only for CT models (BL's are
    # the BaselineSettings fields), so what re-trains BL follows from the settings type
    "train_model": train_model_reads(),
    "train_vae": ["seed.global"],
    # a grid chunk (ctpaper.stack.chunk): every member's complete settings are in params.members
    "train_chunk": [],
    # the grid evaluation (ctpaper.grids.eval): the test-time generator of the eval section with the
    # grids' sizes; the cells and model files come as params/inputs
    "evaluate_grid": [
        "seed.global", "ce.lr", "train.adv_eps", "train.adv_eps_strict", "grids.eval",
        "!grids.eval.group",
        *(f"eval.{k}" for k in ("generator", "tau", "T", "lambda_cst", "lambda_egy_grid",
                                "redraw_pairs_per_run", "ip", "mmd", "redundancy_tol")),
    ],
    "evaluate_ces": [
        "seed.global", "ce.lr", "train.adv_eps", "train.adv_eps_strict",
        "eval", "!eval.n_individuals", "eval.n_individuals.{kind}",
        "!eval.families", "eval.families.{family}",
    ],
    "robustness": ["robust.eps_grid"],
    "performance": [],
    "integrated_gradients": ["seed.global", "ig"],
    "ig_summary": ["seed.global", "ig"],
    "table_scores": ["tables.pm_rule", "tables.ci_level"],
    "table_settings": [
        "datasets", "train", "!train.seeds", "!train.max_skipped_share", "model", "ce.lr",
        "data.domain_n_sigma",
        "eval.generator", "eval.tau", "eval.T", "eval.lambda_cst", "eval.lambda_egy_grid",
        "eval.n_runs", "eval.n_individuals", "eval.families", "eval.ip.reference",
    ],
    "table_performance": [],
    # the settings the explanations of disagreements name (comparison.context)
    "table_comparison": [
        "datasets", "seed.data", "seed.global", "data.synthetic.rng", "data.synthetic.n_generate",
        "data.synthetic.centers", "eval.ip.reference", "eval.tau", "eval.T", "eval.n_runs",
        "eval.n_individuals", "eval.families", "tables.compare_rel_tol",
    ],
    "figure_fig1": ["figures.seed", "figures.fig1", "data.synthetic.centers", "data.domain_n_sigma",
                    "model.init", *_CE_SEARCH_BOUNDS],
    "figure_fig2": ["figures.seed", "figures.fig2", *_CE_SEARCH_BOUNDS],
    "figure_fig45": ["figures.seed", "figures.fig45", *_CE_SEARCH_BOUNDS],
    "figure_fig3": [],
    "figure_maturity": [],
    # appendix report (issue 12): facets follow the order of the grid's varied parameters; the claims
    # and the paper's appendix block also lay out which grids and data sets the run has
    "appendix_box": ["grids.{grid}.vary"],
    "appendix_maturity": ["grids.{grid}.vary"],
    "appendix_table": [],
    "appendix_claims": ["datasets", *(f"grids.{g}.{k}" for g in _APPENDIX_GRIDS for k in ("vary", "datasets"))],
    # the config hash the paper quotes covers every setting that shapes a result
    "provenance": _EVERYTHING,
    "paper_values": _EVERYTHING,
    "render_paper": [],
}


def _variant_leaves() -> list[tuple[str, str]]:
    from ctpaper.studies.variants import ALL, VARIANTS, overlay_leaves

    return [(v, leaf) for v in [*VARIANTS, ALL] for leaf in overlay_leaves(v)]


def _exclude_variant_leaves() -> list[str]:
    """A study job reads the keys its variant sets from config/paper_text.yaml, whose hash
    (``studies.variants.overlay_hash``) the workflow's ``reads`` adds to the job's params: the
    published values of those keys are not its rerun triggers."""
    return [f"!{leaf} if variant={v}" for v, leaf in _variant_leaves()]


def _study(rule: str) -> list[str]:
    """A stage rule run under a study variant (workflow/rules/studies.smk): the stage's keys, less
    those the variant sets."""
    return [*READS[rule], *_exclude_variant_leaves()]


def _study_no_rerun(rule: str) -> list[str]:
    """What a variant job reads that the config cannot change: the keys its overlay sets."""
    return [*NO_RERUN.get(rule, []), *(f"{leaf} if variant={v}" for v, leaf in _variant_leaves())]


def _unconditional(entries: Iterable[str], name: str) -> list[str]:
    """``entries`` with the conditions on wildcard ``name`` taken as holding (a job that runs the
    stage for every value of that wildcard reads the union)."""
    return [e.partition(" if ")[0] if e.partition(" if ")[2].startswith(f"{name}=") else e for e in entries]


# study_train: every model of a variant's tree on one data set (a chunk); each tree trains CT models
# (a variant that retrains only BL would set a key BL reads, which CT reads too), so the job reads
# what train_model reads for CT. study_evaluate: every evaluation of the tree, both families.
_STUDY_EVALUATE = [
    *[e for e in READS["evaluate_ces"] if e != "eval.families.{family}" and e != "!eval.families"],
    *READS["robustness"], *READS["performance"],
]
# the summaries (ctpaper.studies.report): Table-1 statistics of every seed and variant
_STUDY_SUMMARY = ["tables.pm_rule", "tables.ci_level"]
READS.update({
    "study_prepare_data": _study("prepare_data"),
    "study_train": [*_unconditional(READS["train_model"], "model"), *_exclude_variant_leaves()],
    "study_evaluate": [*_STUDY_EVALUATE, *_exclude_variant_leaves()],
    "seed_study_table": _STUDY_SUMMARY, "seed_study_figure": _STUDY_SUMMARY,
    "sensitivity_table": _STUDY_SUMMARY, "sensitivity_figure": _STUDY_SUMMARY,
})

NO_RERUN: dict[str, list[str]] = {
    "fetch_raw": ["paths.raw_dir", "paths.raw_mirror", "paths.download"],
    "train_model": ["train.max_skipped_share"],
    "evaluate_grid": ["grids.eval.group"],   # models per stacked search: memory, not results
}
NO_RERUN.update({"study_prepare_data": _study_no_rerun("prepare_data"),
                 "study_train": _study_no_rerun("train_model"),
                 "study_evaluate": _study_no_rerun("evaluate_ces")})

# Keys that change the set of jobs rather than a job's result (see the module docstring).
STRUCTURAL = {
    "paths.results": "moves every output: a new results tree is built",
    "datasets": "adds or removes the jobs of a dataset; aggregating rules see a new set of inputs",
    "families": "adds or removes the jobs of a family",
    "train.seeds": "adds or removes the jobs of a training seed",
    # the appendix grids' plan (ctpaper.grids.plan): which models exist, in which chunk; a changed
    # cell is a new model (its id hashes its settings), the evaluations see a new set of inputs
    "grids.chunk_size": "regroups the grid models into train_chunk jobs",
    **{f"grids.{g}": "adds or removes grid models and evaluations" for g in
       ("generator", "penalties", "other", "tune", "tune_lr", "tune_lr_applied")},
    "studies.seeds": "adds or removes the seed study's jobs of a training seed",
    "studies.variants": "adds or removes the jobs of a sensitivity-study variant",
    "studies.all_at_once": "adds or removes the jobs of the all-at-once variant (config/paper_text.yaml)",
}


def is_structural(key: str) -> bool:
    """Whether ``key`` is (or lies below) a ``STRUCTURAL`` key."""
    return any(key == s or key.startswith(s + ".") for s in STRUCTURAL)


class UndeclaredConfigRead(ConfigError):
    """A rule read a config key that ``READS``/``NO_RERUN`` does not declare for it."""


def canonical_rule(rule: str) -> str:
    """``rule`` without the prefix that ``use rule * from ctpaper as <prefix>*`` gives it when the
    workflow runs as a Snakemake module (the longest rule of ``READS`` it ends with)."""
    if rule in READS:
        return rule
    ends = [r for r in READS if rule.endswith("_" + r)]
    return max(ends, key=len) if ends else rule


def _entries(rule: str, table: Mapping[str, list[str]]) -> list[str]:
    rule = canonical_rule(rule)
    if rule not in READS:
        raise UndeclaredConfigRead(f"rule {rule!r} has no entry in READS of {READS_FILE}: add one "
                                   "listing the config keys it reads (docs/design.md)")
    return list(table.get(rule, []))


def _context(wildcards: Mapping[str, str] | None) -> dict[str, str]:
    ctx = {k: str(v) for k, v in dict(wildcards or {}).items()}
    if "dataset" in ctx:
        ctx["kind"] = dataset_kind(ctx["dataset"])
    return ctx


def _patterns(entries: Iterable[str], ctx: Mapping[str, str]) -> list[tuple[bool, tuple[str, ...]]]:
    """[(include?, key path)] of the entries that apply to a job with wildcards ``ctx``."""
    out = []
    for entry in entries:
        path, _, cond = entry.partition(" if ")
        if cond:
            name, _, pattern = cond.partition("=")
            if name not in ctx:
                raise UndeclaredConfigRead(f"{READS_FILE}: condition {cond!r} names no wildcard "
                                           f"of the job (has: {', '.join(sorted(ctx)) or 'none'})")
            if not fnmatch(ctx[name], pattern):
                continue
        include = not path.startswith("!")
        path = path.lstrip("!")
        if "{" in path:
            try:
                path = path.format(**ctx)
            except KeyError as err:
                raise UndeclaredConfigRead(f"{READS_FILE}: {entry!r} uses wildcard {err} the job "
                                           "does not have") from None
        out.append((include, tuple(path.split("."))))
    return out


def covers(rule: str, key: str | tuple[str, ...], wildcards: Mapping[str, str] | None = None,
           table: Mapping[str, list[str]] = READS) -> bool:
    """Whether a job of ``rule`` with ``wildcards`` reads config key ``key`` (per ``table``)."""
    parts = tuple(key.split(".")) if isinstance(key, str) else tuple(key)
    verdict = False
    for include, path in _patterns(_entries(rule, table), _context(wildcards)):
        if parts[: len(path)] == path:      # the key lies in the entry's subtree
            verdict = include
        elif path[: len(parts)] == parts and include:  # the key's subtree holds a declared key
            verdict = True
    return verdict


def declared_readers(key: str) -> dict[str, list[str]]:
    """``{"reads": rules, "no_rerun": rules}`` that may read ``key`` for some job (wildcard
    placeholders match any value, conditions are assumed to hold); both empty = undeclared."""
    parts = key.split(".")

    def matches(path: list[str]) -> bool:
        n = min(len(path), len(parts))
        return all(p.startswith("{") or p == q for p, q in zip(path[:n], parts[:n]))

    out: dict[str, list[str]] = {"reads": [], "no_rerun": []}
    for kind, table in (("reads", READS), ("no_rerun", NO_RERUN)):
        for rule, entries in table.items():
            verdict = False
            for entry in entries:
                path = entry.partition(" if ")[0]
                include = not path.startswith("!")
                segs = path.lstrip("!").split(".")
                if matches(segs) and (include or len(segs) <= len(parts)):
                    verdict = include
            if verdict:
                out[kind].append(rule)
    return out


_SKIP = object()  # "not selected" (None is a config value)


def _select(node: Any, path: tuple[str, ...], pats: list[tuple[bool, tuple[str, ...]]]) -> Any:
    """The part of ``node`` (at ``path``) that the include/exclude patterns select, or _SKIP."""
    decided = False
    for include, p in pats:
        if path[: len(p)] == p:
            decided = include
    below = [(inc, p) for inc, p in pats if len(p) > len(path) and p[: len(path)] == path]
    if not isinstance(node, dict) or not below:
        return node if decided else _SKIP
    out = {}
    for k, v in node.items():
        sub = _select(v, path + (str(k),), pats)
        if sub is not _SKIP:
            out[k] = sub
    if out or (decided and not node):
        return out
    return _SKIP


def declared_subset(config: Mapping, rule: str, wildcards: Mapping[str, str] | None = None,
                    table: Mapping[str, list[str]] = READS) -> dict:
    """The nested part of ``config`` that a job of ``rule`` declares in ``table``."""
    pats = _patterns(_entries(rule, table), _context(wildcards))
    out = _select(dict(config), (), pats)
    return {} if out is _SKIP else out


def reads_hash(config: Mapping, rule: str, wildcards: Mapping[str, str] | None = None) -> str:
    """Hash of the config values a job of ``rule`` reads: the rule's rerun trigger (``params``)."""
    blob = json.dumps(declared_subset(config, rule, wildcards), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class DeclaredConfig(dict):
    """A config (sub)tree holding only the keys a rule declares. Reading a key that exists in the
    full config but is not declared raises ``UndeclaredConfigRead`` (also through ``get``)."""

    def __init__(self, declared: Mapping, full: Mapping, rule: str, path: tuple[str, ...] = ()):
        super().__init__()
        self._full, self._rule, self._path = full, rule, path
        for k, v in declared.items():
            if isinstance(v, dict) and isinstance(full.get(k), dict):
                v = DeclaredConfig(v, full[k], rule, path + (str(k),))
            dict.__setitem__(self, k, v)

    def _undeclared(self, key) -> UndeclaredConfigRead:
        name = ".".join([*self._path, str(key)])
        return UndeclaredConfigRead(
            f"rule {self._rule} read config key {name}, which {READS_FILE} does not declare for "
            f"it: add {name!r} to READS[{self._rule!r}] (or NO_RERUN if it cannot change outputs)")

    def __missing__(self, key):
        if key in self._full:
            raise self._undeclared(key)
        raise KeyError(key)

    def get(self, key, default=None):
        if dict.__contains__(self, key):
            return dict.__getitem__(self, key)
        if key in self._full:
            raise self._undeclared(key)
        return default

    def __reduce__(self):  # copies and pickles are plain dicts of the declared keys
        return dict, (dict(self),)

    def __deepcopy__(self, memo):
        import copy

        return copy.deepcopy({k: v for k, v in self.items()}, memo)


def declared_view(config: Mapping, rule: str, wildcards: Mapping[str, str] | None = None
                  ) -> DeclaredConfig:
    """What a rule script may read: its READS plus NO_RERUN keys (see ``DeclaredConfig``)."""
    pats = _patterns([*_entries(rule, READS), *NO_RERUN.get(canonical_rule(rule), [])], _context(wildcards))
    out = _select(dict(config), (), pats)
    return DeclaredConfig({} if out is _SKIP else out, config, rule)


def _model_stage_unchanged(variant: str) -> bool:
    """Whether ``variant`` changes no data, model or robustness key for any data set: its
    study_evaluate jobs then redo only evaluate_ces (``studies.variants.stage_tree``), so
    robust.eps_grid is not theirs."""
    from ctpaper.names import DATASET_NAMES
    from ctpaper.studies.variants import overlay_leaves

    return not any(covers("prepare_data", leaf, {"dataset": d})
                   or covers("train_model", leaf, {"dataset": d, "model": "ct_free"})
                   or covers("robustness", leaf, {"dataset": d})
                   for leaf in overlay_leaves(variant) for d in DATASET_NAMES)


def _eval_only_variants() -> list[str]:
    from ctpaper.studies.variants import ALL, VARIANTS

    return [v for v in [*VARIANTS, ALL] if _model_stage_unchanged(v)]


# (after covers: the exclusions follow from the stage entries above)
READS["study_evaluate"] += [f"!{k} if variant={v}" for v in _eval_only_variants() for k in READS["robustness"]]
