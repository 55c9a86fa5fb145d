"""The VAE of REVISE (method 4.5): fitted once per dataset on its training split.

Encoder Linear(D, H) + sigmoid -> linear heads mu and log sigma (size L); decoder Linear(L, H) + tanh
-> Linear(H, D). D = 2: H = 16, L = 2; otherwise H = 32, L = 4. Batch loss = summed squared
reconstruction error / batch size + KL(q(z|x) || N(0, I)) (batch mean) + 0.01 * sum of squared decoder
weights. Adam(1e-3), batch 50, 100 epochs, shuffled with a seeded generator.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import torch
from torch import Tensor, nn

from ctpaper.runtime import write_torch

DECODER_WEIGHT_DECAY = 0.01


def vae_sizes(n_features: int) -> tuple[int, int]:
    """(hidden, latent) sizes of method 4.5."""
    return (16, 2) if n_features == 2 else (32, 4)


class VAE(nn.Module):
    def __init__(self, n_features: int, hidden: int | None = None, latent: int | None = None):
        super().__init__()
        h, lat = vae_sizes(n_features)
        hidden, latent = hidden or h, latent or lat
        self.n_features, self.hidden, self.latent = n_features, hidden, latent
        self.enc = nn.utils.skip_init(nn.Linear, n_features, hidden)
        self.mu = nn.utils.skip_init(nn.Linear, hidden, latent)
        self.log_sigma = nn.utils.skip_init(nn.Linear, hidden, latent)
        self.dec1 = nn.utils.skip_init(nn.Linear, latent, hidden)
        self.dec2 = nn.utils.skip_init(nn.Linear, hidden, n_features)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = torch.sigmoid(self.enc(x))
        return self.mu(h), self.log_sigma(h)

    def decode(self, z: Tensor) -> Tensor:
        return self.dec2(torch.tanh(self.dec1(z)))

    @staticmethod
    def _draw(mu: Tensor, log_sigma: Tensor, generator: torch.Generator) -> Tensor:
        """z = mu + sigma * N(0, I) (reparameterised)."""
        noise = torch.randn(mu.shape, generator=generator, dtype=mu.dtype)
        return mu + log_sigma.exp() * noise

    def sample(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """A sample z ~ q(z|x) = N(mu(x), diag(sigma(x)^2))."""
        return self._draw(*self.encode(x), generator)

    def loss(self, x: Tensor, generator: torch.Generator) -> Tensor:
        mu, log_sigma = self.encode(x)
        z = self._draw(mu, log_sigma, generator)
        recon = (self.decode(z) - x).pow(2).sum() / x.shape[0]
        kl = 0.5 * (mu.pow(2) + (2 * log_sigma).exp() - 1.0 - 2 * log_sigma).sum(1).mean()
        reg = DECODER_WEIGHT_DECAY * (self.dec1.weight.pow(2).sum() + self.dec2.weight.pow(2).sum())
        return recon + kl + reg


def train_vae(X: Tensor, seed: int, n_epochs: int = 100, batch_size: int = 50,
              lr: float = 1e-3) -> tuple[VAE, pd.DataFrame]:
    """Fit the VAE on ``X`` (training split); returns the model (eval mode) and a per-epoch log."""
    g = torch.Generator().manual_seed(int(seed))
    vae = VAE(X.shape[1])
    # deterministic init from the generator (not the global RNG)
    with torch.no_grad():
        for layer in (vae.enc, vae.mu, vae.log_sigma, vae.dec1, vae.dec2):
            nn.init.xavier_uniform_(layer.weight, generator=g)
            layer.bias.zero_()
    opt = torch.optim.Adam(vae.parameters(), lr=lr)
    rows = []
    n = X.shape[0]
    for epoch in range(1, n_epochs + 1):
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=g)
        total, nb = 0.0, 0
        for s in range(0, n, batch_size):
            xb = X[perm[s:s + batch_size]]
            loss = vae.loss(xb, g)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach())
            nb += 1
        rows.append({"epoch": epoch, "loss": total / max(nb, 1),
                     "seconds": time.perf_counter() - t0})
    opt.zero_grad(set_to_none=True)
    vae.eval()
    for p in vae.parameters():
        p.requires_grad_(False)
    return vae, pd.DataFrame(rows)


def save_vae(vae: VAE, path: str | Path, spec: dict | None = None) -> None:
    blob = {"format": 1, "spec": {"n_features": vae.n_features, "hidden": vae.hidden,
                                  "latent": vae.latent, **(spec or {})},
            "state_dict": {k: v.detach().clone() for k, v in vae.state_dict().items()}}
    write_torch(blob, path)


def load_vae(path: str | Path) -> tuple[VAE, dict]:
    from ctpaper.runtime import read_torch

    blob = read_torch(path)
    spec = blob["spec"]
    vae = VAE(spec["n_features"], spec["hidden"], spec["latent"])
    vae.load_state_dict(blob["state_dict"])
    vae.eval()
    for p in vae.parameters():
        p.requires_grad_(False)
    return vae, spec
