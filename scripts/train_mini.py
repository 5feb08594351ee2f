"""Train sfumato-mini from scratch, with a fixed seed, and measure it.

    pip install -e .
    python scripts/train_mini.py --work build/mini --stage all

Stages (each reads the previous one's output from ``--work``, so one can be rerun):

1. ``corpus``: the pretraining artists' images (20 styles) and the victims' (6 styles),
   from :func:`sfumato.corpus.build_corpus` (the held-out ``eval`` split used for the
   figures comes from ``scripts/train_judge.py``'s corpus).
2. ``vae``: the autoencoder on the pretraining images (L1 + EfficientNet-Lite0 feature
   distance + a small KL term).
3. ``vae-tune``: the whole autoencoder further on all 26 styles (the judge corpus's
   ``judge`` split, never the victims' fine-tuning crops or the ``eval`` crops), with an
   MSE term for PSNR.
4. ``unet``: UNet and text encoder on the frozen autoencoder's latents (epsilon
   prediction, min-SNR weighting, 10 % empty captions for classifier-free guidance).
5. ``unet-more``: UNet and text encoder further from ``unet``, a second cosine cycle at a
   lower learning rate.
6. ``decoder``: the decoder alone further on the same images (MSE + L1 + a little feature
   distance); the encoder, and so the UNet's latents, stay as they are.
7. ``export``: the pipeline folder (``--out``) with a DPM-Solver++ scheduler, and
   ``training.json`` (settings, times, hardware) beside it.

Not in ``all``: ``decoder-ema``, an experiment that trains the decoder further from
``decoder`` for PSNR alone (MSE + a little L1, weights averaged); ``--stage export
--vae-from decoder-ema --out DIR`` builds a pipeline with it. It reaches 25 dB but loses
the styles' texture (see the model card), so the shipped model does not use it.
``decoder-wide``: the ``decoder`` stage's decoder made twice as wide
(:func:`sfumato.widen.widen_decoder`, an ``AsymmetricAutoencoderKL`` with the same
encoder) and trained further with the same loss: at 16 channels for 128 px a decoder
must trade texture for PSNR. ``--wide-from`` names the stage (or any autoencoder folder,
such as the shipped model's ``vae``) to start from; ``--wide-factor 1 --wide-out NAME``
trains a wide decoder further; ``--wide-mse``, ``--wide-perceptual`` and
``--wide-log-mse`` set its loss. ``--stage export --vae-from decoder-wide`` builds a
pipeline with it, and with ``--base DIR`` it takes everything else from the pipeline
folder DIR (for example the shipped model, when ``--work`` holds no UNet stages).

Then ``scripts/measure_mini.py`` measures the result and writes its model card.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from sfumato.corpus import CorpusConfig, build_corpus, load_images, read_manifest
from sfumato.evaluation.contract import hardware
from sfumato.finetune import batches, diffusion_loss, encode_posteriors, sample_latents
from sfumato.mini import vae_config
from sfumato.patch_gan import adaptive_weight, discriminator_loss, generator_loss
from sfumato.perceptual import EfficientNetLite0Distance
from sfumato.quality import psnr
from sfumato.widen import widen_decoder


def cosine_lr(step: int, steps: int, warmup: int = 50, floor: float = 0.05) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror a random half of a batch left-right."""
    mask = torch.rand(len(images), generator=generator) < 0.5
    images = images.clone()
    images[mask] = images[mask].flip(-1)
    return images


def log_row(log: list[dict], started: float, **values) -> None:
    """Append one progress row (with the seconds since ``started``) and print it."""
    log.append(values | {"seconds": time.perf_counter() - started})
    print(json.dumps(log[-1]), flush=True)


def save_stage(model, out: Path, log: list[dict], args, started: float, **extra) -> None:
    """Save a trained model and its ``train_log.json`` (log, settings, seconds, hardware)."""
    model.eval().save_pretrained(out)
    record = {"log": log, "args": vars(args) | {"work": str(args.work)}, "seconds": time.perf_counter() - started,
              "hardware": hardware()} | extra
    (out / "train_log.json").write_text(json.dumps(record, indent=1, default=str) + "\n")


def stage_corpus(args) -> None:
    build_corpus(args.work / "pretrain", CorpusConfig(crops_per_split=16, seed=args.seed, splits=("pretrain",)))
    build_corpus(args.work / "victim", CorpusConfig(crops_per_split=8, seed=args.seed, splits=("victim",)))


def train_autoencoder(vae, images: torch.Tensor, *, steps: int, batch: int, lr: float, warmup: int,
                      generator: torch.Generator, mse: float, perceptual: float, kl: float,
                      on_step=None, stop: int | None = None, discriminator=None, gan: float = 0.5,
                      gan_start: int = 0, gan_adaptive: bool = True) -> list[dict]:
    """Train a whole autoencoder on uint8 ``images``: ``mse`` x MSE + L1 + ``perceptual`` x feature
    distance + ``kl`` x KL (per pixel), on random left-right mirrors, and return its log.

    The ``vae`` and ``vae-tune`` stages both train this way. ``on_step(step, vae)``, when
    given, is called before each step (the benchmarks measure the encoder along the way);
    ``stop`` ends the run after that many steps of the ``steps``-long schedule. With a
    ``discriminator`` (:class:`sfumato.patch_gan.PatchDiscriminator`), from step ``gan_start``
    on the loss gains ``gan`` x λ x L_G and the discriminator trains beside it, as Stable
    Diffusion's autoencoder was trained (:mod:`sfumato.patch_gan`); ``gan_adaptive=False``
    fixes λ at 1.
    """
    distance = EfficientNetLite0Distance()
    optimizer = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    if discriminator is not None:  # the taming-transformers optimiser settings
        d_optimizer = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=(0.5, 0.9))
    started, log = time.perf_counter(), []
    for step, index in enumerate(batches(len(images), batch, steps, generator)):
        if step == stop:
            break
        if on_step is not None:
            on_step(step, vae)
        for group in optimizer.param_groups:
            group["lr"] = lr * cosine_lr(step, steps, warmup=warmup)
        x = flip(images[index], generator).float() / 255  # (B, 3, H, W) in [0, 1]
        posterior = vae.encode(x * 2 - 1).latent_dist
        y = (vae.decode(posterior.sample(generator)).sample + 1) / 2
        mse_value, l1 = F.mse_loss(y, x), (y - x).abs().mean()
        feature = distance(y.clamp(0, 1), x).mean()
        kl_value = posterior.kl().mean() / x[0].numel()
        loss = mse * mse_value + l1 if mse else l1  # the same sums, in the same order, as before this was shared
        reconstruction = loss + perceptual * feature
        loss = reconstruction + kl * kl_value
        adversarial = discriminator is not None and step >= gan_start
        if adversarial:
            g_loss = generator_loss(discriminator(y * 2 - 1))
            weight = (adaptive_weight(reconstruction, g_loss, vae.decoder.conv_out.weight) if gan_adaptive
                      else torch.ones(()))
            loss = loss + gan * weight * g_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimizer.step()
        if adversarial:
            d_loss = discriminator_loss(discriminator(x * 2 - 1), discriminator(y.detach() * 2 - 1))
            d_optimizer.zero_grad(set_to_none=True)
            d_loss.backward()
            d_optimizer.step()
        if step % 25 == 0 or step == steps - 1:
            gan_row = {} if not adversarial else {"g_loss": g_loss.item(), "d_loss": d_loss.item(),
                                                   "gan_weight": weight.item()}
            log_row(log, started, step=step, mse=mse_value.item(), l1=l1.item(), perceptual=feature.item(),
                    kl=kl_value.item(), psnr=psnr(y.detach().clamp(0, 1), x).mean().item(), **gan_row)
    return log


def stage_vae(args) -> None:
    from diffusers import AutoencoderKL

    torch.manual_seed(args.seed)  # the script owns the process: seeds module initialisation
    generator = torch.Generator().manual_seed(args.seed)
    images = load_images(read_manifest(args.work / "pretrain"))
    vae = AutoencoderKL(**vae_config()).train()
    started = time.perf_counter()
    log = train_autoencoder(vae, images, steps=args.vae_steps, batch=args.vae_batch, lr=args.vae_lr, warmup=50,
                            generator=generator, mse=0.0, perceptual=args.vae_perceptual, kl=args.vae_kl)
    save_stage(vae, args.work / "vae", log, args, started)


def stage_vae_tune(args) -> None:
    """Train the whole autoencoder further on all 26 styles, aiming at PSNR (MSE + L1 + a little feature distance).

    Stable Diffusion's autoencoder has seen all kinds of art, so ours sees every style too,
    from the judge's training crops: never the victims' fine-tuning crops nor the held-out
    ``eval`` crops. The UNet is trained afterwards, on this autoencoder's latents.
    """
    from diffusers import AutoencoderKL

    generator = torch.Generator().manual_seed(args.seed + 1)
    images = tuning_images(args)
    vae = AutoencoderKL.from_pretrained(args.work / "vae").train()
    started = time.perf_counter()
    log = train_autoencoder(vae, images, steps=args.tune_steps, batch=args.vae_batch, lr=args.tune_lr, warmup=20,
                            generator=generator, mse=4.0, perceptual=args.tune_perceptual, kl=args.vae_kl)
    save_stage(vae, args.work / "vae-tune", log, args, started, images=len(images))


def train_decoder(args, source: str, out: str, *, steps: int, lr: float, seed: int, loss_fn,
                  ema_decay: float | None = None, widen: int = 1) -> None:
    """Train the decoder of ``--work/source`` alone and save the autoencoder to ``--work/out``.

    The encoder (and so every latent the UNet learned from) stays as it is. Posteriors of
    the ``vae-tune`` images and their mirror images are computed once. With ``ema_decay``,
    the saved decoder is an exponential moving average of the trained one. With ``widen``
    > 1, the decoder first becomes that many times wider (:func:`sfumato.widen.widen_decoder`,
    the same images up to a little tie-breaking noise) and the saved autoencoder is an
    ``AsymmetricAutoencoderKL``.
    """
    from diffusers import AutoModel

    generator = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    images = tuning_images(args)
    vae = AutoModel.from_pretrained(str(args.work / source)).eval()
    if widen > 1:
        vae = widen_decoder(vae, widen, noise=0.01, generator=generator).eval()
    monitor = torch.arange(0, len(images), len(images) // 256)[:256]  # fixed images: a steadier PSNR than a batch's
    posteriors = torch.cat([encode_posteriors(vae, images.float() / 255),
                            encode_posteriors(vae, images.flip(-1).float() / 255)])
    images = torch.cat([images, images.flip(-1)])
    vae.requires_grad_(False)
    decoder = [vae.post_quant_conv, vae.decoder]
    for module in decoder:
        module.train().requires_grad_(True)
    params = [p for name, p in vae.named_parameters()
              if name.startswith(("post_quant_conv.", "decoder.")) and ".condition_encoder." not in name]
    average = None if ema_decay is None else [p.detach().clone() for p in params]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    log = []
    for step, index in enumerate(batches(len(images), args.vae_batch, steps, generator)):
        for group in optimizer.param_groups:
            group["lr"] = lr * cosine_lr(step, steps, warmup=20)
        x = images[index].float() / 255
        y = (vae.decode(sample_latents(posteriors[index], generator)).sample + 1) / 2
        loss, terms = loss_fn(y, x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        if average is not None:
            with torch.no_grad():
                for mean, p in zip(average, params):
                    mean.lerp_(p, 1 - ema_decay)
        if step % 25 == 0 or step == steps - 1:
            fixed = step % 150 == 0 or step == steps - 1
            held = {"psnr_fixed": monitor_psnr(vae, posteriors[monitor], images[monitor])} if fixed else {}
            log_row(log, started, step=step, **terms, psnr=psnr(y.detach().clamp(0, 1), x).mean().item(), **held)
    if average is not None:
        with torch.no_grad():
            for p, mean in zip(params, average):
                p.copy_(mean)
    save_stage(vae, args.work / out, log, args, started, images=len(images) // 2)


@torch.no_grad()
def monitor_psnr(vae, posteriors: torch.Tensor, images: torch.Tensor) -> float:
    """Mean PSNR of the decoder's images from posterior means (fixed training images)."""
    vae.eval()
    decoded = torch.cat([vae.decode(p.chunk(2, dim=1)[0]).sample for p in posteriors.split(64)])
    vae.decoder.train()
    return psnr(((decoded + 1) / 2).clamp(0, 1), images.float() / 255).mean().item()


def tuning_images(args) -> torch.Tensor:
    """The autoencoder's tuning images: the pretraining artists' and the judge corpus's ``judge`` split."""
    return torch.cat([load_images(read_manifest(args.work / "pretrain")),
                      load_images(read_manifest(args.judge_corpus, "judge"))])


def decoder_loss(mse_weight: float, feature_weight: float, log_mse: bool = False):
    """The decoder stages' loss: MSE + L1 + a little EfficientNet-Lite0 feature distance.

    With ``log_mse`` the MSE term is the batch's mean MSE times the mean of each image's
    log MSE: the same size, but its gradient is that of the mean per-image PSNR (the
    figure the model card reports), which weighs each image by the batch mean over its own
    error instead of weighing the worst images most.
    """
    perceptual = EfficientNetLite0Distance()

    def loss_fn(y, x):
        per_image = (y - x).square().flatten(1).mean(1)
        mse, l1 = per_image.mean(), (y - x).abs().mean()
        fit = mse.detach() * per_image.clamp_min(1e-8).log().mean() if log_mse else mse
        feature = perceptual(y.clamp(0, 1), x).mean()
        return mse_weight * fit + l1 + feature_weight * feature, {"mse": mse.item(), "perceptual": feature.item()}

    return loss_fn


def stage_decoder(args) -> None:
    """Train the decoder alone further (MSE + L1 + a little feature distance), from ``vae-tune``.

    The UNet's latents and the cloak's target (the encoder) are unchanged, so this stage can
    follow the UNet's training.
    """
    train_decoder(args, "vae-tune", "decoder", steps=args.decoder_steps, lr=args.decoder_lr, seed=args.seed + 2,
                  loss_fn=decoder_loss(4.0, args.tune_perceptual))


def stage_decoder_ema(args) -> None:
    """The decoder further from ``decoder``, for PSNR: MSE-weighted loss, weights averaged (EMA)."""

    def loss_fn(y, x):
        mse, l1 = F.mse_loss(y, x), (y - x).abs().mean()
        return mse + args.ema_l1 * l1, {"mse": mse.item(), "l1": l1.item()}

    train_decoder(args, "decoder", "decoder-ema", steps=args.ema_steps, lr=args.ema_lr, seed=args.seed + 3,
                  loss_fn=loss_fn, ema_decay=args.ema_decay)


def stage_decoder_wide(args) -> None:
    """The decoder of ``--wide-from`` made ``--wide-factor`` times as wide, trained further (``decoder``'s loss by default).

    At 16 channels for 128 px the decoder trades texture for PSNR (``decoder-ema``); a wider
    one can have both. The encoder, the latents and the UNet stay as they are.
    """
    train_decoder(args, args.wide_from, args.wide_out, steps=args.wide_steps, lr=args.wide_lr, seed=args.seed + 4,
                  loss_fn=decoder_loss(args.wide_mse, args.wide_perceptual, args.wide_log_mse), widen=args.wide_factor)


def noise_scheduler():
    """Stable Diffusion's training noise schedule."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                         prediction_type="epsilon", clip_sample=False, steps_offset=1)


def training_captions(rows: list[dict], generator: torch.Generator) -> list[str]:
    """Each row's caption; 30 % of them cut to "a painting by ARTIST", 10 % emptied (for guidance)."""
    draw = torch.rand(len(rows), generator=generator)
    return ["" if u < 0.1 else f"a painting by {row['artist']}" if u < 0.4 else row["caption"]
            for u, row in zip(draw.tolist(), rows)]


def encode_pretraining_latents(args, vae):
    """Posteriors of the pretraining images and their mirror images, and the rows they belong to."""
    rows = read_manifest(args.work / "pretrain")
    images = load_images(rows)
    posteriors = torch.cat([encode_posteriors(vae, images.float() / 255),
                            encode_posteriors(vae, images.flip(-1).float() / 255)])
    return posteriors, rows + rows


def train_unet(args, unet, text_encoder, tokenizer, posteriors, rows, scaling: float, steps: int, lr: float,
               warmup: int, generator: torch.Generator) -> list[dict]:
    """UNet and text encoder together: min-SNR epsilon prediction, AdamW, cosine schedule."""
    scheduler = noise_scheduler()
    unet.train()
    text_encoder.train()
    params = list(unet.parameters()) + list(text_encoder.parameters())
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=1e-2)
    log, t0 = [], time.perf_counter()
    for step, index in enumerate(batches(len(rows), args.unet_batch, steps, generator)):
        for group in optimizer.param_groups:
            group["lr"] = lr * cosine_lr(step, steps, warmup=warmup)
        latents = sample_latents(posteriors[index], generator) * scaling
        captions = training_captions([rows[i] for i in index.tolist()], generator)
        loss = diffusion_loss(unet, text_encoder, tokenizer, scheduler, latents, captions, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        if step % 25 == 0 or step == steps - 1:
            log_row(log, t0, step=step, loss=loss.item())
    return log


def save_unet(args, out: Path, unet, text_encoder, tokenizer, log: list[dict], scaling: float, started: float) -> None:
    """The UNet, the text encoder and the very tokenizer it was trained with (export ships that one)."""
    unet.eval().save_pretrained(out / "unet")
    text_encoder.eval().save_pretrained(out / "text_encoder")
    tokenizer.save_pretrained(out / "tokenizer")
    (out / "train_log.json").write_text(json.dumps({"log": log, "scaling_factor": scaling,
                                                    "args": vars(args) | {"work": str(args.work)},
                                                    "seconds": time.perf_counter() - started,
                                                    "hardware": hardware()}, indent=1, default=str) + "\n")


def stage_unet(args) -> None:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from sfumato.mini import build_tokenizer, text_config, unet_config

    torch.manual_seed(args.seed)  # seeds module initialisation
    generator = torch.Generator().manual_seed(args.seed)
    started = time.perf_counter()
    vae = AutoencoderKL.from_pretrained(args.work / "vae-tune").eval()
    posteriors, rows = encode_pretraining_latents(args, vae)
    scaling = 1.0 / sample_latents(posteriors, torch.Generator().manual_seed(args.seed)).std().item()
    print(f"encoded {len(rows)} latents in {time.perf_counter() - started:.0f} s; scaling factor {scaling:.4f}", flush=True)

    tokenizer = build_tokenizer()
    text_encoder = CLIPTextModel(CLIPTextConfig(**text_config(len(tokenizer))))
    unet = UNet2DConditionModel(**unet_config())
    print(f"unet {sum(p.numel() for p in unet.parameters()) / 1e6:.2f} M, text encoder "
          f"{sum(p.numel() for p in text_encoder.parameters()) / 1e6:.2f} M parameters", flush=True)
    log = train_unet(args, unet, text_encoder, tokenizer, posteriors, rows, scaling, args.unet_steps, args.unet_lr, 100,
                     generator)
    save_unet(args, args.work / "unet", unet, text_encoder, tokenizer, log, scaling, started)


def stage_unet_more(args) -> None:
    """The UNet and text encoder further, from ``unet``, on the same latents: a second, lower cosine cycle."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    generator = torch.Generator().manual_seed(args.seed + 3)
    started = time.perf_counter()
    first = json.loads((args.work / "unet" / "train_log.json").read_text())
    vae = AutoencoderKL.from_pretrained(args.work / "vae-tune").eval()
    posteriors, rows = encode_pretraining_latents(args, vae)
    unet = UNet2DConditionModel.from_pretrained(args.work / "unet" / "unet")
    text_encoder = CLIPTextModel.from_pretrained(args.work / "unet" / "text_encoder")
    tokenizer = CLIPTokenizer.from_pretrained(args.work / "unet" / "tokenizer")
    log = train_unet(args, unet, text_encoder, tokenizer, posteriors, rows, first["scaling_factor"], args.more_steps,
                     args.more_lr, 20, generator)
    save_unet(args, args.work / "unet-more", unet, text_encoder, tokenizer, log, first["scaling_factor"], started)


def wide_record(vae, stage: Path) -> dict:
    """``training.json``'s entries for the autoencoder of ``stage``: its name and, for a wide decoder, its log."""
    if type(vae).__name__ != "AsymmetricAutoencoderKL":
        return {"vae_from": stage.name}
    log = json.loads((stage / "train_log.json").read_text())  # a decoder-wide stage, under any --wide-out
    wide_args = {k: v for k, v in log["args"].items() if k.startswith("wide_")}
    return {"decoder_wide": {"seconds": round(log["seconds"], 1), "last": log["log"][-1], "hardware": log["hardware"],
                             "args": wide_args},
            "vae_from": stage.name}


def export_onto_base(args) -> None:
    """Export ``--base``'s pipeline with the autoencoder of ``--vae-from``: for a decoder trained after the rest.

    The UNet, text encoder, tokenizer and scheduler are ``--base``'s, byte for byte, and so is
    its ``training.json`` except for the autoencoder's entries; ``--work`` need not hold
    the UNet stages.
    """
    from diffusers import AutoModel, StableDiffusionPipeline

    base = StableDiffusionPipeline.from_pretrained(args.base)
    vae = AutoModel.from_pretrained(str(args.work / args.vae_from))
    mine, theirs = (dict(v.named_parameters()) for v in (vae, base.vae))
    latent_side = [name for name in theirs if name.startswith(("encoder.", "quant_conv."))]
    if any(name not in mine or not torch.equal(mine[name], theirs[name]) for name in latent_side):
        raise SystemExit(f"{args.vae_from}'s encoder is not {args.base}'s: the UNet's latents would not match")
    vae.register_to_config(scaling_factor=base.vae.config.scaling_factor)
    base.register_modules(vae=vae)
    base.save_pretrained(args.out, safe_serialization=True)
    training = json.loads((Path(args.base) / "training.json").read_text())
    training = {k: v for k, v in training.items() if k != "decoder_wide"} | wide_record(vae, args.work / args.vae_from)
    (Path(args.out) / "training.json").write_text(json.dumps(training, indent=1) + "\n")
    size = sum(f.stat().st_size for f in Path(args.out).rglob("*.safetensors"))
    print(f"wrote {args.out} ({args.base} with {args.vae_from}'s autoencoder): {size / 1e6:.1f} MB of safetensors")


def stage_export(args) -> None:
    from diffusers import AutoModel, DPMSolverMultistepScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    if args.base is not None:
        return export_onto_base(args)
    unet_log = json.loads((args.work / "unet" / "train_log.json").read_text())
    more_log = json.loads((args.work / "unet-more" / "train_log.json").read_text())
    vae = AutoModel.from_pretrained(str(args.work / args.vae_from))  # vae-tune's encoder, the decoder tuned further
    vae.register_to_config(scaling_factor=unet_log["scaling_factor"])
    pipeline = StableDiffusionPipeline(
        vae=vae, text_encoder=CLIPTextModel.from_pretrained(args.work / "unet-more" / "text_encoder"),
        tokenizer=CLIPTokenizer.from_pretrained(args.work / "unet-more" / "tokenizer"),  # the one it trained with
        unet=UNet2DConditionModel.from_pretrained(args.work / "unet-more" / "unet"),
        scheduler=DPMSolverMultistepScheduler.from_config(noise_scheduler().config),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipeline.save_pretrained(args.out, safe_serialization=True)
    vae_log = json.loads((args.work / "vae" / "train_log.json").read_text())
    tune_log = json.loads((args.work / "vae-tune" / "train_log.json").read_text())
    decoder_log = json.loads((args.work / "decoder" / "train_log.json").read_text())
    training = {
        "corpus": {name: json.loads((args.work / name / "corpus.json").read_text()) for name in ("pretrain", "victim")},
        "vae": {"seconds": round(vae_log["seconds"], 1), "last": vae_log["log"][-1], "hardware": vae_log["hardware"]},
        "vae_tune": {"seconds": round(tune_log["seconds"], 1), "last": tune_log["log"][-1], "images": tune_log["images"]},
        "decoder": {"seconds": round(decoder_log["seconds"], 1), "last": decoder_log["log"][-1],
                    "images": decoder_log["images"]},
        **wide_record(vae, args.work / args.vae_from),
        "unet": {"seconds": round(unet_log["seconds"], 1), "last": unet_log["log"][-1], "hardware": unet_log["hardware"],
                 "scaling_factor": unet_log["scaling_factor"]},
        "unet_more": {"seconds": round(more_log["seconds"], 1), "last": more_log["log"][-1]},
        "args": {k: v for k, v in vae_log["args"].items() if k.startswith(("vae_", "seed"))}
                | {k: v for k, v in tune_log["args"].items() if k.startswith("tune_")}
                | {k: v for k, v in decoder_log["args"].items() if k.startswith("decoder_")}
                | {k: v for k, v in unet_log["args"].items() if k.startswith("unet_")}
                | {k: v for k, v in more_log["args"].items() if k.startswith("more_")},
    }
    (Path(args.out) / "training.json").write_text(json.dumps(training, indent=1) + "\n")
    size = sum(f.stat().st_size for f in Path(args.out).rglob("*.safetensors"))
    print(f"wrote {args.out}: {size / 1e6:.1f} MB of safetensors")


STAGES = {"corpus": stage_corpus, "vae": stage_vae, "vae-tune": stage_vae_tune, "unet": stage_unet,
          "unet-more": stage_unet_more, "decoder": stage_decoder,
          "export": stage_export}
#: Stages run only by name, never by ``all``.
EXPERIMENTS = {"decoder-ema": stage_decoder_ema, "decoder-wide": stage_decoder_wide}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("build/mini"))
    parser.add_argument("--stage", choices=[*STAGES, *EXPERIMENTS, "all"], default="all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vae-steps", type=int, default=1600)
    parser.add_argument("--vae-batch", type=int, default=16)
    parser.add_argument("--vae-lr", type=float, default=1e-3)
    parser.add_argument("--vae-perceptual", type=float, default=0.03)
    parser.add_argument("--vae-kl", type=float, default=1e-5)
    parser.add_argument("--judge-corpus", type=Path, default=Path("build/corpus"),
                        help="scripts/train_judge.py's corpus: its judge split feeds the vae-tune stage")
    parser.add_argument("--tune-steps", type=int, default=1400)
    parser.add_argument("--tune-lr", type=float, default=4e-4)
    parser.add_argument("--tune-perceptual", type=float, default=0.01)
    parser.add_argument("--more-steps", type=int, default=1500)
    parser.add_argument("--more-lr", type=float, default=3e-4)
    parser.add_argument("--decoder-steps", type=int, default=1200)
    parser.add_argument("--decoder-lr", type=float, default=2e-4)
    parser.add_argument("--wide-steps", type=int, default=1000)
    parser.add_argument("--wide-lr", type=float, default=2e-4)
    parser.add_argument("--wide-factor", type=int, default=2, help="1: train a wide decoder further as it is")
    parser.add_argument("--wide-mse", type=float, default=4.0, help="weight of MSE in decoder-wide's loss")
    parser.add_argument("--wide-perceptual", type=float, default=0.01, help="weight of the feature distance")
    parser.add_argument("--wide-log-mse", action="store_true",
                        help="fit the mean per-image PSNR instead of the mean MSE (see decoder_loss)")
    parser.add_argument("--wide-from", default="decoder",
                        help="the stage (or an autoencoder folder) decoder-wide starts from")
    parser.add_argument("--wide-out", default="decoder-wide", help="the stage folder decoder-wide writes")
    parser.add_argument("--ema-steps", type=int, default=2400)
    parser.add_argument("--ema-lr", type=float, default=2e-4)
    parser.add_argument("--ema-l1", type=float, default=0.25, help="weight of L1 beside MSE in decoder-ema")
    parser.add_argument("--ema-decay", type=float, default=0.995)
    parser.add_argument("--unet-steps", type=int, default=2200)
    parser.add_argument("--unet-batch", type=int, default=64)
    parser.add_argument("--unet-lr", type=float, default=6e-4)
    parser.add_argument("--vae-from", default="decoder",
                        help="the stage whose autoencoder export ships")
    parser.add_argument("--out", type=Path, default=Path("src/sfumato/weights/sfumato-mini"))
    parser.add_argument("--base", type=Path, default=None,
                        help="export: this pipeline folder with --vae-from's autoencoder (see export_onto_base)")
    args = parser.parse_args()
    for name, stage in (STAGES | EXPERIMENTS).items():
        if args.stage == name or (args.stage == "all" and name in STAGES):
            print(f"== {name}", flush=True)
            stage(args)


if __name__ == "__main__":
    main()
