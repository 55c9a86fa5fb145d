"""The batched CE search of method 4 over a model stack (Generic and ECCo members).

``stacked_search`` runs the searches of K members at once: member k searches its own factuals
``x[k]`` (padded to a common row count, ``valid`` marks real rows) with its own tau, step budget T,
step size, lambda_cst, ECCo energy weight (zero for Generic) and mutability. Every iteration is one
stacked forward and backward for all members. Per row it computes exactly what
``ctpaper.search.search`` computes for that member alone (same ops on the same values, so the same
steps, CEs and nascent AEs; tests/test_stack_search.py checks it):

* convergence check before the step (threshold), a member's rows stop at its own budget k = T_k,
  where the same forward serves the final check p_t >= tau;
* g = grad of the summed loss; + lambda_cst sign(x' - x) for k > 0; non-finite -> 0; mutability on the
  update; finished rows frozen; x' += -lr g; clamp; nascent-AE tracker.

Working-set compaction (the fast path): when a quarter of the working slots has finished, members
without active rows leave the stack and each remaining member's active rows move to the front, so the
row dimension shrinks to the widest remaining member. Results are identical with and without it.
REVISE members search in their VAE's latent space and use ``ctpaper.search.revise_search``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from ctpaper.search.fast import MIN_COMPACT_ROWS
from ctpaper.stack.mlp import MemberWeights, StackedMLP
from ctpaper.search import (ENERGY_QUAD, SearchConfig, _bounds, _scalar_bounds, energy_weight,
                            mutability_step_bounds)

COMPACT_FRACTION = 0.75   # compact once >= 25% of the working slots have finished


@dataclass
class StackSearchResult:
    """Per-member, per-row outputs (K, N, ...): as ``ctpaper.search.SearchResult``."""

    x_cf: Tensor
    x_adv: Tensor
    mature: Tensor
    steps: Tensor


@dataclass
class _Members:
    """Per-member search settings as tensors over the K members."""

    tau: Tensor          # (K,)
    T: list[int]
    neg_lr: Tensor       # (K,) -eta_ce
    lambda_cst: Tensor   # (K,)
    lambda_egy: list[float]   # 0 where the energy term is off (Generic, or ECCo with a = 0)
    eps: float
    eps_strict: bool
    threshold: bool
    g_bounds: tuple[Tensor, Tensor] | None   # (K, 1, D) bounds on g = -dx / lr (mutability)

    @classmethod
    def from_configs(cls, cfgs: Sequence[SearchConfig], mutability, n_features: int) -> "_Members":
        if any(c.generator not in ("ecco", "generic") for c in cfgs):
            raise ValueError("stacked_search runs Generic and ECCo members; REVISE uses revise_search")
        for name in ("eps", "eps_strict", "convergence"):
            if len({getattr(c, name) for c in cfgs}) > 1:
                raise ValueError(f"members of one stacked search must share {name}")
        lam_egy = [c.lambda_egy if c.generator == "ecco" else 0.0 for c in cfgs]
        return cls(tau=torch.tensor([float(c.tau) for c in cfgs]), T=[int(c.T) for c in cfgs],
                   neg_lr=torch.tensor([-float(c.lr) for c in cfgs]),
                   lambda_cst=torch.tensor([float(c.lambda_cst) for c in cfgs]),
                   lambda_egy=lam_egy, eps=float(cfgs[0].eps), eps_strict=bool(cfgs[0].eps_strict),
                   threshold=cfgs[0].convergence == "threshold",
                   g_bounds=_stacked_g_bounds(mutability, len(cfgs), n_features))

    def phi(self, k: int, members: list[int]) -> list[float]:
        """lambda_egy * phi_k per working member (method 4.4), 0 where the energy term is off."""
        return [self.lambda_egy[m] * energy_weight(k, self.T[m]) if self.lambda_egy[m] else 0.0
                for m in members]


def _stacked_g_bounds(mutability, K: int, D: int) -> tuple[Tensor, Tensor] | None:
    """Mutability (method 4.6) per member as bounds on g (the update is -lr g), shape (K, 1, D)."""
    if mutability is None:
        return None
    bounds = [mutability_step_bounds(m, D) for m in mutability]
    if all(b is None for b in bounds):
        return None
    inf = torch.full((D,), math.inf)
    lo = torch.stack([-inf if b is None else -b[1] for b in bounds])
    hi = torch.stack([inf if b is None else -b[0] for b in bounds])
    return lo[:, None, :], hi[:, None, :]


class _WorkingSet:
    """The rows still searching: members (K',), their rows (K', N') and the tensors of those rows,
    plus what the loop reads per working member (weights and settings as (K', 1[, 1]) columns,
    selected once per compaction instead of once per step)."""

    def __init__(self, x: Tensor, target: Tensor, valid: Tensor, s: _Members, weights=None):
        K, N, _ = x.shape
        self.extra: dict[str, Tensor] = {}   # further per-row state compacted alongside (REVISE z)
        self.extra_buffers: dict[str, Tensor] = {}   # per-search buffers in the full (K, N) layout
        self.members = torch.arange(K)
        self.rows = torch.arange(N).expand(K, N)
        self.live = valid.clone()            # rows owned by this working set (written back)
        self.x_prime = x.clone()
        self.x_factual, self.t = x, target
        self.x_adv = x.clone()
        self.d = torch.zeros_like(x)          # x' - x
        self.is_full = True                   # members and rows are the identity
        self.s, self.weights = s, weights
        # compaction keeps at least as many rows as the single search does (it never compacts below
        # MIN_COMPACT_ROWS, nor runs fewer rows than its factuals) and never fewer than the gemm
        # needs (mlp.gemm_rows): a few-row search stays bit-identical to the single one
        self.min_width = min(N, max(weights.gemm_rows, MIN_COMPACT_ROWS)) if weights is not None else 1
        self._select(None)

    def _select(self, keep: Tensor | None) -> None:
        """Per-member columns of the working members (``keep``: positions kept by a compaction)."""
        s, m = self.s, self.members
        self.t3 = self.t[:, :, None]
        self.tau = s.tau[m][:, None]
        self.T = torch.tensor(s.T)[m][:, None]
        self.lambda_cst = s.lambda_cst[m][:, None, None]
        self.any_cst = bool((self.lambda_cst > 0).any())
        neg_lr = s.neg_lr[m]
        self.neg_lr_col = neg_lr[:, None, None]
        self.neg_lr = float(neg_lr[0]) if bool((neg_lr == neg_lr[0]).all()) else neg_lr[:, None, None]
        self.g_bounds = None if s.g_bounds is None else (s.g_bounds[0][m], s.g_bounds[1][m])
        if self.weights is not None and keep is not None:
            self.weights = self.weights.take(keep)
        self.member_list = m.tolist()

    def write_back(self, x_cf: Tensor, x_adv: Tensor) -> None:
        m = self.members[:, None].expand_as(self.rows)[self.live]
        r = self.rows[self.live]
        x_cf[m, r] = self.x_prime[self.live]
        x_adv[m, r] = self.x_adv[self.live]

    def compact(self, alive: Tensor) -> Tensor:
        """Keep members with active rows, active rows first, width = most active rows; returns the
        new ``alive``."""
        counts = alive.sum(1)
        keep = (counts > 0).nonzero().squeeze(1)
        width = max(int(counts.max()), self.min_width)
        order = torch.argsort((~alive[keep]).to(torch.uint8), dim=1, stable=True)[:, :width]

        def take(v: Tensor) -> Tensor:
            v = v[keep]
            if v.dim() == 2:
                return v.gather(1, order)
            return v.gather(1, order[:, :, None].expand(-1, -1, v.shape[2]))

        self.members = self.members[keep]
        self.rows = take(self.rows)
        alive = take(alive)
        self.live = alive
        self.x_prime, self.x_factual, self.t = take(self.x_prime), take(self.x_factual), take(self.t)
        self.x_adv, self.d = take(self.x_adv), take(self.d)
        self.extra = {name: take(v) for name, v in self.extra.items()}
        self.is_full = False
        self._select(keep)
        return alive

    def worth_compacting(self, alive: Tensor) -> bool:
        counts = alive.sum(1)
        slots = int((counts > 0).sum()) * max(int(counts.max()), self.min_width)
        return slots <= COMPACT_FRACTION * alive.numel()


def member_weights(net) -> MemberWeights:
    """The weights of a ``StackedMLP`` (all members) or a ``MemberWeights`` as is."""
    if isinstance(net, MemberWeights):
        return net
    if isinstance(net, StackedMLP):
        return net.weights()
    raise TypeError(f"stacked searches take a StackedMLP or MemberWeights, not {type(net).__name__}")


def stacked_search(net, x: Tensor, target: Tensor, valid: Tensor, cfgs: Sequence[SearchConfig],
                   lower, upper, mutability: Sequence[Tensor | None] | None = None, *,
                   compact: bool = True) -> StackSearchResult:
    """Search CEs for the factuals ``x`` (K, N, D) towards ``target`` (K, N) of the K members of
    ``net`` (a ``StackedMLP`` or its ``MemberWeights``); ``cfgs[k]`` and ``mutability[k]`` are member
    k's settings, ``valid`` (K, N) marks the real rows (member k searches ``valid[k].sum()``
    factuals)."""
    x, target = x.detach(), target.detach().long()
    N = x.shape[1]
    rows = member_weights(net).gemm_rows
    if N < rows:   # a few factuals per member: pad with idle rows up to what the gemm needs
        res = stacked_search(net, _pad_rows(x, rows), _pad_rows(target, rows),
                             _pad_rows(valid, rows), cfgs, lower, upper, mutability,
                             compact=compact)
        return StackSearchResult(res.x_cf[:, :N], res.x_adv[:, :N], res.mature[:, :N],
                                 res.steps[:, :N])
    K, N, D = x.shape
    s = _Members.from_configs(cfgs, mutability, D)
    lo, hi = _bounds(lower, upper, None, D, x)
    clamp_to = _scalar_bounds(lo, hi) or (lo, hi)
    x_cf, x_adv = x.clone(), x.clone()
    steps = torch.zeros(K, N, dtype=torch.long)
    mature = torch.zeros(K, N, dtype=torch.bool)
    ws = _WorkingSet(x, target, valid, s, member_weights(net))
    alive = valid.clone()
    with torch.no_grad():
        for k in range(max(s.T) + 1):
            h, logits, logp, logp_t = _forward(ws)
            alive = _check(alive, logp_t, k, ws, steps, mature)
            if not bool(alive.any()):
                break
            g = _input_gradient(ws, h, logits, logp, k)
            _step(g, alive, k, ws, clamp_to)
            if compact and ws.worth_compacting(alive):
                ws.write_back(x_cf, x_adv)
                alive = ws.compact(alive)
        ws.write_back(x_cf, x_adv)
        virgin = valid & (steps == 0)     # stopped before the first step: the factual itself
        x_cf[virgin] = x[virgin]
        x_adv[virgin] = x[virgin]
    return StackSearchResult(x_cf, x_adv, mature, steps)


def _pad_rows(v: Tensor, n: int) -> Tensor:
    """``v`` (K, N, ...) zero-padded to n rows (False for masks; the padded rows never search)."""
    out = v.new_zeros((v.shape[0], n, *v.shape[2:]))
    out[:, :v.shape[1]] = v
    return out


def _forward(ws: _WorkingSet) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Hidden activations, logits, log-softmax and log p_t of the working rows."""
    w = ws.weights
    h = w.hidden(ws.x_prime)
    logits = w.logits(h)
    logp = logits.log_softmax(2)
    return h, logits, logp, logp.gather(2, ws.t3)


def _input_gradient(ws: _WorkingSet, h: Tensor, logits: Tensor, logp: Tensor, k: int) -> Tensor:
    """g = grad of sum_i [CE(M(x'_i), t_i) + lambda_egy pen_egy_k(x'_i)] w.r.t. x', by hand: the
    backward ops autograd runs for that loss (log-softmax backward, the energy term's chain rule in
    autograd's accumulation order, two bmm's and the ReLU mask), so g is bit-identical to
    ``torch.autograd.grad`` of it (and to ``ctpaper.search.search``); the L1 term is added in
    closed form by ``_step``."""
    w = ws.weights
    grad_logp = torch.zeros_like(logp).scatter_(2, ws.t3, -1.0)       # d(-sum log p_t)/d logp
    grad_logits = torch._log_softmax_backward_data(grad_logp, logp, 2, logp.dtype)
    phi = ws.s.phi(k, ws.member_list)
    if any(phi):   # loss += sum phi_k (e + Q e^2), e = -z_t: de = (phi + phi Q e) + phi e Q
        phi_t = torch.tensor(phi)[:, None, None]
        e = -logits.gather(2, ws.t3)
        de = (phi_t + phi_t * (e * ENERGY_QUAD)) + (phi_t * e) * ENERGY_QUAD
        grad_logits.scatter_add_(2, ws.t3, -de)
    grad_h = torch.bmm(grad_logits, w.W2)
    torch.ops.aten.threshold_backward.grad_input(grad_h, h, 0, grad_input=grad_h)   # ReLU
    return torch.bmm(grad_h, w.W1)


def forward_and_check(net, x_in: Tensor, alive: Tensor, k: int, s: _Members, ws: _WorkingSet,
                      steps: Tensor, mature: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Logits and log p_t of the inputs ``x_in`` of the working rows (through ``ws.weights``, with
    autograd if ``x_in`` requires it) and the convergence check before step k; returns (logits,
    log p_t, rows that take step k). ``net`` and ``s`` are unused (kept for callers)."""
    logits = ws.weights(x_in)
    logp_t = logits.log_softmax(2).gather(2, ws.t3)
    with torch.no_grad():
        alive = _check(alive, logp_t, k, ws, steps, mature)
    return logits, logp_t, alive


def _check(alive: Tensor, logp_t: Tensor, k: int, ws: _WorkingSet, steps: Tensor,
           mature: Tensor) -> Tensor:
    """Convergence check before step k (method 4.2) and each member's budget T: rows that stop now
    record k steps and their maturity; returns the rows that take step k."""
    p_t = logp_t.detach().exp().squeeze(2)
    in_budget = ws.T > k
    go_on = in_budget & (p_t < ws.tau) if ws.s.threshold else in_budget.expand_as(p_t)
    done = alive & ~go_on
    if bool(done.any()):
        m = ws.members[:, None].expand_as(ws.rows)[done]
        r = ws.rows[done]
        steps[m, r] = k
        if ws.s.threshold:   # converged: mature after >= 1 step; budget spent: final check p_t >= tau
            mature[m, r] = torch.where(in_budget, torch.tensor(k > 0), p_t >= ws.tau)[done]
        else:
            mature[m, r] = True
    return alive & go_on


def _step(g: Tensor, alive: Tensor, k: int, ws: _WorkingSet, clamp_to) -> None:
    """x' += -lr g with the L1 subgradient, non-finite -> 0, mutability and frozen finished rows;
    clamp; nascent-AE tracker (method 4.6, 4.7). In place on the working set."""
    if k > 0 and ws.any_cst:     # at k = 0, x' - x = 0: sign 0
        g.addcmul_(torch.sign(ws.d), ws.lambda_cst)
    torch.nan_to_num_(g, nan=0.0, posinf=0.0, neginf=0.0)
    if ws.g_bounds is not None:
        g.clamp_(ws.g_bounds[0], ws.g_bounds[1])
    g.mul_(alive[:, :, None])
    if isinstance(ws.neg_lr, float):
        ws.x_prime.add_(g, alpha=ws.neg_lr)
    else:
        ws.x_prime.addcmul_(g, ws.neg_lr)
    if isinstance(clamp_to[0], float):
        ws.x_prime.clamp_(*clamp_to)
    else:
        ws.x_prime.clamp_(clamp_to[0], clamp_to[1])
    torch.sub(ws.x_prime, ws.x_factual, out=ws.d)
    linf = torch.maximum(ws.d.amax(2), ws.d.amin(2).neg())
    s = ws.s
    ok = (linf < s.eps if s.eps_strict else linf <= s.eps) & alive
    torch.where(ok[:, :, None], ws.x_prime, ws.x_adv, out=ws.x_adv)
