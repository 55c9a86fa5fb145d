"""The pieces of the counterfactual search of method 4, one function per idea.

Names follow the paper: ``x_factual`` (x), ``x_prime`` (the search state x'), ``t`` (target class),
``tau`` (decision threshold), ``lambda_cst`` / ``lambda_egy`` (cost and energy weights), ``eta`` (the
CE step size, ``SearchConfig.lr``), ``phi_k`` (the ECCo schedule). The reference loop
(``ctpaper.search.reference``) is these functions in order; the fast path (``ctpaper.search.fast``)
applies the same floating-point operations to a shrinking working set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from ctpaper.data.io import MUTABILITY_CODES

GENERATORS = ("ecco", "generic", "revise")
CONVERGENCE = ("threshold", "max_iter")
ENERGY_QUAD = 1e-3        # pen_egy = phi_k * (E + 0.001 * E^2)   (method 4.4)


@dataclass(frozen=True)
class SearchConfig:
    """Settings of one batched search (method 4). No defaults: the values come from the validated
    config (``ctpaper.settings.SearchSettings``), whose schema holds the only defaults."""

    generator: str                   # ecco | generic | revise
    tau: float                       # decision threshold p_t(x') >= tau
    T: int                           # step budget
    lr: float                        # eta_ce, plain SGD on the state
    lambda_cst: float                # L1 cost weight
    lambda_egy: float                # ECCo energy weight
    convergence: str                 # threshold | max_iter
    eps: float                       # nascent-AE radius (L-inf, model-input scale)
    eps_strict: bool                 # False: <= eps (published); True: < eps (paper text)

    def __post_init__(self):
        if self.generator not in GENERATORS:
            raise ValueError(f"unknown CE generator {self.generator!r}; known: {GENERATORS}")
        if self.convergence not in CONVERGENCE:
            raise ValueError(f"unknown convergence {self.convergence!r}; known: {CONVERGENCE}")
        if int(self.T) < 1:
            raise ValueError(f"T must be >= 1, got {self.T}")


@dataclass
class SearchResult:
    """Per-sample search outputs: final CE, nascent AE, maturity flag and number of steps taken."""

    x_cf: Tensor
    x_adv: Tensor | None   # None: not tracked (search(track_adversarial=False))
    mature: Tensor   # bool
    steps: Tensor    # int64


# ---- the objective (method 4.1, 4.4) ----------------------------------------------------------------
def target_logit(logits: Tensor, t: Tensor) -> Tensor:
    """M(x)[t] per row."""
    return logits.gather(1, t[:, None]).squeeze(1)


def log_p_target(logits: Tensor, t: Tensor) -> Tensor:
    """log p_t(x) = log_softmax(M(x))[t], shape (n, 1) (one forward serves the convergence check and
    the cross-entropy)."""
    return logits.log_softmax(1).gather(1, t[:, None])


def p_target(model, x: Tensor, t: Tensor) -> Tensor:
    """p_t(x) = softmax(M(x))[t] per row (computed as exp(log_softmax), exactly as in the search's
    convergence check)."""
    return log_p_target(model(x), t).squeeze(1).exp()


def energy(logits: Tensor, t: Tensor) -> Tensor:
    """E(x; t) = -M(x)[t] (method 1)."""
    return -target_logit(logits, t)


def ecco_schedule(T: int) -> tuple[float, int]:
    """(a, b) of the ECCo energy schedule: b = round(T / 25), a = b / 10 (method 4.4)."""
    b = round(T / 25)
    return b / 10, b


def energy_weight(k: int, T: int) -> float:
    """phi_k = a * (b + k + 1)^-0.9; zero for T < 13 (b = 0), so ECCo == Generic for T = 5."""
    a, b = ecco_schedule(T)
    return 0.0 if a == 0 else a * (b + k + 1) ** -0.9


def energy_penalty(logits: Tensor, t: Tensor, k: int, T: int) -> Tensor:
    """Per-sample pen_egy_k = phi_k * (E + 0.001 E^2)."""
    e = energy(logits, t)
    return energy_weight(k, T) * (e + ENERGY_QUAD * e * e)


def energy_coefficient(cfg: SearchConfig, k: int) -> float:
    """lambda_egy * phi_k at step k for ECCo, 0 for Generic and REVISE (one Python product, the
    factor the engine multiplies the summed energy term with)."""
    return cfg.lambda_egy * energy_weight(k, cfg.T) if cfg.generator == "ecco" else 0.0


def objective(logits: Tensor, log_p_t: Tensor, x_prime: Tensor, x_factual: Tensor, t: Tensor,
              cfg: SearchConfig, k: int) -> Tensor:
    """Per-sample L_search at step k (method 4.1):
    CE(M(x'), t) + lambda_cst ||x' - x||_1 + lambda_egy phi_k (E + 0.001 E^2), with CE = -log p_t."""
    loss = -log_p_t.squeeze(1) + cfg.lambda_cst * (x_prime - x_factual).abs().sum(1)
    c = energy_coefficient(cfg, k)
    if c != 0.0:
        e = energy(logits, t)
        loss = loss + c * (e + ENERGY_QUAD * e * e)
    return loss


def search_loss(model, x_prime: Tensor, x_factual: Tensor, t: Tensor, cfg: SearchConfig,
                k: int) -> Tensor:
    """Per-sample L_search of method 4.1 at state ``x_prime`` and step k."""
    logits = model(x_prime)
    return objective(logits, log_p_target(logits, t), x_prime, x_factual, t, cfg, k)


# ---- convergence and maturity (method 4.2, 4.7) -----------------------------------------------------
def still_searching(log_p_t: Tensor, tau: float) -> Tensor:
    """The convergence rule, checked before every step: a search goes on while p_t(x') < tau."""
    return log_p_t.detach().exp().squeeze(1) < tau


def mature_at_convergence(k: int) -> bool:
    """A search that converges before step k is mature iff it took a step (k > 0); a factual already
    classified as t with p_t >= tau yields an immature CE."""
    return k > 0


def mature_at_budget(model, x_prime: Tensor, t: Tensor, tau: float) -> Tensor:
    """After T steps without convergence, a CE is mature iff p_t(x') >= tau (final check)."""
    return p_target(model, x_prime, t) >= tau


# ---- the step and its constraints (method 4.2, 4.6) -------------------------------------------------
def finite(g: Tensor) -> Tensor:
    """A non-finite update entry is zeroed (dx non-finite <=> g non-finite)."""
    return torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0)


def mutability_step_bounds(mutability: Tensor | None, n_features: int
                           ) -> tuple[Tensor, Tensor] | None:
    """Per-feature [min, max] for an update dx (method 4.6): none -> [0, 0], increase -> [0, inf],
    decrease -> [-inf, 0], both -> unbounded. None if every feature is ``both``."""
    if mutability is None:
        return None
    m = torch.as_tensor(mutability).reshape(-1)
    if m.numel() != n_features:
        raise ValueError(f"mutability has {m.numel()} entries for {n_features} features")
    if bool((m == MUTABILITY_CODES["both"]).all()):
        return None
    inf = torch.full((n_features,), math.inf)
    lo, hi = -inf, inf.clone()
    none, inc, dec = (m == MUTABILITY_CODES[c] for c in ("none", "increase", "decrease"))
    lo[none | inc] = 0.0
    hi[none | dec] = 0.0
    return lo, hi


def gradient_bounds(mutability: Tensor | None, n_features: int, like: Tensor
                    ) -> tuple[Tensor, Tensor] | None:
    """Mutability as bounds on the gradient g of a step dx = -eta g: dx in [a, b] <=> g in [-b, -a]
    (the bounds are 0 or inf, so they need no scaling by eta)."""
    b = mutability_step_bounds(mutability, n_features)
    return None if b is None else ((-b[1]).to(like), (-b[0]).to(like))


def apply_mutability(dx: Tensor, mutability: Tensor | None) -> Tensor:
    """Mutability on an update (method 4.6); returns a new tensor."""
    b = mutability_step_bounds(mutability, dx.shape[1])
    return dx.clone() if b is None else torch.clamp(dx, b[0].to(dx), b[1].to(dx))


def sgd_step(x_prime: Tensor, g: Tensor, eta: float) -> Tensor:
    """x' - eta g, as one ``add(alpha=-eta)`` (the fused operation every path of the engine uses)."""
    return x_prime.add(g, alpha=-eta)


def protect(x_plus: Tensor, x_ce: Tensor, mutability: Tensor | None) -> Tensor:
    """Protect x+ against the CE per feature (method 5.2 step 7): none -> x_ce, increase ->
    max(x_ce, x+), decrease -> min(x_ce, x+)."""
    if mutability is None:
        return x_plus
    m = torch.as_tensor(mutability).reshape(1, -1)
    out = torch.where(m == MUTABILITY_CODES["none"], x_ce, x_plus)
    out = torch.where(m == MUTABILITY_CODES["increase"], torch.maximum(x_ce, x_plus), out)
    out = torch.where(m == MUTABILITY_CODES["decrease"], torch.minimum(x_ce, x_plus), out)
    return out


def _block_slices(blocks: Sequence[Sequence[int]] | None) -> list:
    """One-hot blocks of >= 2 columns as slices (contiguous) or index tensors."""
    out = []
    for cols in blocks or []:
        cols = [int(c) for c in cols]
        if len(cols) < 2:
            continue
        if cols == list(range(cols[0], cols[0] + len(cols))):
            out.append(slice(cols[0], cols[0] + len(cols)))
        else:
            out.append(torch.tensor(cols, dtype=torch.long))
    return out


def reconstruct_categoricals(x: Tensor, blocks: list, generator: torch.Generator,
                             rows: Tensor | None = None) -> None:
    """Set every one-hot block to its arg-max category, in place (method 4.6 step 3).

    Ties are broken uniformly at random with ``generator``; random numbers are drawn only for the tied
    rows (restricted to ``rows`` if given), so the stream does not depend on the batch composition.
    """
    for cols in blocks:
        v = x[:, cols]
        m = v.amax(1, keepdim=True)
        is_max = v == m
        choice = v.argmax(1)
        tied = is_max.sum(1) > 1
        if rows is not None:
            tied &= rows
        if bool(tied.any()):
            r = torch.rand(int(tied.sum()), v.shape[1], generator=generator)
            r = torch.where(is_max[tied], r, torch.full_like(r, -1.0))
            choice[tied] = r.argmax(1)
        onehot = torch.zeros_like(v)
        onehot.scatter_(1, choice[:, None], 1.0)
        x[:, cols] = onehot


def _bounds(lower, upper, clamp_mask, n_features: int, like: Tensor) -> tuple[Tensor, Tensor]:
    """Per-feature domain bounds [LB, UB]; columns with ``clamp_mask`` False are unbounded."""
    lo = torch.as_tensor(lower, dtype=like.dtype).reshape(-1).expand(n_features).clone()
    hi = torch.as_tensor(upper, dtype=like.dtype).reshape(-1).expand(n_features).clone()
    if clamp_mask is not None:
        cm = torch.as_tensor(clamp_mask, dtype=torch.bool).reshape(-1)
        lo[~cm] = -math.inf
        hi[~cm] = math.inf
    return lo, hi


domain_bounds = _bounds


def _scalar_bounds(lo: Tensor, hi: Tensor) -> tuple[float, float] | None:
    """(lo, hi) as floats when every feature has the same bounds (scalar clamp is faster)."""
    if bool((lo == lo[0]).all()) and bool((hi == hi[0]).all()):
        return float(lo[0]), float(hi[0])
    return None


# ---- the nascent adversarial example (method 4.2) ---------------------------------------------------
def _linf(d: Tensor) -> Tensor:
    """Row-wise L-inf norm; max(max d, -min d) is exact and much faster than vector_norm(inf)."""
    return torch.maximum(d.amax(1), d.amin(1).neg())


def _within(dist: Tensor, eps: float, strict: bool) -> Tensor:
    return dist < eps if strict else dist <= eps


def within_eps(delta: Tensor, cfg: SearchConfig) -> Tensor:
    """Rows whose displacement x' - x lies in the eps ball (L-inf; <= eps, or < eps if strict): the
    nascent AE is the last such state of the search."""
    return _within(_linf(delta), float(cfg.eps), bool(cfg.eps_strict))
