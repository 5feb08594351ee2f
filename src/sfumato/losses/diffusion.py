"""Protections that attack what the mimic optimises: the denoiser's training loss.

Each needs the model's UNet and text encoder (a :class:`~sfumato.denoiser.Denoiser`),
draws its timesteps and noise from the inputs' generator, and adds the shared
perceptual hinge. Latents are the encoder's means times the VAE's scaling factor, as
the mimic's fine-tune sees them.
"""

from __future__ import annotations

import torch
from torch import nn

from ..denoiser import noisy_draw
from .common import PerceptualHinge, ProtectionInputs, denoising_error, latent_distance, pattern_image

__all__ = ["AdvDMLoss", "AceLoss", "MistLoss", "SdsLoss", "StyleDenoiserLoss"]


class _DenoiserLoss(nn.Module):
    """Shared set-up: the encoder, the denoiser, the caption's context, the draws and the hinge."""

    name = "denoiser"

    def __init__(self, inputs: ProtectionInputs, draws: int, t_range: tuple[float, float]):
        super().__init__()
        self.encoder, self.denoiser = inputs.encoder, inputs.require_denoiser(self.name)
        self.generator, self.hinge = inputs.draws(), PerceptualHinge(inputs)
        self.draws, self.t_range = int(draws), tuple(t_range)
        self.register_buffer("context", self.denoiser.embed([inputs.caption]))  # (1, L, D)

    def latents(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, h, w) in [0, 1] -> scaled latents (B, C, h/8, w/8), as the mimic trains on them."""
        return self.encoder(images) * self.denoiser.scaling_factor

    def error(self, images: torch.Tensor) -> torch.Tensor:
        return denoising_error(self.denoiser, self.latents(images), self.context, self.generator, self.draws,
                               self.t_range)


class AdvDMLoss(_DenoiserLoss):
    """AdvDM (Liang et al., "Adversarial example does good", ICML 2023, eq. 5): maximise the
    model's denoising loss on the artwork, a Monte-Carlo estimate over timesteps and noise.

        max_δ E_{t,ε} ‖ε_θ(z_t(E(x+δ)), t, c) − ε‖²

    Kept: t uniform over the whole schedule, fresh draws at every step, the gradient through
    the UNet and the encoder, the caption "a painting" (Mist's code, the paper's reference
    implementation). Changed: ``draws`` draws per step (the code: one) to steady the gradient
    over 100 steps; the VAE's posterior mean instead of a sample; the shared projected Adam
    instead of PGD's 1-level sign steps (the code: ε 16 levels, 100 steps, 512 px); the
    perceptual hinge. Minimised here as −error.
    """

    name = "advdm"

    def __init__(self, inputs: ProtectionInputs, draws: int = 4, t_range: tuple[float, float] = (0.0, 1.0)):
        super().__init__(inputs, draws, t_range)

    def forward(self, x_adv: torch.Tensor) -> torch.Tensor:
        return self.hinge(x_adv, -self.error(x_adv))


class MistLoss(_DenoiserLoss):
    """Mist (Liang et al., "Mist: towards improved adversarial examples for diffusion models",
    2023): AdvDM's semantic loss fused with a textural loss that pulls the latent towards a
    fixed pattern.

        min_δ  ‖E(x+δ) − E(x_T)‖² / ‖E(x) − E(x_T)‖²  −  w · E_{t,ε} ‖ε_θ(z_t, t, c) − ε‖²

    Kept: the fused objective (mode 2 in Mist's code, whose README swaps the mode numbers), a
    fixed high-contrast target pattern, the semantic term as in AdvDM. Changed: the pattern is
    drawn in code (:func:`pattern_image`) instead of Mist's tiled logo image; Mist weighs a
    summed textural term against 10⁴ × the mean semantic term, sfumato normalises the textural
    term to 1 at δ = 0 and weighs the mean semantic term by ``weight``; ``draws`` draws per
    step; shared Adam instead of sign steps (Mist: ε 16 levels, 100 steps); the hinge.
    """

    name = "mist"

    def __init__(self, inputs: ProtectionInputs, weight: float = 1.0, draws: int = 4,
                 t_range: tuple[float, float] = (0.0, 1.0)):
        super().__init__(inputs, draws, t_range)
        _, _, h, w = inputs.images.shape
        pattern = pattern_image(h, w).to(inputs.images.device).expand_as(inputs.images)
        self.weight = float(weight)
        with torch.no_grad():
            self.register_buffer("pattern_latents", self.encoder(pattern))
            self.scale = float(latent_distance(self.encoder(inputs.images), self.pattern_latents)) or 1.0

    def forward(self, x_adv: torch.Tensor) -> torch.Tensor:
        z = self.encoder(x_adv)
        textural = latent_distance(z, self.pattern_latents) / self.scale
        semantic = denoising_error(self.denoiser, z * self.denoiser.scaling_factor, self.context, self.generator,
                                   self.draws, self.t_range)
        return self.hinge(x_adv, textural - self.weight * semantic)


class SdsLoss(_DenoiserLoss):
    """Score distillation, the sign Xue et al. found stronger ("Toward effective protection
    against diffusion-based mimicry through score distillation", ICLR 2024): SDS(−).

        ∇_δ ≈ E_{t,ε} w(t) (ε_θ(z_t, t, c) − ε) ∂z/∂δ,   z = E(x+δ)

    The UNet's Jacobian is dropped, so the UNet runs forward only and the backward pass goes
    through the encoder alone (about half the cost of AdvDM). SDS(+) ascends this gradient
    (an approximation of AdvDM); SDS(−) descends it, which the paper found both stronger
    and less visible (Diff-Protect's default). Kept: the raw residual ε̂ − ε as the gradient
    (w(t) = 1), t uniform over the schedule, the descent sign. Changed: ``draws`` draws per
    step (the code: one); the posterior mean instead of a sample; shared Adam with a random
    start instead of 1-level sign steps from x (the code: ε 16 levels, 100 steps); the hinge.
    Implemented as the surrogate ⟨sg(ε̂ − ε), z⟩, whose gradient is exactly the one above.
    """

    name = "sds"

    def __init__(self, inputs: ProtectionInputs, draws: int = 4, t_range: tuple[float, float] = (0.0, 1.0),
                 sign: float = -1.0):
        super().__init__(inputs, draws, t_range)
        if sign not in (-1.0, 1.0):
            raise ValueError(f"sign must be -1 (SDS(-), descend) or +1 (SDS(+), ascend), got {sign}")
        self.sign = sign

    def forward(self, x_adv: torch.Tensor) -> torch.Tensor:
        z = self.latents(x_adv).repeat(self.draws, 1, 1, 1)  # (draws·B, C, h, w)
        draw = noisy_draw(z, self.denoiser.num_timesteps, self.generator, self.t_range)
        with torch.no_grad():
            residual = self.denoiser(self.denoiser.add_noise(z, draw.noise, draw.timesteps), draw.timesteps,
                                     self.context.expand(len(z), -1, -1)) - draw.noise
        surrogate = (residual * z).sum() / residual.numel()
        return self.hinge(x_adv, -self.sign * surrogate)  # SDS(−): minimise the surrogate


class AceLoss(_DenoiserLoss):
    """ACE, the targeted UNet attack of Mist v2 (Zheng et al., "Understanding and improving
    adversarial attacks on latent diffusion model", 2023): make the denoiser's noise prediction
    on the cloaked artwork point at one fixed target latent, at every noise level.

        min_δ E_{t,ε} ‖ε_θ(z_t(E(x+δ)), t, c) − z_T‖²,   z_T = E(x_T) (scaled)

    A mimic fine-tuned on such images inherits a consistent score error towards z_T, which
    shows in its samples as the target's pattern. Kept: the objective, the fixed pattern
    target, t uniform over the schedule. Changed: the pattern is drawn in code; the attack
    runs against the base model only (Mist v2 alternates with LoRA steps on the cloaked
    images, as ``aspl`` does here); ``draws`` draws per step; shared Adam; the hinge.
    """

    name = "ace"

    def __init__(self, inputs: ProtectionInputs, draws: int = 4, t_range: tuple[float, float] = (0.0, 1.0)):
        super().__init__(inputs, draws, t_range)
        _, _, h, w = inputs.images.shape
        pattern = pattern_image(h, w).to(inputs.images.device).expand_as(inputs.images)
        with torch.no_grad():
            self.register_buffer("pattern_latents", self.latents(pattern))  # (B, C, h/8, w/8), scaled

    def forward(self, x_adv: torch.Tensor) -> torch.Tensor:
        d = self.denoiser
        z = self.latents(x_adv).repeat(self.draws, 1, 1, 1)  # (draws·B, C, h, w)
        draw = noisy_draw(z, d.num_timesteps, self.generator, self.t_range)
        prediction = d(d.add_noise(z, draw.noise, draw.timesteps), draw.timesteps, self.context.expand(len(z), -1, -1))
        return self.hinge(x_adv, ((prediction - self.pattern_latents.repeat(self.draws, 1, 1, 1)) ** 2).mean())


class StyleDenoiserLoss(_DenoiserLoss):
    """sfumato's own: Glaze's style target, seen by the denoiser as well as the encoder.

        min_δ ‖E(x+δ) − E(Ω)‖² / s_E  +  λ · E_{t,ε} ‖ε_θ(z_t(E(x+δ)), t, c) − ε_θ(z_t(E(Ω)), t, c)‖² / s_D

    where both noisy latents share t and ε, and s_E, s_D are each term's value at δ = 0.
    The second term asks that, at every noise level, the denoiser reads the cloaked artwork
    as it reads the artwork restyled into the target style T, so the gradients that a
    mimic's fine-tune takes on x+δ resemble those it would take on Ω(x, T): the mimic is
    taught a different style (Glaze's aim) in the denoiser's own terms, in the spirit of the
    targeted UNet attacks of Mist v2 / ACE (Zheng et al. 2023). Costs one UNet backward.
    """

    name = "style-dm"

    def __init__(self, inputs: ProtectionInputs, weight: float = 1.0, draws: int = 4,
                 t_range: tuple[float, float] = (0.0, 1.0)):
        super().__init__(inputs, draws, t_range)
        self.weight = float(weight)
        with torch.no_grad():
            self.register_buffer("target_latents", self.encoder(inputs.target))  # (B, C, h, w)
            own = self.encoder(inputs.images)
            self.encoder_scale = float(latent_distance(own, self.target_latents)) or 1.0
            self.denoiser_scale = float(self._mismatch(own)) or 1.0

    def _mismatch(self, z: torch.Tensor) -> torch.Tensor:
        """E_{t,ε} ‖ε_θ(z_t(z)) − ε_θ(z_t(z_T))‖², both noised with the same t and ε."""
        s, d = self.denoiser.scaling_factor, self.denoiser
        own = (z * s).repeat(self.draws, 1, 1, 1)  # (draws·B, C, h, w)
        draw = noisy_draw(own, d.num_timesteps, self.generator, self.t_range)
        context = self.context.expand(len(own), -1, -1)
        with torch.no_grad():
            target = (self.target_latents * s).repeat(self.draws, 1, 1, 1)
            wanted = d(d.add_noise(target, draw.noise, draw.timesteps), draw.timesteps, context)
        prediction = d(d.add_noise(own, draw.noise, draw.timesteps), draw.timesteps, context)
        return ((prediction - wanted) ** 2).mean()

    def forward(self, x_adv: torch.Tensor) -> torch.Tensor:
        z = self.encoder(x_adv)
        encoder_term = latent_distance(z, self.target_latents) / self.encoder_scale
        return self.hinge(x_adv, encoder_term + self.weight * self._mismatch(z) / self.denoiser_scale)
