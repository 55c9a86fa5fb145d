"""REVISE (method 4.5) over a model stack: the members share the data set's VAE.

``stacked_revise_search`` computes per member what ``ctpaper.search.revise_search`` computes for it
alone: the latent states z of all members' rows are decoded and encoded by the one VAE in a single
pass, the classifier step is one stacked forward/backward, and each member draws its latent samples
from its own generator, with the shape and at the iterations of its own search (a member draws for
all its rows while it still has active rows within its budget), so its stream stays as alone.
Finished members and rows leave the working set as in ``stacked_search``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ctpaper.search import SearchConfig, _bounds
from ctpaper.stack.search import (StackSearchResult, _Members, _WorkingSet, forward_and_check,
                                  member_weights)


def _sample_latent(vae, x: Tensor, ws: _WorkingSet, n_rows: Sequence[int],
                   generators: Sequence[torch.Generator], drawing: Tensor) -> Tensor:
    """z ~ q(z|x) for the working rows ``x`` (K', N', D). Member k of ``ws.members`` draws N(0, I)
    noise for all its ``n_rows[k]`` rows from ``generators[k]`` when ``drawing[k']`` (as alone),
    into its rows of one buffer kept across steps (rows of members that do not draw are not used:
    their rows are finished)."""
    mu, log_sigma = vae.encode(x)
    noise = ws.extra_buffers.get("noise")
    if noise is None:
        K, N = ws.live.shape                 # the first call: the full working set
        noise = ws.extra_buffers["noise"] = torch.zeros(K, N, mu.shape[2], dtype=mu.dtype)
    for k in ws.members[drawing].tolist():
        torch.randn((n_rows[k], mu.shape[2]), generator=generators[k], dtype=mu.dtype,
                    out=noise[k, :n_rows[k]])
    return mu + log_sigma.exp() * (noise if ws.is_full else noise[ws.members[:, None], ws.rows])


def _within(d: Tensor, s: _Members) -> Tensor:
    linf = torch.maximum(d.amax(2), d.amin(2).neg())
    return linf < s.eps if s.eps_strict else linf <= s.eps


def stacked_revise_search(net, vae, x: Tensor, target: Tensor, valid: Tensor,
                          cfgs: Sequence[SearchConfig], lower, upper,
                          generators: Sequence[torch.Generator], *,
                          compact: bool = True) -> StackSearchResult:
    """REVISE searches of K members of ``net`` (a ``StackedMLP`` or its ``MemberWeights``; factuals
    ``x`` (K, N, D), ``valid`` (K, N) real rows, member k's rows first); ``generators[k]`` is member
    k's stream."""
    x, target = x.detach(), target.detach().long()
    K, N, D = x.shape
    s = _Members.from_configs([SearchConfig(**{**c.__dict__, "generator": "generic"})
                               for c in cfgs], None, D)
    lo, hi = _bounds(lower, upper, None, D, x)
    n_rows = valid.sum(1).tolist()
    ws = _WorkingSet(x, target, valid, s, member_weights(net))
    x_cf, x_adv = x.clone(), x.clone()
    steps = torch.zeros(K, N, dtype=torch.long)
    mature = torch.zeros(K, N, dtype=torch.bool)
    with torch.no_grad():
        z = _sample_latent(vae, x, ws, n_rows, generators, torch.ones(K, dtype=torch.bool))
        ws.x_prime = vae.decode(z)
        ws.x_adv = torch.where(_within(ws.x_prime - x, s)[:, :, None], ws.x_prime, x)
        ws.extra["z"] = z
    alive = valid.clone()
    with torch.enable_grad():
        for k in range(max(s.T) + 1):
            z_var = ws.extra["z"].detach().requires_grad_(True)
            x_dec = vae.decode(z_var)
            _, logp_t, alive = forward_and_check(net, x_dec, alive, k, s, ws, steps, mature)
            if not bool(alive.any()):
                break
            loss = (-logp_t.sum()
                    + (ws.lambda_cst * (x_dec - ws.x_factual).abs()).sum())
            (g,) = torch.autograd.grad(loss, z_var)
            with torch.no_grad():
                _latent_step(vae, g, alive, ws, s, n_rows, generators, lo, hi)
                if compact and ws.worth_compacting(alive):
                    ws.write_back(x_cf, x_adv)
                    alive = ws.compact(alive)
    with torch.no_grad():
        ws.write_back(x_cf, x_adv)
    return StackSearchResult(x_cf, x_adv, mature, steps)


def _latent_step(vae, g: Tensor, alive: Tensor, ws: _WorkingSet, s: _Members, n_rows, generators,
                 lo: Tensor, hi: Tensor) -> None:
    """dz = -lr g (non-finite -> 0, finished rows 0); x'' = clamp(dec(z + dz)); z = a fresh sample
    of q(z|x''); x' = dec(z); nascent-AE tracker. In place on the working set."""
    z = ws.extra["z"]
    dz = torch.nan_to_num(ws.neg_lr_col * g, nan=0.0, posinf=0.0,
                          neginf=0.0)
    dz.mul_(alive[:, :, None])
    x_clamped = vae.decode(z + dz).clamp_(lo, hi)
    z_new = _sample_latent(vae, x_clamped, ws, n_rows, generators, alive.any(1))
    keep = alive[:, :, None]
    ws.extra["z"] = z = torch.where(keep, z_new, z)
    ws.x_prime = torch.where(keep, vae.decode(z), ws.x_prime)
    ok = alive & _within(ws.x_prime - ws.x_factual, s)
    ws.x_adv = torch.where(ok[:, :, None], ws.x_prime, ws.x_adv)
