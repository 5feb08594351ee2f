"""Countermeasures and robust cloaks on tiny seeded components: parsing, effects, determinism."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from conftest import OtherArtwork, get_dummy_vae, make_artwork
from PIL import Image

from sfumato.cloak import cloak_image
from sfumato.config import resolve_config
from sfumato.countermeasures import Purifier, apply_countermeasure, parse_countermeasure
from sfumato.models import VaeEncoder
from sfumato.robust import RANGES, TRANSFORMS, RandomView, diff_jpeg, draw_transform


@pytest.fixture(scope="module")
def images():
    return torch.stack([make_artwork(64, 64, seed=s) for s in (1, 2)])


@pytest.fixture(scope="module")
def purifier(tiny_pipeline_dir, perceptual):
    from sfumato.models import load_img2img_pipeline

    return Purifier(load_img2img_pipeline(tiny_pipeline_dir), perceptual, budget=0.05, impress_steps=15)


@pytest.mark.parametrize("spec, message", [("sharpen:2", "unknown countermeasure"), ("jpeg", "jpeg:VALUE"),
                                           ("impress:3", "write it as impress"), ("noise:x", "not a number"),
                                           ("resize:1", "above 1"), ("diffpure:1.5", "at most 1")])
def test_bad_specs_are_refused_in_one_line(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_countermeasure(spec)


def test_specs_round_trip():
    assert [parse_countermeasure(s).spec for s in ("none", "jpeg:75", "noise:0.05", "impress", "upscale:0.1")] == \
        ["none", "jpeg:75", "noise:0.05", "impress", "upscale:0.1"]


@pytest.mark.parametrize("spec", ["jpeg:50", "blur:1", "noise:0.05", "resize:2"])
def test_simple_countermeasures_change_the_image_and_stay_on_the_grid(images, spec):
    out = apply_countermeasure(spec, images, generator=torch.Generator().manual_seed(0))
    assert out.shape == images.shape and torch.equal(out, (out * 255).round() / 255)
    assert 0 < (out - images).abs().mean() < 0.2
    again = apply_countermeasure(spec, images, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again), "the same seed gives the same result"


def test_noise_needs_a_generator_and_model_countermeasures_a_purifier(images):
    with pytest.raises(ValueError, match="torch.Generator"):
        apply_countermeasure("noise:0.1", images)
    with pytest.raises(ValueError, match="Purifier"):
        apply_countermeasure("diffpure:0.2", images, generator=torch.Generator())


@pytest.mark.parametrize("spec", ["diffpure:0.3", "upscale:0.1"])
def test_model_countermeasures_run_the_models_img2img(images, purifier, spec):
    out = apply_countermeasure(spec, images, purifier=purifier, generator=torch.Generator().manual_seed(0))
    assert out.shape == images.shape and torch.equal(out, (out * 255).round() / 255)
    assert (out - images).abs().mean() > 0.01
    again = apply_countermeasure(spec, images, purifier=purifier, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_impress_makes_the_image_consistent_under_the_autoencoder_within_the_budget(images, purifier, perceptual):
    vae = purifier.pipeline.vae

    def inconsistency(x):
        with torch.no_grad():
            return float(((x - (vae.decode(vae.encode(x * 2 - 1).latent_dist.mean).sample / 2 + 0.5)) ** 2).mean())

    out = apply_countermeasure("impress", images, purifier=purifier)
    assert inconsistency(out) < inconsistency(images)
    assert float(perceptual(out, images).max()) <= purifier.budget + 0.02  # the hinge, after 8-bit rounding


def test_diff_jpeg_is_close_to_a_real_jpeg_and_passes_gradients():
    image = make_artwork(48, 40, seed=4)[None]
    buffer = io.BytesIO()
    Image.fromarray((image[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(buffer, "JPEG", quality=75)
    real = torch.from_numpy(np.array(Image.open(buffer).convert("RGB"))).permute(2, 0, 1)[None].float() / 255
    stand_in = diff_jpeg(image, 75)
    assert stand_in.shape == image.shape
    assert (stand_in - real).abs().mean() < 0.25 * (image - real).abs().mean()  # measured: 0.15
    x = image.clone().requires_grad_(True)
    diff_jpeg(x, 75).sum().backward()
    assert x.grad.abs().sum() > 0


def test_every_transform_of_the_pool_is_drawn_and_differentiable():
    generator, seen = torch.Generator().manual_seed(0), set()
    x = make_artwork(32, 32)[None].requires_grad_(True)
    for _ in range(40):
        kind, value, transform = draw_transform(generator)
        seen.add(kind)
        if value is not None:
            assert RANGES[kind][0] <= value <= RANGES[kind][1]
        out = transform(x)
        assert out.shape == x.shape
        if kind != "identity":
            [grad] = torch.autograd.grad(out.sum(), x)
            assert grad.abs().sum() > 0
    assert seen == set(TRANSFORMS)


def test_random_view_is_the_encoder_until_started():
    encoder = VaeEncoder(get_dummy_vae())
    view, x = RandomView(encoder, torch.Generator().manual_seed(0)), make_artwork(32, 32)[None]
    assert torch.equal(view(x), encoder(x)) and view.downsample == encoder.downsample
    view.start()
    for _ in range(6):
        view(x)
    view.stop()
    assert len(view.drawn) == 6 and torch.equal(view(x), encoder(x))


def test_robust_cloak_holds_the_budget_is_repeatable_and_differs_from_the_plain_one(perceptual):
    encoder, image = VaeEncoder(get_dummy_vae()), make_artwork(64, 80, seed=5)
    robust = resolve_config("default", "faster", robust=True)
    run = lambda config: cloak_image(image, encoder, OtherArtwork(), perceptual, config,  # noqa: E731
                                     generator=torch.Generator().manual_seed(0))
    first, second, plain = run(robust), run(robust), run(resolve_config("default", "faster"))
    assert torch.equal(first.image, second.image)
    assert not torch.equal(first.image, plain.image)
    assert first.report["robust"] is True and first.report["loss_last"] < first.report["loss_first"]
    assert (first.image - image).abs().max() * 255 <= 8 + 1e-4
    assert first.report["perceptual_distance"] <= robust.perceptual_budget(perceptual.name) + 1e-6
    with pytest.raises(ValueError, match="torch.Generator"):
        cloak_image(image, encoder, OtherArtwork(), perceptual, robust)


@pytest.fixture(scope="module")
def tiny_upscaler_dir(tmp_path_factory):
    """A saved tiny x4 upscaler (StableDiffusionUpscalePipeline: the UNet reads 4 latent + 3 image channels and
    the noise level as a class label; a three-level VAE decodes at 4x)."""
    from conftest import get_dummy_components
    from diffusers import (AutoencoderKL, DDIMScheduler, DDPMScheduler, StableDiffusionUpscalePipeline,
                           UNet2DConditionModel)

    parts = get_dummy_components()
    torch.manual_seed(0)
    unet = UNet2DConditionModel(block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=7,
                                out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=16,
                                norm_num_groups=4, attention_head_dim=2, num_class_embeds=400)
    vae = AutoencoderKL(block_out_channels=(8, 8, 8), norm_num_groups=4, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3)
    path = tmp_path_factory.mktemp("tiny-upscaler")
    StableDiffusionUpscalePipeline(unet=unet, vae=vae, text_encoder=parts["text_encoder"], tokenizer=parts["tokenizer"],
                                   low_res_scheduler=DDPMScheduler(), scheduler=DDIMScheduler(prediction_type="v_prediction"),
                                   max_noise_level=350).save_pretrained(path)
    return path


def test_noisy_upscaling_with_a_named_x4_upscaler(images, tiny_pipeline_dir, tiny_upscaler_dir):
    """Hönig et al.'s noisy upscaling: shrink 4x, noise, and the x4 upscaler brings the image back to its size."""
    from sfumato.evaluation.stages import purifier_for

    purifier = purifier_for(str(tiny_pipeline_dir), upscaler=str(tiny_upscaler_dir))
    purifier.upscale_steps = 2
    out = apply_countermeasure("upscale:0.1", images, purifier=purifier, generator=torch.Generator().manual_seed(0))
    assert out.shape == images.shape and torch.equal(out, (out * 255).round() / 255)
    assert purifier.settings["upscaler"] == str(tiny_upscaler_dir)
