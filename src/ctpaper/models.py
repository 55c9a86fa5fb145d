"""Classifiers of method 3: MLP (main results), Linear (Figure 1) and LeNet (optional MNIST tuning).

Every model maps ``(n, D)`` float32 inputs to ``(n, K)`` logits. Initialisation draws only from an
explicit ``torch.Generator`` (never the global RNG), so a training seed fixes the initial weights.
Models are stored as ``{"format", "spec", "state_dict"}`` with ``torch.save`` (atomic write); the spec
records what is needed to rebuild the module plus provenance (dataset, objective, family, seed, hash).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ctpaper.runtime import write_torch

ARCHS = ("mlp", "linear", "lenet")
INITS = ("xavier_zeros", "torch_default")
FORMAT_VERSION = 1


class MLP(nn.Module):
    """Linear(D, H) -> ReLU -> Linear(H, K) (method 3)."""

    def __init__(self, n_features: int, n_classes: int, hidden: int = 32):
        super().__init__()
        self.fc1 = nn.utils.skip_init(nn.Linear, n_features, hidden)
        self.fc2 = nn.utils.skip_init(nn.Linear, hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


class LinearModel(nn.Module):
    """Linear(D, K): multinomial logistic regression (Figure 1)."""

    def __init__(self, n_features: int, n_classes: int):
        super().__init__()
        self.fc = nn.utils.skip_init(nn.Linear, n_features, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class LeNet(nn.Module):
    """LeNet-5 variant of method 3 on flattened 28x28 inputs (optional)."""

    def __init__(self, n_features: int = 784, n_classes: int = 10):
        super().__init__()
        if n_features != 784:
            raise ValueError(f"LeNet needs 784 input features (28x28), got {n_features}")
        self.conv1 = nn.utils.skip_init(nn.Conv2d, 1, 6, 5, padding=2)
        self.conv2 = nn.utils.skip_init(nn.Conv2d, 6, 16, 5, padding=2)
        self.fc1 = nn.utils.skip_init(nn.Linear, 784, 120)
        self.fc2 = nn.utils.skip_init(nn.Linear, 120, 84)
        self.fc3 = nn.utils.skip_init(nn.Linear, 84, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.reshape(-1, 1, 28, 28)
        h = torch.max_pool2d(torch.relu(self.conv1(h)), 2)
        h = torch.max_pool2d(torch.relu(self.conv2(h)), 2)
        h = torch.relu(self.fc1(h.flatten(1)))
        h = torch.relu(self.fc2(h))
        return self.fc3(h)


def _init_layer(layer: nn.Module, init: str, generator: torch.Generator) -> None:
    w, b = layer.weight, layer.bias
    with torch.no_grad():
        if init == "xavier_zeros":
            nn.init.xavier_uniform_(w, generator=generator)
            if b is not None:
                b.zero_()
        elif init == "torch_default":
            # What nn.Linear/nn.Conv2d.reset_parameters do, but drawing from ``generator``.
            nn.init.kaiming_uniform_(w, a=math.sqrt(5), generator=generator)
            if b is not None:
                fan_in = w[0].numel()
                bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                b.uniform_(-bound, bound, generator=generator)
        else:
            raise ValueError(f"unknown init {init!r}; known: {', '.join(INITS)}")


def initialise(model: nn.Module, init: str, generator: torch.Generator) -> nn.Module:
    """(Re-)initialise every Linear/Conv2d layer of ``model`` in registration order."""
    for layer in model.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            _init_layer(layer, init, generator)
    return model


def build_model(arch: str, n_features: int, n_classes: int, hidden: int = 32,
                init: str = "xavier_zeros", generator: torch.Generator | None = None,
                seed: int | None = None) -> nn.Module:
    """Build and initialise a classifier.

    Randomness comes from ``generator`` if given, else from a fresh generator seeded with ``seed``
    (default 0). The global torch RNG is never used.
    """
    if generator is None:
        generator = torch.Generator().manual_seed(0 if seed is None else int(seed))
    if arch == "mlp":
        model: nn.Module = MLP(n_features, n_classes, hidden)
    elif arch == "linear":
        model = LinearModel(n_features, n_classes)
    elif arch == "lenet":
        model = LeNet(n_features, n_classes)
    else:
        raise ValueError(f"unknown model arch {arch!r}; known: {', '.join(ARCHS)}")
    return initialise(model, init, generator)


def model_spec(arch: str, n_features: int, n_classes: int, hidden: int = 32, **extra: Any) -> dict:
    """The spec stored with a model: architecture + sizes + provenance (``extra``)."""
    return {"arch": arch, "n_features": int(n_features), "n_classes": int(n_classes),
            "hidden": int(hidden), **extra}


def save_model(model: nn.Module, path: str | Path, spec: dict) -> None:
    """Write ``{"format", "spec", "state_dict"}`` atomically to ``path``.

    ``spec`` must hold arch, n_features, n_classes (and hidden for the MLP); further keys
    (dataset, objective, family, seed, config_hash, ...) are provenance. Values must be plain Python
    types so that ``load_model`` can use ``torch.load(weights_only=True)``.
    """
    missing = [k for k in ("arch", "n_features", "n_classes") if k not in spec]
    if missing:
        raise ValueError(f"model spec lacks {', '.join(missing)}")
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    write_torch({"format": FORMAT_VERSION, "spec": dict(spec), "state_dict": state}, path)


def load_model(path: str | Path) -> tuple[nn.Module, dict]:
    """Load a model written by ``save_model``; returns ``(model in eval mode, spec)``."""
    from ctpaper.runtime import IntegrityError, read_torch

    blob = read_torch(path)
    if blob.get("format") != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported model file format {blob.get('format')!r}")
    spec = blob["spec"]
    model = build_model(spec["arch"], spec["n_features"], spec["n_classes"],
                        hidden=spec.get("hidden", 32), init="xavier_zeros")
    model.load_state_dict(blob["state_dict"])
    bad = [k for k, v in blob["state_dict"].items() if not bool(torch.isfinite(v).all())]
    if bad:
        raise IntegrityError(f"{path}: model parameters {', '.join(bad)} are non-finite (NaN/Inf), "
                             "so it cannot be evaluated; delete it and rerun (if training then "
                             "fails, it diverged: lower model.lr)")
    model.eval()
    return model, spec


def load_models(paths: dict[str, str | Path]) -> dict[str, nn.Module]:
    """``{label: model}`` for ``{label: model file}`` (``load_model`` of each, specs dropped)."""
    return {label: load_model(path)[0] for label, path in paths.items()}
