"""Model-free image-quality figures for reports, and the input checks every figure here shares.

Every function takes images as ``(B, 3, H, W)`` float tensors in [0, 1] (or
[0, ``data_range``]) and returns one value per image: :func:`psnr`, :func:`ssim` and
:func:`linf_255`. The learned distances in :mod:`sfumato.perceptual` use the same checks.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["psnr", "ssim", "ssim_sampled", "ssim_region", "linf_255"]

# Values this far outside [0, data_range] are still accepted (float rounding of x + δ, resizing).
_RANGE_TOLERANCE = 1e-3


# --------------------------------------------------------------------------- input checks


def _check_images(images: torch.Tensor, arg: str, min_side: int = 1, data_range: float = 1.0) -> None:
    """Raise ValueError unless ``images`` is a floating (B, 3, H, W) tensor in [0, data_range] with H, W >= min_side."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{arg} must be a torch.Tensor, got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"{arg} must be (B, 3, H, W), got {tuple(images.shape)}")
    height, width = images.shape[-2:]
    if min(height, width) < min_side:
        raise ValueError(f"{arg} is {height}x{width} (HxW); both sides need at least {min_side} px")
    if not images.is_floating_point():
        raise ValueError(f"{arg} must be a floating-point tensor in [0, {data_range:g}], got {images.dtype}")
    if images.numel():
        low, high = (float(v) for v in torch.aminmax(images.detach()))
        if low < -_RANGE_TOLERANCE or high > data_range + _RANGE_TOLERANCE:
            raise ValueError(f"{arg} must be in [0, {data_range:g}], got values in [{low:.4g}, {high:.4g}]")


def _check_pair(x: torch.Tensor, y: torch.Tensor, min_side: int = 1, data_range: float = 1.0) -> None:
    """Check both images of a pair, and that their shapes agree."""
    _check_images(x, "x", min_side, data_range)
    _check_images(y, "y", min_side, data_range)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")


def _check_data_range(data_range: float) -> float:
    if not data_range > 0:
        raise ValueError(f"data_range must be > 0, got {data_range}")
    return float(data_range)


# --------------------------------------------------------------------------- figures


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio, 10·log10(data_range² / MSE), per image.

    Args:
        x (`torch.Tensor`): (B, 3, H, W) in [0, data_range].
        y (`torch.Tensor`): (B, 3, H, W) in [0, data_range], the same shape.
        data_range (`float`, defaults to 1.0): the span of pixel values, > 0.

    Returns:
        `torch.Tensor`: (B,) in dB (at least float32); ``torch.inf`` where x == y.
    """
    data_range = _check_data_range(data_range)
    _check_pair(x, y, data_range=data_range)
    difference = x.to(torch.promote_types(x.dtype, torch.float32)) - y
    mse = (difference**2).mean(dim=(1, 2, 3))  # (B,)
    inf = torch.full_like(mse, math.inf)
    return torch.where(mse > 0, 10 * torch.log10(data_range**2 / mse), inf)


def _gaussian_window(size: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    """A normalised 1-D Gaussian, (size,), on ``like``'s device and dtype."""
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    window = torch.exp(-(coords**2) / (2 * sigma**2))
    return (window / window.sum()).to(like)


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Structural similarity (Wang et al., IEEE TIP 2004), per image.

    The standard setting: an 11x11 Gaussian window with σ = 1.5, K1 = 0.01, K2 = 0.03,
    population (not sample) statistics. Each channel is compared separately and the
    SSIM map is averaged over channels and over the *valid* positions only (no padding:
    a (B, 3, H, W) pair gives an (H - 10) x (W - 10) map), which matches
    ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, channel_axis=...)``.

    Args:
        x (`torch.Tensor`): (B, 3, H, W) in [0, data_range], H and W >= 11.
        y (`torch.Tensor`): (B, 3, H, W) in [0, data_range], the same shape.
        data_range (`float`, defaults to 1.0): the span of pixel values L, > 0.

    Returns:
        `torch.Tensor`: (B,) in [-1, 1] (at least float32); 1 for identical images.
    """
    data_range = _check_data_range(data_range)
    size, sigma, k1, k2 = 11, 1.5, 0.01, 0.03
    _check_pair(x, y, min_side=size, data_range=data_range)
    dtype = torch.promote_types(x.dtype, torch.float32)
    x, y = x.to(dtype), y.to(dtype)
    channels = x.shape[1]
    window = _gaussian_window(size, sigma, x)
    rows = window.view(1, 1, 1, size).expand(channels, 1, 1, size)  # (C, 1, 1, 11)
    cols = window.view(1, 1, size, 1).expand(channels, 1, size, 1)  # (C, 1, 11, 1)

    def blur(images: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H-10, W-10), per channel
        return F.conv2d(F.conv2d(images, rows, groups=channels), cols, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov_xy = blur(x * y) - mu_x * mu_y
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    # Wang et al. 2004, eq. 13.
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim_map.mean(dim=(1, 2, 3))  # (B,)


#: Above this many pixels, :func:`ssim_sampled` measures an even grid of tiles instead of the whole image.
SSIM_MAX_PIXELS = 1 << 20
SSIM_TILE = 256


def _tile_grid(size: tuple[int, int]) -> list[tuple[int, int]] | None:
    """Top-left corners of an even grid of ``SSIM_TILE`` tiles covering about ``SSIM_MAX_PIXELS``, or None
    where the whole image is small enough."""
    h, w = size
    if h * w <= SSIM_MAX_PIXELS:
        return None
    per_side = max(1, math.isqrt(SSIM_MAX_PIXELS // SSIM_TILE**2))  # 4: a 4 x 4 grid, 16 tiles
    rows = [round(i * (h - SSIM_TILE) / max(per_side - 1, 1)) for i in range(per_side)]
    cols = [round(j * (w - SSIM_TILE) / max(per_side - 1, 1)) for j in range(per_side)]
    return [(r, c) for r in rows for c in cols]


def ssim_region(size: tuple[int, int]) -> str:
    """Where :func:`ssim_sampled` measures an image of ``size`` (H, W), in words for a report."""
    grid = _tile_grid(size)
    return "the whole image" if grid is None else f"{len(grid)} tiles of {SSIM_TILE} px on an even grid"


def ssim_sampled(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """:func:`ssim` of the whole image up to ``SSIM_MAX_PIXELS`` (a megapixel); above, the mean SSIM of an
    even 4 x 4 grid of 256 px tiles, an estimate of the whole image's mean SSIM map at a fraction of the
    cost (a 4000 x 3000 scan: 16 times fewer pixels). Deterministic: the grid depends on the size only."""
    grid = _tile_grid(tuple(x.shape[-2:]))
    if grid is None:
        return ssim(x, y, data_range)
    t = SSIM_TILE
    return torch.stack([ssim(x[..., r:r + t, c:c + t], y[..., r:r + t, c:c + t], data_range)
                        for r, c in grid]).mean(0)


def linf_255(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Largest absolute pixel difference, in 8-bit levels.

    Args:
        x (`torch.Tensor`): (B, 3, H, W) in [0, 1].
        y (`torch.Tensor`): (B, 3, H, W) in [0, 1], the same shape.

    Returns:
        `torch.Tensor`: (B,) float in [0, 255]; 1.0 means one 8-bit level.
    """
    _check_pair(x, y)
    return (x - y).abs().amax(dim=(1, 2, 3)) * 255  # (B,)
