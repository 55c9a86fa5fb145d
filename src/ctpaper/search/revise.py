"""REVISE (method 4.5): the search of method 4.2 on a latent state z of a VAE.

z_0 ~ q(z|x); per step: z' = z + dz with dz = -eta grad_z L, x'' = clamp(dec(z'), LB, UB), z = a fresh
sample of q(z|x''), x' = dec(z). L_search = CE(M(dec(z)), t) + lambda_cst ||dec(z) - x||_1 (no energy
term, no mutability in latent space). Loop, convergence, maturity and the nascent-AE tracker are those
of ``ctpaper.search.loop``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ctpaper.search.loop import MaskedSearch, run_search
from ctpaper.search.method import SearchConfig, SearchResult, domain_bounds, finite, log_p_target


class LatentSpaceSearch(MaskedSearch):
    """The search state is z; ``x_prime`` = dec(z) is the CE."""

    def __init__(self, model, vae, x_factual: Tensor, t: Tensor, cfg: SearchConfig, lower, upper,
                 clamp_mask: Tensor | None, generator: torch.Generator):
        super().__init__(model, x_factual, t, cfg)
        self.vae, self.generator = vae, generator
        self.lb, self.ub = domain_bounds(lower, upper, clamp_mask, x_factual.shape[1], x_factual)
        with torch.no_grad():
            self.z = vae.sample(x_factual, generator)
            self.x_prime = vae.decode(self.z)
        self.track_adversarial()          # dec(z_0) is a candidate nascent AE

    def forward(self) -> tuple[Tensor, Tensor, Tensor]:
        """(z, M(dec(z)), log p_t(dec(z))) with z a fresh leaf of the autograd graph."""
        leaf = self.z.detach().requires_grad_(True)
        self._decoded = self.vae.decode(leaf)
        logits = self.model(self._decoded)
        return leaf, logits, log_p_target(logits, self.t)

    def loss(self, logits: Tensor, log_p_t: Tensor, k: int) -> Tensor:
        """sum_i CE(M(dec(z_i)), t_i) + lambda_cst sum_i ||dec(z_i) - x_i||_1."""
        return (F.cross_entropy(logits, self.t, reduction="sum")
                + self.cfg.lambda_cst * (self._decoded - self.x_factual).abs().sum())

    def step(self, g: Tensor, k: int) -> None:
        """Step, decode, clamp and re-encode the searching rows; finished rows keep z and x'."""
        dz = finite(-self.cfg.lr * g)
        dz[~self.searching] = 0.0
        x_moved = self.vae.decode(self.z + dz).clamp_(self.lb, self.ub)
        z_new = self.vae.sample(x_moved, self.generator)
        self.z = torch.where(self.searching[:, None], z_new, self.z)
        self.x_prime = torch.where(self.searching[:, None], self.vae.decode(self.z), self.x_prime)
        self.track_adversarial()


def revise_search(model, vae, x: Tensor, target: Tensor, cfg: SearchConfig, lower, upper,
                  clamp_mask: Tensor | None = None,
                  generator: torch.Generator | None = None) -> SearchResult:
    """REVISE search of factuals ``x`` (n, D) towards ``target`` (n,) in the latent space of ``vae``;
    ``generator`` draws the VAE samples (seed 0 if None)."""
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    x, target = x.detach(), target.detach().long()
    return run_search(LatentSpaceSearch(model, vae, x, target, cfg, lower, upper, clamp_mask,
                                        generator), cfg)
