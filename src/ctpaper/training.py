"""Counterfactual training (method 5) and the baseline (objective ``vanilla``).

``train(dataset, settings, objective, family, seed)`` returns the final model and its per-epoch log.
``settings`` is a ``ctpaper.settings.TrainSettings`` (Note 1 merged with Table 2, the CE step size
``ce_lr`` and the model keys; for BL its ``BaselineSettings``), or the equivalent plain dict
(``to_dict()``); an unknown or missing key raises TypeError. The optimiser is Adam with ``model_lr``
(``optimizer="sgd"``: plain SGD, as Figure 1 trains).

Per epoch (method 5.1): unless the objective is ``vanilla`` or the epoch is a burn-in epoch, the
epoch's CE data are generated once with the model at the start of the epoch (``ce_frequency: epoch``)
and split into contiguous chunks, chunk i going with the fixed, unshuffled batch i; with
``ce_frequency: batch`` each batch generates its own chunk with the current model. All randomness
(model init, factual draws, targets, x+ draws, REVISE samples) comes from one ``torch.Generator``
seeded with the training seed, in a fixed order, so a run is reproducible bit for bit and the
baseline does not depend on any CT-only setting.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, fields
from typing import Callable

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from ctpaper import names
from ctpaper.data.io import Dataset
from ctpaper.models import build_model
from ctpaper.runtime import UserError, progress
from ctpaper.search import SearchConfig, protect, search, target_logit
from ctpaper.settings import (BaselineSettings, SearchSettings, TrainSettings,  # noqa: F401
                              model_objective_family, model_settings)

log = logging.getLogger("ctpaper.training")

OBJECTIVES = ("full", "vanilla", "energy", "adversarial")
# CE-based terms of each objective (method 5.3); clf is always present.
TERMS = {"full": ("div", "reg", "adv"), "vanilla": (), "energy": ("div", "reg"),
         "adversarial": ("adv",)}
LOG_COLUMNS = ["epoch", "train_acc", "val_acc", "loss_clf", "loss_div", "loss_reg", "loss_adv",
               "prop_mature", "mean_steps", "n_skipped", "skipped_share", "seconds"]


class TrainingFailed(UserError):
    """Training diverged (non-finite parameters, too many skipped updates, optimiser overflow):
    the model must not be evaluated or reported."""


@dataclass
class CEData:
    """The CE data of one epoch (or one batch): all constants (method 5.2)."""

    x_ce: Tensor           # CE, or x+ where immature
    x_plus: Tensor         # protected x+
    x_adv: Tensor          # nascent adversarial example
    target: Tensor         # t
    adv_label: Tensor      # a (prediction at generation time, or true label)
    mature: Tensor         # maturity under ``settings["maturity"]``
    steps: Tensor          # search steps taken
    factual_index: Tensor  # rows of the training split
    plus_index: Tensor     # training row drawn as x+ (true label == target)
    x_cf: Tensor           # raw search output (before immature substitution)

    def __len__(self) -> int:
        return self.target.shape[0]

    def select(self, sel) -> "CEData":
        return CEData(*(getattr(self, f.name)[sel] for f in fields(self)))


def search_config(settings: dict) -> SearchConfig:
    """The training CE generator of ``settings`` (a ``TrainSettings`` dict; method 5.2 step 4)."""
    return SearchSettings.for_training(settings).engine()


def settings_dict(settings, objective: str) -> dict:
    """``settings`` (``TrainSettings``/``BaselineSettings`` or a dict of either) as a checked plain
    dict: TypeError naming an unknown or missing key (``BaselineSettings`` suffices for vanilla)."""
    if isinstance(settings, (TrainSettings, BaselineSettings)):
        settings = settings.to_dict()
    typ = BaselineSettings if objective == "vanilla" and not set(settings) - set(
        BaselineSettings.field_names()) else TrainSettings
    return typ.from_dict(settings).to_dict()


class ClassSampler:
    """Draws, per target class, one training row uniformly among rows with that true label."""

    def __init__(self, y: Tensor, n_classes: int):
        self.order = torch.argsort(y, stable=True)
        self.counts = torch.bincount(y, minlength=n_classes)
        self.starts = torch.cumsum(self.counts, 0) - self.counts

    def draw(self, t: Tensor, generator: torch.Generator) -> Tensor:
        cnt = self.counts[t]
        if bool((cnt == 0).any()):
            missing = sorted(set(t[cnt == 0].tolist()))
            raise ValueError(f"no training rows with label(s) {missing} to draw x+ from")
        u = torch.rand(t.shape[0], generator=generator, dtype=torch.float64)
        pos = torch.minimum((u * cnt).long(), cnt - 1)
        return self.order[self.starts[t] + pos]


def generate_ces(model, X: Tensor, y: Tensor, n: int, settings: dict, cfg: SearchConfig,
                 lower: Tensor, upper: Tensor, mutability: Tensor | None, sampler: ClassSampler,
                 n_classes: int, generator: torch.Generator, vae=None) -> CEData:
    """Method 5.2 steps 1-8 for ``n`` factuals (the caller applies nce = max(nce, n_batches))."""
    n = min(int(n), X.shape[0])
    idx = torch.randperm(X.shape[0], generator=generator)[:n]          # without replacement
    x0 = X[idx]
    with torch.no_grad():
        yhat = model(x0).argmax(1)
    t = (yhat + torch.randint(1, n_classes, (n,), generator=generator)) % n_classes
    a = yhat if settings["adv_label"] == "predicted" else y[idx]
    res = search(model, x0, t, cfg, lower, upper, mutability=mutability, generator=generator,
                 vae=vae)
    return finish_ces(X, idx, t, a, res, settings, cfg, mutability, sampler, generator)


def finish_ces(X: Tensor, idx: Tensor, t: Tensor, a: Tensor, res, settings: dict, cfg: SearchConfig,
               mutability: Tensor | None, sampler: ClassSampler, generator: torch.Generator) -> CEData:
    """Method 5.2 steps 5-7 after the search ``res`` of the factuals ``X[idx]``: draw x+, decide
    maturity, substitute x+ for immature CEs, protect x+."""
    plus_index = sampler.draw(t, generator)
    x_plus = X[plus_index]
    if settings["maturity"] == "threshold":
        mature = res.mature
    elif settings["maturity"] == "threshold_or_exhausted":
        mature = res.mature | (res.steps >= cfg.T)
    else:
        raise ValueError(f"unknown train.maturity {settings['maturity']!r}")
    x_ce = torch.where(mature[:, None], res.x_cf, x_plus)                   # immature -> x+
    x_plus = protect(x_plus, x_ce, mutability)
    return CEData(x_ce.detach(), x_plus.detach(), res.x_adv.detach(), t, a, mature, res.steps, idx,
                  plus_index, res.x_cf.detach())


def batch_loss(model, xb: Tensor, yb: Tensor, ce: CEData | None, objective: str,
               settings: dict) -> tuple[Tensor, dict[str, Tensor]]:
    """L = lambda_clf L_clf + lambda_div L_div + lambda_reg L_reg + lambda_adv L_adv (method 5.3).

    All model evaluations of the batch run as one forward pass over the concatenated inputs.
    Returns the loss and its (unweighted) terms.
    """
    terms = TERMS[objective] if ce is not None else ()
    need_pair = "div" in terms or "reg" in terms
    parts = [xb]
    if need_pair:
        parts += [ce.x_ce, ce.x_plus]
    if "adv" in terms:
        parts.append(ce.x_adv)
    logits = model(torch.cat(parts) if len(parts) > 1 else xb)
    nb = xb.shape[0]
    out = {"clf": F.cross_entropy(logits[:nb], yb)}
    loss = settings["lambda_clf"] * out["clf"]
    off = nb
    if need_pair:
        m = len(ce)
        z_ce = target_logit(logits[off:off + m], ce.target)
        z_pl = target_logit(logits[off + m:off + 2 * m], ce.target)
        off += 2 * m
        if "div" in terms:
            out["div"] = (z_ce - z_pl).mean()        # E(x+) - E(x_ce)
            loss = loss + settings["lambda_div"] * out["div"]
        if "reg" in terms:
            if settings["ridge_form"] == "sum_sq":
                out["reg"] = (z_pl * z_pl + z_ce * z_ce).mean()
            elif settings["ridge_form"] == "l2_norm":    # ||(E(x+), E(x_ce))||_2 per CE, averaged
                out["reg"] = torch.linalg.vector_norm(torch.stack([z_pl, z_ce], 1), dim=1).mean()
            else:
                raise ValueError(f"unknown train.ridge_form {settings['ridge_form']!r}")
            loss = loss + settings["lambda_reg"] * out["reg"]
    if "adv" in terms:
        out["adv"] = F.cross_entropy(logits[off:off + len(ce)], ce.adv_label)
        loss = loss + settings["lambda_adv"] * out["adv"]
    return loss, out


def _accuracy(model, X: Tensor, y: Tensor) -> float:
    if X.shape[0] == 0:
        return math.nan
    with torch.no_grad():
        return float((model(X).argmax(1) == y).float().mean())


OPTIMIZERS = ("adam", "sgd")


def _optimizer(model, settings: dict, kind: str):
    """The optimiser ``kind``: Adam (the paper's models) or plain SGD (Figure 1), both with step
    size ``model_lr``."""
    if kind == "sgd":
        return torch.optim.SGD(model.parameters(), lr=float(settings["model_lr"]))
    if kind != "adam":
        raise ValueError(f"unknown optimizer {kind!r}; known: {', '.join(OPTIMIZERS)}")
    return torch.optim.Adam(model.parameters(), lr=float(settings["model_lr"]), betas=(0.9, 0.999),
                            eps=1e-8)


def train(dataset: Dataset, settings: dict, objective: str, family: str, seed: int, *,
          vae=None,
          on_epoch_end: Callable[[int, torch.nn.Module, CEData | None], None] | None = None,
          max_skipped_share: float = 1.0, label: str | None = None, optimizer: str = "adam",
          ) -> tuple[torch.nn.Module, pd.DataFrame]:
    """Train one model (method 5); returns ``(model, log)`` with one log row per epoch.

    ``objective``: full | vanilla | energy | adversarial (vanilla = BL, no CE generation).
    ``family``: free | protected: mutability of the training search and of the x+ protection.
    ``vae``: the fitted VAE when ``settings["generator"] == "revise"``.
    ``on_epoch_end(epoch, model, ce)``: called after every epoch with that epoch's CE data (or None).
    ``optimizer``: adam (every model of the paper) | sgd (Figure 1; not a config setting).
    Health checks (``TrainingFailed``, naming ``label``, default the dataset, and the epoch): the
    parameters become non-finite, the optimiser step overflows, or more than ``max_skipped_share``
    of an epoch's updates are skipped for a non-finite loss.
    """
    where = label or f"dataset {dataset.name}"
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; known: {', '.join(OBJECTIVES)}")
    settings = settings_dict(settings, objective)
    g = torch.Generator().manual_seed(int(seed))
    X, y = dataset.X_train, dataset.y_train
    n, K = X.shape[0], dataset.n_classes
    model = build_model(settings["arch"], dataset.n_features, K, hidden=int(settings["hidden"]),
                        init=settings["init"], generator=g)
    opt = _optimizer(model, settings, optimizer)
    bs = int(settings["batch_size"])
    bounds = [(s, min(s + bs, n)) for s in range(0, n, bs)]          # fixed, unshuffled batches
    nb = len(bounds)
    n_epochs = int(settings["n_epochs"])
    uses_ces = objective != "vanilla"
    burnin_epochs = round(float(settings["burnin"]) * n_epochs) if uses_ces else 0
    if uses_ces:
        cfg = search_config(settings)
        if cfg.generator == "revise" and vae is None:
            raise ValueError("train.generator = revise needs the dataset's VAE")
        mut = dataset.mutability(family)
        mut = None if bool((mut == 0).all()) else mut
        lower, upper = dataset.lower, dataset.upper
        sampler = ClassSampler(y, K)
        nce = min(max(int(settings["nce"]), nb), n)
        sizes = chunk_sizes(nce, nb)
        per_batch = settings["ce_frequency"] == "batch"

        def gen(m: int) -> CEData:
            return generate_ces(model, X, y, m, settings, cfg, lower, upper, mut, sampler, K, g,
                                vae=vae)

    rows = []
    for epoch in progress(range(1, n_epochs + 1), "epoch", n_epochs):
        t0 = time.perf_counter()
        ce_epoch = uses_ces and epoch > burnin_epochs
        chunks: list[CEData | None] = [None] * nb
        generated: list[CEData] = []
        if ce_epoch and not per_batch:
            data = gen(nce)
            generated.append(data)
            chunks = [data.select(slice(s, s + m)) for s, m in zip(_offsets(sizes), sizes)]
        sums = {k: 0.0 for k in ("clf", "div", "reg", "adv")}
        counted = 0
        n_skipped = 0
        for b, (s, e) in enumerate(bounds):
            ce = chunks[b]
            if ce_epoch and per_batch:
                ce = gen(sizes[b])
                generated.append(ce)
            loss, parts = batch_loss(model, X[s:e], y[s:e], ce, objective, settings)
            if not bool(torch.isfinite(loss)):
                n_skipped += 1
                log.warning("epoch %d batch %d: non-finite loss %s, update skipped", epoch, b,
                            float(loss.detach()))
                continue
            _update(opt, loss, f"{where}: epoch {epoch} batch {b}", settings["model_lr"])
            counted += 1
            for k, v in parts.items():
                sums[k] += float(v.detach())
        present = {"clf"} | (set(TERMS[objective]) if ce_epoch else set())
        all_ces = _concat_ces(generated)
        row = _log_row(epoch, model, dataset, sums, counted, present, all_ces, n_skipped, nb)
        _check_health(model, epoch, n_skipped, nb, max_skipped_share, where)
        if on_epoch_end is not None:
            on_epoch_end(epoch, model, all_ces)
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
        if epoch == 1 or epoch == n_epochs or epoch % 10 == 0:
            log.info("epoch %d/%d train_acc=%.4f val_acc=%.4f loss_clf=%.4f prop_mature=%.3f "
                     "mean_steps=%.2f skipped=%d %.2fs", epoch, n_epochs, row["train_acc"],
                     row["val_acc"], row["loss_clf"], row["prop_mature"], row["mean_steps"],
                     n_skipped, row["seconds"])
    frame = pd.DataFrame(rows, columns=LOG_COLUMNS)
    frame["epoch"] = frame["epoch"].astype("int64")
    frame["n_skipped"] = frame["n_skipped"].astype("int64")
    model.eval()
    return model, frame


def _update(opt, loss: Tensor, where: str, model_lr: float) -> None:
    """One optimiser update on ``loss``; ``TrainingFailed`` (naming ``where``) when the step itself
    fails, e.g. an lr so large that Adam's step overflows float32."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    try:
        opt.step()
    except RuntimeError as err:
        raise TrainingFailed(f"{where}: the optimiser step failed ({err}); model.lr = {model_lr:g} "
                             f"is too large") from None


def _concat_ces(generated: list[CEData]) -> CEData | None:
    """The epoch's CE data in one (None when the epoch generated none)."""
    if not generated:
        return None
    if len(generated) == 1:
        return generated[0]
    return CEData(*(torch.cat([getattr(c, f.name) for c in generated]) for f in fields(CEData)))


def _log_row(epoch: int, model, dataset: Dataset, sums: dict, counted: int, present: set,
             all_ces: CEData | None, n_skipped: int, n_batches: int) -> dict:
    """The per-epoch log row of method 5.5 (without ``seconds``): accuracies, the mean loss terms
    over the counted updates (NaN for terms the epoch does not have), maturity, skipped updates."""
    row = {"epoch": epoch, "train_acc": _accuracy(model, dataset.X_train, dataset.y_train),
           "val_acc": _accuracy(model, dataset.X_val, dataset.y_val)}
    for k in ("clf", "div", "reg", "adv"):
        row[f"loss_{k}"] = sums[k] / counted if (k in present and counted) else math.nan
    row["prop_mature"] = float(all_ces.mature.float().mean()) if all_ces is not None else math.nan
    row["mean_steps"] = float(all_ces.steps.float().mean()) if all_ces is not None else math.nan
    row["n_skipped"] = n_skipped
    row["skipped_share"] = n_skipped / n_batches
    return row


def _check_health(model, epoch: int, n_skipped: int, n_batches: int, max_share: float,
                  where: str) -> None:
    """Fail loudly instead of reporting a diverged model (see ``train``)."""
    bad = [name for name, p in model.named_parameters() if not bool(torch.isfinite(p).all())]
    if bad:
        raise TrainingFailed(f"{where}: epoch {epoch}: model parameters became non-finite "
                             f"({', '.join(bad)}); training diverged, lower model.lr")
    if n_skipped / n_batches > max_share:
        raise TrainingFailed(f"{where}: epoch {epoch}: {n_skipped} of {n_batches} updates skipped "
                             f"for a non-finite loss ({n_skipped / n_batches:.0%}), more than "
                             f"train.max_skipped_share = {max_share:g}; training diverged, lower "
                             "model.lr")


def chunk_sizes(nce: int, n_batches: int) -> list[int]:
    """Sizes of the contiguous CE chunks (method 5.2 step 9): ``torch.tensor_split`` of 0..nce-1 into
    ``n_batches`` parts; the first nce mod n_batches chunks get one extra element."""
    return [len(c) for c in torch.tensor_split(torch.arange(nce), n_batches)]


def _offsets(sizes: list[int]) -> list[int]:
    out, acc = [], 0
    for m in sizes:
        out.append(acc)
        acc += m
    return out


# ---- the train_model rule -----------------------------------------------------------------------------
MODELS = names.ROLE_KEYS


def run_training(data_dir, dataset: str, seed: int, model_name: str, config: dict,
                 model_path, log_path, vae_path=None) -> None:
    """Train ``model_name`` (bl | ct_free | ct_protected) on a prepared dataset; write model + log."""
    from ctpaper.config_reads import reads_hash
    from ctpaper.data.io import load_dataset
    from ctpaper.models import model_spec, save_model
    from ctpaper.runtime import write_parquet
    from ctpaper.search import tune_allocator

    tune_allocator()
    ds = load_dataset(data_dir)
    if ds.name != dataset:
        raise ValueError(f"{data_dir} holds dataset {ds.name!r}, expected {dataset!r}")
    settings = model_settings(config, dataset, model_name)
    objective, family = model_objective_family(model_name, settings)
    vae = None
    if objective != "vanilla" and settings["generator"] == "revise":
        from ctpaper.vae import load_vae

        if vae_path is None:
            raise ValueError("train.generator = revise needs the dataset's VAE file")
        vae, _ = load_vae(vae_path)
    log.info("training %s/%s seed %d: objective=%s family=%s n_train=%d batches=%d", dataset,
             model_name, seed, objective, family, ds.X_train.shape[0],
             math.ceil(ds.X_train.shape[0] / settings["batch_size"]))
    model, frame = train(ds, settings, objective, family, seed, vae=vae,
                         max_skipped_share=float(config["train"]["max_skipped_share"]),
                         label=f"dataset {dataset}, model {model_name}, seed {seed}")
    spec = model_spec(settings["arch"], ds.n_features, ds.n_classes, hidden=settings["hidden"],
                      init=settings["init"], dataset=dataset, model=model_name,
                      objective=objective, family=family, seed=int(seed),
                      config_hash=reads_hash(config, "train_model",
                                             {"dataset": dataset, "model": model_name}),
                      settings=settings)
    save_model(model, model_path, spec)
    write_parquet(frame, log_path)
    last = frame.iloc[-1]
    log.info("done: train_acc=%.4f val_acc=%.4f prop_mature=%.3f total %.1fs", last["train_acc"],
             last["val_acc"], last["prop_mature"], frame["seconds"].sum())


def run_vae_training(data_dir, dataset: str, config: dict, out_path) -> None:
    """Fit REVISE's VAE on the training split of a prepared dataset (method 4.5)."""
    from ctpaper.config import section_hash
    from ctpaper.data.io import load_dataset
    from ctpaper.vae import save_vae, train_vae

    ds = load_dataset(data_dir)
    seed = int(config["seed"]["global"])
    vae, frame = train_vae(ds.X_train, seed=seed)
    log.info("VAE %s: final loss %.4f after %d epochs (%.1fs)", dataset, frame["loss"].iloc[-1],
             len(frame), frame["seconds"].sum())
    save_vae(vae, out_path, {"dataset": dataset, "seed": seed,
                             "config_hash": section_hash(config, ("seed",))})
