"""Reading: any image file Pillow can open becomes an :class:`Artwork`, or an :class:`ImageError`."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

__all__ = ["ImageError", "Artwork", "MIN_SIDE", "MAX_PIXELS", "load_image"]

StrPath = str | os.PathLike[str]

#: Smallest accepted side in pixels; the encoders need at least this much.
MIN_SIDE = 64
#: Default pixel limit: well above a 12 MP scan, below Pillow's own bomb warning.
MAX_PIXELS = 64_000_000

_ORIENTATION = 0x0112
_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
#: TIFF tags that describe the work rather than the file layout; the rest of a
#: TIFF directory (strip offsets, bit depth, ...) means nothing in another file.
_TIFF_METADATA_TAGS = (
    0x010D,  # DocumentName
    0x010E,  # ImageDescription
    0x010F,  # Make
    0x0110,  # Model
    _ORIENTATION,
    0x011A,  # XResolution
    0x011B,  # YResolution
    0x0128,  # ResolutionUnit
    0x0131,  # Software
    0x0132,  # DateTime
    0x013B,  # Artist
    0x013C,  # HostComputer
    0x8298,  # Copyright
    _EXIF_IFD,
    _GPS_IFD,
)
#: EXIF orientation -> the transposition that makes the image upright (as ``ImageOps.exif_transpose``).
_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}


class ImageError(ValueError):
    """A user's image could not be read or written. ``str(err)`` is one line naming the file and why."""


def _error(path: Path, reason: str) -> ImageError:
    """An :class:`ImageError` for ``path``, its message squeezed onto one line."""
    return ImageError(" ".join(f"{path.name or path}: {reason}".split()))


@dataclass(frozen=True, eq=False)
class Artwork:
    """A decoded image and the metadata to write back with its cloaked version.

    Attributes:
        path: The file it was read from, or None if it did not come from a file.
        rgb: (3, H, W) float32 in [0, 1], EXIF orientation applied. 8-bit sources
            give exactly value/255, 16-bit sources value/65535.
        alpha: (H, W) uint8, a bit-exact copy of the source's alpha channel (or
            the mask its transparency key stands for); None if it has none.
        icc_profile: The source's ICC profile if it describes RGB data; None for
            CMYK and grayscale profiles, which do not describe the RGB output.
        exif: The source's EXIF (artist, copyright, camera, ...) with Orientation
            set to 1, since the orientation has been applied to the pixels.
        source_mode: Pillow mode of the source, e.g. "RGBA", "I;16", "CMYK".
        source_format: Pillow format of the source, e.g. "PNG", "JPEG".
    """

    path: Path | None
    rgb: torch.Tensor
    alpha: np.ndarray | None
    icc_profile: bytes | None
    exif: bytes | None
    source_mode: str
    source_format: str

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return int(self.rgb.shape[-1]), int(self.rgb.shape[-2])


def load_image(path: StrPath, *, max_pixels: int = MAX_PIXELS, min_side: int = MIN_SIDE) -> Artwork:
    """Read an image file into an :class:`Artwork`.

    The format is recognised from the content. Animated files give their first
    frame. Size limits are checked from the header, before any pixel is decoded.

    Args:
        path: The image file.
        max_pixels: Largest accepted width * height; protects against huge images
            and decompression bombs. Pillow's own hard limit (twice
            ``Image.MAX_IMAGE_PIXELS``) still applies above it.
        min_side: Smallest accepted width and height in pixels.

    Returns:
        The decoded :class:`Artwork`.

    Raises:
        ImageError: The file is missing, empty, not an image, truncated or
            corrupt, too large, too small, or in a colour mode that cannot be
            turned into RGB.
        ValueError: ``max_pixels`` or ``min_side`` is below 1.
    """
    if max_pixels < 1 or min_side < 1:
        raise ValueError(f"max_pixels and min_side must be at least 1, got {max_pixels} and {min_side}")
    path = Path(path)
    _check_readable(path)
    try:
        with warnings.catch_warnings():
            # The caller's max_pixels is the limit; Pillow's warning would only repeat it.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                _check_size(path, image.size, max_pixels, min_side)
                image.load()  # force the full decode here, where its errors are caught
                return _decode(path, image)
    except ImageError:
        raise
    except UnidentifiedImageError as exc:
        raise _error(path, "not an image file, or its header is corrupt") from exc
    except Image.DecompressionBombError as exc:
        raise _error(path, "image has too many pixels to open safely (decompression bomb limit)") from exc
    except MemoryError as exc:
        raise _error(path, "not enough memory to decode the image") from exc
    except PermissionError as exc:
        raise _error(path, "permission denied") from exc
    except Exception as exc:  # Pillow's decoders fail with many types: OSError, SyntaxError, zlib.error, ...
        raise _error(path, "truncated or corrupt image data") from exc


def _check_readable(path: Path) -> None:
    """Raise :class:`ImageError` unless ``path`` is a non-empty regular file."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise _error(path, "file not found") from None
    except OSError as exc:
        raise _error(path, f"cannot read file ({exc.strerror or exc})") from None
    if path.is_dir():
        raise _error(path, "is a folder, not an image file")
    if info.st_size == 0:
        raise _error(path, "file is empty")


def _check_size(path: Path, size: tuple[int, int], max_pixels: int, min_side: int) -> None:
    """Raise :class:`ImageError` if a (width, height) from the header is out of bounds."""
    width, height = size
    if width * height > max_pixels:
        raise _error(path, f"image is {width}x{height} ({width * height / 1e6:.3g} MP); "
                           f"the limit is {max_pixels / 1e6:.3g} MP")
    if min(width, height) < min_side:
        raise _error(path, f"image is {width}x{height}; both sides need at least {min_side} px")


def _decode(path: Path, image: Image.Image) -> Artwork:
    """Build the :class:`Artwork` from a loaded image: orientation, pixels, metadata."""
    mode, fmt = image.mode, image.format or "unknown"
    icc_profile = _rgb_icc_profile(image.info.get("icc_profile"), mode)
    exif = _read_exif(image)
    if exif is not None and _ORIENTATION in exif:
        orientation = exif[_ORIENTATION]
        method = _ORIENTATION_TRANSPOSE.get(orientation) if isinstance(orientation, int) else None
        if method is not None:
            image = image.transpose(method)  # pixels and alpha together
        exif[_ORIENTATION] = 1  # the pixels are upright now
    rgb, alpha = _pixels(path, image)
    return Artwork(
        path=path,
        rgb=rgb,
        alpha=alpha,
        icc_profile=icc_profile,
        exif=None if exif is None else _exif_bytes(exif),
        source_mode=mode,
        source_format=fmt,
    )


def _read_exif(image: Image.Image) -> Image.Exif | None:
    """The image's EXIF worth keeping, or None if it has none or it cannot be parsed.

    For TIFF files Pillow's EXIF is the TIFF directory itself; only the tags that
    describe the work are kept. Unreadable EXIF is dropped rather than failing the
    load: the pixels are what matter, and no viewer could apply its orientation either.
    """
    try:
        exif = image.getexif()
        if hasattr(image, "tag_v2") and "exif" not in image.info:  # a TIFF directory
            kept = Image.Exif()
            for tag in _TIFF_METADATA_TAGS:
                if tag in exif:
                    kept[tag] = exif.get_ifd(tag) if tag in (_EXIF_IFD, _GPS_IFD) else exif[tag]
            exif = kept
    except Exception:  # corrupt EXIF comes in every shape
        return None
    return exif if len(exif) else None


def _exif_bytes(exif: Image.Exif) -> bytes | None:
    """Serialise EXIF, or None if there is nothing to keep or it cannot be written."""
    try:
        return exif.tobytes() if len(exif) else None
    except Exception:
        return None


def _rgb_icc_profile(profile: bytes | None, mode: str) -> bytes | None:
    """``profile`` if it describes RGB data (header colour space 'RGB '), else None."""
    if not profile or mode == "CMYK" or profile[16:20] != b"RGB ":
        return None
    return bytes(profile)


def _pixels(path: Path, image: Image.Image) -> tuple[torch.Tensor, np.ndarray | None]:
    """(3, H, W) float32 in [0, 1] and the (H, W) uint8 alpha (or None) of a loaded image."""
    mode = image.mode
    key = image.info.get("transparency")
    if mode in _SIXTEEN_BIT_MODES or mode == "I":
        values = np.asarray(image)
        if mode == "I" and values.size and (values.min() < 0 or values.max() > 65535):
            raise _error(path, "32-bit integer pixels outside 0..65535 are not supported")
        return _to_tensor(values, 65535), _keyed_alpha(values, key)
    if mode == "F":
        values = np.asarray(image)
        if not np.isfinite(values).all() or values.min() < 0 or values.max() > 255:
            raise _error(path, "floating-point pixels must lie in 0..1 (or 0..255)")
        return _to_tensor(values, 1 if values.max() <= 1 else 255), None
    if mode == "1":
        image, mode = image.convert("L"), "L"
        if isinstance(key, int):
            key = 255 if key else 0  # the key may be stored as 0/1 or 0/255; "L" holds 0 or 255
    if mode == "L":
        values = np.asarray(image)
        return _to_tensor(values, 255), _keyed_alpha(values, key)
    if mode == "LA":
        values = np.asarray(image)
        return _to_tensor(values[..., 0], 255), values[..., 1].copy()
    if mode == "RGB":
        values = np.asarray(image)
        return _to_tensor(values, 255), _keyed_alpha(values, key)
    if mode == "RGBA":
        values = np.asarray(image)
        return _to_tensor(values[..., :3], 255), values[..., 3].copy()
    # Palette, CMYK, YCbCr, premultiplied alpha, ...: let Pillow make 8-bit RGB(A).
    target = "RGBA" if _has_alpha(image) else "RGB"
    try:
        converted = image.convert(target)
    except ValueError as exc:
        raise _error(path, f"unsupported colour mode {mode}") from exc
    return _pixels(path, converted)


def _has_alpha(image: Image.Image) -> bool:
    """Whether an image carries transparency: an alpha band, a palette alpha or a transparency key."""
    if "transparency" in image.info or image.mode in ("LA", "La", "PA", "RGBA", "RGBa"):
        return True
    return image.mode == "P" and image.palette is not None and image.palette.mode == "RGBA"


def _keyed_alpha(values: np.ndarray, key: object) -> np.ndarray | None:
    """Alpha for a colour-key transparency (PNG tRNS): 0 where a pixel equals ``key``, 255 elsewhere.

    None without a key, or with one that does not fit the pixels (one value per channel).
    """
    if key is None or isinstance(key, bytes):
        return None
    key = np.asarray(key)
    if key.shape != values.shape[2:]:
        return None
    hit = values == key
    if values.ndim == 3:
        hit = hit.all(axis=-1)
    return np.where(hit, 0, 255).astype(np.uint8)


def _to_tensor(values: np.ndarray, scale: float) -> torch.Tensor:
    """(H, W) or (H, W, 3) samples divided by ``scale`` into a contiguous (3, H, W) float32 tensor."""
    planes = values[None] if values.ndim == 2 else np.moveaxis(values, -1, 0)
    out = np.empty((3, *values.shape[:2]), dtype=np.float32)
    out[...] = planes  # grayscale broadcasts to three identical channels
    if scale != 1:
        out /= np.float32(scale)
    return torch.from_numpy(out)
