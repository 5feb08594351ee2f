"""What the web app does, without Gradio: check uploads, cloak them, preview, zip, evaluate.

Every function takes its inputs as arguments and returns plain data; the models live in
a :class:`ModelPool` that the app creates once and shares between requests (each
request brings its own settings and seed, so concurrent users never share a result).
"""

from __future__ import annotations

import threading
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ..api import Cloaker
from ..cloak import visible_perturbation
from ..config import resolve_config
from ..io import ImageError, load_image, to_uint8
from ..poison import Anchor, check_concepts, concept_prompt, poison_config
from ..resize import fit_to_grid

__all__ = ["Limits", "ModelPool", "Cloaked", "Batch", "check_uploads", "cloak_uploads", "style_thumbnails"]


@dataclass(frozen=True)
class Limits:
    """What one request may upload."""

    max_files: int = 16
    max_file_mb: float = 25.0
    max_pixels: int = 24_000_000


class ModelPool:
    """One :class:`~sfumato.api.Cloaker` per model name, created on first use and shared."""

    def __init__(self, device: str = "cpu"):
        self.device = device
        self._cloakers: dict[str, Cloaker] = {}
        self._lock = threading.Lock()

    def cloaker(self, model: str) -> Cloaker:
        model = (model or "mini").strip()
        with self._lock:
            if model not in self._cloakers:
                self._cloakers[model] = Cloaker(model, device=self.device)
            return self._cloakers[model]


@dataclass
class Cloaked:
    """One cloaked upload: its files and figures, and arrays for display."""

    name: str
    output: Path
    sidecar: Path
    figures: dict
    before: np.ndarray  # (H, W, 3) uint8
    after: np.ndarray  # (H, W, 3) uint8
    perturbation: np.ndarray  # (H, W, 3) uint8, amplified
    extra: list[Path] = field(default_factory=list)  # further files to download (a poison's caption)


@dataclass
class Batch:
    results: list[Cloaked] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    archive: Path | None = None


def check_uploads(paths: list[str | Path], limits: Limits) -> tuple[list[Path], list[str]]:
    """Split uploads into files to cloak and one-line reasons for the others (count and size limits)."""
    paths = [Path(p) for p in paths or []]
    errors = []
    if len(paths) > limits.max_files:
        errors.append(f"{len(paths)} files uploaded; at most {limits.max_files} per run, the first "
                      f"{limits.max_files} are used")
        paths = paths[:limits.max_files]
    kept = []
    for path in paths:
        size_mb = path.stat().st_size / 2**20 if path.is_file() else 0
        if size_mb > limits.max_file_mb:
            errors.append(f"{path.name}: {size_mb:.0f} MB, over the {limits.max_file_mb:.0f} MB limit")
        else:
            kept.append(path)
    return kept, errors


def _shrunk_copy(path: Path, art, folder: Path, side: int) -> Path:
    """A PNG copy of an upload with its longest side at most ``side`` px (alpha kept), for previews."""
    from ..io import save_image

    folder.mkdir(parents=True, exist_ok=True)
    rgb = fit_to_grid(art.rgb[None], side, 8)[0]
    alpha = None
    if art.alpha is not None:
        alpha = torch.nn.functional.interpolate(torch.from_numpy(art.alpha)[None, None].float(), size=rgb.shape[-2:],
                                                mode="nearest")[0, 0].numpy().astype(art.alpha.dtype)
    return save_image(folder / f"{path.stem}.png", rgb, alpha=alpha)


def _display(path: Path) -> torch.Tensor:
    return load_image(path, max_pixels=10**9).rgb


def _read_uploads(files: list[Path], limits: Limits, *, preview: bool, out_dir: Path, grid: int,
                  errors: list[str]) -> list[tuple[Path, torch.Tensor]]:
    """Each readable file with its 128 px copy (for choosing a target); the others go to ``errors``.

    A preview reads the first readable file only, and cloaks a 256 px copy of it.
    """
    readable = []
    for path in files:
        if preview and readable:
            break
        try:
            art = load_image(path, max_pixels=limits.max_pixels)
        except ImageError as err:
            errors.append(str(err))
            continue
        if preview:
            path = _shrunk_copy(path, art, out_dir / "preview-input", 256)
        readable.append((path, fit_to_grid(art.rgb[None], 128, grid)[0]))
    return readable


def _targets(cloaker: Cloaker, readable, record: dict, *, target: str, poison: tuple[str, str] | None, seed: int):
    """One target per readable image: the batch's resolved style, or each poison's own anchor of the destination."""
    if poison is None:
        resolved, record["target_choice"] = cloaker.resolve_target(target, [small for _, small in readable], seed)
        return [resolved] * len(readable)
    anchors = cloaker.anchors(poison[1], len(readable), seed=seed)
    record |= {"concept": poison[0], "destination": poison[1], "caption": concept_prompt(poison[0])}
    return [Anchor(anchor, name=f"anchor:{poison[1]}#{index}") for index, anchor in enumerate(anchors)]


def _zip(results: list[Cloaked], archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        for item in results:
            for path in (item.output, item.sidecar, *item.extra):
                bundle.write(path, path.name)
    return archive


def cloak_uploads(pool: ModelPool, paths: list[str | Path], out_dir: Path, *, model: str = "mini",
                  intensity: str = "default", quality: str = "default", target: str = "auto", seed: int = 0,
                  protection: str = "glaze", limits: Limits = Limits(), preview: bool = False,
                  poison: tuple[str, str] | None = None, robust: bool = False, progress=None) -> Batch:
    """Cloak uploaded files into ``out_dir`` (PNG + JSON sidecar each, and a ZIP of all).

    ``poison=(concept, destination)`` poisons them instead (Nightshade, :mod:`sfumato.poison`):
    each image gets its own anchor of the destination as its target (``target`` is unused),
    and is written as ``NAME.poisoned.png`` with its caption ``NAME.poisoned.txt`` and
    ``NAME.poison.json``. ``robust`` optimises in expectation over a mimic's cleaning
    (``CloakConfig.robust``).

    ``preview`` cloaks only the first file, shrunk to 256 px, with the ``preview`` quality:
    a result within seconds, written as ``NAME.preview.png`` and never zipped. A file that cannot be read is
    reported in ``Batch.errors`` and the others go on.
    ``progress(name, index, count, step, steps)`` is called after each optimiser step.
    """
    quality = "preview" if preview else quality
    if poison is None:
        config = resolve_config(intensity, quality, protection=protection, robust=robust)  # bad settings raise
    else:
        config = replace(poison_config(poison[0], intensity, quality, protection), robust=robust)
        check_concepts(*poison, model=model)
    files, errors = check_uploads(paths, limits)
    cloaker = pool.cloaker(model)
    out_dir.mkdir(parents=True, exist_ok=True)
    batch = Batch(errors=errors)
    # every file is read first: bad files are reported, the target is chosen on the good ones
    readable = _read_uploads(files, limits, preview=preview, out_dir=out_dir, grid=cloaker.encoder.downsample,
                             errors=batch.errors)
    if not readable:
        return batch
    record = {"intensity": intensity, "quality": "preview" if preview else quality, "protection": protection}
    targets = _targets(cloaker, readable, record, target=target, poison=poison, seed=seed)
    kind, sidecar_kind = ("cloaked", "cloak") if poison is None else ("poisoned", "poison")
    stems = set()
    for index, ((path, _), resolved) in enumerate(zip(readable, targets)):
        stem = path.stem if path.stem not in stems else f"{path.stem}-{index + 1}"  # same name uploaded twice
        stems.add(stem)
        out = out_dir / f"{stem}.{'preview' if preview else kind}.png"  # a preview never looks like the real thing
        step = None if progress is None else (
            lambda s, loss, name=path.name, i=index: progress(name, i, len(readable), s + 1, config.steps))
        try:
            result, sidecar = cloaker.cloak_file(path, out, config, target=resolved, seed=seed, record=record,
                                                 max_pixels=limits.max_pixels,
                                                 sidecar_path=out_dir / f"{stem}.{sidecar_kind}.json", callback=step)
        except (ImageError, ValueError, RuntimeError, OSError) as err:
            batch.errors.append(str(err) if str(err).startswith(path.name) else f"{path.name}: {err}")
            continue
        before = _display(path)
        after = result.image.cpu()
        extra = []
        if poison is not None:  # the caption a trainer pairs with the image
            extra.append(out.with_suffix(".txt"))
            extra[0].write_text(record["caption"] + "\n")
        batch.results.append(Cloaked(
            name=path.name, output=out, sidecar=out_dir / f"{stem}.{sidecar_kind}.json", extra=extra,
            figures={k: sidecar[k] for k in ("perceptual_metric", "perceptual_distance", "psnr_db", "linf_levels",
                                             "target", "seconds") if k in sidecar},
            before=to_uint8(before), after=to_uint8(after), perturbation=to_uint8(visible_perturbation(before, after))))
    if batch.results and not preview:  # a preview is for looking, not for publishing: no ZIP of it
        batch.archive = _zip(batch.results, out_dir / f"sfumato-{kind}.zip")
    return batch


def style_thumbnails(side: int = 96) -> list[tuple[np.ndarray, str]]:
    """The 26 built-in styles rendered on one photograph (scikit-image's astronaut), for the style picker."""
    from PIL import Image
    from skimage import data

    from ..targets import BuiltinStyle, style_labels

    photo = Image.fromarray(data.astronaut()).crop((96, 0, 416, 320)).resize((side * 2, side * 2), Image.LANCZOS)
    x = torch.from_numpy(np.array(photo)).permute(2, 0, 1)[None].float() / 255
    out = []
    for index, name in enumerate(style_labels()):
        styled = BuiltinStyle(index)(x)[0]
        small = torch.nn.functional.interpolate(styled[None], size=(side, side), mode="bilinear", antialias=True)[0]
        out.append((to_uint8(small.clamp(0, 1)), name))
    return out
