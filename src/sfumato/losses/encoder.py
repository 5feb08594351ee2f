"""Protections that attack only the image encoder E (they need the VAE and nothing else)."""

from __future__ import annotations

import torch
from torch import nn

from .common import PerceptualHinge, ProtectionInputs, latent_distance

__all__ = ["GlazeLoss", "PhotoGuardLoss", "UntargetedLoss", "EncoderTargetLoss"]


class EncoderTargetLoss(nn.Module):
    """‖E(x+δ) − z_T‖² / ‖E(x) − z_T‖² + α · max(P(x, x+δ) − p, 0), for a fixed target latent z_T.

    The encoder term is divided by its value at δ = 0, so it starts at 1 whatever the
    encoder's scale, and α means the same for every model.
    """

    def __init__(self, inputs: ProtectionInputs, target_image: torch.Tensor):
        super().__init__()
        if inputs.images.shape != target_image.shape:
            raise ValueError(f"target shape {tuple(target_image.shape)} differs from image shape "
                             f"{tuple(inputs.images.shape)}")
        self.encoder, self.hinge = inputs.encoder, PerceptualHinge(inputs)
        with torch.no_grad():
            self.register_buffer("target_latents", inputs.encoder(target_image))  # (B, C, h, w)
            self.scale = float(latent_distance(inputs.encoder(inputs.images), self.target_latents)) or 1.0

    def forward(self, x_adv: torch.Tensor) -> torch.Tensor:
        return self.hinge(x_adv, latent_distance(self.encoder(x_adv), self.target_latents) / self.scale)


class GlazeLoss(EncoderTargetLoss):
    """Style cloaking (Shan et al., "Glaze", USENIX Security 2023, eq. 3).

        ‖E(x+δ) − E(Ω(x,T))‖² + α · max(P(x, x+δ) − p, 0)

    Kept: the target Ω(x, T) is the artwork itself restyled into a style far from the
    artist's; a perceptual hinge bounds visibility. Changed: P is sfumato's calibrated
    perceptual metric (Glaze uses LPIPS with p = 0.05-0.1), the L∞ cap of the shared
    optimiser sits under it, and the encoder term is normalised to 1 at δ = 0.
    """

    def __init__(self, inputs: ProtectionInputs):
        super().__init__(inputs, inputs.target)


class PhotoGuardLoss(EncoderTargetLoss):
    """PhotoGuard's encoder attack (Salman et al., "Raising the cost of malicious AI-powered
    image editing", ICML 2023, eq. 2): pull E(x+δ) towards the latent of one fixed target image.

        min_δ ‖E(x+δ) − E(x_T)‖²,  ‖δ‖∞ ≤ ε

    Kept: a fixed, uniform grey x_T (the target of the authors' demo app; their img2img
    notebook uses the zero latent), the same for every artwork, so the latents of all cloaked
    images collapse towards one featureless image; the VAE's posterior mean. Changed: the shared
    projected Adam replaces PGD's decaying sign steps (the authors: ε 0.06 in [-1, 1], about
    7.7 levels, 200-1000 steps at 512 px); squared distance, normalised to 1 at δ = 0; the
    perceptual hinge, so that every protection meets the same budget.
    """

    def __init__(self, inputs: ProtectionInputs):
        super().__init__(inputs, torch.full_like(inputs.images, 0.5))


class UntargetedLoss(nn.Module):
    """The untargeted encoder attack: push E(x+δ) as far from E(x) as the budget allows.

        max_δ ‖E(x+δ) − E(x)‖² / ‖E(x)‖²,   ‖δ‖∞ ≤ ε

    Diff-Protect ships it as "texture_self_enhance" (Xue et al., ICLR 2024); PhotoGuard's
    paper names the untargeted variant beside its targeted one. A target direction wastes
    most of the budget on a small encoder that resists it (sfumato-mini's latents move a tenth
    of the way to a style target at ±8 levels), while the direction of greatest sensitivity
    moves them several times further. Kept: the objective. Changed: normalised by ‖E(x)‖²;
    shared Adam; the hinge. Minimised here as −distance.
    """

    def __init__(self, inputs: ProtectionInputs):
        super().__init__()
        self.encoder, self.hinge = inputs.encoder, PerceptualHinge(inputs)
        with torch.no_grad():
            self.register_buffer("own_latents", inputs.encoder(inputs.images))  # (B, C, h, w)
            self.scale = float((self.own_latents ** 2).mean()) or 1.0

    def forward(self, x_adv: torch.Tensor) -> torch.Tensor:
        return self.hinge(x_adv, -latent_distance(self.encoder(x_adv), self.own_latents) / self.scale)
