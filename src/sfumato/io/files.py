"""Folders of images, output paths that must not overwrite an input, JSON, and the EXIF a posted copy keeps."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from PIL import Image

from .read import StrPath, _error

__all__ = ["IMAGE_SUFFIXES", "find_images", "write_json", "attribution_exif", "check_output_path"]

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
