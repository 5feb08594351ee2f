"""Compare LoRA recipes for the mimic on sfumato-mini: judged share along the way.

    python scripts/sweep_lora.py --victim 2 --recipes "lr=3e-3" "rank=16,alpha=16" --out build/mini/sweep.json

Each recipe fine-tunes a fresh copy of the model on the same 16 clean victim images
(as ``scripts/measure_mini.py`` picks them) and, every ``--every`` steps, generates
``--per-artist`` images from "a painting by VICTIM" and records the share the judge puts
in the victim's style, with the seconds spent training so far (generation excluded).
Results are appended to ``--out`` as JSON lines. This chooses the attacker's recipe on one
victim; the evaluation harness then measures it on all of them.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from measure_mini import victim_rows  # scripts/ is on the path when a script runs
from sfumato.corpus import artist_token, load_images
from sfumato.finetune import LoraSettings, finetune_lora, generate
from sfumato.judge import load_judge

from sfumato.evaluation.contract import hardware
from sfumato.evaluation.metrics import judged_shares


def append_row(path: Path, row: dict, show: bool = True) -> None:
    """Append one result to a JSON-lines file (and print it): the sweeps and probes resume from these files."""
    if show:
        print(json.dumps(row), flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")


def parse_recipe(text: str, steps: int, base: LoraSettings = LoraSettings()) -> LoraSettings:
    """"lr=3e-3,rank=16,alpha=16" -> ``base`` with those changes (steps from --steps)."""
    names = {"lr": "learning_rate", "rank": "rank", "alpha": "alpha", "batch": "batch_size", "snr": "snr_gamma",
             "offset": "noise_offset"}
    values = {}
    for item in filter(None, text.split(",")):
        key, value = item.split("=")
        field = names[key]
        values[field] = int(value) if field in ("rank", "batch_size") else float(value)
    return replace(base, steps=steps, **values)


def main() -> None:
    from diffusers import StableDiffusionPipeline

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("src/sfumato/weights/sfumato-mini"))
    parser.add_argument("--work", type=Path, default=Path("build/mini"))
    parser.add_argument("--victim", type=int, default=2)
    parser.add_argument("--recipes", nargs="+", default=[""], help='e.g. "lr=3e-3" "rank=16,alpha=16"')
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--every", type=int, default=300)
    parser.add_argument("--per-artist", type=int, default=64)
    parser.add_argument("--guidance", type=float, default=7.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("build/mini/sweep.jsonl"))
    args = parser.parse_args()

    judge = load_judge()
    prompt = f"a painting by {artist_token(args.victim)}"
    rows = victim_rows(args.work, args.victim, args.seed)
    images = load_images(rows).float() / 255
    for text in args.recipes:
        settings = parse_recipe(text, args.steps)
        pipeline = StableDiffusionPipeline.from_pretrained(args.model)
        pipeline.set_progress_bar_config(disable=True)
        curve, clock = [], {"train": 0.0, "since": time.perf_counter()}

        def checkpoint(step: int, loss: float) -> None:
            if (step + 1) % args.every and step + 1 != settings.steps:
                return
            clock["train"] += time.perf_counter() - clock["since"]
            pipeline.unet.eval()
            shares = judged_shares(judge.probabilities(
                generate(pipeline, prompt, args.per_artist, seed=args.seed, guidance=args.guidance)),
                {"victim": args.victim})
            pipeline.unet.train()
            curve.append({"step": step + 1, "share": shares["victim"], "train_seconds": round(clock["train"], 1),
                          "loss": loss})
            print(f"{text or 'default'} step {step + 1}: {shares['victim']:.3f} ({clock['train']:.0f} s)", flush=True)
            clock["since"] = time.perf_counter()

        finetune_lora(pipeline, images, [r["caption"] for r in rows], settings,
                      generator=torch.Generator().manual_seed(args.seed), callback=checkpoint)
        record = {"victim": artist_token(args.victim), "recipe": text or "default",
                  "settings": settings.__dict__ | {"target_modules": list(settings.target_modules)},
                  "guidance": args.guidance, "images_per_prompt": args.per_artist, "curve": curve,
                  "hardware": hardware()}
        append_row(args.out, record, show=False)


if __name__ == "__main__":
    main()
