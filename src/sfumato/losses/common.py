"""What every protection's loss is built from: its inputs, the perceptual hinge, and two distances."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..denoiser import Denoiser, noisy_draw

__all__ = ["ProtectionInputs", "PerceptualHinge", "latent_distance", "denoising_error", "pattern_image"]


@dataclass(frozen=True)
class ProtectionInputs:
    """Everything a protection's loss may need, built once per image by the cloak.

    Args:
        images (`torch.Tensor`): the artwork x at the working resolution, (B, 3, h, w) in [0, 1].
        target (`torch.Tensor`): Ω(x, T), the artwork rendered in the target style, same shape.
        encoder: the model's image encoder E (:class:`~sfumato.models.VaeEncoder`).
        perceptual: a :class:`~sfumato.perceptual.PerceptualMetric` P.
        budget (`float`): the perceptual budget p, in P's units.
        alpha (`float`): weight of the hinge penalty α · max(P − p, 0).
        denoiser (:class:`~sfumato.denoiser.Denoiser`, *optional*): the model's UNet side; only
            the protections that attack the denoiser need it.
        caption (`str`): the text a mimic would train the image with (the artist's name is unknown
            to the artist's own tool, so a generic caption).
        generator (`torch.Generator`): every Monte-Carlo draw of timesteps and noise.
    """

    images: torch.Tensor
    target: torch.Tensor
    encoder: object
    perceptual: object
    budget: float
    alpha: float
    denoiser: Denoiser | None = None
    caption: str = "a painting"
    generator: torch.Generator | None = None

    def require_denoiser(self, name: str) -> Denoiser:
        if self.denoiser is None:
            raise ValueError(f"protection {name!r} attacks the denoiser: it needs a whole pipeline, not only a VAE")
        return self.denoiser

    def draws(self) -> torch.Generator:
        if self.generator is None:
            raise ValueError("this protection draws timesteps and noise: pass a torch.Generator")
        return self.generator


class PerceptualHinge:
    """α · Σ max(P(x, x+δ) − p, 0) (Glaze, eq. 3's second term), with the original's features computed once."""

    def __init__(self, inputs: ProtectionInputs):
        self.distance = inputs.perceptual.distance_to(inputs.images.detach())
        self.budget, self.alpha = float(inputs.budget), float(inputs.alpha)

    def __call__(self, x_adv: torch.Tensor, loss: torch.Tensor) -> torch.Tensor:
        excess = torch.relu(self.distance(x_adv) - self.budget)  # (B,)
        if not bool((excess > 0).any()):
            return loss  # within budget: zero penalty and zero gradient, so skip its backward pass
        return loss + self.alpha * excess.sum()


def latent_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared distance between two batches of latents, (B, C, h, w) -> scalar."""
    return ((a - b) ** 2).mean()


def denoising_error(denoiser: Denoiser, latents: torch.Tensor, context: torch.Tensor, generator: torch.Generator,
                    draws: int = 1, t_range: tuple[float, float] = (0.0, 1.0)) -> torch.Tensor:
    """E_{t,ε} ‖ε_θ(z_t, t, c) − ε‖², the latent diffusion training loss, over ``draws`` Monte-Carlo draws.

    ``latents`` are scaled latents (B, C, h, w); ``context`` is (1, L, D) or (B, L, D).
    """
    z = latents.repeat(draws, 1, 1, 1)  # (draws·B, C, h, w)
    draw = noisy_draw(z, denoiser.num_timesteps, generator, t_range)
    prediction = denoiser(denoiser.add_noise(z, draw.noise, draw.timesteps), draw.timesteps,
                          context.expand(len(z), -1, -1))
    return ((prediction - draw.noise) ** 2).mean()


def pattern_image(height: int, width: int, period: int = 16) -> torch.Tensor:
    """A fixed, high-contrast grey pattern (1, 3, H, W) in [0, 1]: diagonal stripes crossed with rings.

    The stand-in for the fixed target images of PhotoGuard and Mist (their repositories ship a
    logo; this is drawn in code so that no image file is needed). Deterministic.
    """
    yy, xx = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                            indexing="ij")
    stripes = torch.sin(2 * torch.pi * (xx + yy) / period)
    centre = ((yy % (4 * period) - 2 * period) ** 2 + (xx % (4 * period) - 2 * period) ** 2).sqrt()
    rings = torch.sin(2 * torch.pi * centre / (period / 2))
    grey = 0.5 + 0.5 * torch.sign(stripes * rings)
    return grey.expand(1, 3, height, width).clone()
