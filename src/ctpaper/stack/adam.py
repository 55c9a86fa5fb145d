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
        self._lr_index = [self.lrs.index(float(v)) for v in lr]
        self.beta1, self.beta2 = (float(b) for b in betas)
        self.eps = float(eps)
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self._steps = [0] * len(lr)             # per-member step counts (Python: no per-step ops)

    @property
    def steps(self) -> Tensor:
        """Per-member step counts (K,)."""
        return torch.tensor(self._steps)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self, update: Tensor) -> None:
        """One Adam step for the members with ``update[k]`` True (bool (K,))."""
        flags = update.tolist()
        groups: dict[tuple[int, int], list[int]] = {}
        for k, on in enumerate(flags):
            if on:
                self._steps[k] += 1
                groups.setdefault((self._steps[k], self._lr_index[k]), []).append(k)
        if not groups:
            return
        K = len(flags)
        with torch.no_grad():
            for (step, lr), members in groups.items():
                sel = None if len(members) == K else torch.tensor(members)
                self._update(sel, step, self.lrs[lr])

    def _update(self, sel: Tensor | None, step: int, lr: float) -> None:
        """The Adam step of members ``sel`` (None: all) for every parameter at once (foreach ops:
        on the CPU the per-tensor kernels, so the values of the single-tensor path)."""
        p, m, v = self.params, self.exp_avg, self.exp_avg_sq
        g = [t.grad for t in p]
        if sel is not None:
            p, m, v, g = ([t[sel] for t in ts] for ts in (p, m, v, g))
        torch._foreach_lerp_(m, g, 1 - self.beta1)
        torch._foreach_mul_(v, self.beta2)
        torch._foreach_addcmul_(v, g, g, value=1 - self.beta2)
        bias_correction1 = 1 - self.beta1 ** step
        bias_correction2_sqrt = (1 - self.beta2 ** step) ** 0.5
        denom = torch._foreach_sqrt(v)
        torch._foreach_div_(denom, bias_correction2_sqrt)
        torch._foreach_add_(denom, self.eps)
        torch._foreach_addcdiv_(p, m, denom, value=-(lr / bias_correction1))
        if sel is not None:
            for dst, src in zip((*self.params, *self.exp_avg, *self.exp_avg_sq), (*p, *m, *v)):
                dst.index_copy_(0, sel, src)
