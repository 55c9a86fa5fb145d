"""REVISE (method 4.5) over a model stack: the members share the data set's VAE.

``stacked_revise_search`` computes per member what ``ctpaper.search.revise_search`` computes for it
alone: the latent state z of every member's rows is decoded and encoded by the one VAE in a single
pass, the classifier step is one stacked forward/backward, and each member draws its latent samples
from its own generator, with the shape and at the iterations of its own search (a member draws
while it still has active rows and budget), so its stream stays the same as alone.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ctpaper.search import SearchConfig, _bounds
from ctpaper.stack.search import StackSearchResult, _check, _Members, _WorkingSet


def _sample_latent(vae, x: Tensor, n_rows: Sequence[int], generators: Sequence[torch.Generator],
                   drawing: Sequence[bool]) -> Tensor:
    """z ~ q(z|x) per row of (K, N, D) ``x``; member k draws N(0, I) noise for its first
    ``n_rows[k]`` rows from ``generators[k]`` when ``drawing[k]`` (otherwise the rows are unused)."""
    mu, log_sigma = vae.encode(x)
    noise = torch.zeros_like(mu)
    for k, (n_k, g) in enumerate(zip(n_rows, generators)):
        if drawing[k]:
            noise[k, :n_k] = torch.randn((n_k, mu.shape[2]), generator=g, dtype=mu.dtype)
    return mu + log_sigma.exp() * noise


def stacked_revise_search(net, vae, x: Tensor, target: Tensor, valid: Tensor,
                          cfgs: Sequence[SearchConfig], lower, upper,
                          generators: Sequence[torch.Generator]) -> StackSearchResult:
    """REVISE searches of K members (factuals ``x`` (K, N, D), ``valid`` (K, N) real rows, member
    k's rows first); ``generators[k]`` is member k's stream."""
    x, target = x.detach(), target.detach().long()
    K, N, D = x.shape
    s = _Members.from_configs([SearchConfig(**{**c.__dict__, "generator": "generic"})
                               for c in cfgs], None, D)
    lo, hi = _bounds(lower, upper, None, D, x)
    n_rows = valid.sum(1).tolist()
    ws = _WorkingSet(x, target, valid)
    steps = torch.zeros(K, N, dtype=torch.long)
    mature = torch.zeros(K, N, dtype=torch.bool)
    with torch.no_grad():
        z = _sample_latent(vae, x, n_rows, generators, [True] * K)
        x_prime = vae.decode(z)
        x_adv = torch.where(_within(x_prime - x, s)[:, :, None], x_prime, x)
    alive = valid.clone()
    neg_lr = s.neg_lr[:, None, None]
    with torch.enable_grad():
        for k in range(max(s.T) + 1):
            z_var = z.detach().requires_grad_(True)
            x_dec = vae.decode(z_var)
            logits = net(x_dec, None)
            with torch.no_grad():
                logp_t = logits.log_softmax(2).gather(2, target[:, :, None])
                alive = _check(alive, logp_t, k, s, ws, steps, mature)
            if not bool(alive.any()):
                break
            ce = -logits.log_softmax(2).gather(2, target[:, :, None])
            loss = ce.sum() + (s.lambda_cst[:, None, None] * (x_dec - x).abs()).sum()
            (g,) = torch.autograd.grad(loss, z_var)
            with torch.no_grad():
                dz = torch.nan_to_num(neg_lr * g, nan=0.0, posinf=0.0, neginf=0.0)
                dz.mul_(alive[:, :, None])
                x_clamped = vae.decode(z + dz).clamp_(lo, hi)
                z_new = _sample_latent(vae, x_clamped, n_rows, generators, alive.any(1).tolist())
                z = torch.where(alive[:, :, None], z_new, z)
                x_prime = torch.where(alive[:, :, None], vae.decode(z), x_prime)
                ok = alive & _within(x_prime - x, s)
                x_adv = torch.where(ok[:, :, None], x_prime, x_adv)
    return StackSearchResult(x_prime, x_adv, mature, steps)


def _within(d: Tensor, s: _Members) -> Tensor:
    linf = torch.maximum(d.amax(2), d.amin(2).neg())
    return linf < s.eps if s.eps_strict else linf <= s.eps
