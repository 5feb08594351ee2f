"""The patch discriminator and hinge GAN terms (sfumato.patch_gan) that train Stable Diffusion's autoencoder."""

from __future__ import annotations

import pytest
import torch

from sfumato.patch_gan import PatchDiscriminator, adaptive_weight, discriminator_loss, generator_loss


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("size, patches", [(64, 6), (128, 14)])
def test_discriminator_gives_one_logit_per_patch(size, patches):
    images = torch.rand(2, 3, size, size, generator=seeded(0)) * 2 - 1
    logits = PatchDiscriminator(width=8, generator=seeded(0))(images)
    assert logits.shape == (2, 1, patches, patches)


def test_discriminator_weights_come_from_the_generator():
    def weights(seed):
        return torch.cat([p.flatten() for p in PatchDiscriminator(width=8, generator=seeded(seed)).parameters()])

    assert torch.equal(weights(0), weights(0))
    assert not torch.equal(weights(0), weights(1))


def test_hinge_losses():
    sure = torch.tensor([1.5, 2.0]), torch.tensor([-1.0, -3.0])
    assert discriminator_loss(*sure) == 0
    assert discriminator_loss(torch.zeros(3), torch.zeros(3)) == pytest.approx(1.0)
    assert generator_loss(torch.tensor([1.0, 3.0])) == pytest.approx(-2.0)


def test_adaptive_weight_balances_the_gradients_at_the_last_layer():
    layer = torch.ones(4, requires_grad=True)
    weight = adaptive_weight((3 * layer).sum(), (layer * 1.5).sum(), layer)
    assert weight.item() == pytest.approx(2.0, rel=1e-3) and not weight.requires_grad
    assert adaptive_weight(layer.sum(), layer.sum() * 0, layer, cap=50.0).item() == 50.0
