"""A :class:`Cloaker` holds the loaded models and cloaks batches of in-memory images.

It is what the CLI (and later the web app and the notebook) share: models load once,
lazily, on first use; every call takes its own settings and seed, so one
instance can serve many requests.
"""

from __future__ import annotations

import threading
from pathlib import Path

import torch

from .cloak import CloakResult, cloak_image
from .config import CloakConfig
from .losses import needs_denoiser
from .models import load_encoder, load_img2img_pipeline
from .perceptual import load_perceptual
from .resize import fit_to_grid
from .targets import BuiltinStyle, PromptStyle, StyleImage, choose_style, parse_target

__all__ = ["Cloaker"]


class Cloaker:
    """Cloak artworks with one model.

    Args:
        model (`str`, defaults to ``"mini"``): ``"mini"`` (the embedded sfumato-mini),
            a Stable Diffusion hub id, or a local diffusers folder.
        device (`str`, defaults to ``"cpu"``).
        half (`bool`, defaults to False): run the frozen networks in float16 (GPU only).
        perceptual (`str`, defaults to ``"auto"``): perceptual metric name, see
            :func:`sfumato.perceptual.load_perceptual`.
        online (`bool`, defaults to False): let the perceptual metric download missing weights
            (hub downloads follow ``HF_HUB_OFFLINE``, see :func:`sfumato.offline.stay_offline`).
    """

    def __init__(self, model: str = "mini", device: str = "cpu", half: bool = False, perceptual: str = "auto",
                 online: bool = False):
        self.model, self.device, self.half, self.perceptual_name = str(model), torch.device(device), half, perceptual
        self.online = online
        self._encoder = self._perceptual = self._pipeline = self._denoiser = None
        self._lock = threading.Lock()

    @property
    def dtype(self) -> torch.dtype:
        return torch.float16 if self.half else torch.float32

    @property
    def encoder(self):
        with self._lock:
            if self._encoder is None:
                self._encoder = load_encoder(self.model, device=self.device, dtype=self.dtype)
        return self._encoder

    @property
    def perceptual(self):
        with self._lock:
            if self._perceptual is None:
                self._perceptual = load_perceptual(self.perceptual_name, download=self.online).to(self.device)
        return self._perceptual

    @property
    def pipeline(self):
        vae = self.encoder.vae  # shared with the encoder, not loaded twice
        with self._lock:
            if self._pipeline is None:
                self._pipeline = load_img2img_pipeline(self.model, device=self.device, dtype=self.dtype, vae=vae)
        return self._pipeline

    @property
    def denoiser(self):
        """The model's UNet side (:class:`~sfumato.denoiser.Denoiser`), from the lazily loaded pipeline."""
        from .denoiser import Denoiser

        pipeline = self.pipeline
        with self._lock:
            if self._denoiser is None:
                self._denoiser = Denoiser.from_pipeline(pipeline)
        return self._denoiser

    def resolve_target(self, spec: str | int | Path, images: list[torch.Tensor], seed: int = 0):
        """Turn a target spec into a style target; ``"auto"`` chooses one for the whole set.

        Returns ``(target, record)`` where ``record`` says how the target was chosen.
        """
        parsed = parse_target(spec) if isinstance(spec, str) else spec
        if parsed == "auto":
            generator = torch.Generator().manual_seed(seed)
            style, distances = choose_style(images, self.encoder, generator)
            return style, {"choice": "auto", "target": style.name, "distances": distances}
        if isinstance(parsed, int):
            target = BuiltinStyle(parsed)
        elif isinstance(parsed, Path):
            target = StyleImage(parsed)
        else:
            target = PromptStyle(self.pipeline, parsed[len("prompt:"):].strip(), seed=seed)
        return target, {"choice": "given", "target": target.name}

    def cloak(
        self,
        images: list[torch.Tensor],
        config: CloakConfig,
        *,
        target="auto",
        masks: list[torch.Tensor | None] | None = None,
        seed: int = 0,
        callback=None,
    ) -> tuple[list[CloakResult], dict]:
        """Cloak a list of (3, H, W) images in [0, 1]; same seed, same output.

        ``target`` is a spec (see :func:`~sfumato.targets.parse_target`) or an
        already resolved target. Every image draws its random start from a generator
        seeded with ``seed``, so its result does not depend on the other images.
        ``callback(index, step, loss)`` reports progress. Returns the results and the
        record of how the target was chosen.
        """
        masks = masks if masks is not None else [None] * len(images)
        if len(masks) != len(images):
            raise ValueError(f"{len(masks)} masks for {len(images)} images")
        if callable(target):
            record = {"choice": "given", "target": getattr(target, "name", type(target).__name__)}
        else:
            target, record = self.resolve_target(target, images, seed)
        denoiser = self.denoiser if needs_denoiser(config.protection) else None  # glaze, photoguard: VAE only
        results = []
        for index, (image, mask) in enumerate(zip(images, masks)):
            step = None if callback is None else (lambda s, loss, i=index: callback(i, s, loss))
            generator = torch.Generator().manual_seed(seed)
            results.append(cloak_image(image, self.encoder, target, self.perceptual, config, mask=mask,
                                       denoiser=denoiser, generator=generator, callback=step))
        return results, record

    def cloak_file(self, path, out, config: CloakConfig, *, target, seed: int = 0, format: str = "png",
                   strip_metadata: bool = False, max_pixels: int | None = None, record: dict | None = None,
                   sidecar_path=None, callback=None) -> tuple[CloakResult, dict]:
        """Cloak one image file into ``out`` and write its JSON sidecar (``sidecar_path``, by default
        ``<input stem>.cloak.json`` beside ``out``).

        Transparency, the ICC profile and the EXIF attribution fields are kept (unless
        ``strip_metadata``); ``target`` is an already resolved target, shared by a batch.
        ``record`` (settings to remember, such as the presets and how the target was
        chosen, ``target_choice``) is merged into the sidecar. Raises
        :class:`~sfumato.io.ImageError` for a file that cannot be read.
        Returns the result and the sidecar.
        """
        from . import __version__
        from .io import MAX_PIXELS, ImageError, attribution_exif, load_image, save_image, write_json

        path, out = Path(path), Path(out)
        art = load_image(path, max_pixels=max_pixels or MAX_PIXELS)
        if format == "jpeg" and art.alpha is not None:
            raise ImageError(f"{path.name}: has transparency, which JPEG cannot store; use PNG")
        mask = None if art.alpha is None else torch.from_numpy(art.alpha > 0)[None].float()
        [result], choice = self.cloak([art.rgb], config, target=target, masks=[mask], seed=seed,
                                      callback=None if callback is None else (lambda i, step, loss: callback(step, loss)))
        exif = None if strip_metadata else attribution_exif(art.exif)
        save_image(out, result.image, alpha=art.alpha, icc_profile=art.icc_profile, exif=exif, format=format,
                   strip_metadata=strip_metadata)
        # File names only: a server's or a user's folders are nobody else's business (and not reproducible).
        sidecar = {"input": path.name, "output": out.name, "sfumato_version": __version__, "model": self.model,
                   "device": str(self.device), "half_precision": self.half, "seed": seed,
                   "config": config.to_dict(), "target_choice": choice, **(record or {}),
                   "figures_measured_on": "the 8-bit pixels before JPEG compression" if format == "jpeg"
                                          else "the written file's pixels",
                   **result.report}
        write_json(sidecar_path or out.parent / f"{path.stem}.cloak.json", sidecar)
        return result, sidecar

    @torch.no_grad()
    def encoder_view(self, images: torch.Tensor, side: int | None = None) -> torch.Tensor:
        """What the model's encoder sees: decode(E(x)) for (B, 3, H, W) in [0, 1], at the mimic's
        resolution (shorter side ``side``, by default the model's)."""
        vae = self.encoder.vae
        x = fit_to_grid(images.to(self.device), side or self.encoder.resolution, self.encoder.downsample)
        decoded = vae.decode(self.encoder(x).to(vae.dtype)).sample.float()
        return ((decoded + 1) / 2).clamp(0, 1)
