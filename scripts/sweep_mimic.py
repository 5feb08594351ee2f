"""Sweep the mimic's fine-tuning recipe on clean art only, exactly as ``sfumato evaluate`` runs it.

    python scripts/sweep_mimic.py --recipes "" "offset=0.1" "full=1,lr=2e-4,offset=0.1" \\
        --cases 20:0 24:0 11:0 2:0 --images 32

Each recipe is the config's ``[lora]`` with ``scripts/sweep_lora.py``'s changes
(``lr=``, ``rank=``, ``alpha=``, ``batch=``, ``snr=``, ``offset=``) plus ``steps=N`` and
``full=1`` (train the whole UNet, ``LoraSettings.full_unet``); "" is the config's own.
For each recipe and case (victim:seed) it runs the harness's stages for the clean side
only, through the same on-disk contract (so a stage already done is reused): ``art``
(the same images as the harness, into ``--work``), the clean fine-tune and its samples
with the config's seeds and settings (``--images`` per prompt: the first N of the
harness's images where N is a multiple of the sampling batch), and judges the 8-bit PNGs
as ``score`` does. One JSON line per (recipe, case, images, sampling) is appended to
``--out``; a line already there is skipped, so a sweep resumes. No cloak is made or looked at.

``--guidance`` and ``--sampling-steps`` sweep the mimic's sampling instead (several values
each, every combination): the fine-tunes are reused, only the samples are drawn again.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path

from sweep_lora import append_row, parse_recipe  # scripts/ is on the path when a script runs
from sfumato.corpus import artist_token
from sfumato.evaluation import load_config
from sfumato.evaluation.contract import hardware, run_stage
from sfumato.evaluation.fingerprint import FINETUNE_PARTS, model_fingerprint
from sfumato.evaluation.metrics import judged_shares
from sfumato.evaluation.run import _lora_key
from sfumato.evaluation.stages import image_set, stage_art, stage_finetune, stage_generate, top_styles
from sfumato.judge import load_judge
from sfumato.models import native_resolution


def recipe_settings(text: str, base):
    """``parse_recipe`` with ``steps=N`` and ``full=1`` as well."""
    extra = {"steps": base.steps, "full_unet": False}
    rest = []
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        if key == "steps":
            extra["steps"] = int(value)
        elif key == "full":
            extra["full_unet"] = bool(int(value))
        else:
            rest.append(item)
    return replace(parse_recipe(",".join(rest), extra.pop("steps"), base), **extra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="mini-full", help="the evaluation config the recipes change")
    parser.add_argument("--recipes", nargs="+", default=[""], help='e.g. "" "offset=0.1" "full=1,lr=2e-4"')
    parser.add_argument("--cases", nargs="+", default=["2:0"], help="victim:seed, e.g. 20:0 24:1")
    parser.add_argument("--images", type=int, default=None, help="images per prompt (default: the config's)")
    parser.add_argument("--work", type=Path, default=Path("build/mimic-sweep"))
    parser.add_argument("--corpus", type=Path, default=Path("build/eval/corpus"))
    parser.add_argument("--out", type=Path, default=Path("build/mimic-sweep/sweep.jsonl"))
    parser.add_argument("--stop-at", default=None, help="UTC HH:MM after which no new fine-tune starts")
    parser.add_argument("--guidance", type=float, nargs="+", default=None, help="guidance scales (default: the config's)")
    parser.add_argument("--sampling-steps", type=int, nargs="+", default=None,
                        help="sampling steps (default: the config's)")
    args = parser.parse_args()

    config = load_config(args.config)
    base_sampling = replace(config.generate, images_per_prompt=args.images or config.generate.images_per_prompt)
    samplings = [replace(base_sampling, guidance=g, steps=n) for g in args.guidance or [base_sampling.guidance]
                 for n in args.sampling_steps or [base_sampling.steps]]
    resolution = native_resolution(config.model)
    lora_weights, weights = model_fingerprint(config.model, FINETUNE_PARTS), model_fingerprint(config.model)
    judge = load_judge()
    done = set()
    if args.out.is_file():
        done = {_row_key(r["recipe"], r["victim"], r["seed"], r["images"], r.get("sampling")) for r in
                map(json.loads, args.out.open())}
    for victim, seed in (map(int, case.split(":")) for case in args.cases):
        artist = artist_token(victim)
        case = args.work / f"{artist}-seed{seed}"
        for recipe, sampling in ((r, s) for r in args.recipes for s in samplings):
            changed = _sampling_change(sampling, base_sampling.__class__())
            if _row_key(recipe, artist, seed, sampling.images_per_prompt, changed) in done:
                print(f"skip {recipe or 'config'} {changed or ''} {case.name}: already in {args.out}", flush=True)
                continue
            if args.stop_at and datetime.now(timezone.utc).strftime("%H:%M") >= args.stop_at:
                print(f"stop: past {args.stop_at} UTC", flush=True)
                return
            settings = recipe_settings(recipe, config.lora)
            art = run_stage("art", case / "art", {"victim": victim, "art": None, "artist": artist,
                                                  "images": config.images, "resolution": resolution, "seed": seed},
                            lambda out: stage_art(out, victim=victim, art=None, artist=artist, count=config.images,
                                                  resolution=resolution, seed=seed, corpus=args.corpus))
            folder = case / (recipe or "config")
            tuned = run_stage("finetune-clean", folder / "finetune-clean",
                              {"model": lora_weights, **_lora_key(settings), "seed": seed},
                              lambda out: stage_finetune(out, case / "art", model=config.model, settings=settings,
                                                         seed=seed, device=config.device), inputs=[art])
            prompts = [p.format(artist=artist) for p in sampling.prompts]
            suffix = "".join(f"-{k[0]}{v:g}" for k, v in (changed or {}).items())  # -g5-s50
            generated = folder / f"generate-clean-{sampling.images_per_prompt}{suffix}"
            run_stage("generate-clean", generated, {"model": weights, "prompts": prompts,
                                                    **asdict(sampling), "seed": seed},
                      lambda out: stage_generate(out, model=config.model, lora_folder=folder / "finetune-clean",
                                                 prompts=prompts, settings=sampling, seed=seed,
                                                 device=config.device), inputs=[tuned])
            images, _ = image_set(generated)  # the 8-bit PNGs, as score judges them
            probabilities = judge.probabilities(images)
            row = {"recipe": recipe, "victim": artist, "seed": seed, "images": len(images), "sampling": changed,
                   "clean_mimicry": judged_shares(probabilities, {"artist": victim})["artist"],
                   "top_styles": top_styles(probabilities), "settings": _lora_key(settings),
                   "train_seconds": tuned["seconds"], "threads": tuned["hardware"]["threads"],
                   "hardware": hardware()}
            append_row(args.out, row)


def _sampling_change(sampling, defaults) -> dict | None:
    """The sampling settings that differ from the shipped defaults (guidance 7, 20 steps), or None."""
    changed = {k: getattr(sampling, k) for k in ("guidance", "steps") if getattr(sampling, k) != getattr(defaults, k)}
    return changed or None


def _row_key(recipe, victim, seed, images, sampling) -> tuple:
    return recipe, victim, seed, images, json.dumps(sampling, sort_keys=True)


if __name__ == "__main__":
    main()
