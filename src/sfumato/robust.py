"""Robust cloaks: the protection's loss in expectation over what a mimic may do to the image.

A mimic who knows about cloaks cleans scraped images first (:mod:`sfumato.countermeasures`).
A robust cloak (MetaCloak, Liu et al., CVPR 2024; Glaze's robustness training) optimises

    min_δ E_{T ~ 𝒯} [ L(T(x + δ)) ]

over a pool 𝒯 of transformations that are differentiable or have a differentiable stand-in:
Gaussian noise, a resize round trip, Gaussian blur and a differentiable JPEG (Shin & Song,
2017: the rounding of the quantised DCT coefficients replaced by a cubic approximation).
One transformation is drawn per optimiser step (Athalye et al.'s EOT with one sample), the
identity among them. The perceptual hinge keeps measuring the image as written.

:class:`RandomView` applies the draw in front of the model's encoder, so that every
protection, encoder or denoiser attack, sees the transformed image without a change of its own.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .countermeasures import blur, resize_round_trip

__all__ = ["TRANSFORMS", "RANGES", "diff_jpeg", "draw_transform", "RandomView"]

#: The pool, in the order draws index it.
TRANSFORMS = ("identity", "noise", "resize", "blur", "jpeg")

#: Each transformation's parameter range, drawn uniformly: noise σ ([0, 1] units), resize factor,
#: blur σ (pixels), JPEG quality. They cover the countermeasures' usual settings.
RANGES = {"noise": (0.0, 0.1), "resize": (1.0, 4.0), "blur": (0.3, 1.5), "jpeg": (40.0, 95.0)}

# The JPEG standard's luminance and chrominance quantisation tables (quality 50).
_LUMA = torch.tensor([
    [16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55], [14, 13, 16, 24, 40, 57, 69, 56],
    [14, 17, 22, 29, 51, 87, 80, 62], [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99]], dtype=torch.float32)
_CHROMA = torch.full((8, 8), 99.0)
_CHROMA[:4, :4] = torch.tensor([[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]])


def _dct_matrix(n: int = 8) -> torch.Tensor:
    k = torch.arange(n, dtype=torch.float32)
    m = torch.cos(math.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n)) * math.sqrt(2 / n)
    m[0] /= math.sqrt(2)
    return m  # orthonormal: m @ m.T = I


_DCT = _dct_matrix()


def _quality_scale(quality: float) -> float:
    quality = min(max(quality, 1.0), 100.0)
    return (5000 / quality if quality < 50 else 200 - 2 * quality) / 100


def _soft_round(x: torch.Tensor) -> torch.Tensor:
    """round(x) + (x − round(x))³: equal to rounding at the integers, with a non-zero gradient."""
    return torch.round(x) + (x - torch.round(x)) ** 3


def diff_jpeg(images: torch.Tensor, quality: float) -> torch.Tensor:
    """A differentiable stand-in for JPEG at ``quality``: YCbCr, 4:2:0 chroma, 8x8 DCT, quantisation
    with the standard tables (rounding softened), and back. (B, 3, H, W) in [0, 1], any size."""
    b, _, h, w = images.shape
    pad_h, pad_w = (-h) % 16, (-w) % 16
    x = F.pad(images, (0, pad_w, 0, pad_h), mode="replicate") * 255
    r, g, bl = x.unbind(1)
    y = 0.299 * r + 0.587 * g + 0.114 * bl
    cb = 128 - 0.168736 * r - 0.331264 * g + 0.5 * bl
    cr = 128 + 0.5 * r - 0.418688 * g - 0.081312 * bl
    scale = _quality_scale(quality)

    def compress(channel: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        n, hh, ww = channel.shape
        blocks = (channel - 128).reshape(n, hh // 8, 8, ww // 8, 8).permute(0, 1, 3, 2, 4)
        dct, q = _DCT.to(channel), (table * scale).clamp(min=1).to(channel)
        coefficients = dct @ blocks @ dct.T
        restored = dct.T @ (_soft_round(coefficients / q) * q) @ dct
        return restored.permute(0, 1, 3, 2, 4).reshape(n, hh, ww) + 128

    def chroma(channel: torch.Tensor) -> torch.Tensor:
        small = F.avg_pool2d(channel[:, None], 2)[:, 0]
        # bilinear, as libjpeg's "fancy" upsampling (nearest would put the stand-in 3x further from a real JPEG)
        return F.interpolate(compress(small, _CHROMA)[:, None], scale_factor=2, mode="bilinear",
                             align_corners=False)[:, 0]

    y, cb, cr = compress(y, _LUMA), chroma(cb), chroma(cr)
    rgb = torch.stack([y + 1.402 * (cr - 128), y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128),
                       y + 1.772 * (cb - 128)], dim=1) / 255
    return rgb[..., :h, :w].clamp(0, 1)


def draw_transform(generator: torch.Generator, kinds: tuple[str, ...] = TRANSFORMS):
    """One random transformation of the pool: ``(name, value, function)``; every draw from ``generator``."""
    index = int(torch.randint(len(kinds), (1,), generator=generator))
    kind = kinds[index]
    if kind == "identity":
        return kind, None, lambda x: x
    low, high = RANGES[kind]
    value = low + (high - low) * float(torch.rand((), generator=generator))
    if kind == "noise":
        seed = int(torch.randint(2**62, (1,), generator=generator))

        def add_noise(x: torch.Tensor) -> torch.Tensor:
            noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed), dtype=x.dtype)
            return (x + value * noise.to(x.device)).clamp(0, 1)

        return kind, value, add_noise
    if kind == "resize":
        return kind, value, lambda x: resize_round_trip(x, value, grid=False)
    if kind == "blur":
        return kind, value, lambda x: blur(x, value, grid=False)
    return kind, value, lambda x: diff_jpeg(x, value)


class RandomView:
    """The model's encoder seen through a random transformation, drawn afresh at every call.

    Off until :meth:`start` (a loss computes its targets through the plain encoder), and off
    again after :meth:`stop`. Anything else (``device``, ``resolution``, ...) is the encoder's.
    """

    def __init__(self, encoder, generator: torch.Generator, kinds: tuple[str, ...] = TRANSFORMS):
        self.encoder, self.generator, self.kinds = encoder, generator, tuple(kinds)
        self.active = False
        self.drawn: list[str] = []  # the kinds drawn, in order (for the record)

    def start(self) -> None:
        self.active = True

    def stop(self) -> None:
        self.active = False

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if self.active:
            kind, _, transform = draw_transform(self.generator, self.kinds)
            self.drawn.append(kind)
            images = transform(images)
        return self.encoder(images)

    def __getattr__(self, name: str):
        return getattr(self.encoder, name)
