"""What a mimic who knows about cloaks does to scraped images before fine-tuning.

Each countermeasure is a function of a batch (B, 3, H, W) in [0, 1] that returns a batch of
the same shape on the 8-bit grid (the mimic saves what it cleaned). They are named by a
spec, ``KIND`` or ``KIND:VALUE``, as in ``sfumato evaluate --countermeasure``:

========================  =====================================================================
``jpeg:Q``                JPEG at quality Q
``blur:S``                Gaussian blur of standard deviation S pixels
``noise:S``               Gaussian noise of standard deviation S (in [0, 1] units)
``resize:F``              down by F (antialiased) and back up (bilinear)
``upscale:S``             noisy upscaling (Hönig et al., ICLR 2025): noise S, then an upscaler
``diffpure:T``            DiffPure (Nie et al., ICML 2022) through the model: img2img at strength T
``impress``               IMPRESS purification (Cao et al., NeurIPS 2023)
========================  =====================================================================

The last three need the model (:class:`Purifier`); the others need nothing. Where a
countermeasure draws noise it takes a ``torch.Generator``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch

from .resize import resize

__all__ = ["KINDS", "Countermeasure", "parse_countermeasure", "jpeg", "blur", "gaussian_noise", "resize_round_trip",
           "Purifier", "apply_countermeasure"]

#: Every kind, with whether it takes a value and whether it needs the model.
KINDS = {"none": (False, False), "jpeg": (True, False), "blur": (True, False), "noise": (True, False),
         "resize": (True, False), "upscale": (True, True), "diffpure": (True, True), "impress": (False, True)}


@dataclass(frozen=True)
class Countermeasure:
    """A parsed spec: ``kind`` and its ``value`` (None for ``none`` and ``impress``)."""

    kind: str
    value: float | None = None

    @property
    def spec(self) -> str:
        return self.kind if self.value is None else f"{self.kind}:{self.value:g}"

    @property
    def needs_model(self) -> bool:
        return KINDS[self.kind][1]

    @property
    def draws_noise(self) -> bool:
        return self.kind in ("noise", "upscale", "diffpure")


def parse_countermeasure(spec: str) -> Countermeasure:
    """``"jpeg:75"`` -> ``Countermeasure("jpeg", 75.0)``; refuses unknown kinds and bad values in one line."""
    kind, _, value = spec.strip().partition(":")
    if kind not in KINDS:
        raise ValueError(f"unknown countermeasure {spec!r}; valid: none, jpeg:Q, blur:S, noise:S, resize:F, "
                         "upscale:S, diffpure:T, impress")
    takes_value = KINDS[kind][0]
    if takes_value != bool(value):
        form = f"{kind}:VALUE" if takes_value else kind
        raise ValueError(f"countermeasure {spec!r}: write it as {form}")
    if not takes_value:
        return Countermeasure(kind)
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"countermeasure {spec!r}: {value!r} is not a number") from None
    low, high = {"jpeg": (0, 100), "blur": (0, 20), "noise": (0, 1), "resize": (1, 16), "upscale": (0, 1),
                 "diffpure": (0, 1)}[kind]
    if not low < number <= high:
        raise ValueError(f"countermeasure {spec!r}: the value must be above {low} and at most {high}")
    return Countermeasure(kind, number)


def _on_grid(images: torch.Tensor) -> torch.Tensor:
    from .cloak import from_levels  # cloak -> robust -> countermeasures: imported late

    return from_levels((images.clamp(0, 1) * 255).round())


def jpeg(images: torch.Tensor, quality: float) -> torch.Tensor:
    """Each image through a JPEG file at ``quality`` (PIL, 4:2:0)."""
    from PIL import Image

    from .cloak import from_levels
    from .io import to_uint8

    out = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(to_uint8(image)).save(buffer, format="JPEG", quality=int(quality))
        out.append(np.asarray(Image.open(buffer).convert("RGB")))
    return from_levels(torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float()).to(images.device)


def blur(images: torch.Tensor, sigma: float, grid: bool = True) -> torch.Tensor:
    """Gaussian blur, kernel of 2·round(3σ) + 1 pixels (``grid=False``: not rounded, differentiable)."""
    from torchvision.transforms.functional import gaussian_blur

    out = gaussian_blur(images, kernel_size=2 * round(3 * sigma) + 1, sigma=sigma)
    return _on_grid(out) if grid else out


def gaussian_noise(images: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """x + N(0, σ²), clipped to [0, 1] (Hönig et al.'s "Gaussian noising" uses σ = 0.05)."""
    noise = torch.randn(images.shape, generator=generator, dtype=images.dtype)
    return _on_grid(images + sigma * noise.to(images.device))


def resize_round_trip(images: torch.Tensor, factor: float, grid: bool = True) -> torch.Tensor:
    """Down by ``factor`` (antialiased bilinear) and back to the same size (bilinear; ``grid=False``: not
    rounded, differentiable)."""
    size = tuple(images.shape[-2:])
    out = resize(resize(images, tuple(max(8, round(side / factor)) for side in size)), size)
    return _on_grid(out) if grid else out


class Purifier:
    """The countermeasures that run the model: DiffPure, noisy upscaling's denoiser, IMPRESS.

    Args:
        pipeline: the model's img2img pipeline (:func:`sfumato.models.load_img2img_pipeline`).
        perceptual: a :class:`~sfumato.perceptual.PerceptualMetric` for IMPRESS's hinge.
        budget (`float`): IMPRESS's perceptual budget, in ``perceptual``'s units (the cloak's own, so
            the purified image stays as close to the scraped one as a cloak is to the original).
        upscale_strength (`float`, defaults to 0.2): noisy upscaling's denoising strength when no
            upscaler is named (offline, sfumato-mini: the model's own img2img stands in).
        upscaler: an optional ``StableDiffusionUpscalePipeline`` (the SD x4 upscaler) for noisy
            upscaling: the image is shrunk 4x, noised, and upscaled back.
        upscaler_name (`str`, *optional*): the upscaler's hub id or folder, for the record.
        upscale_steps (`int`, defaults to 75): the upscaler's denoising steps (its pipeline's default, as Hönig et al.).
        impress_steps (`int`, defaults to 200), impress_lr (`float`, defaults to 0.005): IMPRESS's Adam.
        impress_alpha (`float`, defaults to 10): the weight of IMPRESS's perceptual hinge.
    """

    def __init__(self, pipeline, perceptual=None, budget: float | None = None, *, upscale_strength: float = 0.2,
                 upscaler=None, upscaler_name: str | None = None, upscale_steps: int = 75, impress_steps: int = 200,
                 impress_lr: float = 0.005, impress_alpha: float = 10.0):
        self.pipeline, self.perceptual, self.budget = pipeline, perceptual, budget
        self.upscale_strength, self.upscaler, self.upscaler_name = upscale_strength, upscaler, upscaler_name
        self.upscale_steps = upscale_steps
        self.impress_steps, self.impress_lr, self.impress_alpha = impress_steps, impress_lr, impress_alpha

    @property
    def settings(self) -> dict:
        """What a stage key must hold so that a change of setting reruns the stage."""
        return {"upscale_strength": self.upscale_strength, "upscaler": self.upscaler_name,
                "upscale_steps": self.upscale_steps, "impress_steps": self.impress_steps,
                "impress_lr": self.impress_lr, "impress_alpha": self.impress_alpha, "budget": self.budget}

    @torch.no_grad()
    def img2img(self, images: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
        """DiffPure through a latent diffusion model: noise the latents to ``strength`` and denoise them
        unconditionally (empty prompt, no guidance), 50 scheduler steps for the whole range."""
        steps = 50
        if int(steps * strength) < 1:
            raise ValueError(f"diffpure strength {strength} leaves no denoising step of {steps}")
        out = self.pipeline(prompt=[""] * len(images), image=images, strength=strength, guidance_scale=1.0,
                            num_inference_steps=steps, generator=generator, output_type="pt").images
        return _on_grid(out.to(images.device, torch.float32))

    @torch.no_grad()
    def noisy_upscale(self, images: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
        """Noise, then an upscaler that treats the noise as what it must remove.

        With a named x4 upscaler (Hönig et al.'s setting: σ = 0.1, SD x4 upscaler at noise level 320)
        the image is shrunk 4x first; without one, the model's img2img at ``upscale_strength``
        denoises at the same size.
        """
        if self.upscaler is None:
            return self.img2img(gaussian_noise(images, sigma, generator), self.upscale_strength, generator)
        size = tuple(images.shape[-2:])
        small = gaussian_noise(resize(images, tuple(max(8, s // 4) for s in size)), sigma, generator)
        out = self.upscaler(prompt=[""] * len(images), image=small, noise_level=320, generator=generator,
                            num_inference_steps=self.upscale_steps, output_type="pt").images
        return _on_grid(resize(out.to(images.device, torch.float32), size))

    def impress(self, images: torch.Tensor) -> torch.Tensor:
        """IMPRESS: min_x′ ‖x′ − D(E(x′))‖² + α · max(P(x′, x_p) − p, 0), from x′ = x_p.

        A cloak makes the image inconsistent under the autoencoder (D(E(x+δ)) differs from
        x+δ, because δ was tuned against E); IMPRESS restores that consistency while staying
        perceptually close to the protected image x_p. Kept: the consistency loss, the hinge to
        the protected image, Adam from x_p. Changed: P is sfumato's perceptual metric with the
        cloak's budget (the paper: LPIPS); 200 Adam steps at learning rate 0.005 in [0, 1] units,
        far fewer than the paper runs on Stable Diffusion: a CPU cost choice, not yet checked for
        convergence on sfumato-mini.
        """
        if self.perceptual is None or self.budget is None:
            raise ValueError("impress needs a perceptual metric and its budget")
        vae = self.pipeline.vae.requires_grad_(False)  # only x′ is optimised
        distance = self.perceptual.distance_to(images)
        x = images.clone().requires_grad_(True)
        optimizer = torch.optim.Adam([x], lr=self.impress_lr)
        for _ in range(self.impress_steps):
            optimizer.zero_grad(set_to_none=True)
            reconstructed = vae.decode(vae.encode(x * 2 - 1).latent_dist.mean).sample / 2 + 0.5
            consistency = ((x - reconstructed) ** 2).mean(dim=(1, 2, 3))
            loss = (consistency + self.impress_alpha * torch.relu(distance(x) - self.budget)).sum()
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                x.clamp_(0, 1)
        return _on_grid(x.detach())


def apply_countermeasure(spec: str | Countermeasure, images: torch.Tensor, *, purifier: Purifier | None = None,
                         generator: torch.Generator | None = None, batch_size: int = 8) -> torch.Tensor:
    """Apply one countermeasure to a batch (B, 3, H, W) in [0, 1]; the result lies on the 8-bit grid."""
    cm = spec if isinstance(spec, Countermeasure) else parse_countermeasure(spec)
    if cm.needs_model and purifier is None:
        raise ValueError(f"countermeasure {cm.spec!r} runs the model: pass a Purifier")
    if cm.draws_noise and generator is None:
        raise ValueError(f"countermeasure {cm.spec!r} draws noise: pass a torch.Generator")
    if cm.kind == "none":
        return images
    simple = {"jpeg": lambda x: jpeg(x, cm.value), "blur": lambda x: blur(x, cm.value),
              "noise": lambda x: gaussian_noise(x, cm.value, generator),
              "resize": lambda x: resize_round_trip(x, cm.value)}
    if cm.kind in simple:
        return simple[cm.kind](images)
    run = {"diffpure": lambda x: purifier.img2img(x, cm.value, generator),
           "upscale": lambda x: purifier.noisy_upscale(x, cm.value, generator),
           "impress": purifier.impress}[cm.kind]
    return torch.cat([run(chunk) for chunk in images.split(batch_size)])
