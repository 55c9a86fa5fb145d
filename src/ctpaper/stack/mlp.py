"""K MLPs (Linear(D, H) -> ReLU -> Linear(H, K)) with stacked parameters.

``W1`` (K, H, D), ``b1`` (K, H), ``W2`` (K, C, H), ``b2`` (K, C). The forward takes (K, n, D) inputs,
one row block per member, and computes each layer with ``torch.baddbmm``, whose per-member results
are bit-identical to ``nn.Linear`` on this machine's CPU kernels for row blocks of at least
``gemm_rows`` rows (smaller blocks take torch's naive batched loop; tests/test_stack_training.py).
Hand-batched layers were chosen over ``torch.func.vmap`` + ``functional_call`` because they were
faster (the issue's prototype: 15-45%; ``bench/bench_stack.py`` prints the ratio) and keep the
gradients of the stacked parameters ordinary leaf gradients for the masked Adam step.
"""

from __future__ import annotations

import copy
import functools
import math

from typing import Sequence

import torch
from torch import Tensor, nn

from ctpaper.models import MLP


@functools.lru_cache(maxsize=8)
def _template(n_features: int, n_classes: int, hidden: int) -> MLP:
    """An MLP to copy (copying is much faster than building one: ``skip_init``)."""
    return MLP(n_features, n_classes, hidden)


class StackedMLP(nn.Module):
    """K independent MLPs of the same shape; member k is ``W1[k], b1[k], W2[k], b2[k]``."""

    def __init__(self, W1: Tensor, b1: Tensor, W2: Tensor, b2: Tensor):
        super().__init__()
        self.W1, self.b1 = nn.Parameter(W1), nn.Parameter(b1)
        self.W2, self.b2 = nn.Parameter(W2), nn.Parameter(b2)

    @classmethod
    def from_models(cls, models: Sequence[MLP]) -> "StackedMLP":
        """Stack copies of the parameters of ``models`` (all of the same shape)."""
        def stacked(name: str) -> Tensor:
            return torch.stack([m.get_parameter(name).detach() for m in models]).clone()

        return cls(stacked("fc1.weight"), stacked("fc1.bias"), stacked("fc2.weight"),
                   stacked("fc2.bias"))

    @property
    def n_members(self) -> int:
        return self.W1.shape[0]

    def forward(self, x: Tensor, members: Tensor | None = None) -> Tensor:
        """Logits (K', n, C) of inputs ``x`` (K', n, D); ``members`` selects K' of the K members."""
        W1, b1, W2, b2 = self.W1, self.b1, self.W2, self.b2
        if members is not None:
            W1, b1, W2, b2 = W1[members], b1[members], W2[members], b2[members]
        h = torch.baddbmm(b1[:, None, :], x, W1.transpose(1, 2)).relu_()   # baddbmm keeps no output
        return torch.baddbmm(b2[:, None, :], h, W2.transpose(1, 2))

    def weights(self, members: Tensor | None = None) -> "MemberWeights":
        """The (detached) parameters of ``members`` (default: all) for the CE searches."""
        w = MemberWeights(self.W1.detach(), self.b1.detach(), self.W2.detach(), self.b2.detach())
        return w if members is None else w.take(members)

    def member(self, k: int) -> MLP:
        """Member ``k`` as a stand-alone ``ctpaper.models.MLP`` (a copy of its parameters)."""
        H, D = self.W1.shape[1:]
        model = copy.deepcopy(_template(D, self.W2.shape[1], H))
        with torch.no_grad():
            model.fc1.weight.copy_(self.W1[k])
            model.fc1.bias.copy_(self.b1[k])
            model.fc2.weight.copy_(self.W2[k])
            model.fc2.bias.copy_(self.b2[k])
        return model


# ATen multiplies (K, n, a) @ (K, a, b) with a naive loop when a * n * b < 400 and with the BLAS gemm
# otherwise (bmm_out_or_baddbmm_, torch 2.13); a single model's nn.Linear always uses the gemm, and
# the two round differently. The gemm's row results can still depend on n for tiny n and long
# contractions (Adult, 108 features: n <= 4 differs from n = 7), so padding to gemm_rows makes a
# few-row search exact for the synthetic data's shapes, not for every shape.
NAIVE_BMM_BELOW = 400


def gemm_rows(n_features: int, hidden: int, n_classes: int) -> int:
    """The fewest rows per member for which every product of the stacked forward and input
    gradient (contractions and widths D x H, H x C, C x H, H x D) runs on the gemm, so that a
    member's rows compute exactly what the single model computes for them."""
    return math.ceil(NAIVE_BMM_BELOW / (hidden * min(n_features, n_classes)))


class MemberWeights:
    """Detached parameters of K' members laid out for the stacked layers: ``W1`` (K', H, D) and
    ``W2`` (K', C, H) contiguous (the input gradients multiply by them), their transposes (views,
    the forward multiplies by them) and the biases as (K', 1, .) rows. Calling it is the forward of
    ``StackedMLP`` (the same ops, so the same values)."""

    def __init__(self, W1: Tensor, b1: Tensor, W2: Tensor, b2: Tensor):
        self.W1, self.W2 = W1.contiguous(), W2.contiguous()
        self.W1t, self.W2t = self.W1.transpose(1, 2), self.W2.transpose(1, 2)
        self.b1, self.b2 = b1[:, None, :], b2[:, None, :]

    @property
    def gemm_rows(self) -> int:
        """``gemm_rows`` of these weights' shapes."""
        K, H, D = self.W1.shape
        return gemm_rows(D, H, self.W2.shape[1])

    def take(self, idx: Tensor) -> "MemberWeights":
        """The weights of members ``idx`` (positions in this set)."""
        return MemberWeights(self.W1[idx], self.b1[idx, 0], self.W2[idx], self.b2[idx, 0])

    def hidden(self, x: Tensor, out: Tensor | None = None) -> Tensor:
        """ReLU(x W1^T + b1) of inputs (K', n, D), in ``out`` if given."""
        return torch.baddbmm(self.b1, x, self.W1t, out=out).relu_()

    def logits(self, h: Tensor, out: Tensor | None = None) -> Tensor:
        return torch.baddbmm(self.b2, h, self.W2t, out=out)

    def __call__(self, x: Tensor) -> Tensor:
        return self.logits(self.hidden(x))
