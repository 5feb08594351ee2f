"""The cloak core on tiny seeded components: objective, budgets, determinism, sizes."""

from __future__ import annotations

import pytest
import torch
from conftest import OtherArtwork, get_dummy_vae, make_artwork

from sfumato.cloak import cloak_image, quantize
from sfumato.config import resolve_config
from sfumato.losses import GlazeLoss, ProtectionInputs, get_loss
from sfumato.models import VaeEncoder
from sfumato.optim import optimize_perturbation, project
from sfumato.resize import resize, round_trip


@pytest.fixture(scope="module")
def encoder():
    return VaeEncoder(get_dummy_vae())


def test_loss_falls_and_target_distance_halves_at_default(encoder, perceptual):
    config = resolve_config("default", "default")
    result = cloak_image(make_artwork(96, 128), encoder, OtherArtwork(), perceptual, config,
                         generator=torch.Generator().manual_seed(0))
    report = result.report
    assert report["loss_last"] < report["loss_first"]
    assert report["encoder_to_target_after"] <= 0.5 * report["encoder_to_target_before"]
    assert report["encoder_to_original_after"] > 0


def test_loss_sees_what_the_encoder_sees_through_the_resize_round_trip(encoder, perceptual):
    """An image 4.7x larger than the working size: the optimiser's last loss must match the distance the
    encoder measures on the written, full-size cloak resized back (not a blurred-away version of it)."""
    config = resolve_config("default", 30, resolution=64)
    report = cloak_image(make_artwork(320, 448, seed=8), encoder, OtherArtwork(), perceptual, config,
                         generator=torch.Generator().manual_seed(0)).report
    assert report["working_size"] == [88, 64] and report["delta_scale"] == 1.0
    ratio = report["encoder_to_target_after"] / report["encoder_to_target_before"]
    assert ratio <= 0.5
    assert ratio == pytest.approx(report["loss_last"], abs=0.05)


@pytest.mark.parametrize("size, trip", [((64, 88), (256, 352)), ((64, 88), (150, 97)), ((64, 88), (64, 88))])
def test_the_round_trip_as_two_matrices_is_the_two_resizes(size, trip):
    """The optimiser's view of δ (up to the render's size and back) as R_h δ R_wᵀ: same values, same gradient."""
    delta = (torch.randn((1, 3, *size), generator=torch.Generator().manual_seed(0)) * 0.03).requires_grad_(True)
    direct = resize(resize(delta, trip), size)
    fast = round_trip(size, trip)(delta)
    torch.testing.assert_close(fast, direct, atol=1e-6, rtol=0)
    weights = torch.rand(direct.shape, generator=torch.Generator().manual_seed(1))
    [g_direct] = torch.autograd.grad((direct * weights).sum(), delta)
    [g_fast] = torch.autograd.grad((fast * weights).sum(), delta)
    torch.testing.assert_close(g_fast, g_direct, atol=1e-6, rtol=0)
    if trip != size:
        assert (fast - delta).abs().max() > 1e-3, "a real round trip blurs δ"


def test_a_masked_round_trip_masks_at_the_render_size():
    mask = torch.zeros(1, 1, 256, 352)
    mask[..., :128, :] = 1
    out = round_trip((64, 88), (256, 352), mask)(torch.ones(1, 3, 64, 88))
    assert out[..., :24, :].min() > 0.99 and out[..., 40:, :].max() < 1e-6


@pytest.mark.parametrize("intensity", ["low", "default", "high", 12])
def test_budget_and_linf_hold_after_quantisation(encoder, perceptual, intensity):
    config = resolve_config(intensity, "preview", resolution=128)
    image = make_artwork(80, 112, seed=3)
    result = cloak_image(image, encoder, OtherArtwork(), perceptual, config, generator=torch.Generator().manual_seed(1))
    out = result.image
    assert torch.equal(out, quantize(out)), "output must lie on the 8-bit grid"
    levels = (out - image).abs().max() * 255
    assert levels <= config.max_levels + 1e-4
    assert levels > 0, "the cloak changed nothing"
    budget = config.perceptual_budget(perceptual.name)
    measured = float(perceptual(resize(out[None], out.shape[-2:]), image[None]))
    assert measured <= budget + 1e-6
    assert result.report["perceptual_distance"] == pytest.approx(measured, rel=1e-4, abs=1e-7)


def test_budget_is_enforced_by_shrinking_delta(encoder, perceptual):
    """With no penalty at all, the final bisection alone must bring the cloak inside the budget."""
    config = resolve_config("high", 20, alpha=0.0, budget_scale=0.05, resolution=128)
    image = make_artwork(64, 96, seed=4)
    result = cloak_image(image, encoder, OtherArtwork(), perceptual, config, generator=torch.Generator().manual_seed(0))
    assert result.report["delta_scale"] < 1.0
    assert result.report["perceptual_distance"] <= config.perceptual_budget(perceptual.name)


def test_same_seed_same_output_other_seed_differs(encoder, perceptual):
    config = resolve_config("default", 5)
    image = make_artwork(64, 64, seed=5)
    run = lambda seed: cloak_image(image, encoder, OtherArtwork(), perceptual, config,  # noqa: E731
                                   generator=torch.Generator().manual_seed(seed)).image
    assert torch.equal(run(0), run(0))
    assert not torch.equal(run(0), run(1))


@pytest.mark.parametrize("height,width", [(333, 517), (64, 64), (517, 333)])
def test_size_preserved(encoder, perceptual, height, width):
    config = resolve_config("default", 3, resolution=128)
    result = cloak_image(make_artwork(height, width), encoder, OtherArtwork(), perceptual, config,
                         generator=torch.Generator().manual_seed(0))
    assert result.image.shape == (3, height, width)
    assert result.report["working_size"][0] % encoder.downsample == 0


def test_large_scan_keeps_size_and_has_no_seams(encoder, perceptual):
    """A 4000x3000 scan is cloaked at the working resolution; δ is upsampled smoothly, without tiles."""
    config = resolve_config("default", "preview", resolution=192)
    image = quantize(0.25 + 0.5 * make_artwork(300, 400, seed=6))  # mid-tones: the [0, 1] box never clips δ
    image = torch.nn.functional.interpolate(image[None], size=(3000, 4000), mode="nearest")[0]
    result = cloak_image(image, encoder, OtherArtwork(), perceptual, config, generator=torch.Generator().manual_seed(0))
    assert result.image.shape == (3, 3000, 4000)
    assert result.report["working_size"] == [256, 192]
    delta = (result.image - image) * 255  # (3, H, W) in levels
    assert delta.abs().max() <= config.max_levels + 1e-3
    # No seams: δ is a bilinear upsampling (about 16x here), so neighbouring pixels differ by
    # about one level plus one level of rounding, everywhere; a tile seam would jump by up to 2x the cap.
    assert (delta[..., 1:] - delta[..., :-1]).abs().max() <= 3.0
    assert (delta[..., 1:, :] - delta[..., :-1, :]).abs().max() <= 3.0


@pytest.mark.parametrize("height,width", [(64, 1200), (1200, 64), (100, 1000)])
def test_extreme_aspect_ratios_keep_a_usable_short_side(encoder, perceptual, height, width):
    from sfumato.resize import working_size

    for side in (64, 128, 256, 512):
        h, w = working_size(height, width, side, 8)
        assert min(side, min(height, width)) - 8 < min(h, w) <= min(side, min(height, width)) and h % 8 == 0 == w % 8
    config = resolve_config("default", 2, resolution=128)
    result = cloak_image(make_artwork(height, width), encoder, OtherArtwork(), perceptual, config,
                         generator=torch.Generator().manual_seed(0))
    assert result.image.shape == (3, height, width)


def test_fractional_cap_and_off_grid_source_hold_exactly(encoder, perceptual):
    """A 16-bit source is not on the 8-bit grid: the file stays within floor(cap) levels of its 8-bit rendering."""
    generator = torch.Generator().manual_seed(2)
    image = (make_artwork(64, 96, seed=9) + torch.rand(3, 64, 96, generator=generator) / 255).clamp(0, 1)
    mask = torch.ones(1, 64, 96)
    mask[:, :8] = 0
    config = resolve_config(5.5, 5, alpha=0.0, budget_scale=10.0)
    out = cloak_image(image, encoder, OtherArtwork(), perceptual, config, mask=mask,
                      generator=torch.Generator().manual_seed(0)).image
    base = quantize(image)
    assert torch.equal(out, quantize(out))
    assert ((out - base).abs().max() * 255).round() == 5, "the 5.5-level cap allows exactly 5 whole levels"
    assert torch.equal(out[:, :8], base[:, :8]), "masked pixels are the original's own 8-bit values"


def test_transparent_pixels_untouched(encoder, perceptual):
    image = make_artwork(64, 80, seed=7)
    mask = torch.ones(1, 64, 80)
    mask[:, :, :30] = 0
    result = cloak_image(image, encoder, OtherArtwork(), perceptual, resolve_config("high", 5),
                         mask=mask, generator=torch.Generator().manual_seed(0))
    assert torch.equal(result.image[:, :, :30], image[:, :, :30])
    assert not torch.equal(result.image[:, :, 30:], image[:, :, 30:])


def test_optimizer_projection():
    images = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    delta = project(torch.full_like(images, 0.5), images, 0.1)
    assert delta.abs().max() <= 0.1 + 1e-7
    assert ((images + delta) <= 1).all() and ((images + delta) >= 0).all()
    result = optimize_perturbation(images, lambda x: -(x**2).sum(), epsilon=0.05, steps=5, step_size=0.01)
    assert len(result.losses) == 5 and result.losses[-1] < result.losses[0]
    assert result.delta.abs().max() <= 0.05 + 1e-7


def test_glaze_loss_is_normalised(encoder, perceptual):
    image, target = make_artwork(64, 64, 1)[None], make_artwork(64, 64, 2)[None]
    loss = GlazeLoss(ProtectionInputs(image, target, encoder, perceptual, budget=0.01, alpha=10.0))
    assert float(loss(image)) == pytest.approx(1.0, rel=1e-5)


def test_glaze_hinge_counts_only_over_budget(encoder, perceptual):
    image, target = make_artwork(64, 64, 1)[None], make_artwork(64, 64, 2)[None]
    moved = (image + 0.05 * torch.randn(image.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    loose = GlazeLoss(ProtectionInputs(image, target, encoder, perceptual, budget=1e6, alpha=10.0))
    tight = GlazeLoss(ProtectionInputs(image, target, encoder, perceptual, budget=0.0, alpha=10.0))
    excess = float(perceptual(moved, image))
    assert float(tight(moved)) == pytest.approx(float(loose(moved)) + 10.0 * excess, rel=1e-4)
    x = moved.clone().requires_grad_(True)
    tight(x).backward()
    assert x.grad.abs().sum() > 0


def test_unknown_protection_lists_valid_ones():
    with pytest.raises(ValueError, match="glaze"):
        get_loss("nightshade-v9")


def test_small_image_rejected(encoder, perceptual):
    with pytest.raises(ValueError, match="at least 64"):
        cloak_image(torch.rand(3, 10, 10), encoder, OtherArtwork(), perceptual, resolve_config())


def test_budget_is_found_on_the_estimate_and_held_by_the_rendered_image():
    """A large image is rendered once or twice, not at every bisection step, and the budget holds after rendering."""
    from sfumato.cloak import _enforce_budget

    renders = []

    def render(scale):
        renders.append(scale)
        return torch.tensor(scale)

    exact = lambda image: float(image) * 1.02  # quantisation adds a little  # noqa: E731
    image, distance, scale = _enforce_budget(render, exact, 0.5, estimate=lambda s: s)
    assert distance <= 0.5 and scale == pytest.approx(0.5 / 1.02, abs=0.01)
    plain = len(renders)
    renders.clear()
    _enforce_budget(render, lambda image: float(image), 0.5, estimate=lambda s: s)
    assert len(renders) == 1, "the estimate was right: one render"
    renders.clear()
    _enforce_budget(render, exact, 0.5)
    assert plain <= len(renders)


def test_flips_optimise_the_mirror_image_too(perceptual):
    """With flips, the cloak also brings the mirror image's encoding towards the mirrored target."""
    encoder = VaeEncoder(get_dummy_vae())
    image = make_artwork(64, 64, seed=3)
    target = OtherArtwork()
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    plain = cloak_image(image, encoder, target, perceptual, resolve_config("high", "30"), generator=g())
    both = cloak_image(image, encoder, target, perceptual, resolve_config("high", "30", flips=True), generator=g())

    def mirrored_distance(result):
        with torch.no_grad():
            return float(((encoder(result.image[None].flip(-1)) - encoder(target(image[None]).flip(-1))) ** 2).sum())

    assert mirrored_distance(both) < mirrored_distance(plain)
    assert both.report["linf_levels"] <= 16 + 1e-4 and not torch.equal(both.image, plain.image)
