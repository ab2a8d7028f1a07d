"""Adam and gradient-norm clipping per member, over parameters stacked along a member axis.

Adam is elementwise, so one optimiser over [K, ...] tensors is K independent Adams; what
differs per member (learning rate, Adam's eps, the clipping norm) is a [K] tensor
broadcast over each parameter. Same update as ``torch.optim.Adam`` (no weight decay, no
amsgrad) and ``clip_grad_norm_`` (coefficient max_norm / (norm + 1e-6), at most 1), each
member's norm taken over its own slices of every parameter.
"""

from __future__ import annotations

import math
from typing import Any

import torch

BETAS = (0.9, 0.999)


class MemberAdam:
    def __init__(
        self,
        params: list[torch.Tensor],
        lr: list[torch.Tensor],
        eps: torch.Tensor,
        max_grad_norm: torch.Tensor,
    ) -> None:
        """``lr[p]``: parameter p's base learning rate per member [K] (actor and critic
        parts may have their own); ``eps``, ``max_grad_norm``: [K] (a norm of 0: no
        clipping for that member)."""
        self.params = params
        self.base_lr = [_per_member(rate, p) for rate, p in zip(lr, params, strict=True)]
        self.lr = list(self.base_lr)
        self.eps = [_per_member(eps, p) for p in params]
        self.max_norm = max_grad_norm
        self.clipping = bool((max_grad_norm > 0).any())
        self.exp_avg = [torch.zeros_like(p) for p in params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in params]
        self.steps = 0

    def scale_lr(self, fraction: float) -> None:
        """Every member's rates times ``fraction`` (linear annealing)."""
        self.lr = [rate * fraction for rate in self.base_lr]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def fill_missing_grads(self) -> None:
        """A parameter no loss reached (a turn-based seat's actor, in a minibatch where no
        member decided) gets a zero gradient: Adam still steps on its moments, as for a
        member whose loss had no rows."""
        for p in self.params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)

    @torch.no_grad()
    def clip_grads(self) -> torch.Tensor:
        """Scale each member's gradients to at most its max norm; returns the norms [K]."""
        grads = [p.grad for p in self.params]
        # parameter by parameter: a sum over a stacked [P, K] table would add in another
        # order with one member than with many
        total = torch.zeros_like(self.max_norm)
        for g in grads:
            total = total + g.square().sum(tuple(range(1, g.dim())))
        norms = total.sqrt()
        if self.clipping:
            coef = (self.max_norm / (norms + 1e-6)).clamp(max=1.0)
            coef = torch.where(self.max_norm > 0, coef, torch.ones_like(coef))
            for g in grads:
                g.mul_(coef.view(-1, *([1] * (g.dim() - 1))))
        return norms

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        beta1, beta2 = BETAS
        bias1 = 1 - beta1**self.steps
        root_bias2 = math.sqrt(1 - beta2**self.steps)
        grads = [p.grad for p in self.params]
        # Plain multiplies and adds only, each rounded once: fused kernels (lerp, addcmul)
        # may round differently in vectorised and scalar code, so a member's numbers
        # would depend on how many members share its tensors.
        torch._foreach_mul_(self.exp_avg, beta1)
        torch._foreach_add_(self.exp_avg, torch._foreach_mul(grads, 1 - beta1))
        torch._foreach_mul_(self.exp_avg_sq, beta2)
        squares = torch._foreach_mul(grads, grads)
        torch._foreach_mul_(squares, 1 - beta2)
        torch._foreach_add_(self.exp_avg_sq, squares)
        denoms = torch._foreach_sqrt(self.exp_avg_sq)
        torch._foreach_div_(denoms, root_bias2)
        parts = zip(self.params, self.exp_avg, denoms, self.lr, self.eps, strict=True)
        for p, m, denom, lr, eps in parts:
            p.sub_(m / (denom + eps) * (lr / bias1))

    def member_state(self, k: int) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "exp_avg": [m[k].clone() for m in self.exp_avg],
            "exp_avg_sq": [v[k].clone() for v in self.exp_avg_sq],
        }

    @torch.no_grad()
    def load_member_state(self, k: int, state: dict[str, Any]) -> None:
        self.steps = int(state["steps"])
        for stacked, value in zip(self.exp_avg, state["exp_avg"], strict=True):
            stacked[k].copy_(value)
        for stacked, value in zip(self.exp_avg_sq, state["exp_avg_sq"], strict=True):
            stacked[k].copy_(value)


def _per_member(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """[K] -> [K, 1, ...] broadcasting over a parameter of ``like``'s rank."""
    return values.to(like.device, like.dtype).view(-1, *([1] * (like.dim() - 1)))
