"""The mimic's side: fine-tune a text-to-image pipeline on someone's art, then sample it.

What a style mimic does with twenty downloaded images: LoRA (peft) on the UNet of a
diffusers ``StableDiffusionPipeline`` with the usual noise-prediction loss, then
prompting "a painting by ARTIST". Used to build sfumato-mini, to check that mimicry
works on clean art, and by the evaluation harness to compare clean with cloaked art.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

__all__ = ["LoraSettings", "add_lora_adapter", "batches", "next_batch", "encode_posteriors", "sample_latents", "diffusion_loss", "finetune_lora", "generate",
           "save_lora", "load_lora"]


@dataclass(frozen=True)
class LoraSettings:
    """How the mimic fine-tunes.

    Args:
        rank (`int`, defaults to 8) and alpha (`float`, defaults to 8): LoRA rank and scale.
        steps (`int`, defaults to 300): optimiser steps.
        batch_size (`int`, defaults to 16).
        learning_rate (`float`, defaults to 1e-3): AdamW, constant after 20 warm-up steps.
        target_modules (`tuple[str, ...]`): the attention projections, plus the ResNet
            convolutions and attention in/out projections, since sfumato-mini's UNet has no
            attention at its highest resolution.
        snr_gamma (`float`, defaults to 5): min-SNR loss weighting.
        noise_offset (`float`, defaults to 0): the scale of a per-image, per-channel
            constant added to the training noise ("offset noise", diffusers'
            ``--noise_offset``). Stable Diffusion's schedule leaves about 7 % of the image
            in its noisiest training inputs, so a fine-tune learns little about the
            overall colour that sampling from pure noise must decide; an offset teaches it.
        full_unet (`bool`, defaults to False): train every weight of the UNet instead of a
            LoRA adapter (``rank``, ``alpha`` and ``target_modules`` are then unused). A
            capable mimic's option where the UNet is small (sfumato-mini's has about 5M
            parameters); use a lower ``learning_rate`` (1e-4 to 3e-4).
    """

    rank: int = 8
    alpha: float = 8.0
    steps: int = 300
    batch_size: int = 16
    learning_rate: float = 1e-3
    target_modules: tuple[str, ...] = ("to_k", "to_q", "to_v", "to_out.0", "conv1", "conv2", "proj_in", "proj_out")
    snr_gamma: float = 5.0
    noise_offset: float = 0.0
    full_unet: bool = False

    def __post_init__(self) -> None:
        if self.rank < 1 or self.steps < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise ValueError("rank, steps and batch_size must be >= 1 and learning_rate > 0")
        if self.noise_offset < 0:
            raise ValueError(f"noise_offset must be >= 0, got {self.noise_offset}")


def next_batch(order: torch.Tensor, n: int, batch_size: int, generator: torch.Generator):
    """One batch of ``range(n)`` from ``order`` (what is left of the epoch), drawing the next epoch when it runs
    short; returns ``(batch, what is left)``."""
    if len(order) < batch_size:
        order = torch.cat([order, torch.randperm(n, generator=generator, device=generator.device).cpu()])
    return order[:batch_size], order[batch_size:]


def batches(n: int, batch_size: int, steps: int, generator: torch.Generator):
    """Indices of ``steps`` batches of ``range(n)``, drawn epoch by epoch without replacement."""
    order = torch.empty(0, dtype=torch.long)
    for _ in range(steps):
        batch, order = next_batch(order, n, batch_size, generator)
        yield batch


@torch.no_grad()
def encode_posteriors(vae, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """(N, 3, H, W) images in [0, 1] -> (N, 2C, H/f, W/f) posterior means and log-variances."""
    parameters = [vae.encode(chunk.to(vae.device, vae.dtype) * 2 - 1).latent_dist.parameters
                  for chunk in images.split(batch_size)]
    return torch.cat(parameters).float().cpu()


def sample_latents(parameters: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One draw from diagonal Gaussian posteriors given as (N, 2C, h, w) means and log-variances."""
    mean, logvar = parameters.chunk(2, dim=1)
    noise = torch.randn(mean.shape, generator=generator, device=generator.device).to(mean.device)
    return mean + (0.5 * logvar.clamp(-30, 20)).exp() * noise


def diffusion_loss(unet, text_encoder, tokenizer, scheduler, latents: torch.Tensor, captions: list[str],
                   generator: torch.Generator, snr_gamma: float = 5.0, noise_offset: float = 0.0) -> torch.Tensor:
    """Min-SNR-weighted epsilon-prediction loss of one batch of scaled latents (Hang et al. 2023).

    ``noise_offset`` > 0 adds ``noise_offset * N(0, 1)`` per image and channel to the noise.
    """
    device = latents.device
    noise = torch.randn(latents.shape, generator=generator, device=generator.device).to(device)
    timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (len(latents),), generator=generator,
                              device=generator.device).to(device)
    if noise_offset > 0:  # drawn last, so that the other draws do not depend on it
        offset = torch.randn(latents.shape[:2], generator=generator, device=generator.device).to(device)
        noise = noise + noise_offset * offset[:, :, None, None]
    noisy = scheduler.add_noise(latents, noise, timesteps)
    ids = tokenizer(captions, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids.to(device)
    prediction = unet(noisy, timesteps, encoder_hidden_states=text_encoder(ids)[0]).sample
    alphas = scheduler.alphas_cumprod.to(device)[timesteps]
    snr = alphas / (1 - alphas)
    weight = snr.clamp(max=snr_gamma) / snr
    return (weight * F.mse_loss(prediction.float(), noise.float(), reduction="none").mean(dim=(1, 2, 3))).mean()


def add_lora_adapter(unet, rank: int, alpha: float, target_modules, generator: torch.Generator) -> None:
    """Add a peft LoRA adapter to ``unet``, its A matrices drawn from ``generator`` (B starts at zero)."""
    from peft import LoraConfig

    unet.add_adapter(LoraConfig(r=rank, lora_alpha=alpha, init_lora_weights="gaussian",
                                target_modules=list(target_modules)))
    with torch.no_grad():  # peft draws A from the global RNG; redraw it from ours (same law: N(0, 1/r²))
        for name, param in unet.named_parameters():
            if "lora_A" in name:
                param.copy_(torch.randn(param.shape, generator=generator, device=generator.device) / rank)


def finetune_lora(pipeline, images: torch.Tensor, captions: list[str], settings: LoraSettings = LoraSettings(), *,
                  generator: torch.Generator, callback=None, accelerator=None, checkpoint: Path | None = None,
                  checkpoint_every: int | None = None) -> list[dict]:
    """Add a LoRA adapter to ``pipeline.unet`` and train it on images and captions, in place.

    With ``settings.full_unet`` the whole UNet trains instead, with no adapter.

    Args:
        pipeline: a diffusers ``StableDiffusionPipeline`` (its VAE, text encoder and
            tokenizer stay frozen).
        images (`torch.Tensor`): (N, 3, H, W) in [0, 1] at the pipeline's resolution.
        captions (`list[str]`): one per image.
        generator (`torch.Generator`): every random draw (batches, flips, noise, timesteps).
        callback: ``callback(step, loss)`` after each step.
        accelerator: an ``accelerate.Accelerator``. With one, the UNet and optimiser go
            through ``accelerator.prepare`` (so ``accelerate launch`` spreads the batches
            over processes; give each process its own ``generator`` seed) and the
            pipeline should already sit on ``accelerator.device``. Without one, plain
            PyTorch on the pipeline's device.
        checkpoint (`Path`, optional): a folder for the training state (trained weights, optimiser, generator,
            the epoch's remaining order) every ``checkpoint_every`` steps (:data:`CHECKPOINT_EVERY`). A call
            that finds a state there continues from it and ends with the same weights, bit for bit, as a run
            never interrupted (at the same thread count). Single-process only (an ``accelerator`` of one
            process is fine).

    Returns:
        `list[dict]`: the loss every 10 steps.
    """
    from diffusers import DDPMScheduler

    if images.ndim != 4 or len(images) != len(captions) or len(images) == 0:
        raise ValueError(f"need (N, 3, H, W) images and N captions, got {tuple(images.shape)} and {len(captions)}")
    if checkpoint is not None and accelerator is not None and accelerator.num_processes > 1:
        raise ValueError("checkpoint is for a single-process fine-tune, not one spread over processes")
    unet, vae = pipeline.unet, pipeline.vae
    scheduler = DDPMScheduler.from_config(pipeline.scheduler.config)
    posteriors = torch.cat([encode_posteriors(vae, images), encode_posteriors(vae, images.flip(-1))])
    captions = list(captions) * 2
    unet.requires_grad_(settings.full_unet)
    pipeline.text_encoder.requires_grad_(False)
    if not settings.full_unet:
        add_lora_adapter(unet, settings.rank, settings.alpha, settings.target_modules, generator)
    params = [p for p in unet.parameters() if p.requires_grad]
    device, dtype = params[0].device, params[0].dtype
    optimizer = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=1e-2)
    model = unet
    if accelerator is not None:
        model, optimizer = accelerator.prepare(unet, optimizer)
    model.train()
    every = checkpoint_every or CHECKPOINT_EVERY
    log, order, start = [], torch.empty(0, dtype=torch.long), 0
    trained = {name: p for name, p in unet.named_parameters() if p.requires_grad}
    if checkpoint is not None and (Path(checkpoint) / STATE).is_file():
        start, order, log = _load_state(Path(checkpoint), trained, optimizer, generator)
    for step in range(start, settings.steps):
        index, order = next_batch(order, len(captions), settings.batch_size, generator)
        for group in optimizer.param_groups:
            group["lr"] = settings.learning_rate * min(1.0, (step + 1) / 20)
        latents = sample_latents(posteriors[index], generator).to(device, dtype) * vae.config.scaling_factor
        loss = diffusion_loss(model, pipeline.text_encoder, pipeline.tokenizer, scheduler, latents,
                              [captions[i] for i in index.tolist()], generator, settings.snr_gamma,
                              settings.noise_offset)
        optimizer.zero_grad(set_to_none=True)
        if accelerator is None:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
        else:
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(params, 1.0)
        optimizer.step()
        if step % 10 == 0 or step == settings.steps - 1:
            log.append({"step": step, "loss": loss.item()})
        if checkpoint is not None and (step + 1) % every == 0 and step + 1 < settings.steps:
            _save_state(Path(checkpoint), step + 1, order, log, trained, optimizer, generator)
        if callback is not None:
            callback(step, loss.item())
    unet.eval()
    return log


#: The fine-tune's training state in a checkpoint folder, and how many steps apart it is written.
STATE, CHECKPOINT_EVERY = "training-state.pt", 100


def _save_state(folder: Path, step: int, order, log, trained: dict, optimizer, generator) -> None:
    """Write the state after ``step`` steps; a file renamed into place, so an interruption leaves the last one."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {"step": step, "order": order, "log": log, "generator": generator.get_state(),
             "trained": {name: p.detach().cpu() for name, p in trained.items()}, "optimizer": optimizer.state_dict()}
    torch.save(state, folder / f"{STATE}.tmp")
    os.replace(folder / f"{STATE}.tmp", folder / STATE)


def _load_state(folder: Path, trained: dict, optimizer, generator) -> tuple[int, torch.Tensor, list]:
    state = torch.load(folder / STATE, weights_only=True)
    if set(state["trained"]) != set(trained):
        raise ValueError(f"{folder / STATE} holds another model's training state")
    with torch.no_grad():
        for name, p in trained.items():
            p.copy_(state["trained"][name])
    optimizer.load_state_dict(state["optimizer"])
    generator.set_state(state["generator"])
    return state["step"], state["order"], state["log"]


def save_lora(pipeline, folder) -> None:
    """Write the UNet's LoRA adapter in diffusers' format (``pytorch_lora_weights.safetensors``).

    A UNet without an adapter (after a ``full_unet`` fine-tune) is written whole, to ``unet/``.
    """
    from peft.utils import get_peft_model_state_dict

    if not getattr(pipeline.unet, "_hf_peft_config_loaded", False):
        pipeline.unet.save_pretrained(Path(folder) / "unet", safe_serialization=True)
        return
    # PEFT's key names (lora_A / lora_B), which diffusers loads as they are, for convolutions too.
    layers = get_peft_model_state_dict(pipeline.unet)
    type(pipeline).save_lora_weights(folder, unet_lora_layers=layers, safe_serialization=True)


def load_lora(pipeline, folder) -> None:
    """Load an adapter written by :func:`save_lora` (or any diffusers LoRA folder) into the pipeline.

    A folder with a whole UNet (``unet/``) replaces the pipeline's UNet weights instead.
    """
    unet = Path(folder) / "unet" / "diffusion_pytorch_model.safetensors"
    if unet.is_file():
        from safetensors.torch import load_file

        pipeline.unet.load_state_dict(load_file(unet))
        return
    pipeline.load_lora_weights(str(folder))


@torch.no_grad()
def generate(pipeline, prompt: str, count: int, *, seed: int, steps: int = 20, guidance: float = 7.0,
             batch_size: int = 64) -> torch.Tensor:
    """``count`` images for one prompt, (count, 3, H, W) in [0, 1] on the CPU; seeded per batch."""
    images = []
    for start in range(0, count, batch_size):
        n = min(batch_size, count - start)
        generator = torch.Generator(pipeline.device).manual_seed(seed + start)
        out = pipeline(prompt, num_images_per_prompt=n, num_inference_steps=steps, guidance_scale=guidance,
                       generator=generator, output_type="pt").images
        images.append(out.float().cpu())
    return torch.cat(images)
