"""Adam over stacked parameters with a per-member update mask (method 5.4: a member whose loss is
not finite, or that has finished its epochs, skips the update; the others step).

The arithmetic is ``torch.optim.Adam``'s single-tensor path op for op (lerp, mul + addcmul, sqrt,
division by the bias correction, addcdiv), so a member's parameters follow exactly the trajectory of
its own ``torch.optim.Adam``. Bias corrections depend on a member's own step count; members are
grouped by (step count, learning rate) so that every group uses Python scalars as torch does.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor


class StackedAdam:
    """Adam(lr_k, betas, eps) for parameters whose first dimension is the member."""

    def __init__(self, params: Sequence[Tensor], lr: Sequence[float], betas=(0.9, 0.999),
                 eps: float = 1e-8):
        self.params = list(params)
        self.lrs = sorted({float(v) for v in lr})
        self.lr_index = torch.tensor([self.lrs.index(float(v)) for v in lr])
        self.beta1, self.beta2 = (float(b) for b in betas)
        self.eps = float(eps)
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.steps = torch.zeros(len(lr), dtype=torch.long)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self, update: Tensor) -> None:
        """One Adam step for the members with ``update[k]`` True (bool (K,))."""
        active = update.nonzero().squeeze(1)
        if active.numel() == 0:
            return
        self.steps[active] += 1
        key = self.steps[active] * len(self.lrs) + self.lr_index[active]   # (step, lr) per member
        K = self.steps.numel()
        with torch.no_grad():
            for group in torch.unique(key).tolist():
                members = active[key == group]
                sel = None if members.numel() == K else members
                step, lr = divmod(group, len(self.lrs))
                for i in range(len(self.params)):
                    self._update(i, sel, step, self.lrs[lr])

    def _update(self, i: int, sel: Tensor | None, step: int, lr: float) -> None:
        p, m, v, g = self.params[i], self.exp_avg[i], self.exp_avg_sq[i], self.params[i].grad
        if sel is not None:
            p, m, v, g = p[sel], m[sel], v[sel], g[sel]
        m.lerp_(g, 1 - self.beta1)
        v.mul_(self.beta2).addcmul_(g, g, value=1 - self.beta2)
        bias_correction1 = 1 - self.beta1 ** step
        bias_correction2_sqrt = (1 - self.beta2 ** step) ** 0.5
        denom = (v.sqrt() / bias_correction2_sqrt).add_(self.eps)
        p.addcdiv_(m, denom, value=-(lr / bias_correction1))
        if sel is not None:
            self.params[i].index_copy_(0, sel, p)
            self.exp_avg[i].index_copy_(0, sel, m)
            self.exp_avg_sq[i].index_copy_(0, sel, v)
