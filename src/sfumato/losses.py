"""Protection objectives. Each is a small ``loss(x_adv) -> scalar`` for the shared optimiser.

A loss is built once per image (it may precompute the target's features) and
then called at every optimiser step. Losses are looked up by name in
:data:`LOSSES`.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["GlazeLoss", "LOSSES", "get_loss"]


def latent_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared distance between two batches of latents, (B, C, h, w) -> scalar."""
    return ((a - b) ** 2).mean()


class GlazeLoss(nn.Module):
    """Style cloaking (Shan et al., "Glaze", USENIX Security 2023, eq. 3).

        ‖E(x+δ) − E(Ω(x,T))‖² + α · max(P(x, x+δ) − p, 0)

    The encoder term is divided by its value at δ = 0, so it starts at 1 whatever
    the encoder's scale, and α means the same for every model.

    Args:
        encoder: the model's image encoder E, images in [0, 1] -> latents.
        images (`torch.Tensor`): the artwork x, (B, 3, H, W) in [0, 1].
        target (`torch.Tensor`): Ω(x, T), the same shape.
        perceptual: a :class:`~sfumato.perceptual.PerceptualMetric` P.
        budget (`float`): p, in the units of ``perceptual``.
        alpha (`float`): weight of the hinge penalty.
    """

    def __init__(self, encoder, images, target, perceptual, budget: float, alpha: float):
        super().__init__()
        if images.shape != target.shape:
            raise ValueError(f"target shape {tuple(target.shape)} differs from image shape {tuple(images.shape)}")
        self.encoder, self.perceptual = encoder, perceptual
        self.budget, self.alpha = float(budget), float(alpha)
        self.register_buffer("images", images.detach())
        self.distance_to_images = perceptual.distance_to(self.images)  # the original's features, computed once
        with torch.no_grad():
            self.register_buffer("target_latents", encoder(target))  # (B, C, h, w)
            self.scale = float(latent_distance(encoder(images), self.target_latents)) or 1.0

    def forward(self, x_adv: torch.Tensor) -> torch.Tensor:
        feature = latent_distance(self.encoder(x_adv), self.target_latents) / self.scale
        excess = torch.relu(self.distance_to_images(x_adv) - self.budget)  # (B,)
        if not bool((excess > 0).any()):
            return feature  # within budget: the hinge adds zero and a zero gradient, so skip its backward pass
        return feature + self.alpha * excess.sum()


LOSSES = {"glaze": GlazeLoss}


def get_loss(name: str):
    """The loss class registered under ``name``."""
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown protection {name!r}; valid: {', '.join(sorted(LOSSES))}") from None
