"""The pipeline's one vocabulary: data sets, data-set kinds, model roles and families.

Every table, figure, directory, log and config lookup names data sets and models through this module
(it imports nothing heavier than the standard library, so the Snakefile can use it without torch).

* Data sets (``DATASETS``, in the row order of Table 1): the config name (``ls`` ... ``mnist``), the
  kind (``synthetic`` | ``tabular`` | ``image``; also the key of per-kind config sections such as
  ``eval.n_individuals``) and the label the paper prints.
* Families (``FAMILIES``): ``free`` (every feature mutable) and ``protected`` (method 2.7).
* Model roles (``ROLES``): ``bl`` (the baseline, objective ``vanilla``), ``ct_free`` and
  ``ct_protected`` (counterfactual training with ``train.objective``, published ``full``, in that
  family). A role's ``key`` names its directories and rule wildcards; ``tag`` is the identifier its
  results carry in the ``model`` column of the performance and IG files; ``label`` is its short name
  (``BL`` / ``CT``: the CE and robustness files compare the CT model of one family with BL under these
  labels); ``table_label``, ``text_label`` and ``legend_label`` are the names Table 4, the paper's
  prose and the figure legends print.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetName:
    """One data set: config name, kind and printed label."""

    name: str
    kind: str
    label: str


@dataclass(frozen=True)
class Kind:
    """A kind of data set; ``label`` as the paper's prose prints it, ``table_label`` as Table 2's
    evaluation-size column prints it."""

    name: str
    label: str
    table_label: str


@dataclass(frozen=True)
class Family:
    """A mutability family (method 2.7)."""

    name: str
    label: str


@dataclass(frozen=True)
class Role:
    """A model role of the pipeline (see the module docstring for the meaning of the names)."""

    key: str
    label: str
    tag: str
    family: str
    objective: str          # vanilla for BL; full = the CT objective (``train.objective``)
    colour: str             # Okabe-Ito (colour-blind safe)
    marker: str
    table_label: str        # Table 4's column headers
    text_label: str         # the paper's prose (markdown)
    legend_label: str       # figure legends

    @property
    def is_ct(self) -> bool:
        """Whether the role is trained with counterfactuals."""
        return self.objective != "vanilla"


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("synthetic", "synthetic", "synthetic"),
    Kind("tabular", "tabular", "tabular"),
    Kind("image", "image", "MNIST"),
)}

DATASETS: dict[str, DatasetName] = {d.name: d for d in (
    DatasetName("ls", "synthetic", "LS"),
    DatasetName("circ", "synthetic", "Circ"),
    DatasetName("moon", "synthetic", "Moon"),
    DatasetName("ol", "synthetic", "OL"),
    DatasetName("adult", "tabular", "Adult"),
    DatasetName("ch", "tabular", "CH"),
    DatasetName("credit", "tabular", "Cred"),
    DatasetName("gmsc", "tabular", "GMSC"),
    DatasetName("mnist", "image", "MNIST"),
)}

FAMILIES: dict[str, Family] = {f.name: f for f in (Family("free", "free"), Family("protected", "protected"))}

ROLES: dict[str, Role] = {r.key: r for r in (
    Role("bl", "BL", "BL", "free", "vanilla", "#0072B2", "s", "BL", "BL", "BL"),
    Role("ct_free", "CT", "CT_free", "free", "full", "#D55E00", "o", "CT (free)", "CT (`free`)",
         "CT (free)"),
    Role("ct_protected", "CT", "CT_protected", "protected", "full", "#009E73", "^", "CT (prot.)",
         "CT (`protected`)", "CT (protected)"),
)}

DATASET_NAMES: tuple[str, ...] = tuple(DATASETS)     # Table-1 row order
ROLE_KEYS: tuple[str, ...] = tuple(ROLES)
FAMILY_NAMES: tuple[str, ...] = tuple(FAMILIES)
LABELS: dict[str, str] = {d.name: d.label for d in DATASETS.values()}
BL = ROLES["bl"]


def datasets_of_kind(kind: str) -> tuple[str, ...]:
    """The data sets of ``kind``, in table order."""
    if kind not in KINDS:
        raise ValueError(f"unknown dataset kind {kind!r}; known: {', '.join(KINDS)}")
    return tuple(d.name for d in DATASETS.values() if d.kind == kind)


def dataset(name: str) -> DatasetName:
    """The entry of data set ``name``; ValueError naming the known ones otherwise."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}") from None


def role(key: str) -> Role:
    """The role ``key`` (bl | ct_free | ct_protected); ValueError naming the known ones otherwise."""
    try:
        return ROLES[key]
    except KeyError:
        raise ValueError(f"unknown model {key!r}; known: {', '.join(ROLES)}") from None


def ct_role(family: str) -> Role:
    """The CT role of ``family``."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
    return ROLES[f"ct_{family}"]


def role_of_tag(tag: str) -> Role:
    """The role whose results carry ``tag`` (BL | CT_free | CT_protected)."""
    for r in ROLES.values():
        if r.tag == tag:
            return r
    raise ValueError(f"unknown model tag {tag!r}; known: {', '.join(r.tag for r in ROLES.values())}")
