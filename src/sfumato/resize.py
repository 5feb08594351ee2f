"""The working resolution: where the encoder sees an image, and the way back.

Both directions use bilinear weights that are non-negative and sum to one, so a
perturbation keeps its L∞ bound when it is moved between resolutions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["working_size", "fit_to_grid", "resize"]


#: Shortest side, in pixels, that a working size keeps (the style networks and metrics need 32).
MIN_WORKING_SIDE = 64


def working_size(height: int, width: int, max_side: int, multiple: int) -> tuple[int, int]:
    """The image's size scaled down so that its longest side is at most ``max_side``, sides snapped
    down to a multiple of ``multiple``.

    The shortest side never drops below ``MIN_WORKING_SIDE`` (or the image's own, if smaller):
    a very wide or tall image keeps a longer long side instead.
    """
    scale = min(1.0, max_side / max(height, width))
    scale = max(scale, min(1.0, MIN_WORKING_SIDE / min(height, width)))
    snap = lambda side: max(multiple, int(side * scale / multiple) * multiple)  # noqa: E731
    return snap(height), snap(width)


def resize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of (B, C, H, W), antialiased when shrinking; identity when the size matches."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)


def fit_to_grid(images: torch.Tensor, max_side: int, multiple: int) -> torch.Tensor:
    """Resize (B, C, H, W) to :func:`working_size`."""
    return resize(images, working_size(*images.shape[-2:], max_side, multiple))
