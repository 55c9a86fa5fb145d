"""Batched counterfactual search (method 4), shared by training and evaluation.

One call runs the searches of many (factual, target) pairs as a single tensor program. Samples stay
independent because the gradient is taken of the **sum** of the per-sample losses (method 4.2), so
a batch of n searches gives the same counterfactuals and step counts as n single searches.

Modules (read them in this order):
- ``method``: the pieces of method 4, one function per idea (objective, convergence rule, maturity,
  mutability, one-hot reconstruction, clamping, nascent AE) and ``SearchConfig`` / ``SearchResult``;
- ``loop``: the loop of method 4.2, shared by every search, and the masked bookkeeping;
- ``reference``: the input-space search (Generic, ECCo) as the paper reads: the whole batch, masks;
- ``fast``: the same search, bit for bit, on a working set that shrinks as rows converge (what
  ``search`` runs);
- ``revise``: REVISE (method 4.5), the same loop on a VAE's latent state.
Model parameters never receive gradients: the gradient is taken w.r.t. the search state only.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ctpaper.search.fast import COMPACT_FRACTION, MIN_COMPACT_ROWS, CompactingSearch, tune_allocator
from ctpaper.search.loop import run_search
from ctpaper.search.method import (CONVERGENCE, ENERGY_QUAD, GENERATORS, SearchConfig, SearchResult,
                                   _bounds, _scalar_bounds, apply_mutability, ecco_schedule, energy,
                                   energy_penalty, energy_weight, mutability_step_bounds, objective,
                                   p_target, protect, reconstruct_categoricals, search_loss,
                                   target_logit)
from ctpaper.search.reference import reference_search
from ctpaper.search.revise import revise_search

__all__ = [
    "COMPACT_FRACTION", "CONVERGENCE", "ENERGY_QUAD", "GENERATORS", "MIN_COMPACT_ROWS",
    "CompactingSearch", "SearchConfig", "SearchResult", "_bounds", "_scalar_bounds",
    "apply_mutability", "ecco_schedule", "energy", "energy_penalty", "energy_weight",
    "mutability_step_bounds", "objective", "p_target", "protect", "reconstruct_categoricals",
    "reference_search", "revise_search", "search", "search_loss", "target_logit", "tune_allocator",
]


def search(model, x: Tensor, target: Tensor, cfg: SearchConfig, lower, upper,
           mutability: Tensor | None = None, categorical_blocks: Sequence[Sequence[int]] | None = None,
           clamp_mask: Tensor | None = None, x_init: Tensor | None = None,
           generator: torch.Generator | None = None, *, vae=None,
           compact: bool = True, track_adversarial: bool = True) -> SearchResult:
    """Run the batched CE search of method 4 for factuals ``x`` (n, D) towards ``target`` (n,).

    ``lower``/``upper``: domain bounds (D,) or scalars; ``mutability``: per-feature codes
    (``ctpaper.data.io.MUTABILITY_CODES``); ``categorical_blocks``: one-hot column blocks reconstructed
    after every step (test time only); ``clamp_mask``: bool (D,), False = column not clamped (one-hot
    columns at test time); ``x_init``: initial state instead of x (Figure 2); ``generator``: random
    tie-breaking (and REVISE sampling); ``vae``: required for ``cfg.generator == "revise"``;
    ``compact``: drop converged rows from the working set (identical results, faster);
    ``track_adversarial``: False skips the nascent AE (method 4.2; ``x_adv`` is then None), which
    only training uses: the other outputs are the same, and a test-time search is faster (REVISE
    tracks it regardless).
    """
    if cfg.generator == "revise":
        if vae is None:
            raise ValueError("the REVISE generator needs a fitted VAE (vae=...)")
        if x_init is not None or categorical_blocks:
            raise ValueError("REVISE supports neither x_init nor categorical blocks")
        return revise_search(model, vae, x, target, cfg, lower, upper, clamp_mask=clamp_mask,
                             generator=generator)
    x, target = x.detach(), target.detach().long()
    if x.shape[0] == 0:
        state = (x if x_init is None else x_init.detach().to(x)).clone()
        return SearchResult(state, x.clone() if track_adversarial else None,
                            torch.zeros(0, dtype=torch.bool),
                            torch.zeros(0, dtype=torch.long))
    return run_search(CompactingSearch(model, x, target, cfg, lower, upper, mutability,
                                       categorical_blocks, clamp_mask, x_init, generator, compact,
                                       track_adversarial),
                      cfg)
