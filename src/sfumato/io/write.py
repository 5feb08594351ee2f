"""Writing: a float image becomes 8-bit in exactly one place, and files are written atomically."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .read import StrPath, _error

__all__ = ["to_uint8", "save_image"]

_SAVE_FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP", "tif": "TIFF", "tiff": "TIFF"}


def to_uint8(rgb: torch.Tensor) -> np.ndarray:
    """Quantise a (3, H, W) image in [0, 1] to an (H, W, 3) uint8 array.

    The one place where floats become 8-bit: values are clamped to [0, 1], then
    ``x * 255`` is rounded half up. 8-bit data (``value / 255``) comes back exactly.

    Args:
        rgb: (3, H, W) floating-point tensor on any device; gradients are ignored.

    Returns:
        A C-contiguous (H, W, 3) uint8 array.

    Raises:
        TypeError: ``rgb`` is not a floating-point tensor.
        ValueError: ``rgb`` is not (3, H, W) or holds NaN or infinite values.
    """
    if not isinstance(rgb, torch.Tensor) or not rgb.is_floating_point():
        raise TypeError(f"rgb must be a floating-point torch.Tensor, got {type(rgb).__name__}"
                        + (f" of {rgb.dtype}" if isinstance(rgb, torch.Tensor) else ""))
    if rgb.ndim != 3 or rgb.shape[0] != 3:
        raise ValueError(f"rgb must be (3, H, W), got {tuple(rgb.shape)}")
    with torch.no_grad():
        scaled = rgb.detach().to(torch.float32).clamp(0, 1)  # a fresh tensor: safe to modify in place
        if not torch.isfinite(scaled).all():
            raise ValueError("rgb holds NaN or infinite values")
        pixels = scaled.mul_(255).add_(0.5).floor_().to(torch.uint8)
    return np.ascontiguousarray(pixels.permute(1, 2, 0).cpu().numpy())


def save_image(
    path: StrPath,
    rgb: torch.Tensor,
    *,
    alpha: np.ndarray | None = None,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
    format: str | None = None,
    strip_metadata: bool = False,
    jpeg_quality: int = 95,
) -> Path:
    """Write an image atomically: a temporary file in the same folder, then a rename.

    On any failure no file is left at ``path`` (an existing one is untouched) and
    the temporary file is removed. JPEG is written with quality ``jpeg_quality``
    and no chroma subsampling, WebP losslessly (keeping colours under transparent
    pixels), PNG and TIFF losslessly.

    Args:
        path: Destination file. Its folder must exist; none is created.
        rgb: (3, H, W) float tensor in [0, 1], quantised with :func:`to_uint8`.
        alpha: (H, W) uint8 alpha, written bit-exact as an RGBA image; None for RGB.
        icc_profile: ICC profile to embed, e.g. :attr:`Artwork.icc_profile`.
        exif: EXIF bytes to embed, e.g. :attr:`Artwork.exif`.
        format: "png", "jpeg"/"jpg", "webp" or "tiff"/"tif" (any case). None picks
            it from the suffix of ``path``; no suffix means PNG.
        strip_metadata: Write neither ``icc_profile`` nor ``exif``.
        jpeg_quality: JPEG quality, 1 to 100; ignored for other formats.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ImageError: Unknown format or suffix, JPEG with ``alpha``, missing
            folder, or the file could not be written.
        TypeError, ValueError: ``rgb``, ``alpha`` or ``jpeg_quality`` is malformed.
    """
    path = Path(path)
    fmt = _save_format(path, format)
    if fmt == "JPEG" and alpha is not None:
        raise _error(path, "JPEG cannot store transparency; save as PNG")
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality must be in 1..100, got {jpeg_quality}")
    folder = path.parent
    if not folder.is_dir():
        raise _error(path, f"folder {folder} does not exist")
    if path.is_dir():
        raise _error(path, "is a folder")

    pixels = to_uint8(rgb)
    if alpha is not None:
        alpha = np.asarray(alpha)
        if alpha.dtype != np.uint8 or alpha.shape != pixels.shape[:2]:
            raise ValueError(f"alpha must be uint8 of shape {pixels.shape[:2]}, got {alpha.dtype} {alpha.shape}")
        pixels = np.dstack((pixels, alpha))
    image = Image.fromarray(pixels)  # (H, W, 3) -> RGB, (H, W, 4) -> RGBA

    options: dict[str, object] = {
        "JPEG": {"quality": jpeg_quality, "subsampling": 0},
        "WEBP": {"lossless": True, "exact": True},
    }.get(fmt, {})
    if not strip_metadata:
        if icc_profile:
            options["icc_profile"] = icc_profile
        if exif:
            options["exif"] = exif
    _write_atomically(path, image, fmt, options)
    return path


def _save_format(path: Path, format: str | None) -> str:
    """Pillow format name from ``format`` or else the suffix of ``path``."""
    if format is not None:
        name = format.lower().lstrip(".")
        if name not in _SAVE_FORMATS:
            raise _error(path, f"unknown format {format!r}; use png, jpeg, webp or tiff")
        return _SAVE_FORMATS[name]
    suffix = path.suffix.lower().lstrip(".")
    if not suffix:
        return "PNG"
    if suffix not in _SAVE_FORMATS:
        raise _error(path, f"cannot write .{suffix} files; use .png, .jpg, .webp or .tif")
    return _SAVE_FORMATS[suffix]


def _write_atomically(path: Path, image: Image.Image, fmt: str, options: dict[str, object]) -> None:
    """Save ``image`` to a fresh temporary file beside ``path``, then rename it over ``path``."""
    temp, handle = _create_temp_file(path)
    try:
        with os.fdopen(handle, "wb") as stream:
            image.save(stream, format=fmt, **options)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)
        if isinstance(exc, Exception):
            raise _error(path, f"could not write image ({exc})") from exc
        raise


def _create_temp_file(path: Path) -> tuple[Path, int]:
    """A new hidden file beside ``path`` and its open descriptor.

    Created with mode 0o666 so the umask applies as for any new file (unlike
    ``tempfile.mkstemp``, whose 0o600 would make the output private).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return temp, os.open(temp, flags, 0o666)
        except FileExistsError:
            continue
        except OSError as exc:
            raise _error(path, f"cannot create a file in {path.parent} ({exc.strerror or exc})") from exc
    raise _error(path, f"cannot create a temporary file in {path.parent}")
