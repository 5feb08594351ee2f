"""The cloak: tensors in, cloaked tensors out. No files, no printing, no UI."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Callable

import torch

from .config import CloakConfig
from .losses import ProtectionInputs, build_loss, latent_distance, needs_denoiser
from .optim import optimize_perturbation
from .quality import linf_255, psnr, ssim_region, ssim_sampled
from .resize import resize, round_trip, working_size
from .robust import RandomView

__all__ = ["CloakResult", "cloak_image", "from_levels", "quantize", "visible_perturbation"]


def to_levels(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] images -> their 8-bit values 0-255 (as floats), rounded half up exactly as
    :func:`sfumato.io.to_uint8` writes them."""
    return torch.floor(images.clamp(0, 1) * 255 + 0.5)


def from_levels(levels: torch.Tensor) -> torch.Tensor:
    """8-bit values 0-255 (as floats) -> [0, 1], exactly on every device.

    A CUDA division by a Python number multiplies by its reciprocal, which can miss the grid
    by a bit; a division by a tensor on the same device divides exactly, as the CPU does.
    """
    return levels / torch.tensor(255.0, dtype=levels.dtype, device=levels.device)


def quantize(images: torch.Tensor) -> torch.Tensor:
    """Round [0, 1] images to the 8-bit grid, as the written file will hold them."""
    return from_levels(to_levels(images))


def visible_perturbation(original: torch.Tensor, cloaked: torch.Tensor) -> torch.Tensor:
    """The perturbation made visible: 0.5 + δ, scaled so that its largest value reaches 0 or 1."""
    delta = cloaked - original
    return (0.5 + delta * (0.5 / delta.abs().max().clamp(min=1 / 255))).clamp(0, 1)


@dataclass(frozen=True)
class CloakResult:
    image: torch.Tensor  # (3, H, W) in [0, 1], on the 8-bit grid
    target: torch.Tensor  # (3, h, w) Ω(x, T) at the working resolution
    report: dict  # figures of this image, see cloak_image


def _enforce_budget(render, measure, budget: float, iterations: int = 8,
                    estimate=None) -> tuple[torch.Tensor, float, float]:
    """Largest scale s in [0, 1] of δ whose rendered (quantised) image stays within the budget (bisection).

    ``estimate(s)``, a cheap stand-in for ``measure(render(s))`` (the unquantised image at the
    working size), finds s first, so that a large image is rendered and measured once or twice
    instead of at every bisection step; where quantisation pushes that render over the budget,
    the exact bisection runs below it. The budget holds for the returned image either way.
    """
    high = 1.0
    if estimate is not None and estimate(1.0) > budget:
        low = 0.0
        for _ in range(iterations):
            mid = (low + high) / 2
            low, high = (mid, high) if estimate(mid) <= budget else (low, mid)
        high = low
    image = render(high)
    distance = measure(image)
    if distance <= budget:
        return image, distance, high
    untouched = render(0.0)
    best = (untouched, measure(untouched), 0.0)
    low = 0.0
    for _ in range(iterations):
        mid = (low + high) / 2
        image = render(mid)
        distance = measure(image)
        if distance <= budget:
            best, low = (image, distance, mid), mid
        else:
            high = mid
    return best


def cloak_image(
    image: torch.Tensor,
    encoder,
    target: Callable[[torch.Tensor], torch.Tensor],
    perceptual,
    config: CloakConfig,
    *,
    mask: torch.Tensor | None = None,
    denoiser=None,
    generator: torch.Generator | None = None,
    callback: Callable[[int, float], None] | None = None,
) -> CloakResult:
    """Cloak one artwork.

    Args:
        image (`torch.Tensor`): (3, H, W) in [0, 1], any size with both sides >= 64.
        encoder: the model's image encoder E (a :class:`~sfumato.models.VaeEncoder`).
        target: Ω, ``(B, 3, h, w) -> (B, 3, h, w)`` (see :mod:`sfumato.targets`).
        perceptual: a :class:`~sfumato.perceptual.PerceptualMetric`.
        config (`CloakConfig`): protection, budget, steps and working resolution.
        mask (`torch.Tensor`, *optional*): (1, H, W) in {0, 1}; pixels where it is 0
            (fully transparent ones) are left untouched.
        denoiser (:class:`~sfumato.denoiser.Denoiser`, *optional*): the model's UNet side, needed
            by the protections that attack the denoiser (:func:`~sfumato.losses.needs_denoiser`).
        generator (`torch.Generator`, *optional*): seeds the optimiser's random start and every
            draw of timesteps and noise; the denoiser-aware protections need one.
        callback: ``callback(step, loss)`` after every optimiser step.

    Returns:
        A :class:`CloakResult`; its ``report`` holds the protection, the working size and
        resolution, the perceptual metric's name and budget, the achieved perceptual distance
        (at the working resolution), PSNR, SSIM and L∞ (in 8-bit levels, at full size), and
        encoder-space distances to the target and to the original, before and after.
    """
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be (3, H, W), got {tuple(image.shape)}")
    if min(image.shape[-2:]) < 64:
        raise ValueError(f"image is {image.shape[-1]}x{image.shape[-2]}; both sides need at least 64 px")
    if needs_denoiser(config.protection) and denoiser is None:
        raise ValueError(f"protection {config.protection!r} attacks the denoiser; pass the model's denoiser")
    if config.robust and generator is None:
        raise ValueError("a robust cloak draws its transformations at random: pass a torch.Generator")
    started = time.perf_counter()
    device = encoder.device
    full = image[None].to(device)  # (1, 3, H, W)
    full_mask = None if mask is None else mask[None].to(device, full.dtype)  # (1, 1, H, W)
    full_size = tuple(full.shape[-2:])
    side = config.resolution or encoder.resolution
    multiple = encoder.downsample * (denoiser.multiple if denoiser is not None else 1)
    work_size = working_size(*full_size, side, multiple)

    # 1. The artwork and its style target at the mimic's resolution (its resize, before its crop).
    x = resize(full, work_size)  # (1, 3, h, w)
    work_mask = None if full_mask is None else resize(full_mask, work_size)
    with torch.no_grad():
        styled = target(x).to(device).clamp(0, 1)

    # 2. Optimise δ (at the working size) against the protection's loss, seen as the encoder will
    #    see it: the written image resized to the working size, x + down(up(δ)). That round trip
    #    blurs δ, so the loss goes through it; at up to 4x the working size, where its blur has
    #    converged (exact below), so that a step costs the same for a 4000x3000 scan.
    trip_size = tuple(min(f, 4 * w) for f, w in zip(full_size, work_size))
    trip = round_trip(work_size, trip_size, None if full_mask is None else resize(full_mask, trip_size))
    seen = lambda x_adv: (x + trip(x_adv - x)).clamp(0, 1)  # noqa: E731

    budget = config.perceptual_budget(perceptual.name)
    view = RandomView(encoder, generator) if config.robust else encoder  # the mimic's cleaning, drawn per step
    inputs = ProtectionInputs(images=x, target=styled, encoder=view, perceptual=perceptual, budget=budget,
                              alpha=config.alpha, denoiser=denoiser, caption=config.caption, generator=generator)
    protection_loss = build_loss(config.protection, inputs)
    objective = lambda x_adv: protection_loss(seen(x_adv))  # noqa: E731
    if config.flips:  # the mimic also trains on the mirror image: optimise both views
        mirrored = build_loss(config.protection, replace(inputs, images=x.flip(-1), target=styled.flip(-1)))
        objective = lambda x_adv: 0.5 * (protection_loss(seen(x_adv)) + mirrored(seen(x_adv).flip(-1)))  # noqa: E731
    if config.robust:
        view.start()
    result = optimize_perturbation(
        x, objective, epsilon=config.epsilon, steps=config.steps,
        step_size=config.step_size, mask=work_mask, generator=generator, callback=callback,
    )
    if config.robust:
        view.stop()

    # 3. Carry δ to full size, quantise, and hold the perceptual budget after quantisation.
    delta = resize(result.delta, full_size).clamp(-config.epsilon, config.epsilon)  # bilinear keeps the cap
    if full_mask is not None:
        delta = delta * full_mask

    with torch.no_grad():
        # Rendered on the 8-bit grid around the 8-bit original, at most floor(cap) levels away,
        # so the cap holds exactly for the written file whatever the source's bit depth.
        base = to_levels(full)  # the original's 8-bit values
        levels = float(math.floor(config.max_levels))
        render = lambda scale: from_levels((base + torch.floor((full + scale * delta) * 255 + 0.5 - base)  # noqa: E731
                                            .clamp(-levels, levels)).clamp(0, 255))
        distance_to_x = perceptual.distance_to(x)
        measure = lambda out: float(distance_to_x(resize(out, work_size)))  # noqa: E731
        seen_delta = resize(delta, work_size)  # the resize is linear: the unquantised image, seen at work size
        estimate = lambda scale: float(distance_to_x((x + scale * seen_delta).clamp(0, 1)))  # noqa: E731
        cloaked, distance, scale = _enforce_budget(render, measure, budget, estimate=estimate)

        # 4. Figures.
        z_x, z_target, z_cloaked = encoder(x), encoder(styled), encoder(resize(cloaked, work_size))
        report = {
            "target": getattr(target, "name", type(target).__name__),
            "protection": config.protection,
            "size": [full_size[1], full_size[0]],
            "working_size": [work_size[1], work_size[0]],
            "working_resolution": side,
            "perceptual_metric": perceptual.name,
            "perceptual_budget": budget,
            "perceptual_distance": distance,
            "perceptual_measured_at": [work_size[1], work_size[0]],
            "psnr_db": float(psnr(cloaked, full)),
            "ssim": float(ssim_sampled(cloaked, full)),
            "ssim_measured_on": ssim_region(full_size),
            "linf_levels": float(linf_255(cloaked, full)),
            "encoder_to_target_before": float(latent_distance(z_x, z_target)),
            "encoder_to_target_after": float(latent_distance(z_cloaked, z_target)),
            "encoder_to_original_after": float(latent_distance(z_cloaked, z_x)),
            "delta_scale": scale,
            "steps": config.steps,
            "robust": config.robust,
            "loss_first": result.losses[0],
            "loss_last": result.losses[-1],
            "seconds": time.perf_counter() - started,
        }
    return CloakResult(image=cloaked[0].to(image.device), target=styled[0].to(image.device), report=report)
