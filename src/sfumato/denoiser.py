"""The denoiser side of a latent diffusion model, behind one small adapter.

:class:`Denoiser` is to the UNet what :class:`~sfumato.models.VaeEncoder` is to the
VAE: it takes what a protection works with (scaled latents, a timestep, a caption's
embedding) and returns the noise prediction, and hides diffusers' calling
conventions. :func:`noisy_draw` is the one Monte-Carlo draw of timesteps and noise
that every denoiser-aware protection shares.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["Denoiser", "NoisyDraw", "noisy_draw"]


class Denoiser(nn.Module):
    """ε-prediction of a frozen latent diffusion model: ``(z_t, t, context) -> ε̂``.

    Args:
        unet: a diffusers ``UNet2DConditionModel`` predicting ε (frozen here).
        text_encoder: the model's CLIP text encoder (frozen here).
        tokenizer: its tokenizer.
        scheduler: any diffusers scheduler with the training schedule (``alphas_cumprod``).
        scaling_factor (`float`): the VAE's latent scaling (0.18215 for Stable Diffusion 1.x).
    """

    def __init__(self, unet: nn.Module, text_encoder: nn.Module, tokenizer, scheduler, scaling_factor: float):
        super().__init__()
        prediction = getattr(scheduler.config, "prediction_type", "epsilon")
        if prediction != "epsilon":
            raise ValueError(f"the denoiser must predict noise (epsilon), this scheduler says {prediction!r}")
        self.unet = unet.eval().requires_grad_(False)
        self.text_encoder = text_encoder.eval().requires_grad_(False)
        self.tokenizer, self.scaling_factor = tokenizer, float(scaling_factor)
        schedule = scheduler.alphas_cumprod.detach().float().clone().to(next(self.unet.parameters()).device)
        self.register_buffer("alphas_cumprod", schedule, persistent=False)  # indexed by timesteps on the UNet's device

    @classmethod
    def from_pipeline(cls, pipeline) -> Denoiser:
        """The denoiser of a diffusers Stable Diffusion pipeline (text-to-image or img2img)."""
        return cls(pipeline.unet, pipeline.text_encoder, pipeline.tokenizer, pipeline.scheduler,
                   pipeline.vae.config.scaling_factor)

    def with_unet(self, unet: nn.Module) -> Denoiser:
        """The same denoiser around another UNet (a surrogate); the text side is shared, not copied."""
        other = Denoiser.__new__(Denoiser)
        nn.Module.__init__(other)
        other.unet, other.text_encoder, other.tokenizer = unet, self.text_encoder, self.tokenizer
        other.scaling_factor = self.scaling_factor
        other.register_buffer("alphas_cumprod", self.alphas_cumprod, persistent=False)
        return other

    @property
    def num_timesteps(self) -> int:
        return len(self.alphas_cumprod)

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def multiple(self) -> int:
        """How many latent pixels a side must be a multiple of for the UNet's down- and up-sampling."""
        return 2 ** (len(self.unet.config.block_out_channels) - 1)

    @torch.no_grad()
    def embed(self, captions: list[str]) -> torch.Tensor:
        """Captions -> the text encoder's hidden states (B, L, D), float32."""
        ids = self.tokenizer(captions, padding="max_length", max_length=self.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt").input_ids.to(self.device)
        return self.text_encoder(ids)[0].float()

    def add_noise(self, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """z_t = √ᾱ_t z_0 + √(1 − ᾱ_t) ε (DDPM's forward process)."""
        alpha = self.alphas_cumprod[timesteps].view(-1, 1, 1, 1)
        return alpha.sqrt() * latents + (1 - alpha).sqrt() * noise

    def forward(self, noisy: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) noisy scaled latents, (B,) timesteps, (B, L, D) context -> ε̂ (B, C, h, w), float32."""
        dtype = next(self.unet.parameters()).dtype
        return self.unet(noisy.to(dtype), timesteps, encoder_hidden_states=context.to(dtype)).sample.float()


@dataclass(frozen=True)
class NoisyDraw:
    timesteps: torch.Tensor  # (B,) integer timesteps
    noise: torch.Tensor  # (B, C, h, w) standard normal


def noisy_draw(latents: torch.Tensor, num_timesteps: int, generator: torch.Generator,
               t_range: tuple[float, float] = (0.0, 1.0)) -> NoisyDraw:
    """One Monte-Carlo draw of E_{t, ε}: t uniform over the fraction ``t_range`` of the schedule, ε ~ N(0, I)."""
    low, high = int(t_range[0] * num_timesteps), max(int(t_range[0] * num_timesteps) + 1, int(t_range[1] * num_timesteps))
    device = generator.device
    timesteps = torch.randint(low, high, (len(latents),), generator=generator, device=device).to(latents.device)
    noise = torch.randn(latents.shape, generator=generator, device=device, dtype=torch.float32).to(latents.device)
    return NoisyDraw(timesteps, noise)
