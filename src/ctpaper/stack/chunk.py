"""A grid chunk: many models of one data set trained in one process, one model file and log each.

A chunk is a list of member specifications, each a dict ``{"name", "objective", "family", "seed",
"settings"}`` with the member's complete training settings (``ctpaper.training.model_settings`` of the
config with the grid cell's values), so a rule's params are exactly what its models depend on.

``mode``: ``stack`` trains members that can share a program (same batch size, architecture, ...;
``stack.training.SHARED_SETTINGS``) as model stacks; ``sequential`` trains them one after another
with ``ctpaper.training.train``; ``auto`` (default) stacks on the synthetic data sets and runs the
larger ones sequentially: one of their models already fills the arithmetic units (5000 x D rows per
search step), so there the gain is the process start and data loading paid once, not the stack
(bench/bench_stack.py measures both). The exception are tabular members with ``ce_frequency:
batch``: their searches run on one batch's share of nce (about 170 rows), where dispatch dominates
again and the stacked engine is faster than the single path even for one model (2 Adult members,
10 epochs: 8.3 s against 10.4 s; MNIST's 784 columns fill the units even then). Per-batch members
are stacks of one (``stack_groups``).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import pandas as pd

from ctpaper.data.io import Dataset
from ctpaper.stack.training import SHARED_SETTINGS, MemberSpec, train_stack
from ctpaper.training import settings_dict, train

log = logging.getLogger("ctpaper.stack")

MODES = ("auto", "stack", "sequential")


def member_spec(member: dict) -> MemberSpec:
    """The ``MemberSpec`` of one chunk entry."""
    missing = [k for k in ("name", "objective", "family", "seed", "settings") if k not in member]
    if missing:
        raise ValueError(f"chunk member {member.get('name', '?')!r} lacks {', '.join(missing)}")
    # checked against the settings types: an unknown or missing key raises TypeError naming it
    return MemberSpec(settings_dict(member["settings"], member["objective"]), member["objective"],
                      member["family"], int(member["seed"]))


def _stackable(spec: MemberSpec) -> bool:
    s = spec.settings
    return s.get("arch", "mlp") == "mlp"


def _per_batch(spec: MemberSpec) -> bool:
    return spec.objective != "vanilla" and spec.settings.get("ce_frequency", "epoch") == "batch"


def stack_groups(specs: Sequence[MemberSpec]) -> list[list[int]]:
    """Indices of members that share one stack (equal ``SHARED_SETTINGS``), in chunk order; a
    per-batch CT member is a stack of its own. A stack of one equals ``train`` bit for bit; in a
    stack of several, a member's few-row search can differ from its search alone in the last bit
    (measured: 1 of 60 LS searches of 1-75 rows; the cause is not pinned down, the stacked matrix
    products agree between stacks of one and two), and 100 epochs of per-batch feedback grow that
    into another model (LS, protected: final maturity 0.98 against 0.70 alone). Stacked together, 2 LS members would train in 14.0 s instead of 19.7 s
    (20 epochs); exactness is worth more."""
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, spec in enumerate(specs):
        key = tuple(repr(spec.settings.get(k)) for k in SHARED_SETTINGS)
        groups[key + ((i,) if _per_batch(spec) else ())].append(i)
    return list(groups.values())


def train_chunk(dataset: Dataset, specs: Sequence[MemberSpec], *, vae=None, mode: str = "auto"
                ) -> list[tuple]:
    """``(model, log)`` per member, in chunk order."""
    from ctpaper.config import dataset_kind

    if mode not in MODES:
        raise ValueError(f"unknown chunk mode {mode!r}; known: {', '.join(MODES)}")
    kind = dataset_kind(dataset.name)
    out: list[tuple | None] = [None] * len(specs)
    stackable = [i for i, s in enumerate(specs) if _stackable(s) and (
        mode == "stack" or (mode == "auto" and (kind == "synthetic" or (
            kind == "tabular" and _per_batch(s)))))]
    for group in stack_groups([specs[i] for i in stackable]):
        members = [stackable[j] for j in group]
        for i, result in zip(members, train_stack(dataset, [specs[i] for i in members], vae=vae)):
            out[i] = result
    for i, spec in enumerate(specs):
        if out[i] is None:
            out[i] = train(dataset, spec.settings, spec.objective, spec.family, spec.seed, vae=vae)
    return out


def run_chunk(data_dir, dataset: str, members: Sequence[dict], model_paths: Sequence,
              log_paths: Sequence, *, vae_path=None, mode: str = "auto") -> None:
    """Train a chunk on a prepared data set; write ``model_paths[i]`` (the model-file format of
    ``ctpaper.models.save_model``) and ``log_paths[i]`` (per-epoch log) for member i."""
    from ctpaper.config import config_hash
    from ctpaper.data.io import load_dataset
    from ctpaper.models import model_spec, save_model
    from ctpaper.runtime import write_parquet
    from ctpaper.search import tune_allocator

    if not (len(members) == len(model_paths) == len(log_paths)):
        raise ValueError(f"{len(members)} members, {len(model_paths)} model and {len(log_paths)} "
                         "log paths")
    tune_allocator()
    ds = load_dataset(data_dir)
    if ds.name != dataset:
        raise ValueError(f"{data_dir} holds dataset {ds.name!r}, expected {dataset!r}")
    specs = [member_spec(m) for m in members]
    vae = None
    if any(s.objective != "vanilla" and s.settings["generator"] == "revise" for s in specs):
        from ctpaper.vae import load_vae

        if vae_path is None:
            raise ValueError("a chunk with REVISE members needs the dataset's VAE file")
        vae, _ = load_vae(vae_path)
    t0 = time.perf_counter()
    results = train_chunk(ds, specs, vae=vae, mode=mode)
    for member, spec, (model, frame), model_path, log_path in zip(members, specs, results,
                                                                  model_paths, log_paths):
        s = spec.settings
        save_model(model, model_path, model_spec(
            s.get("arch", "mlp"), ds.n_features, ds.n_classes, hidden=s.get("hidden", 32), init=s.get("init"),
            dataset=dataset, model=member["name"], objective=spec.objective, family=spec.family,
            seed=spec.seed, config_hash=config_hash(s), settings=s))
        write_parquet(frame, log_path)
        _log_member(member["name"], frame)
    log.info("chunk of %d %s models trained in %.1f s", len(specs), dataset,
             time.perf_counter() - t0)


def _log_member(name: str, frame: pd.DataFrame) -> None:
    last = frame.iloc[-1]
    log.info("%s: train_acc=%.4f val_acc=%.4f prop_mature=%.3f", name, last["train_acc"],
             last["val_acc"], last["prop_mature"])


def read_chunk(path: str | Path) -> list[dict]:
    """A chunk file: a JSON list of member specifications."""
    import json

    return json.loads(Path(path).read_text())


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m ctpaper.stack.chunk DATA_DIR CHUNK_JSON OUT_DIR [--vae V] [--mode M]``: writes
    OUT_DIR/<name>/model.pt and log.parquet per member (one thread)."""
    import argparse

    import torch

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("data_dir")
    ap.add_argument("chunk")
    ap.add_argument("out_dir")
    ap.add_argument("--vae")
    ap.add_argument("--mode", default="auto", choices=MODES)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from ctpaper.data.io import load_meta

    members = read_chunk(args.chunk)
    out = Path(args.out_dir)
    run_chunk(args.data_dir, load_meta(args.data_dir)["dataset"], members,
              [out / m["name"] / "model.pt" for m in members],
              [out / m["name"] / "log.parquet" for m in members], vae_path=args.vae, mode=args.mode)


if __name__ == "__main__":
    main()
