"""Loading real diffusers folders built locally, and the style targets."""

from __future__ import annotations

import pytest
import torch
from conftest import get_dummy_vae, make_artwork

from sfumato.api import Cloaker
from sfumato.config import resolve_config
from sfumato.models import ModelLoadError, VaeEncoder, load_encoder, load_img2img_pipeline, resolve_model
from sfumato.targets import BuiltinStyle, PromptStyle, StyleImage, choose_style, parse_target


def test_encoder_loads_from_vae_and_pipeline_folders(tiny_vae_dir, tiny_pipeline_dir):
    image = make_artwork(64, 64)[None]
    from_vae = load_encoder(tiny_vae_dir)
    from_pipe = load_encoder(tiny_pipeline_dir)
    assert from_vae.downsample == 8
    assert from_vae(image).shape == (1, 4, 8, 8)
    assert torch.allclose(from_vae(image), VaeEncoder(get_dummy_vae())(image))
    assert from_pipe(image).shape == (1, 4, 8, 8)


def test_encoder_is_frozen_but_passes_gradients():
    encoder = VaeEncoder(get_dummy_vae())
    assert not any(p.requires_grad for p in encoder.parameters())
    x = make_artwork(64, 64)[None].requires_grad_(True)
    encoder(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("name,match", [
    ("no-such-org/no-such-model", "cannot load"),
    ("./missing-folder", "not a folder"),
])
def test_load_errors_are_one_line(name, match):
    with pytest.raises(ModelLoadError, match=match) as info:
        load_encoder(name)
    assert "\n" not in str(info.value)


def test_not_a_model_folder(tmp_path):
    with pytest.raises(ModelLoadError, match="not a diffusers pipeline folder"):
        load_encoder(tmp_path)


def test_half_precision_needs_gpu(tiny_vae_dir):
    with pytest.raises(ModelLoadError, match="GPU"):
        load_encoder(tiny_vae_dir, dtype=torch.float16)


def test_embedded_model_missing_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr("sfumato.models.EMBEDDED_DIR", tmp_path)  # a build without the weights
    with pytest.raises(ModelLoadError, match="--model"):
        resolve_model("mini")


@pytest.mark.parametrize("spec,expected", [("auto", "auto"), ("7", 7), ("style-25", 25), ("prompt:cubism", "prompt:cubism")])
def test_parse_target(spec, expected):
    assert parse_target(spec) == expected


@pytest.mark.parametrize("spec", ["26", "style-99", "nowhere.png", "prompt:"])
def test_parse_target_rejects(spec):
    with pytest.raises(ValueError, match="style"):
        parse_target(spec)


def test_builtin_style_and_style_image(tmp_path):
    from PIL import Image

    images = torch.stack([make_artwork(64, 96, 1), make_artwork(64, 96, 2)])
    styled = BuiltinStyle(3)(images)
    assert styled.shape == images.shape and styled.dtype == torch.float32
    assert 0 <= styled.min() and styled.max() <= 1
    assert (styled - images).abs().mean() > 0.05, "a painting style should change the image visibly"
    style_file = tmp_path / "style.png"
    Image.fromarray((make_artwork(128, 128, 3).permute(1, 2, 0).numpy() * 255).astype("uint8")).save(style_file)
    assert StyleImage(style_file)(images[:1]).shape == (1, 3, 64, 96)


def test_auto_target_is_seeded_and_recorded():
    encoder = VaeEncoder(get_dummy_vae())
    images = [make_artwork(64, 64, 1), make_artwork(80, 64, 2)]
    styles = [BuiltinStyle(i) for i in (0, 5, 10, 15)]
    first, distances = choose_style(images, encoder, torch.Generator().manual_seed(0), styles=styles)
    again, _ = choose_style(images, encoder, torch.Generator().manual_seed(0), styles=styles)
    assert first.name == again.name
    assert set(distances) == {s.name for s in styles}
    assert distances[first.name] >= sorted(distances.values())[len(styles) // 2], "drawn from the farther half"


def test_bad_style_image_is_refused_early(tmp_path):
    bad = tmp_path / "style.png"
    bad.write_text("not an image")
    with pytest.raises(ValueError, match="style.png"):
        StyleImage(bad)


@pytest.mark.parametrize("device,match", [("gpu", "unknown device"), ("cuda:7", "CUDA"), ("mps", "not supported")])
def test_bad_devices_fail_before_loading(device, match):
    from sfumato.models import check_device

    if torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 GPUs")
    with pytest.raises(ModelLoadError, match=match):
        check_device(device)


def test_prompt_target_through_img2img(tiny_pipeline_dir):
    pipe = load_img2img_pipeline(tiny_pipeline_dir)
    images = make_artwork(64, 64)[None]
    with pytest.raises(ValueError, match="no denoising step"):
        PromptStyle(pipe, "cubism", num_inference_steps=2)
    target = PromptStyle(pipe, "cubism", num_inference_steps=4, seed=0)
    out = target(images)
    assert out.shape == images.shape
    assert torch.equal(out, target(images)), "the img2img target must be seeded"


def test_cloaker_end_to_end_with_prompt_target(tiny_pipeline_dir):
    cloaker = Cloaker(str(tiny_pipeline_dir))
    images = [make_artwork(64, 64, 1)]
    results, record = cloaker.cloak(images, resolve_config("default", 3), target="prompt:ukiyo-e", seed=0)
    assert record == {"choice": "given", "target": "prompt:ukiyo-e"}
    assert results[0].image.shape == (3, 64, 64)
    assert cloaker.encoder_view(images[0][None]).shape == (1, 3, 64, 64)
