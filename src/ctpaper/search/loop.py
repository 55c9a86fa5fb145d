"""The loop of method 4.2, shared by every search (input space, fast path, REVISE latent space).

Per iteration k = 0..T-1: one forward pass of the current state; with ``threshold`` convergence the
rows with p_t(x') >= tau stop (before the step); the gradient of the **summed** per-sample loss is
taken w.r.t. the search state only (model parameters receive none), and the state takes one step.
A search is a state object with five methods (``forward``, ``converge``, ``loss``, ``step``,
``finish``); ``MaskedSearch`` holds the bookkeeping of a search over a fixed batch.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ctpaper.search.method import (SearchConfig, SearchResult, mature_at_budget, mature_at_convergence,
                                   still_searching, within_eps)


def run_search(search, cfg: SearchConfig) -> SearchResult:
    """Run ``search`` for at most ``cfg.T`` steps (method 4.2) and return its result."""
    threshold = cfg.convergence == "threshold"
    with torch.enable_grad():
        for k in range(cfg.T):
            leaf, logits, log_p_t = search.forward()
            if threshold:
                with torch.no_grad():
                    if not search.converge(k, still_searching(log_p_t, float(cfg.tau))):
                        return search.finish(k, converged=True)
            (g,) = torch.autograd.grad(search.loss(logits, log_p_t, k), leaf)
            with torch.no_grad():
                search.step(g, k)
    with torch.no_grad():
        return search.finish(cfg.T, converged=False)


class MaskedSearch:
    """Bookkeeping of a search over a fixed batch: ``searching`` marks the rows still searching;
    finished rows keep their state. Subclasses set ``x_prime`` (the CE state in input space) and
    implement ``forward``, ``loss`` and ``step``."""

    def __init__(self, model, x_factual: Tensor, t: Tensor, cfg: SearchConfig):
        n = x_factual.shape[0]
        self.model, self.x_factual, self.t, self.cfg = model, x_factual, t, cfg
        self.searching = torch.ones(n, dtype=torch.bool)
        self.steps = torch.zeros(n, dtype=torch.long)
        self.mature = torch.zeros(n, dtype=torch.bool)
        self.x_adv = x_factual.clone()
        self.x_prime = x_factual

    def converge(self, k: int, below_tau: Tensor) -> bool:
        """Rows reaching p_t >= tau before step k stop with k steps; True while any row searches."""
        stopped = self.searching & ~below_tau
        self.steps[stopped] = k
        self.mature[stopped] = mature_at_convergence(k)
        self.searching = self.searching & below_tau
        return bool(self.searching.any())

    def track_adversarial(self) -> None:
        """The nascent AE of a searching row is its latest state within eps of the factual."""
        ok = self.searching & within_eps(self.x_prime - self.x_factual, self.cfg)
        self.x_adv = torch.where(ok[:, None], self.x_prime, self.x_adv)

    def finish(self, n_steps: int, converged: bool) -> SearchResult:
        """Rows still searching after the budget took ``n_steps``; their maturity is the final check
        (max_iter convergence: every CE is mature)."""
        if not converged:
            s = self.searching
            self.steps[s] = n_steps
            if self.cfg.convergence == "threshold":
                self.mature[s] = mature_at_budget(self.model, self.x_prime[s], self.t[s],
                                                  float(self.cfg.tau))
            else:
                self.mature[:] = True
        return SearchResult(self.x_prime, self.x_adv, self.mature, self.steps)
