"""The cells of the appendix grids (method 9), the models they need, and the training chunks.

A grid (``config["grids"][grid]``) crosses every value list of its ``vary`` mapping with the
objective {full, vanilla}. A ``full`` cell is one CT model (settings: ``grid_member_settings``); every
``vanilla`` cell is the data set's BL, which depends on no CT hyper-parameter and so is trained once
per data set (plus once per ``n_epochs`` value where a grid varies it, D.4). A model is identified by
the hash of what it is trained with (settings, objective, family, seed, data set), so a model shared
by several grids (e.g. the E.1 cells that equal E.2 cells, or all cells of the published E.2 grid,
whose step size was not applied) is trained once. The models of a data set are cut into chunks, one
``train_chunk`` job each (``ctpaper.stack.chunk``), of at most ``grids.chunk_size[kind]`` models.

No torch import: the workflow calls this module while it builds the DAG.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math

GRIDS = ("generator", "penalties", "other", "tune", "tune_lr", "tune_lr_applied")
OBJECTIVES = ("full", "vanilla")
FAMILY = "free"        # all grids are unconstrained (method 9)
# grid parameter -> field of the training settings (``ctpaper.settings.TrainSettings``); others: same name
SETTING_KEYS = {"eta_ce": "ce_lr"}
# grid parameters a BL model depends on (everything else is CT-only, method 9)
BL_PARAMETERS = ("n_epochs",)
# settings a stack shares (ctpaper.stack.training.SHARED_SETTINGS, repeated here: no torch import)
STACK_KEYS = ("batch_size", "arch", "hidden", "ridge_form", "convergence", "adv_eps", "adv_eps_strict")


def grid_ids(config: dict) -> list[str]:
    """The configured grids, in ``GRIDS`` order."""
    return [g for g in GRIDS if g in config.get("grids", {})]


def grid_datasets(config: dict, grid: str) -> list[str]:
    """The data sets of ``grid`` that the run includes (``datasets`` of the grid and of the config)."""
    return [d for d in config["grids"][grid]["datasets"] if d in config["datasets"]]


def grid_cells(config: dict, grid: str) -> list[dict]:
    """Every cell of ``grid``: ``{"values": {parameter: value}, "objective": full | vanilla}``, the
    product of the ``vary`` lists (in their order) and the objective (method 9's cell counts)."""
    vary = config["grids"][grid]["vary"]
    keys = list(vary)
    return [{"values": dict(zip(keys, combo)), "objective": objective}
            for combo in itertools.product(*(vary[k] for k in keys)) for objective in OBJECTIVES]


def _seed(config: dict) -> int:
    return int(config["train"]["seeds"][0])


def grid_member_settings(config: dict, grid: str, dataset: str, cell: dict) -> dict:
    """The complete training settings of the model of ``cell``: ``ctpaper.training.model_settings``
    (Note 1 merged with Table 2) with the Table-2 columns the grid does not take (``table2``) reset to
    Note 1, then the grid's ``fixed`` values, then the cell's values. BL (vanilla) takes only the
    varied values it depends on (n_epochs). ``eta_ce`` reaches the CE search only where the grid's
    ``apply_lr`` is true (method 9/10.1: the published E.2 grid did not apply it); lambda_egy is
    recorded as 0 where the search has no energy term (Generic, REVISE, ECCo with T = 5), so the
    cells that differ only by an inert lambda_egy share one model."""
    from ctpaper.settings import BaselineSettings, TrainSettings   # no torch: the DAG builds this

    spec = config["grids"][grid]
    values = cell["values"]
    if cell["objective"] == "vanilla":
        s = BaselineSettings.from_config(config, dataset).to_dict()
        s.update({k: values[k] for k in BL_PARAMETERS if k in values})
        return BaselineSettings.from_dict(s).to_dict()
    s = TrainSettings.from_config(config, dataset).to_dict()
    table2 = set(spec.get("table2", []))
    for key in config["train"].get("per_dataset", {}).get(dataset, {}):
        if key not in table2:
            s[key] = config["train"][key]
    s.update({SETTING_KEYS.get(k, k): v for k, v in spec.get("fixed", {}).items()})
    for key, value in values.items():
        if key == "eta_ce" and not spec.get("apply_lr", True):
            continue
        s[SETTING_KEYS.get(key, key)] = value
    if not energy_term_on(s):
        s["lambda_egy"] = 0.0   # inert (method 4.4, 9): one model for all lambda_egy of such cells
    return TrainSettings.from_dict(s).to_dict()    # TypeError naming a key that is not a setting


def energy_term_on(settings: dict) -> bool:
    """Whether lambda_egy reaches the training search: ECCo with a > 0, i.e. round(T / 25) > 0
    (``ctpaper.search.ecco_schedule``); Generic and REVISE have no energy term."""
    return settings["generator"] == "ecco" and round(int(settings["T"]) / 25) > 0


def member_name(dataset: str, member: dict) -> str:
    """The model's id: a hash of the data set and what the model is trained with."""
    blob = json.dumps({"dataset": dataset, **{k: member[k] for k in ("objective", "family", "seed",
                                                                     "settings")}},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def cell_member(config: dict, grid: str, dataset: str, cell: dict) -> dict:
    """The chunk member (``ctpaper.stack.chunk`` format) that trains the model of ``cell``."""
    member = {"objective": cell["objective"], "family": FAMILY, "seed": _seed(config),
              "settings": grid_member_settings(config, grid, dataset, cell)}
    return {"name": member_name(dataset, member), **member}


def grid_models(config: dict, grid: str, dataset: str) -> list[dict]:
    """The models of one grid and data set: ``{"model", "objective", "values", "member"}`` with the
    interface ids (``ct_0000``... in cell order; ``bl``, or ``bl_n_epochs50`` where BL depends on
    a varied value) and ``values`` (the cell's values; for BL only those it depends on, else None)."""
    out, seen_bl, n_ct = [], set(), 0
    for cell in grid_cells(config, grid):
        if cell["objective"] == "full":
            model, values = f"ct_{n_ct:04d}", dict(cell["values"])
            n_ct += 1
        else:
            own = {k: cell["values"][k] for k in BL_PARAMETERS if k in cell["values"]}
            model = "bl" + "".join(f"_{k}{v}" for k, v in own.items())
            if model in seen_bl:
                continue
            seen_bl.add(model)
            values = {k: own.get(k) for k in cell["values"]}
        out.append({"model": model, "objective": cell["objective"], "values": values,
                    "member": cell_member(config, grid, dataset, cell)})
    return out


def dataset_members(config: dict, dataset: str) -> list[dict]:
    """The distinct models of ``dataset`` over all grids (first appearance order)."""
    seen: dict[str, dict] = {}
    for grid in grid_ids(config):
        if dataset in grid_datasets(config, grid):
            for row in grid_models(config, grid, dataset):
                seen.setdefault(row["member"]["name"], row["member"])
    return list(seen.values())


def _needs_vae(member: dict) -> bool:
    return member["objective"] != "vanilla" and member["settings"]["generator"] == "revise"


def dataset_chunks(config: dict, dataset: str) -> list[dict]:
    """The training chunks of ``dataset``: ``{"id", "members", "vae"}``, the fewest chunks of at
    most ``grids.chunk_size[kind]`` members, of equal size, with members that can share a model stack
    (equal ``STACK_KEYS``: BL apart from CT) adjacent. The id hashes the member names, so a chunk is
    retrained only when its membership changes."""
    from ctpaper.config import dataset_kind

    size = int(config["grids"]["chunk_size"][dataset_kind(dataset)])
    members = dataset_members(config, dataset)
    keys = [tuple(repr(m["settings"].get(k)) for k in STACK_KEYS) for m in members]
    first = {k: i for i, k in reversed(list(enumerate(keys)))}
    members = [m for _, m in sorted(zip(keys, members), key=lambda km: first[km[0]])]
    n = math.ceil(len(members) / size)
    out = []
    for i in range(n):
        part = members[i * len(members) // n:(i + 1) * len(members) // n]
        cid = hashlib.sha256(" ".join(m["name"] for m in part).encode()).hexdigest()[:10]
        out.append({"id": f"c{cid}", "members": part, "vae": any(map(_needs_vae, part))})
    return out


def chunk_of(config: dict, dataset: str) -> dict[str, str]:
    """Member name -> chunk id, for ``dataset``."""
    return {m["name"]: c["id"] for c in dataset_chunks(config, dataset) for m in c["members"]}


def appendix_datasets(config: dict) -> list[str]:
    """The data sets any configured grid uses, in config order."""
    used = {d for g in grid_ids(config) for d in grid_datasets(config, g)}
    return [d for d in config["datasets"] if d in used]


def job_counts(config: dict) -> dict[str, int]:
    """The appendix's jobs per rule (``train_chunk``, ``evaluate_grid``, ``train_vae`` for REVISE
    members), for tests that check a DAG's job stats."""
    chunks = [c for d in appendix_datasets(config) for c in dataset_chunks(config, d)]
    vae = {d for d in appendix_datasets(config) if any(c["vae"] for c in dataset_chunks(config, d))}
    return {"train_chunk": len(chunks),
            "evaluate_grid": sum(len(grid_datasets(config, g)) for g in grid_ids(config)),
            "train_vae": len(vae)}
