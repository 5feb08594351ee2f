"""What a trainer learns from poisoned pairs: the style judge on D(E(x + δ)) of a poisoning run's poison set.

    python benchmarks/poison_view_judge.py --work sfumato-evaluation/mini-poison-artist19 --concept 5 --destination 19 \
        --out benchmarks/results/poison-view-judge-mini.json      # the first run (B = artist19)
    python benchmarks/poison_view_judge.py --work sfumato-evaluation/mini-poison --concept 5 --destination 12 \
        --out benchmarks/results/poison-view-judge-mini-artist12.json  # the shipped mini-poison (B = artist12)
    python benchmarks/poison_view_judge.py --work sfumato-evaluation/mini-poison --concept 5 --destination 12 \
        --poison-set poison-set-style-dm \
        --out benchmarks/results/poison-view-judge-mini-artist12-style-dm.json  # its style-dm screen
    python benchmarks/poison_view_judge.py --work sfumato-evaluation/mini-poison --concept 5 --destination 12 \
        --poison-set poison-set-high \
        --out benchmarks/results/poison-view-judge-mini-artist12-high.json  # its ±16 screen

A latent diffusion model trained on a poisoned pair learns the latents E(x + δ) under the concept's
caption. For the first ``--count`` poisons of a poisoning run's ``poison-set`` stage and their
originals (its ``candidates`` stage), this records the judge's share of the concept and of the
destination on the images and on what the autoencoder keeps of them, D(E(·)). Reads stages, runs
no optimisation; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from sfumato import Cloaker
from sfumato.evaluation.contract import hardware
from sfumato.evaluation.stages import image_set
from sfumato.judge import load_judge


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="a poisoning run's work folder")
    parser.add_argument("--concept", type=int, required=True)
    parser.add_argument("--destination", type=int, required=True)
    parser.add_argument("--poison-set", default="poison-set", help="the poison set's folder in --work")
    parser.add_argument("--count", type=int, default=32)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    cloaker, judge = Cloaker("mini"), load_judge()
    poisons, record = image_set(args.work / args.poison_set)
    candidates, candidate_record = image_set(args.work / "candidates")
    where = {name: i for i, name in enumerate(candidate_record["names"])}
    names = record["names"][: args.count]
    originals = torch.stack([candidates[where[name]] for name in names])
    poisons = poisons[: len(names)]

    def shares(images: torch.Tensor) -> dict[str, float]:
        top = judge.probabilities(images).argmax(-1)
        return {"concept": float((top == args.concept).float().mean()),
                "destination": float((top == args.destination).float().mean())}

    with torch.no_grad():
        rows = {"originals": shares(originals), "originals_autoencoded": shares(cloaker.encoder_view(originals)),
                "poisons": shares(poisons), "poisons_autoencoded": shares(cloaker.encoder_view(poisons))}
    print(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"work": str(args.work), "poison_set": args.poison_set, "count": len(names),
                                    "concept": args.concept, "destination": args.destination, **rows,
                                    "hardware": hardware()}, indent=1) + "\n")


if __name__ == "__main__":
    main()
