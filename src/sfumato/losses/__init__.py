"""Protection objectives: each a small ``loss(x_adv) -> scalar`` for the shared optimiser.

A loss is built once per image from :class:`ProtectionInputs` (it may precompute the
target's features) and then called at every optimiser step. Protections are looked up
by name in :data:`PROTECTIONS`; :func:`build_loss` makes one.
"""

from __future__ import annotations

from dataclasses import dataclass

from .common import PerceptualHinge, ProtectionInputs, denoising_error, latent_distance, pattern_image
from .diffusion import AceLoss, AdvDMLoss, MistLoss, SdsLoss, StyleDenoiserLoss
from .encoder import GlazeLoss, PhotoGuardLoss, UntargetedLoss
from .surrogate import AsplLoss, UnlearnableLoss

__all__ = ["Protection", "PROTECTIONS", "ProtectionInputs", "build_loss", "get_loss", "needs_denoiser",
           "GlazeLoss", "PhotoGuardLoss", "UntargetedLoss", "AdvDMLoss", "AceLoss", "MistLoss", "SdsLoss", "AsplLoss", "UnlearnableLoss",
           "StyleDenoiserLoss",
           "PerceptualHinge", "denoising_error", "latent_distance", "pattern_image"]


@dataclass(frozen=True)
class Protection:
    loss: type
    needs_denoiser: bool  # True: the whole pipeline loads (UNet and text encoder), not only the VAE
    summary: str  # one line for a person choosing
    targeted: bool = False  # True: it teaches the mimic the target style T (its "judged as target" share means something)


PROTECTIONS = {
    "glaze": Protection(GlazeLoss, False, "Glaze: the encoder sees the art restyled into another style (VAE only)",
                        targeted=True),
    "photoguard": Protection(PhotoGuardLoss, False, "PhotoGuard: the encoder sees a plain grey image (VAE only)"),
    "untargeted": Protection(UntargetedLoss, False,
                             "Untargeted: move the encoder's view of the art as far as the budget allows (VAE only)"),
    "advdm": Protection(AdvDMLoss, True, "AdvDM: maximise the model's denoising loss on the art"),
    "mist": Protection(MistLoss, True, "Mist: a fixed pattern for the encoder plus AdvDM's denoising loss"),
    "sds": Protection(SdsLoss, True, "SDS(-): score distillation, no UNet backward pass (fastest denoiser attack)"),
    "ace": Protection(AceLoss, True, "ACE (Mist v2): the denoiser's prediction points at a fixed pattern"),
    "aspl": Protection(AsplLoss, True, "Anti-DreamBooth ASPL: attack a surrogate mimic fine-tuned as the cloak forms"),
    "udp": Protection(UnlearnableLoss, True,
                      "Unlearnable (UDP): noise a surrogate mimic learns instead of the art (error-minimising)"),
    "style-dm": Protection(StyleDenoiserLoss, True,
                           "sfumato's own: Glaze's style target seen by both the encoder and the denoiser",
                           targeted=True),
}


def _protection(name: str) -> Protection:
    try:
        return PROTECTIONS[name]
    except KeyError:
        raise ValueError(f"unknown protection {name!r}; valid: {', '.join(PROTECTIONS)}") from None


def get_loss(name: str) -> type:
    """The loss class registered under ``name``."""
    return _protection(name).loss


def needs_denoiser(name: str) -> bool:
    """Whether protection ``name`` needs the model's UNet and text encoder, not only its VAE."""
    return _protection(name).needs_denoiser


def build_loss(name: str, inputs: ProtectionInputs):
    """Protection ``name``'s loss for these inputs, with the settings recorded in its docstring."""
    return get_loss(name)(inputs)
