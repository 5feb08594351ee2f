"""Frozen settings for a cloak, and the named presets users pick from.

Intensity is the perturbation budget, render quality is how long the optimiser
runs. Presets are plain named instances; a number is accepted for either.
Budgets given in 8-bit levels become [0, 1] units in exactly one place:
:func:`levels_to_unit`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

__all__ = [
    "CloakConfig",
    "INTENSITY_PRESETS",
    "QUALITY_PRESETS",
    "PERCEPTUAL_BUDGET_PER_LEVEL",
    "levels_to_unit",
    "resolve_config",
]


def levels_to_unit(levels: float) -> float:
    """Convert a budget in 8-bit levels (0-255) into [0, 1] image units."""
    return float(levels) / 255.0


#: Perceptual budget p per 8-bit level of the L∞ cap, for each perceptual metric.
#: The scale of a perceptual distance depends on its network, so one intensity
#: means a different p for each metric. ``effnet-lite0`` is calibrated by
#: ``benchmarks/calibrate_budget.py`` (results in ``benchmarks/results/``): p is the
#: mean distance that uniform noise of ±8 levels causes on real photographs, per
#: level, so at any intensity the cloak may be as visible as uniform noise of its
#: cap but not more, however it spends its L∞ budget. ``lpips-alex`` is not
#: calibrated here (its AlexNet weights are not available offline): 0.0075 puts the
#: default intensity at LPIPS 0.06, inside the 0.05-0.1 range of budgets Glaze uses.
PERCEPTUAL_BUDGET_PER_LEVEL = {
    "lpips-alex": 0.0075,
    "effnet-lite0": 0.12,
}


@dataclass(frozen=True)
class CloakConfig:
    """Every setting of one cloak run.

    Args:
        max_levels (`float`, defaults to 8): hard L∞ cap on the perturbation, in 8-bit
            levels (0-255), from 1 to 64. A safety net under the perceptual budget; the
            written file differs from the original by at most ``floor(max_levels)`` levels.
        budget_scale (`float`, defaults to 1.0): multiplies the metric's calibrated
            perceptual budget (``PERCEPTUAL_BUDGET_PER_LEVEL[metric] * max_levels``).
        alpha (`float`, defaults to 30.0): weight of the perceptual hinge penalty
            relative to the (normalised) encoder loss.
        steps (`int`, defaults to 100): optimiser steps per image.
        lr_levels (`float`, defaults to 1.0): Adam step size in 8-bit levels.
        resolution (`int`, *optional*): the shorter side, in pixels, at which the mimic sees the
            image, and so the cloak's working resolution: a mimic resizes the artwork's shorter
            side to its model's resolution before it crops and trains (128 px for sfumato-mini,
            512 for Stable Diffusion 1.5, 1024 for SDXL). The cloak is optimised there, through
            that resize, and its perturbation upsampled (bilinear, so the L∞ cap still holds)
            onto the full image: a 4000x3000 scan costs what a small image costs. ``None``
            (the default) means the model's own resolution (its VAE's ``sample_size``).
        protection (`str`, defaults to ``"glaze"``): the objective, a name in
            :data:`sfumato.losses.PROTECTIONS`.
        caption (`str`, defaults to ``"a painting"``): the text the denoiser-aware protections
            condition on (an artist's own tool cannot know a mimic's prompt).
        flips (`bool`, defaults to False): optimise the mirror image too. Mimics train on
            horizontal flips of every image (diffusers' ``--random_flip``, sfumato's own mimic),
            and the encoder is not mirror-symmetric: on sfumato-mini the latent change a Glaze
            cloak makes in the mirror image has a cosine of only 0.37 with the change in the
            image as written (``benchmarks/flip_reach.py``, 8 images). With ``flips`` the
            objective is the mean over both orientations (an expectation over the mimic's
            transformation, Athalye et al.'s EOT), at twice the cost per step. Measured there,
            it evens the two views (the mirror image's latents come 10.8 % of the way to the
            target instead of 8.5 %) but does not make the change consistent (cosine 0.41), so
            it is off until a mimicry run shows it protects more.
        robust (`bool`, defaults to False): optimise in expectation over what a mimic may do to
            the image first (noise, a resize round trip, blur, JPEG; :mod:`sfumato.robust`), one
            random transformation per step in front of the encoder. Needs a generator.
    """

    max_levels: float = 8.0
    budget_scale: float = 1.0
    alpha: float = 30.0
    steps: int = 100
    lr_levels: float = 1.0
    resolution: int | None = None
    protection: str = "glaze"
    caption: str = "a painting"
    flips: bool = False
    robust: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.max_levels <= 64:
            raise ValueError(f"max_levels must be from 1 to 64 (8-bit levels), got {self.max_levels}")
        if self.budget_scale <= 0:
            raise ValueError(f"budget_scale must be positive, got {self.budget_scale}")
        if self.alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {self.alpha}")
        if self.lr_levels <= 0:
            raise ValueError(f"lr_levels must be positive, got {self.lr_levels}")
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")
        if self.resolution is not None and self.resolution < 64:
            raise ValueError(f"resolution must be at least 64 px, got {self.resolution}")
        from .losses import PROTECTIONS

        if self.protection not in PROTECTIONS:
            raise ValueError(f"unknown protection {self.protection!r}; valid: {', '.join(PROTECTIONS)}")

    @property
    def epsilon(self) -> float:
        """The L∞ cap in [0, 1] units."""
        return levels_to_unit(self.max_levels)

    @property
    def step_size(self) -> float:
        """The Adam step size in [0, 1] units."""
        return levels_to_unit(self.lr_levels)

    def perceptual_budget(self, metric_name: str) -> float:
        """The perceptual budget p for a metric, in that metric's units."""
        try:
            per_level = PERCEPTUAL_BUDGET_PER_LEVEL[metric_name]
        except KeyError:
            raise ValueError(
                f"no calibrated budget for metric {metric_name!r}; known: {sorted(PERCEPTUAL_BUDGET_PER_LEVEL)}"
            ) from None
        return per_level * self.max_levels * self.budget_scale

    def to_dict(self) -> dict:
        return asdict(self)


#: Intensity presets: the budget. A number is read as the L∞ cap in 8-bit levels.
INTENSITY_PRESETS = {
    "low": dict(max_levels=4.0),
    "default": dict(max_levels=8.0),
    "high": dict(max_levels=16.0),
}

#: Render-quality presets: optimisation time (steps and step size). The working resolution is
#: the mimic's, whatever the preset (see ``CloakConfig.resolution``).
QUALITY_PRESETS = {
    "preview": dict(steps=10, lr_levels=2.0),
    "faster": dict(steps=40, lr_levels=1.0),
    "default": dict(steps=100, lr_levels=1.0),
    "slower": dict(steps=250, lr_levels=0.5),
}


def _preset(value: str | float | int, presets: dict, what: str, number_key: str) -> dict:
    if isinstance(value, str) and value in presets:
        return dict(presets[value])
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise ValueError(f"unknown {what} {value!r}; use one of {list(presets)} or a number")
    if number_key == "steps":
        if number != int(number):
            raise ValueError(f"{what} as a number is a step count and must be whole, got {value!r}")
        number = int(number)
    return {number_key: number}


def resolve_config(intensity: str | float = "default", quality: str | int = "default", **overrides) -> CloakConfig:
    """Build a :class:`CloakConfig` from an intensity and a render quality.

    Args:
        intensity (`str` or `float`): ``"low"``, ``"default"``, ``"high"``, or the L∞
            cap in 8-bit levels (for example ``12``).
        quality (`str` or `int`): ``"preview"``, ``"faster"``, ``"default"``,
            ``"slower"``, or a number of optimiser steps (step size as ``"default"``).
        **overrides: any other :class:`CloakConfig` field.
    """
    fields = dict(QUALITY_PRESETS["default"])
    fields.update(_preset(quality, QUALITY_PRESETS, "quality", "steps"))
    fields.update(_preset(intensity, INTENSITY_PRESETS, "intensity", "max_levels"))
    fields.update(overrides)
    return replace(CloakConfig(), **fields)
