"""A protection that attacks a moving target: a surrogate of the mimic, fine-tuned as the cloak forms."""

from __future__ import annotations

import copy

import torch

from .common import ProtectionInputs, denoising_error
from .diffusion import _DenoiserLoss

__all__ = ["AsplLoss", "UnlearnableLoss"]

class AsplLoss(_DenoiserLoss):
    """Anti-DreamBooth's alternating surrogate and perturbation learning (ASPL; Van Le et al.,
    "Anti-DreamBooth", ICCV 2023, Algorithm 1).

        repeat:  θ' ← a few fine-tuning steps of the surrogate on the current x+δ
                 δ  ← perturbation steps maximising E_{t,ε} ‖ε_θ'(z_t(E(x+δ)), t, c) − ε‖²

    The surrogate follows what a mimic's fine-tune will become on the cloaked images, so
    the perturbation keeps attacking the model the mimic ends with, not only the base.
    Kept: the alternation, the AdvDM objective against the surrogate, t uniform over the
    schedule. Changed: the surrogate is a LoRA adapter on a copy of the UNet (the mimic's
    own recipe: rank 8, AdamW 1e-3) instead of a DreamBooth fine-tune of UNet and text
    encoder; it trains on the image being cloaked (the cloak runs one image at a time) for
    ``surrogate_steps`` steps every ``interval`` perturbation steps; shared Adam; the hinge.
    The surrogate is this loss's own copy, dropped with it: the base model is never changed.
    """

    name = "aspl"

    def __init__(self, inputs: ProtectionInputs, interval: int = 10, surrogate_steps: int = 5, rank: int = 8,
                 learning_rate: float = 1e-3, draws: int = 4, t_range: tuple[float, float] = (0.0, 1.0)):
        from ..finetune import LoraSettings, add_lora_adapter

        super().__init__(inputs, draws, t_range)
        if interval < 1 or surrogate_steps < 1:
            raise ValueError("interval and surrogate_steps must be >= 1")
        unet = copy.deepcopy(self.denoiser.unet)
        add_lora_adapter(unet, rank, rank, LoraSettings().target_modules, self.generator)  # the mimic's layers
        self.lora = [p for name, p in unet.named_parameters() if "lora_" in name]
        self.surrogate = self.denoiser.with_unet(unet)
        self.optimizer = torch.optim.AdamW(self.lora, lr=learning_rate, weight_decay=1e-2)
        self.interval, self.surrogate_steps, self.calls = int(interval), int(surrogate_steps), 0

    def _fine_tune(self, images: torch.Tensor) -> None:
        """A few of the mimic's steps on the current cloaked images (δ fixed)."""
        with torch.no_grad():
            latents = self.latents(images.detach())
        for param in self.lora:
            param.requires_grad_(True)
        for _ in range(self.surrogate_steps):
            loss = denoising_error(self.surrogate, latents, self.context, self.generator, self.draws, self.t_range)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        for param in self.lora:  # frozen again while δ is optimised
            param.requires_grad_(False)

    #: +1: the perturbation ascends the surrogate's denoising error (ASPL); -1: it descends it (UDP).
    direction = 1.0

    def forward(self, x_adv: torch.Tensor) -> torch.Tensor:
        if self.calls % self.interval == 0:
            self._fine_tune(x_adv)
        self.calls += 1
        error = denoising_error(self.surrogate, self.latents(x_adv), self.context, self.generator, self.draws,
                                self.t_range)
        return self.hinge(x_adv, -self.direction * error)


class UnlearnableLoss(AsplLoss):
    """Unlearnable examples for diffusion models (UDP; Zhao et al. 2023, after Huang et al.'s error-minimising
    noise, ICLR 2021): noise the mimic learns as a shortcut, so that its fine-tune has little left to learn of
    the artwork itself.

        repeat:  θ' ← a few fine-tuning steps of the surrogate on the current x+δ
                 δ  ← perturbation steps minimising E_{t,ε} ‖ε_θ'(z_t(E(x+δ)), t, c) − ε‖²

    min_δ min_θ' of the denoising loss, the min-min stand-in for the bi-level goal (the mimic trained on x+δ
    should do badly on x). Kept: both steps descend, alternately; t uniform. Changed: ASPL's machinery as it is
    here (a LoRA surrogate on a copy of the UNet, trained on the image being cloaked, ``surrogate_steps`` steps
    every ``interval`` perturbation steps; shared Adam; the hinge); EUDP's timestep schedule is not used.
    """

    name = "udp"
    direction = -1.0
