"""Probe why the mimic does or does not learn one evaluation case's artist from clean art.

    python scripts/probe_mimic.py build/eval/mini-full/artist20-seed0 --recipe offset=0.1
    python scripts/probe_mimic.py build/eval/mini-full/artist20-seed0 --word sks
    python scripts/probe_mimic.py build/eval/mini-full/artist20-seed0 --reuse --guidance 3 --images 32
    python scripts/probe_mimic.py build/eval/mini-full/artist20-seed0 --reuse --img2img 0.5,0.8,0.95

A case folder is one ``sfumato evaluate`` case of a built-in victim (its ``art`` stage
holds the 16 training images). The probe fine-tunes the clean side only, with the
config's LoRA recipe changed by ``--recipe`` (``scripts/sweep_lora.py``'s syntax, plus
``offset=`` for offset noise), or ``--reuse``s the case's own ``finetune-clean``
adapter, or uses none (``--base``). Then it samples "a painting by WORD" (the case's
seed, as the harness does) or, with ``--img2img``, re-noises the training images to each
strength and denoises them with their captions; and prints the share the judge puts
in the victim's style. With the config's recipe and no other option, it reproduces the
case's clean-LoRA figure. Results are appended to ``--out`` as JSON lines.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from sweep_lora import append_row, parse_recipe  # scripts/ is on the path when a script runs
from sfumato.corpus import artist_token
from sfumato.evaluation import load_config
from sfumato.evaluation.contract import hardware, read_manifest
from sfumato.evaluation.metrics import judged_shares
from sfumato.evaluation.stages import image_set, stage_finetune, top_styles
from sfumato.finetune import generate, load_lora
from sfumato.io import to_uint8
from sfumato.judge import load_judge
from sfumato.models import load_text2img_pipeline


def judged(judge, images: torch.Tensor, victim: int) -> dict:
    """The victim's share and the three styles the judge picks most often.

    The images are judged as 8-bit, as the harness judges the PNGs its stages write.
    """
    images = torch.stack([torch.from_numpy(to_uint8(image)).permute(2, 0, 1) for image in images]).float() / 255
    probabilities = judge.probabilities(images)
    return {"victim_share": judged_shares(probabilities, {"artist": victim})["artist"],
            "top_styles": top_styles(probabilities)}


def img2img_shares(pipeline, images, captions, strengths, *, seed, guidance, steps, judge, victim) -> dict:
    """Re-noise the training images to each strength and denoise them with their own captions."""
    from diffusers import StableDiffusionImg2ImgPipeline

    img2img = StableDiffusionImg2ImgPipeline(**pipeline.components)
    img2img.set_progress_bar_config(disable=True)
    shares = {}
    for strength in strengths:
        out = img2img(captions, image=images, strength=strength, num_inference_steps=steps, guidance_scale=guidance,
                      generator=torch.Generator().manual_seed(seed), output_type="pt").images
        shares[str(strength)] = judged(judge, out.float().cpu(), victim)
    return shares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("case", type=Path, help="a case folder of `sfumato evaluate` (a built-in victim)")
    parser.add_argument("--config", default="mini-full", help="the evaluation config whose recipe is the baseline")
    adapter = parser.add_mutually_exclusive_group()
    adapter.add_argument("--recipe", default="", help='changes to the LoRA recipe, e.g. "offset=0.1,snr=1e9"')
    adapter.add_argument("--reuse", action="store_true", help="use the case's own finetune-clean adapter")
    adapter.add_argument("--base", action="store_true", help="no adapter: the base model")
    parser.add_argument("--word", default=None, help="the artist's word in captions and prompt (default: the case's)")
    parser.add_argument("--images", type=int, default=None, help="images to sample (default: the config's)")
    parser.add_argument("--guidance", type=float, default=None, help="default: the config's")
    parser.add_argument("--img2img", default="", help="comma-separated strengths: img2img from the training images")
    parser.add_argument("--work", type=Path, default=Path("build/probe-mimic"), help="where trained adapters go")
    parser.add_argument("--out", type=Path, default=Path("build/probe-mimic/probes.jsonl"))
    args = parser.parse_args()

    config = load_config(args.config)
    art = read_manifest(args.case / "art")
    victim, seed = art["settings"]["victim"], art["settings"]["seed"]
    if victim is None:
        parser.error(f"{args.case} is an art-folder case: the judge knows only the built-in victims")
    if args.word and (args.reuse or args.base):
        parser.error("--word retrains the adapter on the renamed captions; drop --reuse/--base")
    settings = parse_recipe(args.recipe, config.lora.steps, config.lora)
    guidance = config.generate.guidance if args.guidance is None else args.guidance
    count = config.generate.images_per_prompt if args.images is None else args.images
    images, record = image_set(args.case / "art")
    word = args.word or artist_token(victim)
    captions = [c.replace(artist_token(victim), word) for c in record["captions"]]

    started = time.perf_counter()
    pipeline = load_text2img_pipeline(config.model, device=config.device)
    lora = None
    if args.reuse:
        lora = args.case / "finetune-clean"
    elif not args.base:
        lora = args.work / f"{args.case.name}-{word}-{args.recipe or 'config'}"
        if not (lora / "loss.json").is_file():
            renamed = lora / "art"
            renamed.mkdir(parents=True, exist_ok=True)
            for name in record["names"]:
                (renamed / f"{name}.png").write_bytes((args.case / "art" / f"{name}.png").read_bytes())
            (renamed / "images.json").write_text(json.dumps(record | {"captions": captions}) + "\n")
            stage_finetune(lora, renamed, model=config.model, settings=settings, seed=seed, device=config.device)
    if lora is not None:
        load_lora(pipeline, lora)
    row = {"case": args.case.name, "victim": artist_token(victim), "word": word, "recipe": args.recipe,
           "adapter": "case" if args.reuse else "none" if args.base else "trained", "guidance": guidance}
    if args.img2img:
        strengths = [float(s) for s in args.img2img.split(",")]
        row["img2img"] = img2img_shares(pipeline, images, captions, strengths, seed=seed, guidance=guidance,
                                        steps=config.generate.steps, judge=load_judge(), victim=victim)
    else:
        samples = generate(pipeline, f"a painting by {word}", count, seed=seed, steps=config.generate.steps,
                           guidance=guidance, batch_size=config.generate.batch_size)
        row |= {"images": count, **judged(load_judge(), samples, victim)}
    row |= {"seconds": round(time.perf_counter() - started, 1), "hardware": hardware()}
    append_row(args.out, row)


if __name__ == "__main__":
    main()
