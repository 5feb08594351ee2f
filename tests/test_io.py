"""Image I/O at the boundary: every mode in, exact bytes out, one-line errors, atomic writes."""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms, ImageFile, ImageOps

from sfumato.io import (
    MAX_PIXELS,
    MIN_SIDE,
    Artwork,
    ImageError,
    check_output_path,
    load_image,
    save_image,
    to_uint8,
)

H, W = 64, 72  # small, above MIN_SIDE, and not square so transpositions show
ARTIST, COPYRIGHT, ORIENTATION = 0x013B, 0x8298, 0x0112


def _rng() -> np.random.Generator:
    return np.random.default_rng(0)


def _noise(*shape: int) -> np.ndarray:
    return _rng().integers(0, 256, shape, dtype=np.uint8)


def _save(image: Image.Image, path: Path, **options) -> Path:
    image.save(path, **options)
    return path


def _srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _exif(orientation: int | None = None) -> bytes:
    exif = Image.Exif()
    exif[ARTIST] = "Ada Painter"
    exif[COPYRIGHT] = "(c) 2024 Ada Painter"
    if orientation is not None:
        exif[ORIENTATION] = orientation
    return exif.tobytes()


def _as_uint8(rgb: torch.Tensor) -> np.ndarray:
    """(3, H, W) float on the 8-bit grid -> (H, W, 3) uint8, checking it is exactly on the grid."""
    levels = rgb.permute(1, 2, 0).numpy() * 255
    assert np.array_equal(levels, np.round(levels))
    return np.round(levels).astype(np.uint8)


def _png_with_header_size(tmp_path: Path, width: int, height: int) -> Path:
    """A small valid grayscale PNG whose IHDR claims ``width`` x ``height`` (CRC fixed up)."""
    data = bytearray(_save(Image.new("L", (64, 64)), tmp_path / "small.png").read_bytes())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path = tmp_path / f"claims_{width}x{height}.png"
    path.write_bytes(bytes(data))
    return path


# ---------------------------------------------------------------------------
# Every input mode


def _case_rgb(tmp_path):
    arr = _noise(H, W, 3)
    return _save(Image.fromarray(arr), tmp_path / "rgb.png"), arr, None


def _case_rgba(tmp_path):
    arr = _noise(H, W, 4)
    arr[::3, ::2, 3] = 0  # fully transparent pixels keep their colours
    return _save(Image.fromarray(arr), tmp_path / "rgba.png"), arr[..., :3], arr[..., 3]


def _case_la(tmp_path):
    arr = _noise(H, W, 2)
    path = _save(Image.fromarray(arr), tmp_path / "la.png")  # (H, W, 2) uint8 is LA
    return path, np.repeat(arr[..., :1], 3, axis=2), arr[..., 1]


def _case_l(tmp_path):
    arr = _noise(H, W)
    return _save(Image.fromarray(arr), tmp_path / "l.png"), np.stack([arr] * 3, axis=2), None


def _palette_image() -> tuple[Image.Image, np.ndarray, np.ndarray]:
    index = _rng().integers(0, 16, (H, W), dtype=np.uint8)
    palette = _noise(16, 3)
    image = Image.frombytes("P", (W, H), index.tobytes())
    image.putpalette(palette.tobytes())
    return image, index, palette


def _case_p(tmp_path):
    image, index, palette = _palette_image()
    return _save(image, tmp_path / "p.png"), palette[index], None


def _case_p_transparent_index(tmp_path):
    image, index, palette = _palette_image()
    path = _save(image, tmp_path / "p_key.png", transparency=3)
    return path, palette[index], np.where(index == 3, 0, 255).astype(np.uint8)


def _case_p_alpha_table(tmp_path):
    image, index, palette = _palette_image()
    table = _noise(16)
    path = _save(image, tmp_path / "p_trns.png", transparency=table.tobytes())
    return path, palette[index], table[index]


def _case_l_transparent_key(tmp_path):
    arr = _noise(H, W)
    key = int(arr[0, 0])
    path = _save(Image.fromarray(arr), tmp_path / "l_key.png", transparency=key)
    return path, np.stack([arr] * 3, axis=2), np.where(arr == key, 0, 255).astype(np.uint8)


def _case_rgb_transparent_key(tmp_path):
    arr = _rng().integers(0, 4, (H, W, 3), dtype=np.uint8)  # few colours, so the key colour recurs
    path = _save(Image.fromarray(arr), tmp_path / "rgb_key.png", transparency=(1, 2, 3))
    return path, arr, np.where((arr == (1, 2, 3)).all(axis=2), 0, 255).astype(np.uint8)


def _case_cmyk_tiff(tmp_path):
    image = Image.fromarray(_noise(H, W, 4), "CMYK")
    return _save(image, tmp_path / "cmyk.tif"), np.asarray(image.convert("RGB")), None


def _case_cmyk_jpeg(tmp_path):
    path = _save(Image.fromarray(_noise(H, W, 4), "CMYK"), tmp_path / "cmyk.jpg", icc_profile=_srgb_profile())
    with Image.open(path) as decoded:
        return path, np.asarray(decoded.convert("RGB")), None


def _case_bilevel(tmp_path):
    bits = _rng().random((H, W)) < 0.5
    image = Image.fromarray(bits.astype(np.uint8) * 255).convert("1")
    return _save(image, tmp_path / "bits.png"), np.stack([bits * 255] * 3, axis=2).astype(np.uint8), None


def _case_jpeg(tmp_path):
    path = _save(Image.fromarray(_noise(H, W, 3)), tmp_path / "photo.jpg", quality=90)
    with Image.open(path) as decoded:
        return path, np.asarray(decoded.convert("RGB")), None


def _case_webp_lossless(tmp_path):
    arr = _noise(H, W, 4)
    path = _save(Image.fromarray(arr), tmp_path / "art.webp", lossless=True, exact=True)
    return path, arr[..., :3], arr[..., 3]


def _case_tiff(tmp_path):
    arr = _noise(H, W, 3)
    return _save(Image.fromarray(arr), tmp_path / "scan.tif"), arr, None


def _case_gif_first_frame(tmp_path):
    frames = [Image.fromarray(_noise(H, W, 3)).quantize(32), Image.new("P", (W, H))]
    path = _save(frames[0], tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    with Image.open(path) as decoded:
        return path, np.asarray(decoded.convert("RGB")), None


EIGHT_BIT_CASES = {
    "RGB": (_case_rgb, "RGB", "PNG"),
    "RGBA": (_case_rgba, "RGBA", "PNG"),
    "LA": (_case_la, "LA", "PNG"),
    "L": (_case_l, "L", "PNG"),
    "P": (_case_p, "P", "PNG"),
    "P-transparency-index": (_case_p_transparent_index, "P", "PNG"),
    "P-alpha-table": (_case_p_alpha_table, "P", "PNG"),
    "L-transparency-key": (_case_l_transparent_key, "L", "PNG"),
    "RGB-transparency-key": (_case_rgb_transparent_key, "RGB", "PNG"),
    "CMYK-TIFF": (_case_cmyk_tiff, "CMYK", "TIFF"),
    "CMYK-JPEG": (_case_cmyk_jpeg, "CMYK", "JPEG"),
    "1": (_case_bilevel, "1", "PNG"),
    "JPEG": (_case_jpeg, "RGB", "JPEG"),
    "WebP-lossless": (_case_webp_lossless, "RGBA", "WEBP"),
    "TIFF": (_case_tiff, "RGB", "TIFF"),
    "GIF-animated": (_case_gif_first_frame, "P", "GIF"),
}


def _check_tensor(art: Artwork, height: int = H, width: int = W) -> None:
    assert art.rgb.shape == (3, height, width)
    assert art.rgb.dtype == torch.float32 and art.rgb.is_contiguous()
    assert 0.0 <= art.rgb.min() and art.rgb.max() <= 1.0
    assert art.size == (width, height)


@pytest.mark.parametrize("case", EIGHT_BIT_CASES, ids=str)
def test_load_eight_bit_modes_exactly(tmp_path, case):
    build, mode, fmt = EIGHT_BIT_CASES[case]
    path, expected_rgb, expected_alpha = build(tmp_path)
    art = load_image(path)
    _check_tensor(art)
    assert (art.source_mode, art.source_format, art.path) == (mode, fmt, path)
    assert np.array_equal(_as_uint8(art.rgb), expected_rgb)  # exactly value / 255
    if expected_alpha is None:
        assert art.alpha is None
    else:
        assert art.alpha.dtype == np.uint8 and art.alpha.shape == (H, W)
        assert np.array_equal(art.alpha, expected_alpha)
    if mode == "CMYK":
        assert art.icc_profile is None


def _sixteen_bit_png(tmp_path):
    values = _rng().integers(0, 65536, (H, W)).astype(np.uint16)
    return _save(Image.fromarray(values), tmp_path / "gray16.png"), values


def _sixteen_bit_big_endian_tiff(tmp_path):
    values = _rng().integers(0, 65536, (H, W)).astype(np.uint16)
    image = Image.frombytes("I;16B", (W, H), values.astype(">u2").tobytes())
    return _save(image, tmp_path / "gray16b.tif"), values


def _int32_tiff(tmp_path):
    values = _rng().integers(0, 65536, (H, W)).astype(np.int32)
    return _save(Image.fromarray(values), tmp_path / "gray32.tif"), values


@pytest.mark.parametrize(("build", "mode"), [(_sixteen_bit_png, "I;16"), (_sixteen_bit_big_endian_tiff, "I;16B"),
                                             (_int32_tiff, "I")], ids=["I;16-PNG", "I;16B-TIFF", "I-TIFF"])
def test_load_sixteen_bit_keeps_full_precision(tmp_path, build, mode):
    path, values = build(tmp_path)
    art = load_image(path)
    _check_tensor(art)
    assert art.source_mode == mode and art.alpha is None
    expected = torch.from_numpy(values.astype(np.float32) / np.float32(65535))
    for channel in art.rgb:
        assert torch.equal(channel, expected)


def test_sixteen_bit_values_are_scaled_not_clipped(tmp_path):
    values = np.zeros((H, W), dtype=np.uint16)
    values[0, :5] = [0, 255, 256, 32768, 65535]
    art = load_image(_save(Image.fromarray(values), tmp_path / "levels.png"))
    row = art.rgb[0, 0, :5].tolist()
    assert row[0] == 0.0 and row[4] == 1.0
    assert row[1] < row[2] < row[3] < row[4]  # nothing clipped at 255
    assert row[2] == pytest.approx(256 / 65535) and row[3] == pytest.approx(0.5, abs=1e-4)


def test_load_float_image(tmp_path):
    values = _rng().random((H, W), dtype=np.float32)
    art = load_image(_save(Image.fromarray(values), tmp_path / "float.tif"))
    _check_tensor(art)
    assert art.source_mode == "F"
    assert torch.equal(art.rgb[1], torch.from_numpy(values))


def test_load_chooses_format_by_content_not_extension(tmp_path):
    arr = _noise(H, W, 3)
    path = tmp_path / "actually_png.jpg"
    Image.fromarray(arr).save(path, format="PNG")
    art = load_image(path)
    assert art.source_format == "PNG"
    assert np.array_equal(_as_uint8(art.rgb), arr)


# ---------------------------------------------------------------------------
# Metadata


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_to_rgb_and_alpha(tmp_path, orientation):
    source = Image.fromarray(_noise(64, 80, 4))  # 80 wide, 64 high
    path = _save(source, tmp_path / "oriented.png", exif=_exif(orientation))
    art = load_image(path)
    upright = np.asarray(ImageOps.exif_transpose(Image.open(path)))
    assert art.size == (upright.shape[1], upright.shape[0])
    assert np.array_equal(_as_uint8(art.rgb), upright[..., :3])
    assert np.array_equal(art.alpha, upright[..., 3])
    exif = Image.Exif()
    exif.load(art.exif)
    assert exif[ORIENTATION] == 1 and exif[ARTIST] == "Ada Painter"


def test_orientation_six_turns_80x64_into_64x80(tmp_path):
    path = _save(Image.fromarray(_noise(64, 80, 3)), tmp_path / "photo.jpg", exif=_exif(6))
    assert load_image(path).size == (64, 80)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tif"])
def test_exif_survives_load_save_load(tmp_path, suffix):
    source = _save(Image.fromarray(_noise(64, 80, 3)), tmp_path / "source.jpg", exif=_exif(6))
    art = load_image(source)
    out = save_image(tmp_path / f"out{suffix}", art.rgb, exif=art.exif, icc_profile=art.icc_profile)
    again = load_image(out)
    assert again.size == (64, 80)  # not turned a second time
    with Image.open(out) as written:
        exif = written.getexif()
        assert exif[ARTIST] == "Ada Painter" and exif[COPYRIGHT] == "(c) 2024 Ada Painter"
        assert exif.get(ORIENTATION, 1) == 1


def test_tiff_exif_keeps_descriptive_tags_only(tmp_path):
    path = _save(Image.fromarray(_noise(H, W, 3)), tmp_path / "scan.tif", exif=_exif())
    exif = Image.Exif()
    exif.load(load_image(path).exif)
    assert exif[ARTIST] == "Ada Painter" and exif[COPYRIGHT] == "(c) 2024 Ada Painter"
    assert 0x0111 not in exif and 0x0100 not in exif  # StripOffsets, ImageWidth


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tif"])
def test_icc_profile_round_trip(tmp_path, suffix):
    profile = _srgb_profile()
    path = _save(Image.fromarray(_noise(H, W, 3)), tmp_path / "tagged.png", icc_profile=profile)
    art = load_image(path)
    assert art.icc_profile == profile
    out = save_image(tmp_path / f"out{suffix}", art.rgb, icc_profile=art.icc_profile)
    assert load_image(out).icc_profile == profile


def test_non_rgb_icc_profiles_are_dropped(tmp_path):
    gray = bytearray(_srgb_profile())
    gray[16:20] = b"GRAY"
    path = _save(Image.fromarray(_noise(H, W)), tmp_path / "gray.png", icc_profile=bytes(gray))
    assert load_image(path).icc_profile is None


def test_strip_metadata_drops_icc_and_exif(tmp_path):
    rgb = torch.rand(3, H, W, generator=torch.Generator().manual_seed(0))
    out = save_image(tmp_path / "bare.png", rgb, icc_profile=_srgb_profile(), exif=_exif(), strip_metadata=True)
    with Image.open(out) as written:
        assert "icc_profile" not in written.info and len(written.getexif()) == 0
    art = load_image(out)
    assert art.icc_profile is None and art.exif is None


# ---------------------------------------------------------------------------
# Round trips


@pytest.mark.parametrize("suffix", [".png", ".webp", ".tif"])
def test_rgba_round_trip_is_bit_exact(tmp_path, suffix):
    arr = _noise(H, W, 4)
    arr[::4, :, 3] = 0
    art = load_image(_save(Image.fromarray(arr), tmp_path / "source.png"))
    out = save_image(tmp_path / f"out{suffix}", art.rgb, alpha=art.alpha)
    again = load_image(out)
    assert np.array_equal(again.alpha, arr[..., 3])
    assert np.array_equal(to_uint8(again.rgb), arr[..., :3])


def test_odd_size_round_trip(tmp_path):
    arr = _noise(517, 333, 3)  # 333 wide, 517 high
    art = load_image(_save(Image.fromarray(arr), tmp_path / "odd.png"))
    assert art.size == (333, 517)
    again = load_image(save_image(tmp_path / "odd_out.png", art.rgb))
    assert again.size == (333, 517)
    assert np.array_equal(to_uint8(again.rgb), arr)


def test_jpeg_save_is_close_and_returns_path(tmp_path):
    art = load_image(_save(Image.fromarray(_noise(H, W, 3)), tmp_path / "source.png"))
    out = save_image(str(tmp_path / "out.jpg"), art.rgb, jpeg_quality=95)
    assert out == tmp_path / "out.jpg" and isinstance(out, Path)
    again = load_image(out)
    assert again.source_format == "JPEG" and again.size == (W, H)
    assert (again.rgb - art.rgb).abs().mean() < 0.05


# ---------------------------------------------------------------------------
# Errors: one line, naming the file


def _empty(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    return path


def _truncated_png(tmp_path):
    data = _save(Image.fromarray(_noise(128, 128, 3)), tmp_path / "whole.png").read_bytes()
    path = tmp_path / "broken.png"
    path.write_bytes(data[: len(data) // 2])
    return path


def _truncated_jpeg(tmp_path):
    data = _save(Image.fromarray(_noise(128, 128, 3)), tmp_path / "whole.jpg").read_bytes()
    path = tmp_path / "broken.jpg"
    path.write_bytes(data[: len(data) // 2])
    return path


def _text_file(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not an image\n")
    return path


def _tiny(tmp_path):
    return _save(Image.fromarray(_noise(10, 10, 3)), tmp_path / "tiny.png")


def _missing(tmp_path):
    return tmp_path / "missing.png"


def _folder(tmp_path):
    path = tmp_path / "folder.png"
    path.mkdir()
    return path


def _negative_ints(tmp_path):
    return _save(Image.fromarray(np.full((H, W), -5, dtype=np.int32)), tmp_path / "negative.tif")


@pytest.mark.parametrize(("build", "reason"), [
    (_empty, "file is empty"),
    (_truncated_png, "truncated or corrupt image data"),
    (_truncated_jpeg, "truncated or corrupt image data"),
    (_text_file, "not an image file"),
    (_tiny, "image is 10x10; both sides need at least 64 px"),
    (_missing, "file not found"),
    (_folder, "is a folder"),
    (_negative_ints, "outside 0..65535"),
], ids=["empty", "truncated-png", "truncated-jpeg", "text", "tiny", "missing", "folder", "negative-int"])
def test_bad_files_raise_one_line_image_errors(tmp_path, build, reason):
    path = build(tmp_path)
    with pytest.raises(ImageError) as caught:
        load_image(path)
    message = str(caught.value)
    assert message.startswith(f"{path.name}: ") and reason in message
    assert "\n" not in message


def test_pixel_limit_is_checked_from_the_header_before_decoding(tmp_path, monkeypatch):
    path = _save(Image.new("L", (2000, 2000)), tmp_path / "big.png")
    decoded = []
    original_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self) or original_load(self))
    with pytest.raises(ImageError, match=r"^big\.png: image is 2000x2000 \(4 MP\); the limit is 1 MP$"):
        load_image(path, max_pixels=1_000_000)
    assert decoded == []
    load_image(path, max_pixels=4_000_000)  # exactly at the limit is fine
    assert decoded


@pytest.mark.parametrize("side", [9_000, 10_000, 30_000])
def test_header_claiming_huge_size_is_refused_without_decoding(tmp_path, side):
    """A tiny file claiming 81 MP (our limit), 100 MP (Pillow's warning) or 900 MP (Pillow's error)."""
    path = _png_with_header_size(tmp_path, side, side)
    limits = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)
    with warnings.catch_warnings(record=True) as caught_warnings:
        warnings.simplefilter("always")
        with pytest.raises(ImageError) as caught:
            load_image(path)
    assert str(caught.value).startswith(path.name) and "\n" not in str(caught.value)
    assert "pixels" in str(caught.value) or "limit" in str(caught.value)
    assert not [w for w in caught_warnings if issubclass(w.category, Image.DecompressionBombWarning)]
    assert (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES) == limits  # globals untouched


def test_twelve_megapixel_scan_passes_the_size_check(tmp_path):
    assert 4000 * 3000 <= MAX_PIXELS and MIN_SIDE == 64
    # The header passes; the decode then fails on the fake data, not on the limit.
    with pytest.raises(ImageError, match="truncated or corrupt"):
        load_image(_png_with_header_size(tmp_path, 4000, 3000))


def test_invalid_limits_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="max_pixels"):
        load_image(tmp_path / "any.png", max_pixels=0)


# ---------------------------------------------------------------------------
# Saving


@pytest.mark.parametrize(("name", "fmt", "expected"), [
    ("out.png", None, "PNG"),
    ("out.jpg", None, "JPEG"),
    ("out.JPEG", None, "JPEG"),
    ("out.webp", None, "WEBP"),
    ("out.tif", None, "TIFF"),
    ("out", None, "PNG"),
    ("out.png", "jpeg", "JPEG"),
    ("out.jpg", "PNG", "PNG"),
    ("out.dat", "tiff", "TIFF"),
])
def test_save_format_from_argument_or_suffix(tmp_path, name, fmt, expected):
    out = save_image(tmp_path / name, torch.full((3, H, W), 0.5), format=fmt)
    with Image.open(out) as written:
        assert written.format == expected and written.mode == "RGB" and written.size == (W, H)


@pytest.mark.parametrize(("name", "fmt", "reason"), [
    ("out.bmp", None, "cannot write .bmp files"),
    ("out.png", "gif", "unknown format 'gif'"),
    ("no_such_folder/out.png", None, "does not exist"),
])
def test_save_refuses_unknown_formats_and_missing_folders(tmp_path, name, fmt, reason):
    with pytest.raises(ImageError, match=reason):
        save_image(tmp_path / name, torch.zeros(3, H, W), format=fmt)
    assert list(tmp_path.iterdir()) == []


def test_jpeg_with_alpha_raises_before_writing(tmp_path):
    with pytest.raises(ImageError, match=r"^out\.jpg: JPEG cannot store transparency; save as PNG$"):
        save_image(tmp_path / "out.jpg", torch.zeros(3, H, W), alpha=np.zeros((H, W), np.uint8))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("alpha", [np.zeros((H, W + 1), np.uint8), np.zeros((H, W), np.float32)],
                         ids=["shape", "dtype"])
def test_save_rejects_malformed_alpha(tmp_path, alpha):
    with pytest.raises(ValueError, match="alpha"):
        save_image(tmp_path / "out.png", torch.zeros(3, H, W), alpha=alpha)


def test_save_rejects_bad_jpeg_quality(tmp_path):
    with pytest.raises(ValueError, match="jpeg_quality"):
        save_image(tmp_path / "out.jpg", torch.zeros(3, H, W), jpeg_quality=0)


def _failing_png_writer(exc: BaseException):
    def write(image, fp, filename):
        fp.write(b"\x89PNG half a file")
        raise exc

    return write


def test_failed_save_leaves_no_file_and_no_temp(tmp_path, monkeypatch):
    monkeypatch.setitem(Image.SAVE, "PNG", _failing_png_writer(OSError("No space left on device")))
    with pytest.raises(ImageError, match=r"^out\.png: could not write image \(No space left on device\)$"):
        save_image(tmp_path / "out.png", torch.zeros(3, H, W))
    assert list(tmp_path.iterdir()) == []


def test_failed_save_keeps_the_existing_file(tmp_path, monkeypatch):
    out = tmp_path / "out.png"
    out.write_bytes(b"previous version")
    monkeypatch.setitem(Image.SAVE, "PNG", _failing_png_writer(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        save_image(out, torch.zeros(3, H, W))
    assert list(tmp_path.iterdir()) == [out] and out.read_bytes() == b"previous version"


def test_save_replaces_an_existing_file_with_normal_permissions(tmp_path):
    out = tmp_path / "out.png"
    out.write_bytes(b"previous version")
    reference = tmp_path / "reference"
    reference.write_bytes(b"")
    save_image(out, torch.ones(3, H, W))
    assert sorted(tmp_path.iterdir()) == [out, reference]
    assert load_image(out).rgb.min() == 1.0
    assert os.stat(out).st_mode & 0o777 == os.stat(reference).st_mode & 0o777  # the umask, not 0o600


def test_save_accepts_tensors_that_need_grad(tmp_path):
    rgb = torch.full((3, H, W), 0.25, requires_grad=True)
    out = save_image(tmp_path / "out.png", rgb * 2)
    assert np.all(to_uint8(load_image(out).rgb) == 128)


# ---------------------------------------------------------------------------
# to_uint8


def test_to_uint8_recovers_every_8bit_level():
    levels = torch.arange(256, dtype=torch.float32) / 255
    rgb = levels.reshape(1, 16, 16).expand(3, 16, 16)
    out = to_uint8(rgb)
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    assert np.array_equal(out[..., 0].ravel(), np.arange(256))


def test_to_uint8_rounds_half_up_and_clamps():
    values = torch.tensor([-0.3, 0.0, 0.5, 1.0, 1.7, 2.25 / 255, 2.75 / 255], dtype=torch.float64)
    out = to_uint8(values.reshape(1, 1, -1).expand(3, 1, -1))
    assert out[0, :, 0].tolist() == [0, 0, 128, 255, 255, 2, 3]


def test_to_uint8_rounds_exact_ties_up_not_to_even():
    k = torch.arange(255, dtype=torch.float32)
    x = (k + 0.5) / 255
    tie = x * 255 == k + 0.5  # exactly halfway in float32
    assert tie[::2].any()  # even k are included, where round-half-to-even would go down
    out = to_uint8(x.reshape(1, 1, -1).expand(3, 1, -1))[0, :, 0]
    assert np.array_equal(out[tie.numpy()], (k[tie] + 1).numpy().astype(np.uint8))


@pytest.mark.parametrize(("rgb", "error"), [
    (torch.zeros(4, 8, 8), ValueError),
    (torch.zeros(8, 8), ValueError),
    (torch.zeros(3, 8, 8, dtype=torch.uint8), TypeError),
    (np.zeros((3, 8, 8), np.float32), TypeError),
    (torch.full((3, 8, 8), float("nan")), ValueError),
], ids=["channels", "2d", "uint8", "numpy", "nan"])
def test_to_uint8_rejects_bad_input(rgb, error):
    with pytest.raises(error):
        to_uint8(rgb)


# ---------------------------------------------------------------------------
# Output paths


def test_check_output_path_rejects_the_input_itself(tmp_path):
    source = _save(Image.new("RGB", (64, 64)), tmp_path / "art.png")
    with pytest.raises(ImageError, match="would overwrite the input"):
        check_output_path(tmp_path / "sub" / ".." / "art.png", [tmp_path / "other.png", source])
    with pytest.raises(ImageError):
        check_output_path(str(source), str(source))  # a single path is accepted too


def test_check_output_path_rejects_links_to_the_input(tmp_path):
    source = _save(Image.new("RGB", (64, 64)), tmp_path / "art.png")
    (tmp_path / "link.png").symlink_to(source)
    os.link(source, tmp_path / "hard.png")
    for alias in ("link.png", "hard.png"):
        with pytest.raises(ImageError) as caught:
            check_output_path(tmp_path / alias, [source])
        assert str(caught.value).startswith(f"{alias}: ")
    with pytest.raises(ImageError):
        check_output_path(source, [tmp_path / "link.png"])


def test_check_output_path_accepts_other_paths(tmp_path):
    source = _save(Image.new("RGB", (64, 64)), tmp_path / "art.png")
    check_output_path(tmp_path / "art.cloaked.png", [source])
    check_output_path(tmp_path / "new" / "art.png", [source])
    check_output_path(tmp_path / "art.png.png", [])


def test_artwork_is_frozen(tmp_path):
    art = load_image(_case_rgb(tmp_path)[0])
    with pytest.raises(AttributeError):
        art.rgb = torch.zeros(3, 1, 1)
