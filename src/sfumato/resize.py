"""The working resolution: where the encoder sees an image, and the way back.

Both directions use bilinear weights that are non-negative and sum to one, so a
perturbation keeps its L∞ bound when it is moved between resolutions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["working_size", "fit_to_grid", "resize", "round_trip"]


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


def _axis_round_trip(length: int, trip: int) -> torch.Tensor:
    """The (length, length) matrix of one axis's resize to ``trip`` and back (identity when they match)."""
    eye = torch.eye(length)[None, None]  # column i is unit vector i; the other axis keeps its size
    return resize(resize(eye, (trip, length)), (length, length))[0, 0]


def round_trip(size: tuple[int, int], trip_size: tuple[int, int], mask: torch.Tensor | None = None):
    """δ -> resize(resize(δ, trip_size) [* mask], size): what a change at ``size`` becomes after a
    render at ``trip_size`` and the mimic's resize back.

    Bilinear resizes act on each axis alone, so without a mask the round trip is two small
    matrices, R_h δ R_wᵀ, built once: a step then costs two (h x h) and (w x w) products instead
    of two resizes (and their backward passes) at up to 16 times the working area. A mask at
    ``trip_size`` (1, 1, H, W) breaks that product; it then resizes as written.
    """
    if mask is not None:
        return lambda delta: resize(resize(delta, trip_size) * mask, size)
    if tuple(size) == tuple(trip_size):
        return lambda delta: delta
    rows, columns = _axis_round_trip(size[0], trip_size[0]), _axis_round_trip(size[1], trip_size[1])
    cache = {}

    def apply(delta: torch.Tensor) -> torch.Tensor:
        key = (delta.device, delta.dtype)
        if key not in cache:
            cache[key] = (rows.to(*key), columns.T.to(*key))
        r, c_t = cache[key]
        return r @ delta @ c_t

    return apply
