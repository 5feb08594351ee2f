"""The working resolution: where the encoder sees an image, and the way back.

Both directions use bilinear weights that are non-negative and sum to one, so a
perturbation keeps its L∞ bound when it is moved between resolutions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["working_size", "fit_to_grid", "resize"]


def working_size(height: int, width: int, side: int, multiple: int) -> tuple[int, int]:
    """The size a mimic resizes an image to before cropping: the shorter side scaled down to ``side``
    (never up), both sides snapped down to a multiple of ``multiple``.

    This is the resize of diffusers' fine-tuning scripts (``transforms.Resize(resolution)``), so a
    cloak optimised at this size is the one the mimic's crop is taken from.
    """
    scale = min(1.0, side / min(height, width))
    snap = lambda length: max(multiple, int(length * scale / multiple) * multiple)  # noqa: E731
    return snap(height), snap(width)


def resize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of (B, C, H, W), antialiased when shrinking; identity when the size matches."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)


def fit_to_grid(images: torch.Tensor, side: int, multiple: int) -> torch.Tensor:
    """Resize (B, C, H, W) to :func:`working_size`."""
    return resize(images, working_size(*images.shape[-2:], side, multiple))
