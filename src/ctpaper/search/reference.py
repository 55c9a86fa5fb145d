"""Reference implementation of the batched input-space search (method 4.2), as the paper reads.

The whole batch stays in every step; rows that have converged are frozen by a mask. Per step k:

    g   = grad_x' sum_i L_search_i(x'_i)                 (method 4.1; ``objective``)
    g   = 0 where non-finite; mutability bounds on the step dx = -eta g   (method 4.6)
    x'  = x' - eta g                                      (plain SGD on the state)
    one-hot blocks -> arg-max category; clamp to [LB, UB]  (method 4.6)
    x_adv = x' if ||x' - x||_inf <= eps                    (nascent AE, method 4.2)

``ctpaper.search.search`` (the fast path) computes exactly this, bit for bit
(tests/test_search_reference.py), on a working set that shrinks as rows converge.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ctpaper.search.loop import MaskedSearch, run_search
from ctpaper.search.method import (SearchConfig, SearchResult, _block_slices, domain_bounds, finite,
                                   gradient_bounds, log_p_target, objective, reconstruct_categoricals,
                                   sgd_step)


class InputSpaceSearch(MaskedSearch):
    """The search state x' lives in the model's input space (Generic and ECCo)."""

    def __init__(self, model, x_factual: Tensor, t: Tensor, cfg: SearchConfig, lower, upper,
                 mutability: Tensor | None = None,
                 categorical_blocks: Sequence[Sequence[int]] | None = None,
                 clamp_mask: Tensor | None = None, x_init: Tensor | None = None,
                 generator: torch.Generator | None = None):
        super().__init__(model, x_factual, t, cfg)
        d = x_factual.shape[1]
        self.lb, self.ub = domain_bounds(lower, upper, clamp_mask, d, x_factual)
        self.g_bounds = gradient_bounds(mutability, d, x_factual)
        self.blocks = _block_slices(categorical_blocks)
        if generator is None:
            generator = torch.Generator().manual_seed(0)
        self.generator = generator
        self.x_prime = (x_factual if x_init is None else x_init.detach().to(x_factual)).clone()
        if x_init is not None:          # x'_0 = x_init is itself a candidate nascent AE
            self.track_adversarial()

    def forward(self) -> tuple[Tensor, Tensor, Tensor]:
        """(x', M(x'), log p_t(x')) with x' a fresh leaf of the autograd graph."""
        leaf = self.x_prime.detach().requires_grad_(True)
        logits = self.model(leaf)
        self._leaf = leaf
        return leaf, logits, log_p_target(logits, self.t)

    def loss(self, logits: Tensor, log_p_t: Tensor, k: int) -> Tensor:
        """sum_i L_search_i: summing keeps the samples' gradients independent."""
        return objective(logits, log_p_t, self._leaf, self.x_factual, self.t, self.cfg, k).sum()

    def step(self, g: Tensor, k: int) -> None:
        """One constrained SGD step of the searching rows; finished rows keep their state."""
        g = finite(g)
        if self.g_bounds is not None:
            g = g.clamp(*self.g_bounds)
        x_next = sgd_step(self.x_prime, g, float(self.cfg.lr))
        if self.blocks:
            reconstruct_categoricals(x_next, self.blocks, self.generator, rows=self.searching)
        x_next = x_next.clamp(self.lb, self.ub)
        self.x_prime = torch.where(self.searching[:, None], x_next, self.x_prime)
        self.track_adversarial()


def reference_search(model, x_factual: Tensor, t: Tensor, cfg: SearchConfig, lower, upper,
                     mutability: Tensor | None = None,
                     categorical_blocks: Sequence[Sequence[int]] | None = None,
                     clamp_mask: Tensor | None = None, x_init: Tensor | None = None,
                     generator: torch.Generator | None = None) -> SearchResult:
    """The batched Generic/ECCo search of method 4.2 for factuals ``x_factual`` (n, D) towards
    targets ``t`` (n,); arguments as ``ctpaper.search.search``."""
    if cfg.generator == "revise":
        raise ValueError("the reference covers the input-space generators; REVISE: revise_search")
    x_factual, t = x_factual.detach(), t.detach().long()
    return run_search(InputSpaceSearch(model, x_factual, t, cfg, lower, upper, mutability,
                                       categorical_blocks, clamp_mask, x_init, generator), cfg)
