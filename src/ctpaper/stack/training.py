"""Counterfactual training (method 5) of a model stack: ``train_stack(dataset, members)``.

The members share the data set, the architecture (MLP, hidden size) and the batch schedule (fixed,
unshuffled batches of ``batch_size``); everything else is per member (``MemberSpec``): objective and
lambdas, generator (ECCo, Generic, REVISE), tau, T, nce, burn-in, number of epochs, initialisation,
family (mutability), model learning rate, and the random stream, which is
``torch.Generator().manual_seed(seed)`` drawn in exactly the order of ``ctpaper.training.train``
(init, then per epoch, or per batch for ``ce_frequency: batch``: factuals, targets, REVISE samples,
x+). A member therefore ends with the
parameters it gets when trained alone (tests/test_stack_training.py).

Per epoch: members past their last epoch stop; members in a CE epoch generate their CE data with one
stacked search (REVISE members with a second one through the shared VAE), the ``ce_frequency:
batch`` members instead before every batch, with the current parameters, one chunk each; every batch
is one stacked forward/backward over [x_b, x_ce, x+, x_adv] per member, chunks padded to the widest
member; a member whose loss is not finite skips its update (masked Adam step), the others step.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Sequence

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from ctpaper.data.io import Dataset
from ctpaper.models import MLP, build_model
from ctpaper.search import SearchConfig, SearchResult
from ctpaper.stack.adam import StackedAdam
from ctpaper.stack.mlp import StackedMLP, gemm_rows
from ctpaper.stack.revise import stacked_revise_search
from ctpaper.stack.search import stacked_search
from ctpaper.training import (LOG_COLUMNS, OBJECTIVES, TERMS, CEData, ClassSampler, _concat_ces,
                              _offsets, chunk_sizes, finish_ces, search_config)

log = logging.getLogger("ctpaper.stack")

LOSS_TERMS = ("clf", "div", "reg", "adv")
PAD_FILL = 0.5   # a member shares a stacked search only with members of at least half its rows
# Settings every member of a stack must share (the stacked program and batch schedule need them).
SHARED_SETTINGS = ("batch_size", "arch", "hidden", "ridge_form", "convergence", "adv_eps",
                   "adv_eps_strict")


@dataclass(frozen=True)
class MemberSpec:
    """One model of a stack: what ``ctpaper.training.train`` takes besides the data set."""

    settings: dict     # ctpaper.training.model_settings(config, dataset), possibly changed per cell
    objective: str     # full | vanilla | energy | adversarial
    family: str        # free | protected
    seed: int


@dataclass
class _Run:
    """Per-member training state and bookkeeping."""

    spec: MemberSpec
    generator: torch.Generator
    n_epochs: int
    burnin_epochs: int
    terms: tuple[str, ...]
    mutability: Tensor | None
    nce: int
    sizes: list[int]
    cfg: SearchConfig | None          # the training search (None for BL)
    rows: list[dict] = field(default_factory=list)

    @property
    def settings(self) -> dict:
        return self.spec.settings

    @property
    def per_batch(self) -> bool:
        """CEs generated before every batch with the current model (``ce_frequency: batch``)."""
        return bool(self.terms) and self.settings.get("ce_frequency", "epoch") == "batch"

    def ce_epoch(self, epoch: int) -> bool:
        return bool(self.terms) and epoch > self.burnin_epochs


def _check_members(members: Sequence[MemberSpec]) -> None:
    if not members:
        raise ValueError("a stack needs at least one member")
    for spec in members:
        if spec.objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {spec.objective!r}; known: {', '.join(OBJECTIVES)}")
        if spec.settings.get("arch", "mlp") != "mlp":
            raise ValueError("model stacks hold MLPs only (train other architectures with train())")
        if spec.objective != "vanilla" and spec.settings.get("ce_frequency", "epoch") not in (
                "epoch", "batch"):
            raise ValueError(f"unknown train.ce_frequency {spec.settings['ce_frequency']!r}")
    for key in SHARED_SETTINGS:
        values = {repr(spec.settings.get(key)) for spec in members}
        if len(values) > 1:
            raise ValueError(f"members of a stack must share {key}; got {sorted(values)}")


def _start(spec: MemberSpec, dataset: Dataset, n_batches: int) -> tuple[_Run, MLP]:
    """The member's generator and initial model (first draws of its stream, as in ``train``)."""
    s = spec.settings
    g = torch.Generator().manual_seed(int(spec.seed))
    model = build_model("mlp", dataset.n_features, dataset.n_classes, hidden=int(s.get("hidden", 32)),
                        init=s.get("init", "xavier_zeros"), generator=g)
    n = dataset.X_train.shape[0]
    n_epochs = int(s["n_epochs"])
    mut = dataset.mutability(spec.family)
    # BL settings (ctpaper.training.model_settings "bl") hold no CT key such as nce or ridge_form
    nce = min(max(int(s["nce"]) if TERMS[spec.objective] else 0, n_batches), n)
    run = _Run(spec, g, n_epochs, round(float(s.get("burnin", 0.0)) * n_epochs), TERMS[spec.objective],
               None if bool((mut == 0).all()) else mut, nce, chunk_sizes(nce, n_batches),
               search_config(s) if TERMS[spec.objective] else None)
    return run, model


def train_stack(dataset: Dataset, members: Sequence[MemberSpec], *, vae=None
                ) -> list[tuple[MLP, pd.DataFrame]]:
    """Train the members as one stack; returns ``(model, log)`` per member, as ``train`` does.

    ``vae``: the data set's fitted VAE, needed when a CT member uses the REVISE generator. The log's
    ``seconds`` is the member's share of the stack's epoch time (epoch time / running members).
    """
    _check_members(members)
    if vae is None and any(m.objective != "vanilla" and m.settings["generator"] == "revise"
                           for m in members):
        raise ValueError("train.generator = revise needs the dataset's VAE")
    X, y = dataset.X_train, dataset.y_train
    n = X.shape[0]
    bs = int(members[0].settings["batch_size"])
    bounds = [(s, min(s + bs, n)) for s in range(0, n, bs)]
    started = [_start(spec, dataset, len(bounds)) for spec in members]
    runs = [r for r, _ in started]
    net = StackedMLP.from_models([m for _, m in started])
    opt = StackedAdam([net.W1, net.b1, net.W2, net.b2],
                      lr=[float(r.settings["model_lr"]) for r in runs])
    sampler = ClassSampler(y, dataset.n_classes)
    for epoch in range(1, max(r.n_epochs for r in runs) + 1):
        t0 = time.perf_counter()
        running = [k for k, r in enumerate(runs) if epoch <= r.n_epochs]
        with_ces = [k for k in running if runs[k].ce_epoch(epoch)]
        ces = generate_stack_ces(net, runs, [k for k in with_ces if not runs[k].per_batch],
                                 dataset, sampler, vae)
        per_batch = _PerBatch(net, runs, [k for k in with_ces if runs[k].per_batch], dataset,
                              sampler, vae)
        sums, counted, skipped = _train_epoch(net, opt, runs, running, ces, per_batch, X, y, bounds,
                                              epoch)
        ces.update(per_batch.epoch_ces())
        _log_epoch(net, runs, running, ces, sums, counted, skipped, dataset, epoch,
                   time.perf_counter() - t0)
    out = []
    for k, r in enumerate(runs):
        frame = pd.DataFrame(r.rows, columns=LOG_COLUMNS)
        frame["epoch"] = frame["epoch"].astype("int64")
        frame["n_skipped"] = frame["n_skipped"].astype("int64")
        out.append((net.member(k).eval(), frame))
    return out


# ---- CE generation (method 5.2) -----------------------------------------------------------------
def _pad(rows: Sequence[Tensor], width: int) -> Tensor:
    """Stack per-member (n_k, ...) tensors into (K, width, ...), zero-padded."""
    out = rows[0].new_zeros((len(rows), width, *rows[0].shape[1:]))
    for k, v in enumerate(rows):
        out[k, :v.shape[0]] = v
    return out


def generate_stack_ces(net: StackedMLP, runs: Sequence[_Run], ks: Sequence[int], dataset: Dataset,
                       sampler: ClassSampler, vae=None, counts: Sequence[int] | None = None
                       ) -> dict[int, CEData]:
    """CE data of members ``ks`` (method 5.2 steps 1-8), each from its own stream: ``counts[j]``
    factuals for member ``ks[j]`` (default: the member's nce, the whole epoch's CE data)."""
    if not ks:
        return {}
    X, y, C = dataset.X_train, dataset.y_train, dataset.n_classes
    if counts is None:
        counts = [runs[k].nce for k in ks]
    idx = [torch.randperm(X.shape[0], generator=runs[k].generator)[:m] for k, m in zip(ks, counts)]
    # the prediction pass of a few factuals per member stays on the gemm (stack.mlp.gemm_rows)
    width = max(max(len(i) for i in idx), gemm_rows(X.shape[1], net.W1.shape[1], C))
    members = torch.tensor(list(ks))
    x_factual = _pad([X[i] for i in idx], width)
    with torch.no_grad():
        yhat = net(x_factual, members).argmax(2)
    targets, labels = [], []
    for j, k in enumerate(ks):
        n_k = len(idx[j])
        t = (yhat[j, :n_k] + torch.randint(1, C, (n_k,), generator=runs[k].generator)) % C
        targets.append(t)
        labels.append(yhat[j, :n_k] if runs[k].settings["adv_label"] == "predicted" else y[idx[j]])
    results = _search_members(net, runs, ks, x_factual, _pad(targets, width), idx, dataset, vae)
    return {k: finish_ces(X, idx[j], targets[j], labels[j], results[j], runs[k].settings,
                          runs[k].cfg, runs[k].mutability, sampler,
                          runs[k].generator)
            for j, k in enumerate(ks)}


def _search_members(net: StackedMLP, runs, ks, x_factual: Tensor, target: Tensor, idx, dataset,
                    vae) -> list[SearchResult]:
    """Stacked searches for the Generic/ECCo and for the REVISE members, bucketed by row count."""
    cfgs = [runs[k].cfg for k in ks]
    results: list[SearchResult | None] = [None] * len(ks)
    for is_revise in (False, True):
        same_kind = [j for j in range(len(ks)) if (cfgs[j].generator == "revise") == is_revise]
        for group in width_buckets(same_kind, [len(idx[j]) for j in same_kind]):
            _search_group(net, runs, ks, group, x_factual, target, idx, cfgs, dataset, vae,
                          is_revise, results)
    return results


def width_buckets(items: list[int], widths: list[int], fill: float = PAD_FILL) -> list[list[int]]:
    """Split ``items`` into groups whose rows are padded to the group's widest member, so that
    every member fills at least ``fill`` of that width (e.g. nce 100 and 1000 never share a
    search: the narrow members would be 90% padding)."""
    order = sorted(range(len(items)), key=lambda i: -widths[i])
    groups: list[list[int]] = []
    for i in order:
        if not groups or widths[i] < fill * widths[groups[-1][0]]:
            groups.append([])
        groups[-1].append(i)
    return [[items[i] for i in sorted(g)] for g in groups]


def _search_group(net, runs, ks, group, x_factual, target, idx, cfgs, dataset, vae, is_revise,
                  results) -> None:
    """One stacked search for the members ``group`` (positions in ``ks``); fills ``results``."""
    width = max(len(idx[j]) for j in group)
    members = torch.tensor([ks[j] for j in group])
    sel = torch.tensor(group)
    valid = torch.zeros(len(group), width, dtype=torch.bool)
    for i, j in enumerate(group):
        valid[i, :len(idx[j])] = True

    view = net.weights(members)
    group_cfgs = [cfgs[j] for j in group]
    x_group, t_group = x_factual[sel, :width], target[sel, :width]
    if is_revise:
        res = stacked_revise_search(view, vae, x_group, t_group, valid, group_cfgs, dataset.lower,
                                    dataset.upper, [runs[ks[j]].generator for j in group])
    else:
        res = stacked_search(view, x_group, t_group, valid, group_cfgs, dataset.lower,
                             dataset.upper, mutability=[runs[ks[j]].mutability for j in group])
    for i, j in enumerate(group):
        n_k = len(idx[j])
        results[j] = SearchResult(res.x_cf[i, :n_k], res.x_adv[i, :n_k], res.mature[i, :n_k],
                                  res.steps[i, :n_k])


# ---- one epoch of updates (method 5.3, 5.4) -------------------------------------------------------
@dataclass
class Chunk:
    """The CE rows of one batch for K' members (method 5.2 step 9), padded to the widest member.

    ``mask`` (K', m) marks real rows (None: every member has m rows); ``count`` (K',) their number.
    ``lambdas[term]`` (K',) is the member's weight of the term, 0 where its objective or epoch lacks it.
    """

    x_ce: Tensor
    x_plus: Tensor
    x_adv: Tensor
    target: Tensor
    adv_label: Tensor
    mask: Tensor | None
    count: Tensor
    lambdas: dict[str, Tensor]
    has_pair: bool
    has_adv: bool


class _PerBatch:
    """The ``ce_frequency: batch`` members of an epoch: their chunk of batch b is generated just
    before batch b with the current parameters (one stacked search for all of them), as ``train``
    does, and the epoch's CE data (for the log) is the concatenation of their chunks."""

    def __init__(self, net: StackedMLP, runs: Sequence[_Run], ks: Sequence[int], dataset: Dataset,
                 sampler: ClassSampler, vae):
        self.net, self.runs, self.ks, self.dataset, self.sampler, self.vae = (
            net, runs, list(ks), dataset, sampler, vae)
        self.generated: dict[int, list[CEData]] = {k: [] for k in self.ks}

    def generate(self, b: int) -> dict[int, CEData]:
        """Batch b's chunk of every per-batch member."""
        fresh = generate_stack_ces(self.net, self.runs, self.ks, self.dataset, self.sampler,
                                   self.vae, counts=[self.runs[k].sizes[b] for k in self.ks])
        for k, data in fresh.items():
            self.generated[k].append(data)
        return fresh

    def epoch_ces(self) -> dict[int, CEData]:
        return {k: _concat_ces(chunks) for k, chunks in self.generated.items()}


class _EpochChunks:
    """The epoch's CE data of the running members laid out per batch (built once per epoch; the
    chunks of per-batch members (``pending``) are filled in batch by batch with ``place_batch``)."""

    def __init__(self, runs: Sequence[_Run], running: Sequence[int], ces: dict[int, CEData],
                 n_batches: int, D: int, pending: Sequence[int] = ()):
        has = set(ces) | set(pending)
        self.row = {k: i for i, k in enumerate(running)}
        self.sizes = [runs[k].sizes if k in has else [0] * n_batches for k in running]
        self.widths = [max(s[b] for s in self.sizes) for b in range(n_batches)]
        width = max(self.widths)
        K = len(running)
        self.grid = {name: torch.zeros(K, n_batches, width, *shape, dtype=dtype)
                     for name, shape, dtype in (("x_ce", (D,), torch.float32),
                                                ("x_plus", (D,), torch.float32),
                                                ("x_adv", (D,), torch.float32),
                                                ("target", (), torch.long),
                                                ("adv_label", (), torch.long))}
        self.valid = torch.zeros(K, n_batches, width, dtype=torch.bool)
        j = torch.arange(width)
        for i, k in enumerate(running):
            if k in has:
                self.valid[i] = j < torch.tensor(runs[k].sizes)[:, None]
            if k in ces:
                self._place(i, ces[k], runs[k].sizes)
        terms = [set(runs[k].terms) if k in has else set() for k in running]
        self.has_pair = any(t & {"div", "reg"} for t in terms)
        self.has_adv = any("adv" in t for t in terms)
        self.lambdas = {"clf": torch.tensor([float(runs[k].settings["lambda_clf"]) for k in running])}
        for term in ("div", "reg", "adv"):
            self.lambdas[term] = torch.tensor(
                [float(runs[k].settings[f"lambda_{term}"]) if term in t else 0.0
                 for k, t in zip(running, terms)])

    def _place(self, i: int, data: CEData, sizes: list[int]) -> None:
        """Chunk b of member i (rows offset_b .. offset_b + size_b - 1 of its CE data) -> grid[i, b]."""
        j = torch.arange(self.valid.shape[2])
        rows = (torch.tensor(_offsets(sizes))[:, None] + j).clamp(max=len(data) - 1)
        for name in self.grid:      # rows past a chunk's end repeat a real row (masked)
            self.grid[name][i] = getattr(data, name)[rows]

    def place_batch(self, b: int, fresh: dict[int, CEData]) -> None:
        """The chunks of batch b generated just now (member k -> its CE data) -> grid[., b]."""
        rows = torch.arange(self.valid.shape[2])
        for k, data in fresh.items():
            i = self.row[k]
            for name in self.grid:
                self.grid[name][i, b] = getattr(data, name)[rows.clamp(max=len(data) - 1)]

    def chunk(self, b: int) -> Chunk | None:
        if not (self.has_pair or self.has_adv):
            return None
        m = self.widths[b]
        counts = [s[b] for s in self.sizes]
        mask = None if all(c == m for c in counts) else self.valid[:, b, :m]
        v = {name: t[:, b, :m] for name, t in self.grid.items()}
        return Chunk(v["x_ce"], v["x_plus"], v["x_adv"], v["target"], v["adv_label"], mask,
                     torch.tensor(counts, dtype=torch.float32), self.lambdas, self.has_pair,
                     self.has_adv)


def _row_mean(v: Tensor, chunk: Chunk) -> Tensor:
    """Per-member mean over the member's real rows (0 for a member without rows)."""
    if chunk.mask is None:
        return v.mean(1)
    return torch.where(chunk.mask, v, 0.0).sum(1) / chunk.count.clamp(min=1.0)


def _cross_entropy_rows(logits: Tensor, labels: Tensor) -> Tensor:
    """Per-row softmax cross-entropy of (K', m, C) logits."""
    K, m, C = logits.shape
    return F.cross_entropy(logits.reshape(K * m, C), labels.reshape(K * m),
                           reduction="none").view(K, m)


def stacked_batch_loss(net: StackedMLP, xb: Tensor, yb: Tensor, chunk: Chunk | None,
                       members: Tensor | None, lambda_clf: Tensor, ridge_form: str
                       ) -> tuple[Tensor, dict[str, Tensor]]:
    """Per-member L = lambda_clf L_clf + lambda_div L_div + lambda_reg L_reg + lambda_adv L_adv
    (method 5.3), as ``ctpaper.training.batch_loss`` per member; one forward over the concatenated
    [x_b, x_ce, x+, x_adv] of every member. Returns L (K',) and the unweighted terms (K',)."""
    K, nb = lambda_clf.shape[0], xb.shape[0]
    parts = [xb.expand(K, *xb.shape)]
    if chunk is not None and chunk.has_pair:
        parts += [chunk.x_ce, chunk.x_plus]
    if chunk is not None and chunk.has_adv:
        parts.append(chunk.x_adv)
    logits = net(torch.cat(parts, 1) if len(parts) > 1 else parts[0].contiguous(), members)
    out = {"clf": _cross_entropy_rows(logits[:, :nb], yb.expand(K, nb)).mean(1)}
    loss = lambda_clf * out["clf"]
    if chunk is None:
        return loss, out
    off, m = nb, chunk.target.shape[1]
    lam = chunk.lambdas
    if chunk.has_pair:
        z_ce = logits[:, off:off + m].gather(2, chunk.target[:, :, None]).squeeze(2)
        z_pl = logits[:, off + m:off + 2 * m].gather(2, chunk.target[:, :, None]).squeeze(2)
        off += 2 * m
        out["div"] = _row_mean(z_ce - z_pl, chunk)          # E(x+) - E(x_ce)
        loss = loss + lam["div"] * out["div"]
        if ridge_form == "sum_sq":
            out["reg"] = _row_mean(z_pl * z_pl + z_ce * z_ce, chunk)
        elif ridge_form == "l2_norm":
            out["reg"] = _row_mean(torch.linalg.vector_norm(torch.stack([z_pl, z_ce], 2), dim=2),
                                   chunk)
        else:
            raise ValueError(f"unknown train.ridge_form {ridge_form!r}")
        loss = loss + lam["reg"] * out["reg"]
    if chunk.has_adv:
        out["adv"] = _row_mean(_cross_entropy_rows(logits[:, off:off + m], chunk.adv_label), chunk)
        loss = loss + lam["adv"] * out["adv"]
    return loss, out


def _train_epoch(net: StackedMLP, opt: StackedAdam, runs, running: list[int],
                 ces: dict[int, CEData], per_batch: _PerBatch, X: Tensor, y: Tensor, bounds,
                 epoch: int):
    """All batches of one epoch for the running members (the per-batch members' chunks generated
    before each batch); returns the per-member sums of the loss terms over counted batches
    (float64, as the Python sums of ``train``), counts and skips."""
    K = len(running)
    members = None if K == len(runs) else torch.tensor(running)
    chunks = _EpochChunks(runs, running, ces, len(bounds), X.shape[1], pending=per_batch.ks)
    ridge_form = next((runs[k].settings["ridge_form"] for k in running if runs[k].terms), None)
    sums = {t: torch.zeros(K, dtype=torch.float64) for t in LOSS_TERMS}
    counted = torch.zeros(K, dtype=torch.long)
    skipped = torch.zeros(K, dtype=torch.long)
    update = torch.zeros(len(runs), dtype=torch.bool)
    for b, (s, e) in enumerate(bounds):
        if per_batch.ks:
            chunks.place_batch(b, per_batch.generate(b))
        loss, parts = stacked_batch_loss(net, X[s:e], y[s:e], chunks.chunk(b), members,
                                         chunks.lambdas["clf"], ridge_form)
        finite = torch.isfinite(loss.detach())
        if not bool(finite.all()):
            for i in (~finite).nonzero().squeeze(1).tolist():
                log.warning("member %d epoch %d batch %d: non-finite loss %s, update skipped",
                            running[i], epoch, b, float(loss[i].detach()))
            skipped += ~finite
        opt.zero_grad()
        torch.where(finite, loss, 0.0).sum().backward()
        update[running] = finite
        opt.step(update)
        counted += finite
        for t, v in parts.items():
            sums[t] += torch.where(finite, v.detach(), 0.0).double()
    return sums, counted, skipped


# ---- per-epoch log (method 5.5) -------------------------------------------------------------------
def _accuracies(net: StackedMLP, X: Tensor, y: Tensor, members: Tensor | None, K: int) -> list[float]:
    if X.shape[0] == 0:
        return [math.nan] * K
    with torch.no_grad():
        pred = net(X.expand(K, *X.shape).contiguous(), members).argmax(2)
        return (pred == y).float().mean(1).tolist()


def _log_epoch(net, runs, running, ces, sums, counted, skipped, dataset, epoch, seconds) -> None:
    K = len(running)
    members = None if K == len(runs) else torch.tensor(running)
    train_acc = _accuracies(net, dataset.X_train, dataset.y_train, members, K)
    val_acc = _accuracies(net, dataset.X_val, dataset.y_val, members, K)
    for i, k in enumerate(running):
        r, data = runs[k], ces.get(k)
        present = {"clf"} | (set(r.terms) if k in ces else set())
        c = int(counted[i])
        row = {"epoch": epoch, "train_acc": train_acc[i], "val_acc": val_acc[i]}
        for t in LOSS_TERMS:
            row[f"loss_{t}"] = float(sums[t][i]) / c if (t in present and c) else math.nan
        row["prop_mature"] = float(data.mature.float().mean()) if data is not None else math.nan
        row["mean_steps"] = float(data.steps.float().mean()) if data is not None else math.nan
        row["n_skipped"] = int(skipped[i])
        row["seconds"] = seconds / K
        r.rows.append(row)
    if epoch == 1 or epoch % 10 == 0:
        log.info("stack epoch %d: %d members running, %d with CEs, %.2fs", epoch, K, len(ces), seconds)
