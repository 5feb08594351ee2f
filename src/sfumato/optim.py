"""The one optimiser every protection shares: Adam on δ with an L∞ and box projection."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

__all__ = ["OptimResult", "optimize_perturbation", "project"]


@dataclass
class OptimResult:
    delta: torch.Tensor  # (B, 3, H, W), |δ| <= epsilon, x + δ in [0, 1]
    losses: list[float] = field(default_factory=list)  # loss before each step


def project(delta: torch.Tensor, images: torch.Tensor, epsilon: float, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Project δ onto {|δ|∞ <= ε, 0 <= x + δ <= 1, δ = 0 where mask = 0}."""
    delta = delta.clamp(-epsilon, epsilon)
    delta = (images + delta).clamp(0, 1) - images
    return delta if mask is None else delta * mask


def optimize_perturbation(
    images: torch.Tensor,
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    *,
    epsilon: float,
    steps: int,
    step_size: float,
    mask: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    callback: Callable[[int, float], None] | None = None,
) -> OptimResult:
    """Minimise ``loss_fn(x + δ)`` over δ in the L∞ ball (projected Adam).

    Args:
        images (`torch.Tensor`): x, (B, 3, H, W) in [0, 1].
        loss_fn: ``x_adv -> scalar`` tensor, differentiable.
        epsilon (`float`): L∞ radius in [0, 1] units.
        steps (`int`): optimiser steps.
        step_size (`float`): Adam learning rate in [0, 1] units.
        mask (`torch.Tensor`, *optional*): (B, 1, H, W) in {0, 1}; δ stays 0 where it is 0.
        generator (`torch.Generator`, *optional*): seeds the random start, uniform in
            [-ε/2, ε/2]. Without one, δ starts at 0.
        callback: called as ``callback(step, loss)`` after each step.
    """
    images = images.detach()
    if generator is None:
        start = torch.zeros_like(images)
    else:
        noise = torch.rand(images.shape, generator=generator, device=generator.device, dtype=images.dtype)
        start = (noise.to(images.device) - 0.5) * epsilon
    delta = project(start, images, epsilon, mask).requires_grad_(True)
    optimizer = torch.optim.Adam([delta], lr=step_size)
    losses = []
    for step in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(images + delta)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            delta.copy_(project(delta, images, epsilon, mask))
        losses.append(loss.item())
        if callback is not None:
            callback(step, losses[-1])
    return OptimResult(delta=delta.detach(), losses=losses)
