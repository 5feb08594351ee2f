"""The working resolution: where the encoder sees an image, and the way back.

Both directions use bilinear weights that are non-negative and sum to one, so a
perturbation keeps its L∞ bound when it is moved between resolutions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["working_size", "fit_to_grid", "resize"]


def working_size(height: int, width: int, max_side: int, multiple: int) -> tuple[int, int]:
    """Largest size with the image's aspect ratio, longest side <= ``max_side``, sides a multiple of ``multiple``."""
    scale = min(1.0, max_side / max(height, width))
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
