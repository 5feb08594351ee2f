"""A wider decoder over the same encoder: same latents, same images, loadable as a pipeline's VAE."""

from __future__ import annotations

import pytest
import torch
from conftest import get_dummy_components, get_dummy_vae, make_artwork

from sfumato.models import load_encoder, load_vae, native_resolution
from sfumato.widen import widen_decoder


def _images(count: int = 2) -> torch.Tensor:
    return torch.stack([make_artwork(64, 64, seed=s) for s in range(count)]) * 2 - 1


@pytest.mark.parametrize("factor", [2, 3])
@torch.no_grad()
def test_widened_decoder_keeps_latents_and_images(factor):
    vae = get_dummy_vae()
    wide = widen_decoder(vae, factor).eval()
    assert wide.config.up_block_out_channels == tuple(factor * c for c in vae.config.block_out_channels)
    assert wide.decoder.conv_in.out_channels == factor * vae.decoder.conv_in.out_channels
    x = _images()
    latents = vae.encode(x).latent_dist.mode()
    assert torch.equal(wide.encode(x).latent_dist.mode(), latents)
    assert torch.allclose(wide.decode(latents).sample, vae.decode(latents).sample, atol=1e-4)  # float32 sums


@torch.no_grad()
def test_noise_parts_the_copies_reproducibly_and_leaves_the_encoder():
    vae = get_dummy_vae()

    def noisy(seed: int):
        return widen_decoder(vae, noise=0.01, generator=torch.Generator().manual_seed(seed)).eval()

    first, again, other = noisy(0), noisy(0), noisy(1)
    weight = first.decoder.conv_in.weight
    assert not torch.equal(weight[0], weight[1])  # the two copies of channel 0 now differ
    assert torch.equal(weight, again.decoder.conv_in.weight) and not torch.equal(weight, other.decoder.conv_in.weight)
    x = _images()
    latents = vae.encode(x).latent_dist.mode()
    assert torch.equal(first.encode(x).latent_dist.mode(), latents)
    change = (first.decode(latents).sample - vae.decode(latents).sample).abs().mean()
    assert 0 < change < 0.02  # a nudge, not a new decoder


def test_bad_arguments_fail_early():
    vae = get_dummy_vae()
    with pytest.raises(ValueError, match="factor"):
        widen_decoder(vae, 0)
    with pytest.raises(ValueError, match="generator"):
        widen_decoder(vae, noise=0.01)
    with pytest.raises(TypeError, match="AutoencoderKL"):
        widen_decoder(widen_decoder(vae))


def test_pipeline_with_a_wide_decoder_saves_loads_and_generates(tmp_path):
    from diffusers import AsymmetricAutoencoderKL, StableDiffusionPipeline

    components = get_dummy_components()
    components["vae"] = widen_decoder(components["vae"])
    StableDiffusionPipeline(**components, requires_safety_checker=False).save_pretrained(tmp_path)
    pipe = StableDiffusionPipeline.from_pretrained(tmp_path)
    assert isinstance(pipe.vae, AsymmetricAutoencoderKL) and pipe.vae_scale_factor == 8
    out = pipe("a painting", num_inference_steps=2, output_type="pt",
               generator=torch.Generator().manual_seed(0)).images
    assert out.shape == (1, 3, 64, 64)
    assert native_resolution(str(tmp_path)) == 64
    assert isinstance(load_vae(tmp_path), AsymmetricAutoencoderKL)
    image = make_artwork(64, 64)[None]
    assert torch.equal(load_encoder(tmp_path)(image), load_encoder(tmp_path / "vae")(image))
