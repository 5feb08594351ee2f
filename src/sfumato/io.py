"""Image files in and out: the boundary where artwork becomes a tensor and back.

The cloaking core never touches files. :func:`load_image` turns whatever Pillow
can open (PNG, JPEG, WebP, TIFF, ... chosen by content, not by extension) into an
:class:`Artwork`: a (3, H, W) float tensor in [0, 1], the alpha channel copied
byte for byte, and the metadata worth keeping. :func:`save_image` writes the
result back atomically. Floats become 8-bit in exactly one place:
:func:`to_uint8`.

Every problem with a user's file is an :class:`ImageError` whose message is one
line naming the file and the reason; no Pillow traceback reaches the user.
Pillow's process-wide settings (``Image.MAX_IMAGE_PIXELS``,
``ImageFile.LOAD_TRUNCATED_IMAGES``) are read, never changed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

__all__ = [
    "ImageError",
    "Artwork",
    "MIN_SIDE",
    "MAX_PIXELS",
    "load_image",
    "save_image",
    "check_output_path",
    "attribution_exif",
    "to_uint8",
    "IMAGE_SUFFIXES",
    "find_images",
    "write_json",
]

StrPath = str | os.PathLike[str]

#: File name endings read as images when a folder is given.
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif"}


def find_images(paths: Iterable[StrPath]) -> list[Path]:
    """Files as given; a folder stands for the image files directly inside it, sorted by name."""
    found = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        else:
            found.append(path)
    return found


def write_json(path: StrPath, data: dict) -> None:
    """Write ``data`` as indented JSON atomically (a temporary file, then a rename)."""
    import json

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


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
_SAVE_FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP", "tif": "TIFF", "tiff": "TIFF"}


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


# ---------------------------------------------------------------------------
# Reading


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


# ---------------------------------------------------------------------------
# Writing


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


# ---------------------------------------------------------------------------
# Paths


#: EXIF tags that say who made a work and what it is: kept in cloaked copies by default.
_ATTRIBUTION_TAGS = (
    0x010E,  # ImageDescription
    0x0132,  # DateTime
    0x013B,  # Artist
    0x8298,  # Copyright
    0x9C9B,  # XPTitle
    0x9C9C,  # XPComment
    0x9C9D,  # XPAuthor
    0x9C9E,  # XPKeywords
    0x9C9F,  # XPSubject
)


def attribution_exif(exif: bytes | None) -> bytes | None:
    """Only the attribution tags (artist, copyright, title, description, date) of EXIF bytes.

    A cloaked copy is meant to be posted: location (GPS), camera data, maker notes and
    the embedded thumbnail (which would show the uncloaked original) are left out.
    Returns None when nothing is left or the EXIF cannot be read.
    """
    if not exif:
        return None
    try:
        source = Image.Exif()
        source.load(exif)
        kept = Image.Exif()
        for tag in _ATTRIBUTION_TAGS:
            if tag in source:
                kept[tag] = source[tag]
        return kept.tobytes() if len(kept) else None
    except Exception:  # corrupt EXIF comes in every shape
        return None


def check_output_path(output: StrPath, inputs: StrPath | Iterable[StrPath]) -> None:
    """Refuse an output path that would overwrite one of the inputs.

    Paths are compared after resolving ``..`` and symbolic links, and as files
    (hard links, case-insensitive file systems) where both exist.

    Args:
        output: The path about to be written.
        inputs: One input path or an iterable of them.

    Raises:
        ImageError: ``output`` is, or points to, the same file as an input.
    """
    output = Path(output)
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    target = output.resolve()
    for source in map(Path, inputs):
        if source.resolve() == target or _same_file(source, output):
            raise _error(output, f"would overwrite the input {source}; choose another output")


def _same_file(a: Path, b: Path) -> bool:
    """Whether two existing paths are the same file; False if either is missing."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
