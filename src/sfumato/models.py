"""Thin adapters over diffusers components, and the code that loads them.

The attack calls ``vae.encode`` directly through :class:`VaeEncoder`; it never
goes through a pipeline's ``__call__``. A tiny random ``AutoencoderKL`` stands in
for a real one in tests. Loading is lazy: nothing here runs at import.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

__all__ = ["ModelLoadError", "VaeEncoder", "check_device", "resolve_model", "load_vae", "load_encoder", "load_img2img_pipeline",
           "load_text2img_pipeline", "load_upscale_pipeline", "native_resolution"]

#: The autoencoder classes a model's ``vae`` may be: Stable Diffusion's, and one with a
#: wider decoder over the same kind of encoder (sfumato-mini's; see :mod:`sfumato.widen`).
VAE_CLASSES = ("AutoencoderKL", "AsymmetricAutoencoderKL")
#: Short names for models that ship inside the package.
EMBEDDED_MODELS = {"mini": "sfumato-mini", "sfumato-mini": "sfumato-mini"}
EMBEDDED_DIR = Path(__file__).parent / "weights"


class ModelLoadError(RuntimeError):
    """A model could not be found or loaded. The message is one line."""


class VaeEncoder(nn.Module):
    """Maps images in [0, 1] to the mean of a VAE's latent distribution.

    The [-1, 1] convention of Stable Diffusion's VAE lives here and nowhere else.
    The VAE may run in half precision on a GPU; input and output stay float32 so
    that the perturbation and its gradient keep full precision.

    Args:
        vae (`diffusers.AutoencoderKL` or `AsymmetricAutoencoderKL`): the model's image autoencoder; frozen here.
    """

    def __init__(self, vae: nn.Module):
        super().__init__()
        self.vae = vae.eval().requires_grad_(False)

    @property
    def downsample(self) -> int:
        """Spatial factor between image and latent (8 for Stable Diffusion)."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def resolution(self) -> int:
        """The side, in pixels, the model works at (its VAE's ``sample_size``: 512 for Stable Diffusion 1.5)."""
        size = self.vae.config.sample_size
        return int(size if isinstance(size, int) else min(size))

    @property
    def device(self) -> torch.device:
        return next(self.vae.parameters()).device

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> latent means (B, C, H/f, W/f), float32."""
        dtype = next(self.vae.parameters()).dtype
        latents = self.vae.encode((images * 2 - 1).to(dtype)).latent_dist.mean
        return latents.float()


def _reason(err: Exception, source: str) -> str:
    """One line on why diffusers could not load ``source``."""
    text = str(err).strip()
    reason = text.splitlines()[0] if text else type(err).__name__
    if not Path(source).is_dir():
        reason += " (for a hub id: is it spelled right, and is it in the local cache or the hub reachable?)"
    return reason


def check_device(device: str | torch.device, dtype: torch.dtype = torch.float32) -> torch.device:
    """Parse a device and check it exists here, before any model loads."""
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ModelLoadError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ModelLoadError("device 'cuda' requested but no CUDA GPU is available; use --device cpu")
        if device.index is not None and device.index >= count:
            raise ModelLoadError(f"device {device} requested but only {count} CUDA GPU(s) exist")
    elif device.type != "cpu":
        raise ModelLoadError(f"device {device} is not supported; use cpu or cuda")
    if dtype == torch.float16 and device.type == "cpu":
        raise ModelLoadError("half precision needs a GPU; use float32 on the CPU")
    return device


def resolve_model(model: str | Path) -> str:
    """Return a local folder or a hub id for a model name.

    ``"mini"`` names the embedded sfumato-mini model; an existing folder is used as
    it is; anything else is treated as a Hugging Face hub id.
    """
    name = str(model)
    if name in EMBEDDED_MODELS:
        folder = EMBEDDED_DIR / EMBEDDED_MODELS[name]
        if not (folder / "model_index.json").is_file():
            raise ModelLoadError(
                "the embedded sfumato-mini model is not in this build yet; pass --model with a "
                "Stable Diffusion hub id or a local diffusers folder"
            )
        return str(folder)
    return name


def _vae_location(model: str) -> tuple[str, str | None]:
    """(path or id, subfolder) of the VAE inside a pipeline folder, a VAE folder or a hub id."""
    path = Path(model)
    if path.is_dir():
        if (path / "model_index.json").is_file():
            return model, "vae"
        config = path / "config.json"
        if config.is_file() and json.loads(config.read_text()).get("_class_name") in VAE_CLASSES:
            return model, None
        raise ModelLoadError(f"{model}: not a diffusers pipeline folder (no model_index.json) nor an autoencoder folder "
                             f"({' or '.join(VAE_CLASSES)})")
    if path.exists() or model.startswith((".", "/", "~")):
        raise ModelLoadError(f"{model}: not a folder")
    return model, "vae"


def load_vae(model: str | Path, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
    """Load the autoencoder (an ``AutoencoderKL`` or ``AsymmetricAutoencoderKL``) of a diffusers text-to-image model.

    Args:
        model (`str` or `Path`): ``"mini"``, a local pipeline or VAE folder, or a hub id
            such as ``"stable-diffusion-v1-5/stable-diffusion-v1-5"``. Hub ids resolve
            through the local cache when ``HF_HUB_OFFLINE=1``.
        device (`str` or `torch.device`, defaults to ``"cpu"``).
        dtype (`torch.dtype`, defaults to float32): float16 only on a GPU. SDXL's VAE
            overflows in float16 (use float32, or a VAE fixed for float16).
    """
    from diffusers import AutoModel

    device = check_device(device, dtype)
    source, subfolder = _vae_location(resolve_model(model))
    try:
        vae = AutoModel.from_pretrained(source, subfolder=subfolder)
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"cannot load the VAE of {model!r}: {_reason(err, source)}") from None
    if type(vae).__name__ not in VAE_CLASSES:
        raise ModelLoadError(f"the VAE of {model!r} is a {type(vae).__name__}, not one of {', '.join(VAE_CLASSES)}")
    return _place(vae, device, dtype)


def _place(model, device, dtype):
    """Move a model or pipeline to ``device``, casting only when its dtype differs.

    diffusers warns about every ``.to(dtype=...)`` call, even one that casts nothing.
    """
    return model.to(device) if model.dtype == dtype else model.to(device=device, dtype=dtype)


def load_encoder(model: str | Path, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> VaeEncoder:
    """Load a model's image encoder E, wrapped as a :class:`VaeEncoder`."""
    return VaeEncoder(load_vae(model, device=device, dtype=dtype))


def load_img2img_pipeline(model: str | Path, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                          vae=None):
    """Load a whole text-to-image pipeline as its img2img variant (for prompt style targets).

    ``AutoPipelineForImage2Image`` picks the variant (Stable Diffusion 1.x/2.x, SDXL, ...)
    from the folder's ``model_index.json``. An already loaded ``vae`` (the encoder's) is
    reused instead of being loaded a second time.
    """
    from diffusers import AutoPipelineForImage2Image

    device = check_device(device, dtype)
    source = resolve_model(model)
    try:
        # No safety checker: it would black out nudes in figure paintings and so break the target.
        components = {} if vae is None else {"vae": vae}
        pipe = AutoPipelineForImage2Image.from_pretrained(source, safety_checker=None, **components)
    except (OSError, ValueError, TypeError) as err:
        raise ModelLoadError(f"cannot load the pipeline {model!r}: {_reason(err, source)}") from None
    pipe.set_progress_bar_config(disable=True)
    return _place(pipe, device, dtype)


def load_text2img_pipeline(model: str | Path, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
    """Load a whole text-to-image pipeline (what a mimic fine-tunes), without a safety checker."""
    from diffusers import AutoPipelineForText2Image

    device = check_device(device, dtype)
    source = resolve_model(model)
    try:
        pipe = AutoPipelineForText2Image.from_pretrained(source, safety_checker=None)
    except (OSError, ValueError, TypeError) as err:
        raise ModelLoadError(f"cannot load the pipeline {model!r}: {_reason(err, source)}") from None
    pipe.set_progress_bar_config(disable=True)
    return _place(pipe, device, dtype)


def load_upscale_pipeline(model: str | Path, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
    """Load a text-guided x4 upscaler (``StableDiffusionUpscalePipeline``, e.g. Stable Diffusion's x4 upscaler), the
    upscaler of noisy upscaling (:mod:`sfumato.countermeasures`)."""
    from diffusers import StableDiffusionUpscalePipeline

    device = check_device(device, dtype)
    source = resolve_model(model)
    try:
        pipe = StableDiffusionUpscalePipeline.from_pretrained(source)
    except (OSError, ValueError, TypeError) as err:
        raise ModelLoadError(f"cannot load the upscaler {model!r}: {_reason(err, source)}") from None
    pipe.set_progress_bar_config(disable=True)
    return _place(pipe, device, dtype)


def native_resolution(model: str | Path) -> int:
    """The side, in pixels, a text-to-image model generates at: its UNet's sample size x the VAE factor."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    source = resolve_model(model)
    try:
        unet = UNet2DConditionModel.load_config(source, subfolder="unet")
        vae = AutoencoderKL.load_config(source, subfolder="vae")
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"cannot read the configuration of {model!r}: {_reason(err, source)}") from None
    return int(unet["sample_size"]) * 2 ** (len(vae["block_out_channels"]) - 1)
