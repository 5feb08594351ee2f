"""What a cleaning mimic trains on: the style judge's verdict on the training images themselves.

For each case of an evaluation work folder (``sfumato evaluate --work ...``), the shipped style
judge scores the victim's training images as the originals, the originals after a
countermeasure, each kept protection's cloaks, and those cloaks after the same countermeasure
(the harness's own countermeasure stage, where the work folder kept it). The share judged the
victim's style says whether a cleaning already takes the style away before any fine-tune.

    python benchmarks/training_set_judge.py --work build/eval/mini-full --countermeasure upscale:0.1 \\
        --cases artist07-seed0 artist20-seed0 artist24-seed0 --out benchmarks/results/training-set-judge-upscale

The cleaned copies are the harness's own where the work folder kept them. A clean side kept
from another machine left no cleaned originals here; they are then cleaned anew, with the
model's purifier at the cloak's default budget and the case's seed.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import torch

from sfumato.api import Cloaker
from sfumato.config import resolve_config
from sfumato.countermeasures import Purifier, apply_countermeasure, parse_countermeasure
from sfumato.evaluation.contract import hardware
from sfumato.evaluation.metrics import judged_shares
from sfumato.evaluation.run import countermeasure_suffix
from sfumato.evaluation.stages import image_set
from sfumato.judge import load_judge


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--countermeasure", required=True)
    parser.add_argument("--cases", nargs="+", required=True, help="case folders, such as artist24-seed0")
    parser.add_argument("--model", default="mini")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    judge, cloaker = load_judge(), Cloaker(args.model)
    budget = resolve_config().perceptual_budget(cloaker.perceptual.name)
    purifier = Purifier(cloaker.pipeline, cloaker.perceptual, budget=budget)
    suffix = countermeasure_suffix(parse_countermeasure(args.countermeasure).spec)

    def share(images: torch.Tensor, style: int) -> float:
        with torch.no_grad():
            return judged_shares(judge.probabilities(images), {"artist": style})["artist"]

    table = {}
    for case in args.cases:
        artist, seed = re.fullmatch(r"artist(\d+)-seed(\d+)", case).groups()
        style, folder = int(artist), args.work / case
        art, _ = image_set(folder / "art")
        kept_clean = folder / f"countermeasure-clean{suffix}"
        cleaned = image_set(kept_clean)[0] if kept_clean.is_dir() else apply_countermeasure(
            args.countermeasure, art, purifier=purifier, generator=torch.Generator().manual_seed(int(seed)))
        row = {"images": len(art), "originals": share(art, style), "originals, cleaned": share(cleaned, style)}
        for protect in sorted(folder.glob("protect-*")):
            name = protect.name[len("protect-"):]
            row[name] = share(image_set(protect)[0], style)
            kept = folder / f"countermeasure-{name}{suffix}"
            if kept.is_dir():
                row[f"{name}, cleaned"] = share(image_set(kept)[0], style)
        table[case] = row
        print(case, {k: round(v, 3) for k, v in row.items()}, flush=True)

    record = {"work": str(args.work), "countermeasure": args.countermeasure, "model": args.model,
              "hardware": hardware(), "results": table}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    columns = list(dict.fromkeys(k for row in table.values() for k in row if k != "images"))
    lines = [f"# The training images as the style judge sees them, before and after `{args.countermeasure}`", "",
             f"`python benchmarks/training_set_judge.py --work {args.work} --countermeasure {args.countermeasure} "
             f"--cases {' '.join(args.cases)}` on {record['hardware']['cpu']}. Share of each case's training images "
             "the shipped judge calls the victim's style. Protection folders: `robust` is glaze+robust, "
             "`mist-robust` mist+robust, and so on.", "",
             "| case | images | " + " | ".join(columns) + " |", "|---|---|" + "---|" * len(columns)]
    for case, row in table.items():
        lines.append(f"| {case} | {row['images']} | " + " | ".join(
            f"{100 * row[c]:.0f} %" if c in row else "" for c in columns) + " |")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
