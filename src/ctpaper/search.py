"""Batched counterfactual search (method 4), shared by training and evaluation.

One call runs the searches of many (factual, target) pairs as a single tensor program. Samples stay
independent because the gradient is taken of the **sum** of the per-sample losses (method 4.2), so
a batch of n searches gives the same counterfactuals and step counts as n single searches.

Loop (method 4.2, 4.6, 4.7), per iteration k = 0..T-1:
  convergence check p_t(x') < tau before the step (``threshold``; ``max_iter`` never stops early);
  g = grad of sum_i L_search_i; dx = -lr * g; non-finite dx -> 0; mutability on dx; inactive rows
  frozen; x' += dx; one-hot blocks -> arg-max (test time); clamp to [lower, upper] (except columns
  with ``clamp_mask`` False); nascent-AE tracker keeps the last state within ``eps`` (L-inf) of x.

Performance: one forward per iteration serves both the convergence check and the gradient, the L1
subgradient is computed in closed form, and rows that have converged are dropped from the working set
("compaction", when >= 25% of it has finished and at least ``MIN_COMPACT_ROWS`` rows remain active);
otherwise finished rows are masked. Both paths give identical results (checked by
bench/bench_engine.py and tests/test_search.py).
Model parameters never receive gradients: the gradient is taken w.r.t. the search state only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ctpaper.data.io import MUTABILITY_CODES

GENERATORS = ("ecco", "generic", "revise")
CONVERGENCE = ("threshold", "max_iter")
ENERGY_QUAD = 1e-3        # pen_egy = phi_k * (E + 0.001 * E^2)   (method 4.4)
MIN_COMPACT_ROWS = 64     # never shrink the working set below this many rows (GEMM row results are
                          # batch-size independent only for non-tiny batches)
COMPACT_FRACTION = 0.75   # compact once >= 25% of the working set has finished


@dataclass(frozen=True)
class SearchConfig:
    """Settings of one batched search (method 4)."""

    generator: str = "ecco"          # ecco | generic | revise
    tau: float = 0.75                # decision threshold p_t(x') >= tau
    T: int = 30                      # step budget
    lr: float = 0.1                  # eta_ce, plain SGD on the state
    lambda_cst: float = 0.001        # L1 cost weight
    lambda_egy: float = 5.0          # ECCo energy weight
    convergence: str = "threshold"   # threshold | max_iter
    eps: float = 0.3                 # nascent-AE radius (L-inf, model-input scale)
    eps_strict: bool = False         # False: <= eps (published); True: < eps (paper text)

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
    x_adv: Tensor
    mature: Tensor   # bool
    steps: Tensor    # int64


# ---- small helpers (also used by training, evaluation and tests) ------------------------------------
def p_target(model, x: Tensor, t: Tensor) -> Tensor:
    """p_t(x) = softmax(M(x))[t] per row (computed as exp(log_softmax), exactly as in the search's
    convergence check)."""
    return model(x).log_softmax(1).gather(1, t[:, None]).squeeze(1).exp()


def target_logit(logits: Tensor, t: Tensor) -> Tensor:
    """M(x)[t] per row."""
    return logits.gather(1, t[:, None]).squeeze(1)


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


def search_loss(model, x_state: Tensor, x: Tensor, t: Tensor, cfg: SearchConfig, k: int) -> Tensor:
    """Per-sample L_search of method 4.1 at step k (reference implementation; the engine uses an
    equivalent fused form)."""
    logits = model(x_state)
    loss = F.cross_entropy(logits, t, reduction="none") + cfg.lambda_cst * (x_state - x).abs().sum(1)
    if cfg.generator == "ecco":
        loss = loss + cfg.lambda_egy * energy_penalty(logits, t, k, cfg.T)
    return loss


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


def apply_mutability(dx: Tensor, mutability: Tensor | None) -> Tensor:
    """Mutability on an update (method 4.6); returns a new tensor."""
    b = mutability_step_bounds(mutability, dx.shape[1])
    return dx.clone() if b is None else torch.clamp(dx, b[0].to(dx), b[1].to(dx))


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
    lo = torch.as_tensor(lower, dtype=like.dtype).reshape(-1).expand(n_features).clone()
    hi = torch.as_tensor(upper, dtype=like.dtype).reshape(-1).expand(n_features).clone()
    if clamp_mask is not None:
        cm = torch.as_tensor(clamp_mask, dtype=torch.bool).reshape(-1)
        lo[~cm] = -math.inf
        hi[~cm] = math.inf
    return lo, hi


def _scalar_bounds(lo: Tensor, hi: Tensor) -> tuple[float, float] | None:
    """(lo, hi) as floats when every feature has the same bounds (scalar clamp is faster)."""
    if bool((lo == lo[0]).all()) and bool((hi == hi[0]).all()):
        return float(lo[0]), float(hi[0])
    return None


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


def _linf(d: Tensor) -> Tensor:
    """Row-wise L-inf norm; max(max d, -min d) is exact and much faster than vector_norm(inf)."""
    return torch.maximum(d.amax(1), d.amin(1).neg())


def _within(dist: Tensor, eps: float, strict: bool) -> Tensor:
    return dist < eps if strict else dist <= eps


# ---- the engine ---------------------------------------------------------------------------------------
def search(model, x: Tensor, target: Tensor, cfg: SearchConfig, lower, upper,
           mutability: Tensor | None = None, categorical_blocks: Sequence[Sequence[int]] | None = None,
           clamp_mask: Tensor | None = None, x_init: Tensor | None = None,
           generator: torch.Generator | None = None, *, vae=None,
           compact: bool = True) -> SearchResult:
    """Run the batched CE search of method 4 for factuals ``x`` (n, D) towards ``target`` (n,).

    ``lower``/``upper``: domain bounds (D,) or scalars; ``mutability``: per-feature codes
    (``ctpaper.data.io.MUTABILITY_CODES``); ``categorical_blocks``: one-hot column blocks reconstructed
    after every step (test time only); ``clamp_mask``: bool (D,), False = column not clamped (one-hot
    columns at test time); ``x_init``: initial state instead of x (Figure 2); ``generator``: random
    tie-breaking (and REVISE sampling); ``vae``: required for ``cfg.generator == "revise"``;
    ``compact``: drop converged rows from the working set (identical results, faster).
    """
    if cfg.generator == "revise":
        if vae is None:
            raise ValueError("the REVISE generator needs a fitted VAE (vae=...)")
        if x_init is not None or categorical_blocks:
            raise ValueError("REVISE supports neither x_init nor categorical blocks")
        return revise_search(model, vae, x, target, cfg, lower, upper, clamp_mask=clamp_mask,
                             generator=generator)
    x = x.detach()
    target = target.detach().long()
    n, d = x.shape
    lo, hi = _bounds(lower, upper, clamp_mask, d, x)
    scalar_bounds = _scalar_bounds(lo, hi)
    mut = mutability_step_bounds(mutability, d)
    if mut is not None:             # bounds on dx -> bounds on g = -dx / lr
        mut = ((-mut[1]).to(x), (-mut[0]).to(x))
    blocks = _block_slices(categorical_blocks)
    if blocks and generator is None:
        generator = torch.Generator().manual_seed(0)
    threshold = cfg.convergence == "threshold"
    a_egy, _ = ecco_schedule(cfg.T)
    use_egy = cfg.generator == "ecco" and a_egy > 0 and cfg.lambda_egy > 0
    use_cst = cfg.lambda_cst > 0
    tau, eps, strict = float(cfg.tau), float(cfg.eps), bool(cfg.eps_strict)

    state = (x if x_init is None else x_init.detach().to(x)).clone()
    x_adv = x.clone()
    steps = torch.zeros(n, dtype=torch.long)
    mature = torch.zeros(n, dtype=torch.bool)
    if n == 0:
        return SearchResult(state, x_adv, mature, steps)

    # Working set: rows still searching, in original order. ``alive`` is None while every working row
    # is active, else the mask of active rows (masked mode: finished rows get dx = 0; clamping and
    # one-hot reconstruction are idempotent on states that have taken a step, and rows that finished
    # before their first step ("virgin" rows) are restored explicitly, so finished rows stay frozen).
    idx = None                      # None = identity (no compaction yet)
    xa, x0a, ta = state, x, target
    adv_a = x_adv
    da = xa - x0a                   # current displacement: L1 subgradient and AE distance
    if x_init is not None:          # x'_0 = x_init is itself a candidate nascent AE
        ok = _within(_linf(da), eps, strict)
        adv_a[ok] = xa[ok]
    alive: Tensor | None = None
    virgin: tuple[Tensor, Tensor] | None = None
    keep: Tensor | None = None
    sign_buf: Tensor | None = None
    n_iter = 0
    finished_early = False

    def rows(sel: Tensor) -> Tensor:
        return sel if idx is None else idx[sel]

    with torch.enable_grad():
        for k in range(cfg.T):
            xv = xa.detach().requires_grad_(True)
            logits = model(xv)
            # log p_t serves the convergence check (p_t = exp) and the summed cross-entropy
            logp_t = logits.log_softmax(1).gather(1, ta[:, None])
            compacted = False
            if threshold:
                with torch.no_grad():
                    pt = logp_t.detach().exp().squeeze(1)
                    now = pt < tau
                    if alive is not None:
                        now &= alive
                    stopped = ~now if alive is None else alive & ~now
                    if bool(stopped.any()):
                        r = rows(stopped)
                        steps[r] = k
                        mature[r] = k > 0      # converged after >= 1 step; 0 steps: not mature
                    n_now, n_ws = int(now.sum()), now.numel()
                    if n_now == 0:
                        finished_early = True
                        break
                    if n_now == n_ws:
                        alive = None
                    elif (compact and n_now >= MIN_COMPACT_ROWS
                          and n_now <= COMPACT_FRACTION * n_ws):
                        # write finished rows back and shrink the working set
                        keep = now.nonzero().squeeze(1)
                        done = (~now).nonzero().squeeze(1)
                        rd = rows(done)
                        if xa is not state:          # (else the rows are already in place)
                            state[rd] = xa[done]
                        if adv_a is not x_adv:
                            x_adv[rd] = adv_a[done]
                        idx = keep if idx is None else idx[keep]
                        xa, x0a, ta = xa[keep], x0a[keep], ta[keep]
                        da, adv_a = da[keep], adv_a[keep]
                        alive, virgin, compacted = None, None, True
                    else:
                        alive = now
                        if k == 0:
                            v = (~now).nonzero().squeeze(1)
                            virgin = (v, xa[v].clone())
                if compacted:               # rows of finished samples leave the summed loss
                    logits, logp_t = logits[keep], logp_t[keep]
            # gradient of the summed per-sample loss w.r.t. the state only
            loss = -logp_t.sum()            # sum_i CE(M(x'_i), t_i)
            if use_egy:
                e = -logits.gather(1, ta[:, None])
                phi = cfg.lambda_egy * energy_weight(k, cfg.T)
                loss = loss + phi * (e + ENERGY_QUAD * e * e).sum()
            (g,) = torch.autograd.grad(loss, xv)
            with torch.no_grad():
                if compacted:
                    g = g[keep]
                if use_cst and (k > 0 or x_init is not None):   # at k = 0, x' - x = 0: sign 0
                    if sign_buf is None:        # reused: fresh (n, D) allocations page-fault
                        sign_buf = torch.empty_like(da)
                    sg = torch.sign(da, out=sign_buf[:da.shape[0]])
                    g.add_(sg, alpha=cfg.lambda_cst)   # d/dx' lambda |x' - x|_1
                # dx = -lr * g, applied as x' += (-lr) * g with every rule expressed on g (one pass
                # less): dx non-finite <=> g non-finite -> 0; dx in [a, b] <=> g in [-b/lr, -a/lr]
                # (mutability bounds are 0 or inf, so the negated bounds need no scaling)
                torch.nan_to_num_(g, nan=0.0, posinf=0.0, neginf=0.0)
                if mut is not None:
                    g.clamp_(mut[0], mut[1])
                if alive is not None:
                    g.mul_(alive[:, None])
                xa.add_(g, alpha=-cfg.lr)   # xa is our own copy (state or a compacted set)
                if blocks:
                    reconstruct_categoricals(xa, blocks, generator, rows=alive)
                if scalar_bounds is not None:
                    xa.clamp_(*scalar_bounds)
                else:
                    xa.clamp_(lo, hi)
                if alive is not None and virgin is not None and virgin[0].numel():
                    xa[virgin[0]] = virgin[1]
                torch.sub(xa, x0a, out=da)
                ok = _within(_linf(da), eps, strict)
                if alive is not None:
                    ok &= alive
                if bool(ok.all()):
                    adv_a.copy_(xa)
                elif bool(ok.any()):
                    torch.where(ok[:, None], xa, adv_a, out=adv_a)
            n_iter = k + 1

    with torch.no_grad():
        if not finished_early:
            # rows still active after the last step: final check (method 4.2)
            act = torch.ones(xa.shape[0], dtype=torch.bool) if alive is None else alive
            r = rows(act)
            steps[r] = n_iter
            if threshold:
                mature[r] = p_target(model, xa[act], ta[act]) >= tau
            else:
                mature[:] = True
        if idx is None:
            state, x_adv = xa, adv_a
        else:
            state[idx] = xa
            x_adv[idx] = adv_a
    return SearchResult(state, x_adv, mature, steps)


def revise_search(model, vae, x: Tensor, target: Tensor, cfg: SearchConfig, lower, upper,
                  clamp_mask: Tensor | None = None,
                  generator: torch.Generator | None = None) -> SearchResult:
    """REVISE (method 4.5): SGD on a latent state z of ``vae``; no mutability in latent space.

    z_0 ~ q(z|x); per step: z' = z + dz, x'' = clamp(dec(z'), LB, UB), z = fresh sample of
    q(z|x''), x' = dec(z). L_search = CE(M(dec(z)), t) + lambda_cst * ||dec(z) - x||_1.
    The nascent-AE tracker, convergence check and maturity are as in ``search``.
    """
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    x = x.detach()
    target = target.detach().long()
    n, d = x.shape
    lo, hi = _bounds(lower, upper, clamp_mask, d, x)
    threshold = cfg.convergence == "threshold"
    tau, eps, strict = float(cfg.tau), float(cfg.eps), bool(cfg.eps_strict)
    with torch.no_grad():
        z = vae.sample(x, generator)
        xs = vae.decode(z)
    x_adv = x.clone()
    ok = _within(_linf(xs - x), eps, strict)
    x_adv[ok] = xs[ok]
    steps = torch.zeros(n, dtype=torch.long)
    mature = torch.zeros(n, dtype=torch.bool)
    alive = torch.ones(n, dtype=torch.bool)
    n_iter, finished_early = 0, False
    with torch.enable_grad():
        for k in range(cfg.T):
            zv = z.detach().requires_grad_(True)
            xd = vae.decode(zv)
            logits = model(xd)
            if threshold:
                with torch.no_grad():
                    now = alive & (logits.detach().log_softmax(1).gather(1, target[:, None])
                                   .squeeze(1).exp() < tau)
                    stopped = alive & ~now
                    steps[stopped] = k
                    mature[stopped] = k > 0
                    alive = now
                if not bool(alive.any()):
                    finished_early = True
                    break
            loss = (F.cross_entropy(logits, target, reduction="sum")
                    + cfg.lambda_cst * (xd - x).abs().sum())
            (g,) = torch.autograd.grad(loss, zv)
            with torch.no_grad():
                dz = torch.nan_to_num(-cfg.lr * g, nan=0.0, posinf=0.0, neginf=0.0)
                dz[~alive] = 0.0
                x2 = vae.decode(z + dz).clamp_(lo, hi)
                z_new = vae.sample(x2, generator)
                z = torch.where(alive[:, None], z_new, z)
                xs = torch.where(alive[:, None], vae.decode(z), xs)
                ok = alive & _within(_linf(xs - x), eps,
                                     strict)
                x_adv[ok] = xs[ok]
            n_iter = k + 1
    with torch.no_grad():
        if not finished_early:
            steps[alive] = n_iter
            if threshold:
                mature[alive] = p_target(model, xs[alive], target[alive]) >= tau
            else:
                mature[:] = True
    return SearchResult(xs, x_adv, mature, steps)
