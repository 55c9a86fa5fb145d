"""Typed, frozen settings built once from the validated config (no torch, numpy or pandas).

* ``TrainSettings``: what one CT model is trained with (paper Note 1 merged with its data set's
  Table-2 row, plus the CE step size and the model keys). Every field names the config key it comes
  from (field metadata ``path``; ``{dataset}`` is the data set) and whether the data set's
  ``train.per_dataset`` row may override it (``override``); fields marked ``ct_only`` are read only by
  the CE-based objectives.
* ``BaselineSettings``: the fields of ``TrainSettings`` that are not ``ct_only``, generated from it, so
  what BL depends on (and which config keys re-train it, ``config_reads.READS["train_model"]``) follows
  from the type instead of a hand-kept list.
* ``SearchSettings``: one batched CE search (method 4), from training or evaluation settings.
* ``EvalSettings``: the test-time settings of one family and data set (method 6).

There are no defaults here: the schema's ``default:`` entries are applied by the config loader, and
building any of these from a mapping with a missing or an unknown key raises TypeError naming it.
``to_dict()`` / ``from_dict()`` are lossless (field order, values as given) so that chunk member specs
and model files keep their plain-dict settings.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from ctpaper import names


def setting(path: str, *, ct_only: bool = False, override: bool = False):
    """A settings field read from config key ``path`` (see the module docstring)."""
    return field(metadata={"path": path, "ct_only": ct_only, "override": override})


class _Settings:
    """to_dict / from_dict / replace shared by the settings types."""

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def _check_keys(cls, keys, *, complete: bool) -> None:
        known = cls.field_names()
        unknown = [k for k in keys if k not in known]
        if unknown:
            raise TypeError(f"{cls.__name__}: unknown setting(s) {', '.join(map(repr, unknown))}; "
                            f"known: {', '.join(known)}")
        missing = [k for k in known if k not in keys]
        if complete and missing:
            raise TypeError(f"{cls.__name__}: missing setting(s) {', '.join(map(repr, missing))}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]):
        """The settings of a plain mapping (as ``to_dict`` gives); TypeError naming a missing or an
        unknown key."""
        cls._check_keys(list(d), complete=True)
        return cls(**{k: d[k] for k in cls.field_names()})

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain dict in field order (values as stored)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def replace(self, **overrides):
        """A copy with ``overrides`` applied; TypeError naming an unknown key."""
        self._check_keys(list(overrides), complete=False)
        return dataclasses.replace(self, **overrides)


def _read(config: Mapping, f: dataclasses.Field, dataset: str) -> Any:
    """The value of field ``f`` for ``dataset``: its config key, or the data set's Table-2 override."""
    if f.metadata["override"]:
        own = config["train"]["per_dataset"][dataset]
        if f.name in own:
            return own[f.name]
    node: Any = config
    for part in f.metadata["path"].format(dataset=dataset).split("."):
        node = node[part]
    return node


@dataclass(frozen=True)
class TrainSettings(_Settings):
    """The training settings of one CT model (method 5; paper Note 1 and Table 2)."""

    objective: str = setting("train.objective", ct_only=True)
    generator: str = setting("train.generator", ct_only=True)
    tau: float = setting("train.tau", ct_only=True, override=True)
    T: int = setting("train.T", ct_only=True, override=True)
    lambda_cst: float = setting("train.lambda_cst", ct_only=True)
    lambda_egy: float = setting("train.lambda_egy", ct_only=True)
    convergence: str = setting("train.convergence", ct_only=True)
    lambda_clf: float = setting("train.lambda_clf")
    lambda_div: float = setting("train.lambda_div", ct_only=True, override=True)
    lambda_reg: float = setting("train.lambda_reg", ct_only=True, override=True)
    lambda_adv: float = setting("train.lambda_adv", ct_only=True, override=True)
    nce: int = setting("train.nce", ct_only=True, override=True)
    burnin: float = setting("train.burnin", ct_only=True)
    ce_frequency: str = setting("train.ce_frequency", ct_only=True)
    adv_label: str = setting("train.adv_label", ct_only=True)
    adv_eps: float = setting("train.adv_eps", ct_only=True)
    adv_eps_strict: bool = setting("train.adv_eps_strict", ct_only=True)
    maturity: str = setting("train.maturity", ct_only=True)
    ridge_form: str = setting("train.ridge_form", ct_only=True)
    batch_size: int = setting("train.per_dataset.{dataset}.batch_size")
    ce_lr: float = setting("ce.lr", ct_only=True)
    n_epochs: int = setting("model.n_epochs")
    model_lr: float = setting("model.lr")
    arch: str = setting("model.arch")
    hidden: int = setting("model.hidden")
    init: str = setting("model.init")

    @classmethod
    def from_config(cls, config: Mapping, dataset: str):
        """The settings of ``dataset`` in the validated ``config``: each field from its config key,
        the data set's Table-2 row overriding the fields marked ``override``."""
        return cls(**{f.name: _read(config, f, dataset) for f in fields(cls)})

    def baseline(self) -> "BaselineSettings":
        """The settings a ``vanilla`` (BL) run reads: the fields not marked ``ct_only``."""
        return BaselineSettings(**{k: getattr(self, k) for k in BaselineSettings.field_names()})


def model_objective_family(model: str, settings: Mapping) -> tuple[str, str]:
    """``bl`` -> (vanilla, free); ``ct_<family>`` -> (train.objective, family) (``ctpaper.names``)."""
    r = names.role(model)
    return (settings["objective"] if r.is_ct else r.objective), r.family


def model_settings(config: Mapping, dataset: str, model: str = "ct_free") -> dict:
    """The settings ``model`` is trained with, as a plain dict: for CT ``TrainSettings`` (Note 1
    merged with Table 2), for BL its ``BaselineSettings`` (the fields not marked ct_only, so tuning
    CT never re-trains BL). No torch: the workflow builds study chunks' members with it."""
    typ = TrainSettings if names.role(model).is_ct else BaselineSettings
    return typ.from_config(config, dataset).to_dict()


def ct_only_fields() -> tuple[str, ...]:
    """The ``TrainSettings`` fields read only by the CE-based objectives."""
    return tuple(f.name for f in fields(TrainSettings) if f.metadata["ct_only"])


def override_fields() -> tuple[str, ...]:
    """The ``TrainSettings`` fields a data set's Table-2 row may override."""
    return tuple(f.name for f in fields(TrainSettings) if f.metadata["override"])


def _source_rank(f: dataclasses.Field) -> int:
    """0 for the Table-2 row, 1 for the rest of ``train``, 2 for the other sections."""
    path = f.metadata["path"]
    return 0 if path.startswith("train.per_dataset.") else 1 if path.startswith("train.") else 2


# BL's fields in the order Table-2 row, Note 1, model (stable within each): the order of the
# settings dict stored in BL's model files since they were first written.
BaselineSettings = dataclasses.make_dataclass(
    "BaselineSettings",
    [(f.name, f.type, field(metadata=f.metadata))
     for f in sorted(fields(TrainSettings), key=_source_rank) if not f.metadata["ct_only"]],
    bases=(_Settings,), frozen=True, namespace={
        "__doc__": "The training settings of BL: the fields of TrainSettings not marked ct_only.",
        "from_config": classmethod(TrainSettings.from_config.__func__)})
BaselineSettings.__module__ = __name__


def train_model_reads() -> list[str]:
    """The config keys a ``train_model`` job reads (``config_reads`` entry syntax): every field's key
    (and Table-2 override), the ``ct_only`` ones only for CT models."""
    out = []
    for f in fields(TrainSettings):
        cond = " if model=ct_*" if f.metadata["ct_only"] else ""
        out.append(f.metadata["path"] + cond)
        if f.metadata["override"]:
            out.append(f"train.per_dataset.{{dataset}}.{f.name}{cond}")
    return out


@dataclass(frozen=True)
class SearchSettings(_Settings):
    """Settings of one batched search (method 4); ``engine()`` is the search module's config."""

    generator: str
    tau: float
    T: int
    lr: float
    lambda_cst: float
    lambda_egy: float
    convergence: str
    eps: float
    eps_strict: bool

    @classmethod
    def for_training(cls, s: Mapping[str, Any]) -> "SearchSettings":
        """The training CE generator of training settings ``s`` (a ``TrainSettings`` dict; method
        5.2 step 4)."""
        return cls(generator=s["generator"], tau=float(s["tau"]), T=int(s["T"]), lr=float(s["ce_lr"]),
                   lambda_cst=float(s["lambda_cst"]), lambda_egy=float(s["lambda_egy"]),
                   convergence=s["convergence"], eps=float(s["adv_eps"]),
                   eps_strict=bool(s["adv_eps_strict"]))

    def engine(self):
        """``ctpaper.search.SearchConfig`` with every field given (imports torch)."""
        from ctpaper.search import SearchConfig

        return SearchConfig(**self.to_dict())


@dataclass(frozen=True)
class EvalSettings(_Settings):
    """The evaluation keys of the config that this stage uses (method 6.2-6.7, section 10), for one
    family and data set."""

    seed_global: int
    generator: str
    tau: float
    T: int
    lr: float
    lambda_cst: float
    lambda_egy_grid: tuple[float, ...]
    n_runs: int
    n_individuals: int
    redraw_pairs_per_run: bool
    ip_reference: str
    n_balanced: int
    n_ref: int
    mmd_length_scale: float
    mmd_n_samples: int
    mmd_reference: str
    redundancy_tol: float
    adv_eps: float
    adv_eps_strict: bool

    @classmethod
    def from_config(cls, config: Mapping, dataset: str, family: str = "free") -> "EvalSettings":
        """The test-time settings of ``dataset`` in ``family`` (``config.eval_settings`` resolves
        the family's and data set's overrides of tau, T, n_runs and n_individuals)."""
        from ctpaper.config import eval_settings

        ev = config["eval"]
        own = eval_settings(config, dataset, family)
        return cls(
            seed_global=int(config["seed"]["global"]), generator=ev["generator"],
            tau=own["tau"], T=own["T"], lr=float(config["ce"]["lr"]),
            lambda_cst=float(ev["lambda_cst"]),
            lambda_egy_grid=tuple(float(v) for v in ev["lambda_egy_grid"]),
            n_runs=own["n_runs"], n_individuals=own["n_individuals"],
            redraw_pairs_per_run=bool(ev["redraw_pairs_per_run"]),
            ip_reference=ev["ip"]["reference"],
            n_balanced=int(ev["ip"]["n_balanced"]), n_ref=int(ev["ip"]["n_ref"]),
            mmd_length_scale=float(ev["mmd"]["length_scale"]),
            mmd_n_samples=int(ev["mmd"]["n_samples"]),
            mmd_reference=ev["mmd"]["reference"],
            redundancy_tol=float(ev["redundancy_tol"]),
            adv_eps=float(config["train"]["adv_eps"]),
            adv_eps_strict=bool(config["train"]["adv_eps_strict"]),
        )

    def search(self, lambda_egy: float) -> SearchSettings:
        """The test-time search with energy weight ``lambda_egy`` (method 6.2)."""
        return SearchSettings(generator=self.generator, tau=self.tau, T=self.T, lr=self.lr,
                              lambda_cst=self.lambda_cst, lambda_egy=float(lambda_egy),
                              convergence="threshold", eps=self.adv_eps,
                              eps_strict=self.adv_eps_strict)

    def search_config(self, lambda_egy: float):
        """``search(lambda_egy).engine()``: the search module's config (imports torch)."""
        return self.search(lambda_egy).engine()
