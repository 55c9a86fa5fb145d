"""The fast path of the input-space search: ``reference_search`` on a shrinking working set.

Same floating-point operations as ``ctpaper.search.reference`` (tests/test_search_reference.py checks
bit-identity; after a compaction the model runs on fewer rows, and a matrix-product kernel may round a
row differently for another batch size, so then the two agree to float32 rounding), arranged for
speed:
- **compaction**: once >= 25% of the working set has converged (and at least ``MIN_COMPACT_ROWS``
  rows still search), finished rows are written back and leave the working set;
- otherwise finished rows stay in it under the mask ``searching`` (their gradient is zeroed; clamping
  and one-hot reconstruction are idempotent on states that have taken a step, and ``untouched`` rows,
  which converged before their first step, are restored explicitly);
- the L1 subgradient is computed in closed form (sign(x' - x) into a reused buffer: fresh (n, D)
  allocations page-fault), the step and the mutability bounds work on the gradient in place;
- the nascent AE is tracked lazily: a row whose latest state lies within eps is only marked
  (``adv_current``); its state is copied to ``x_adv`` when it leaves the ball, leaves the working set
  or the search ends. Each step writes the new state into a second buffer (``spare``) so the
  previous one is still there when a row leaves (a whole-batch copy per step otherwise);
- ``tune_allocator`` keeps freed large blocks in the process.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ctpaper.search.method import (ENERGY_QUAD, SearchConfig, SearchResult, _block_slices, _linf,
                                   _scalar_bounds, _within, domain_bounds, ecco_schedule,
                                   energy_weight, gradient_bounds, log_p_target, mature_at_budget,
                                   mature_at_convergence, reconstruct_categoricals)

MIN_COMPACT_ROWS = 64     # never shrink the working set below this many rows (GEMM row results are
                          # batch-size independent only for non-tiny batches)
COMPACT_FRACTION = 0.75   # compact once >= 25% of the working set has finished


def tune_allocator() -> bool:
    """Keep freed large blocks in the process (glibc only) instead of returning them to the OS.

    The search allocates several (n, D) tensors per step; with glibc's defaults each of them is a
    fresh mmap whose pages fault in on first touch, which costs ~15% of a large search. Raising the
    mmap and trim thresholds lets malloc reuse the memory. Process-wide, harmless (peak memory is
    unchanged); returns False where it does not apply (non-glibc platforms).
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        ok = libc.mallopt(m_mmap_threshold, 32 * 1024 * 1024)
        ok &= libc.mallopt(m_trim_threshold, 1024 * 1024 * 1024)
        return bool(ok)
    except (OSError, AttributeError):
        return False


class CompactingSearch:
    """Input-space search state on a working set of the batch (the rows still searching, in batch
    order). ``batch_rows`` maps working rows to batch rows (None: identity); ``searching`` is None
    while every working row searches, else the mask of the rows that do."""

    def __init__(self, model, x_factual: Tensor, t: Tensor, cfg: SearchConfig, lower, upper,
                 mutability: Tensor | None, categorical_blocks: Sequence[Sequence[int]] | None,
                 clamp_mask: Tensor | None, x_init: Tensor | None,
                 generator: torch.Generator | None, compact: bool, track_adversarial: bool = True):
        n, d = x_factual.shape
        self.model, self.cfg, self.compact = model, cfg, compact
        self.lb, self.ub = domain_bounds(lower, upper, clamp_mask, d, x_factual)
        self.scalar_bounds = _scalar_bounds(self.lb, self.ub)
        self.g_bounds = gradient_bounds(mutability, d, x_factual)
        self.blocks = _block_slices(categorical_blocks)
        if self.blocks and generator is None:
            generator = torch.Generator().manual_seed(0)
        self.generator = generator
        a_egy, _ = ecco_schedule(cfg.T)
        self.use_energy = cfg.generator == "ecco" and a_egy > 0 and cfg.lambda_egy > 0
        self.l1_from_start = x_init is not None      # at k = 0, x' - x = 0 unless x'_0 = x_init
        # batch outputs; the working set aliases them until the first compaction
        self.out_x = (x_factual if x_init is None else x_init.detach().to(x_factual)).clone()
        self.track_adv = track_adversarial
        self.out_adv = x_factual.clone() if track_adversarial else None
        self.steps = torch.zeros(n, dtype=torch.long)
        self.mature = torch.zeros(n, dtype=torch.bool)
        self.batch_rows: Tensor | None = None
        self.x_prime, self.x_factual, self.t, self.x_adv = self.out_x, x_factual, t, self.out_adv
        self.delta = self.x_prime - self.x_factual    # x' - x: L1 subgradient and AE distance
        if x_init is not None and self.track_adv:     # x'_0 = x_init is itself a candidate nascent AE
            ok = _within(_linf(self.delta), float(cfg.eps), bool(cfg.eps_strict))
            self.x_adv[ok] = self.x_prime[ok]
        self.searching: Tensor | None = None
        self.untouched: tuple[Tensor, Tensor] | None = None
        self.keep: Tensor | None = None               # rows kept by a compaction in this iteration
        self.sign_buffer: Tensor | None = None
        self.adv_current: Tensor | None = None        # rows whose nascent AE is their current x'
        self.spare: Tensor | None = None              # the next step's state buffer (tracking AEs)

    def _rows(self, sel: Tensor) -> Tensor:
        return sel if self.batch_rows is None else self.batch_rows[sel]

    def forward(self) -> tuple[Tensor, Tensor, Tensor]:
        """(x', M(x'), log p_t(x')) of the working set, x' a fresh leaf."""
        leaf = self.x_prime.detach().requires_grad_(True)
        logits = self.model(leaf)
        return leaf, logits, log_p_target(logits, self.t)

    def converge(self, k: int, below_tau: Tensor) -> bool:
        """Record the rows that stop before step k; compact or mask; True while any row searches."""
        now = below_tau if self.searching is None else below_tau & self.searching
        stopped = ~now if self.searching is None else self.searching & ~now
        if bool(stopped.any()):
            r = self._rows(stopped)
            self.steps[r] = k
            self.mature[r] = mature_at_convergence(k)
        n_now, n_ws = int(now.sum()), now.numel()
        if n_now == 0:
            return False
        if n_now == n_ws:
            self.searching = None
        elif self.compact and n_now >= MIN_COMPACT_ROWS and n_now <= COMPACT_FRACTION * n_ws:
            self._compact(now)
        else:
            self.searching = now
            if k == 0:
                v = (~now).nonzero().squeeze(1)
                self.untouched = (v, self.x_prime[v].clone())
        return True

    def _compact(self, now: Tensor) -> None:
        """Write the finished rows back to the batch outputs and shrink the working set to ``now``."""
        keep = now.nonzero().squeeze(1)
        done = (~now).nonzero().squeeze(1)
        rd = self._rows(done)
        if self.x_prime is not self.out_x:            # (else the rows are already in place)
            self.out_x[rd] = self.x_prime[done]
        if self.track_adv:
            self._settle_adversarial(~now)
            if self.x_adv is not self.out_adv:
                self.out_adv[rd] = self.x_adv[done]
        self.batch_rows = keep if self.batch_rows is None else self.batch_rows[keep]
        old = self.x_prime
        self.x_prime, self.x_factual, self.t = self.x_prime[keep], self.x_factual[keep], self.t[keep]
        self.delta = self.delta[keep]
        if self.track_adv:
            self.x_adv = self.x_adv[keep]
            if self.adv_current is not None:
                self.adv_current = self.adv_current[keep]
            # the old state buffer becomes the spare unless it holds the batch outputs
            self.spare = old if old is not self.out_x else (
                self.spare if self.spare is not None and self.spare is not self.out_x else None)
        self.searching, self.untouched, self.keep = None, None, keep

    def loss(self, logits: Tensor, log_p_t: Tensor, k: int) -> Tensor:
        """sum_i [CE_i + lambda_egy phi_k (E_i + 0.001 E_i^2)] over the working set (the L1 term's
        subgradient is added in ``step``); rows compacted away in this iteration leave the sum."""
        if self.keep is not None:
            logits, log_p_t = logits[self.keep], log_p_t[self.keep]
        loss = -log_p_t.sum()
        if self.use_energy:
            e = -logits.gather(1, self.t[:, None])
            phi = self.cfg.lambda_egy * energy_weight(k, self.cfg.T)
            loss = loss + phi * (e + ENERGY_QUAD * e * e).sum()
        return loss

    def step(self, g: Tensor, k: int) -> None:
        """x' += -eta g, every rule expressed on g in place (non-finite -> 0, mutability bounds,
        finished rows -> 0); then one-hot reconstruction, clamping and the nascent-AE tracker."""
        if self.keep is not None:
            g, self.keep = g[self.keep], None
        if self.cfg.lambda_cst > 0 and (k > 0 or self.l1_from_start):   # sign(0) = 0 at k = 0
            if self.sign_buffer is None:
                self.sign_buffer = torch.empty_like(self.delta)
            sg = torch.sign(self.delta, out=self.sign_buffer[:self.delta.shape[0]])
            g.add_(sg, alpha=self.cfg.lambda_cst)     # d/dx' lambda_cst |x' - x|_1
        torch.nan_to_num_(g, nan=0.0, posinf=0.0, neginf=0.0)
        if self.g_bounds is not None:
            g.clamp_(*self.g_bounds)
        if self.searching is not None:
            g.mul_(self.searching[:, None])
        previous = None
        if self.track_adv:                            # x' - eta g into the spare buffer
            n = self.x_prime.shape[0]
            if self.spare is None or self.spare.shape[0] < n:
                self.spare = torch.empty_like(self.x_prime)
            previous = self.x_prime
            # the whole spare while the working set keeps its size: before the first compaction the
            # two buffers are the batch output and its twin, told apart by identity
            out = self.spare if self.spare.shape[0] == n else self.spare[:n]
            self.x_prime = torch.add(previous, g, alpha=-self.cfg.lr, out=out)
            self.spare = previous
        else:
            self.x_prime.add_(g, alpha=-self.cfg.lr)  # x_prime is our own copy (batch or working set)
        if self.blocks:
            reconstruct_categoricals(self.x_prime, self.blocks, self.generator, rows=self.searching)
        if self.scalar_bounds is not None:
            self.x_prime.clamp_(*self.scalar_bounds)
        else:
            self.x_prime.clamp_(self.lb, self.ub)
        if self.searching is not None and self.untouched is not None and self.untouched[0].numel():
            self.x_prime[self.untouched[0]] = self.untouched[1]
        self._track_adversarial(previous)

    def _track_adversarial(self, previous: Tensor | None) -> None:
        """delta = x' - x (the L1 subgradient's sign needs it) and, when tracked, the nascent AE: a
        searching row's latest state within eps of the factual. A marked row that is no longer
        within eps gets its ``previous`` state (the one it was marked at) copied to ``x_adv``."""
        torch.sub(self.x_prime, self.x_factual, out=self.delta)
        if not self.track_adv:
            return
        ok = _within(_linf(self.delta), float(self.cfg.eps), bool(self.cfg.eps_strict))
        if self.searching is not None:
            ok &= self.searching
        if self.adv_current is not None:
            left = (self.adv_current & ~ok).nonzero().squeeze(1)
            if left.numel():
                self.x_adv[left] = previous[left]
        self.adv_current = ok

    def _settle_adversarial(self, rows: Tensor | None = None) -> None:
        """Copy the current state of the marked rows (all, or those in the mask ``rows``) to
        ``x_adv``; they stay marked."""
        if self.adv_current is None:
            return
        sel = self.adv_current if rows is None else self.adv_current & rows
        idx = sel.nonzero().squeeze(1)
        if idx.numel():
            self.x_adv[idx] = self.x_prime[idx]

    def finish(self, n_steps: int, converged: bool) -> SearchResult:
        """Final check of the rows still searching after the budget; the batch outputs."""
        if self.track_adv:
            self._settle_adversarial()
        if not converged:
            act = (torch.ones(self.x_prime.shape[0], dtype=torch.bool) if self.searching is None
                   else self.searching)
            r = self._rows(act)
            self.steps[r] = n_steps
            if self.cfg.convergence == "threshold":
                self.mature[r] = mature_at_budget(self.model, self.x_prime[act], self.t[act],
                                                  float(self.cfg.tau))
            else:
                self.mature[:] = True
        if self.batch_rows is None:
            return SearchResult(self.x_prime, self.x_adv, self.mature, self.steps)
        self.out_x[self.batch_rows] = self.x_prime
        if self.track_adv:
            self.out_adv[self.batch_rows] = self.x_adv
        return SearchResult(self.out_x, self.out_adv, self.mature, self.steps)
