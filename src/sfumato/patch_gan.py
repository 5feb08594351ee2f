"""The adversarial term that trains Stable Diffusion's autoencoder: a patch discriminator and hinge losses.

Rombach et al. (2022) train their KL autoencoder the way Esser et al. (2021) train VQGAN. A
reconstruction loss L_rec is joined by a PatchGAN discriminator D (Isola et al. 2017) that
judges overlapping patches of an image, trained with hinge losses

    L_D = ½ E[max(0, 1 − D(x))] + ½ E[max(0, 1 + D(x̂))],      L_G = −E[D(x̂)],

and the autoencoder's adversarial term is weighted adaptively, so that neither term swamps
the other at the decoder's last layer G_L:

    λ = ‖∇_{G_L} L_rec‖ / (‖∇_{G_L} L_G‖ + 10⁻⁴),   clamped to [0, 10⁴].

``scripts/train_mini.py`` uses these to test whether the adversarial term is what makes an
autoencoder's encoder easy for a cloak to move (``benchmarks/vae_reach.py --recipe gan``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PatchDiscriminator(nn.Sequential):
    """A PatchGAN discriminator: logits, one per overlapping patch, for images in [-1, 1].

    Args:
        channels: image channels.
        width: channels of the first convolution; each further layer doubles them (at most 8x).
        layers: strided layers after the first; a 128-px image gets 14 x 14 patch logits at 3.
        generator: draws the initial weights (N(0, 0.02) convolutions, N(1, 0.02) norm scales).
    """

    def __init__(self, channels: int = 3, width: int = 32, layers: int = 3,
                 generator: torch.Generator | None = None):
        blocks: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2)]
        c_out = width
        for i in range(1, layers + 1):
            c_in, c_out = c_out, width * min(2 ** i, 8)
            blocks += [nn.Conv2d(c_in, c_out, 4, 2 if i < layers else 1, 1, bias=False),
                       nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2)]
        blocks.append(nn.Conv2d(c_out, 1, 4, 1, 1))
        super().__init__(*blocks)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, 0.0, 0.02, generator=generator)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.normal_(module.weight, 1.0, 0.02, generator=generator)
                nn.init.zeros_(module.bias)


def discriminator_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Hinge loss L_D for the discriminator's logits on real and reconstructed images."""
    return 0.5 * (F.relu(1 - real).mean() + F.relu(1 + fake).mean())


def generator_loss(fake: torch.Tensor) -> torch.Tensor:
    """L_G = −E[D(x̂)], the autoencoder's adversarial term."""
    return -fake.mean()


def adaptive_weight(reconstruction: torch.Tensor, adversarial: torch.Tensor, last_layer: torch.Tensor,
                    cap: float = 1e4) -> torch.Tensor:
    """λ = ‖∇ L_rec‖ / (‖∇ L_G‖ + 10⁻⁴) at ``last_layer``, clamped to [0, ``cap``], as a constant."""
    (g_rec,) = torch.autograd.grad(reconstruction, last_layer, retain_graph=True)
    (g_adv,) = torch.autograd.grad(adversarial, last_layer, retain_graph=True)
    return (g_rec.norm() / (g_adv.norm() + 1e-4)).clamp(0.0, cap).detach()
