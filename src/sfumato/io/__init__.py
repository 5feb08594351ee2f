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

Reading lives in :mod:`sfumato.io.read`, writing in :mod:`sfumato.io.write`, and
folders, output paths and the metadata kept in posted copies in :mod:`sfumato.io.files`.
"""

from .files import IMAGE_SUFFIXES, attribution_exif, check_output_path, find_images, write_json
from .read import MAX_PIXELS, MIN_SIDE, Artwork, ImageError, load_image
from .write import save_image, to_uint8

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
