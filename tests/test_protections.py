"""Every protection on tiny seeded components: its objective improves, budgets hold, seeds repeat."""

from __future__ import annotations

import pytest
import torch
from conftest import OtherArtwork, get_dummy_components, make_artwork

from sfumato.cloak import cloak_image
from sfumato.config import resolve_config
from sfumato.denoiser import Denoiser, noisy_draw
from sfumato.losses import PROTECTIONS, ProtectionInputs, build_loss, denoising_error, needs_denoiser
from sfumato.models import VaeEncoder
from sfumato.optim import optimize_perturbation

ALL = list(PROTECTIONS)


@pytest.fixture(scope="module")
def parts():
    components = get_dummy_components()
    denoiser = Denoiser(components["unet"], components["text_encoder"], components["tokenizer"],
                        components["scheduler"], scaling_factor=0.18215)
    return VaeEncoder(components["vae"]), denoiser


def _inputs(parts, perceptual, seed=0, **changes):
    encoder, denoiser = parts
    image = make_artwork(64, 64, seed=3)[None]
    fields = dict(images=image, target=OtherArtwork()(image), encoder=encoder, perceptual=perceptual, budget=1e6,
                  alpha=0.0, denoiser=denoiser, generator=torch.Generator().manual_seed(seed))
    return ProtectionInputs(**{**fields, **changes})


def _true_objective(name, inputs, x):
    """What the protection is after, measured with fresh draws shared by every x (common random numbers):
    the denoising error for the untargeted attacks (AdvDM and ASPL ascend it, SDS(-) and UDP descend it), else the
    loss."""
    if name in ("advdm", "sds", "aspl", "udp"):
        d = inputs.denoiser
        context = d.embed([inputs.caption])
        errors = [denoising_error(d, inputs.encoder(x) * d.scaling_factor, context, torch.Generator().manual_seed(k),
                                  draws=8) for k in range(4)]
        value = float(torch.stack(errors).mean())
        return -value if name in ("advdm", "aspl") else value
    values = []
    for k in range(4):
        loss = build_loss(name, _inputs_like(inputs, seed=100 + k))
        values.append(float(loss(x)))
    return sum(values) / len(values)


def _inputs_like(inputs, seed):
    return ProtectionInputs(inputs.images, inputs.target, inputs.encoder, inputs.perceptual, inputs.budget,
                            inputs.alpha, inputs.denoiser, inputs.caption, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", ALL)
def test_objective_improves_over_the_steps(parts, perceptual, name):
    inputs = _inputs(parts, perceptual)
    loss = build_loss(name, inputs)
    x = inputs.images
    result = optimize_perturbation(x, loss, epsilon=16 / 255, steps=30, step_size=2 / 255,
                                   generator=torch.Generator().manual_seed(1))
    before, after = _true_objective(name, inputs, x), _true_objective(name, inputs, x + result.delta)
    assert after < before, f"{name}: {before:.4f} -> {after:.4f}"


@pytest.mark.parametrize("name", ALL)
def test_cap_and_budget_hold_after_quantisation_and_seed_repeats(parts, perceptual, name):
    encoder, denoiser = parts
    image = make_artwork(72, 96, seed=5)
    config = resolve_config("default", 6, protection=name, budget_scale=0.5)
    runs = [cloak_image(image, encoder, OtherArtwork(), perceptual, config, denoiser=denoiser,
                        generator=torch.Generator().manual_seed(7)) for _ in range(2)]
    first, second = runs
    assert torch.equal(first.image, second.image), "the same seed gives the same bytes"
    report = first.report
    assert report["protection"] == name and report["working_resolution"] == encoder.resolution
    assert report["linf_levels"] <= 8 + 1e-4
    assert report["perceptual_distance"] <= report["perceptual_budget"] + 1e-6
    assert torch.equal(first.image, torch.floor(first.image * 255 + 0.5) / 255), "on the 8-bit grid"
    other = cloak_image(image, encoder, OtherArtwork(), perceptual, config, denoiser=denoiser,
                        generator=torch.Generator().manual_seed(8)).image
    assert not torch.equal(other, first.image), "another seed, another cloak"


def test_denoiser_protections_refuse_a_vae_only_model(parts, perceptual):
    encoder, _ = parts
    denoising = [name for name in ALL if needs_denoiser(name)]
    assert set(denoising) == {"advdm", "mist", "sds", "aspl", "udp", "ace", "style-dm"}
    for name in denoising:
        with pytest.raises(ValueError, match="denoiser"):
            cloak_image(make_artwork(64, 64), encoder, OtherArtwork(), perceptual,
                        resolve_config("default", 2, protection=name))


def test_unknown_protection_is_refused_early():
    with pytest.raises(ValueError, match="valid: glaze, photoguard"):
        resolve_config(protection="nightshade-v9")


def test_sds_skips_the_unet_backward_and_its_gradient_is_the_residual(parts, perceptual):
    """SDS's surrogate ⟨sg(ε̂ − ε), z⟩ back-propagates through the encoder only."""
    inputs = _inputs(parts, perceptual)
    loss = build_loss("sds", inputs)
    calls = []
    hook = inputs.denoiser.unet.register_full_backward_hook(lambda *args: calls.append(1))
    x = inputs.images.clone().requires_grad_(True)
    loss(x).backward()
    hook.remove()
    assert not calls and x.grad.abs().sum() > 0


def test_aspl_trains_its_own_surrogate_and_leaves_the_model_alone(parts, perceptual):
    inputs = _inputs(parts, perceptual)
    before = {k: v.clone() for k, v in inputs.denoiser.unet.state_dict().items()}
    loss = build_loss("aspl", inputs)
    surrogate = loss.surrogate.unet
    lora_before = [p.clone() for p in loss.lora]
    loss(inputs.images)  # the first call fine-tunes the surrogate
    assert any(not torch.equal(a, b) for a, b in zip(lora_before, loss.lora))
    assert surrogate is not inputs.denoiser.unet
    after = inputs.denoiser.unet.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_noisy_draw_is_seeded_and_respects_the_range():
    latents = torch.zeros(64, 4, 2, 2)
    a = noisy_draw(latents, 1000, torch.Generator().manual_seed(0), t_range=(0.5, 0.6))
    b = noisy_draw(latents, 1000, torch.Generator().manual_seed(0), t_range=(0.5, 0.6))
    assert torch.equal(a.timesteps, b.timesteps) and torch.equal(a.noise, b.noise)
    assert a.timesteps.min() >= 500 and a.timesteps.max() < 600


def test_denoiser_adds_noise_as_the_scheduler_does(parts):
    _, denoiser = parts
    scheduler = get_dummy_components()["scheduler"]
    latents = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    noise = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([0, 500, 999])
    assert torch.allclose(denoiser.add_noise(latents, noise, t), scheduler.add_noise(latents, noise, t), atol=1e-6)
