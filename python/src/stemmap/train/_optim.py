"""AdamW (decoupled weight decay) on multi-tensor operations, without ``torch.optim``.

``torch.optim``'s optimisers import ``torch._dynamo`` when their first parameter group is
added: about 1 s in every new process (measured with torch 2.13 on the 2-core benchmark
machine), longer than the whole training of ``preset="quick"`` on small data. This class
does the same arithmetic as ``torch.optim.AdamW(foreach=True)`` (no AMSGrad, no
maximisation, tensors on one device), operation for operation, so that it gives the same
numbers (``tests/test_train.py`` compares the two bit for bit).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


class AdamW:
    """AdamW over a list of parameters.

    Parameters
    ----------
    params
        The parameters to train (those that do not require gradients are left out).
    lr
        Learning rate; the loop may set :attr:`lr` between steps.
    weight_decay
        Decoupled weight decay: each step first multiplies the parameters by
        ``1 - lr * weight_decay``.
    betas, eps
        Adam's moment decays and the denominator's ε.
    """

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        lr: float,
        weight_decay: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.params = [p for p in params if p.requires_grad]
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = float(eps)
        self.exp_avg = [
            torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params
        ]
        self.exp_avg_sq = [
            torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params
        ]
        self.steps = [0] * len(self.params)  #: updates so far, per parameter

    def zero_grad(self) -> None:
        """Drop the gradients (``set_to_none``)."""
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """Update every parameter that has a gradient."""
        idx = [i for i, p in enumerate(self.params) if p.grad is not None]
        if not idx:
            return
        params = [self.params[i] for i in idx]
        grads = [p.grad for p in params]
        exp_avg = [self.exp_avg[i] for i in idx]
        exp_avg_sq = [self.exp_avg_sq[i] for i in idx]
        for i in idx:
            self.steps[i] += 1
        b1, b2 = self.betas
        lr = self.lr
        if self.weight_decay != 0:
            torch._foreach_mul_(params, 1 - lr * self.weight_decay)
        torch._foreach_lerp_(exp_avg, grads, 1 - b1)
        torch._foreach_mul_(exp_avg_sq, b2)
        torch._foreach_addcmul_(exp_avg_sq, grads, grads, 1 - b2)
        # the bias corrections as Python floats of the step counts (as torch's foreach path)
        step_size = [(lr / (1 - b1 ** float(self.steps[i]))) * -1 for i in idx]
        bc2_sqrt = [(1 - b2 ** float(self.steps[i])) ** 0.5 for i in idx]
        denom = torch._foreach_sqrt(exp_avg_sq)
        torch._foreach_div_(denom, bc2_sqrt)
        torch._foreach_add_(denom, self.eps)
        torch._foreach_addcdiv_(params, exp_avg, denom, step_size)
