"""Does the cloak's pull on the encoder survive a mimic's cleaning, plain and robust?

Cloak the same artworks toward the same style, plain and with ``robust=True``; clean the
originals and the cloaks alike with each countermeasure, as the evaluation harness does;
then measure on the model's encoder E how far E(T(x + δ)) went from E(T(x)) toward the
target's latent E(Ω(x, T)): the share of the way (projection on that line, as
``cloak_reach.py``) and the squared-distance ratio (1 = not moved). This is what the mimic's
fine-tune sees. A cloak whose pull survives a countermeasure here can still fail in the
evaluation; one whose pull is gone cannot protect.

    python benchmarks/robust_reach.py --corpus build/mini/pretrain --out benchmarks/results/robust-reach-mini

Images: pretraining-artist crops, never a victim's or the judge's (see ``cloak_reach.py``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from cloak_reach import add_image_args, along, pick_images

from sfumato.api import Cloaker
from sfumato.config import resolve_config
from sfumato.countermeasures import Purifier, apply_countermeasure
from sfumato.evaluation.contract import hardware
from sfumato.targets import BuiltinStyle

#: The countermeasure matrix's columns (mini-counter), plus a mild blur.
COUNTERMEASURES = ("none", "jpeg:75", "noise:0.05", "resize:2", "blur:1", "impress", "upscale:0.1", "diffpure:0.2")


def reach(encoder, originals, cloaks, targets) -> tuple[list[float], list[float]]:
    """Per image: the share of the way to the target's latent, and the squared-distance ratio after over before."""
    shares, ratios = [], []
    with torch.no_grad():
        for x, c, t in zip(originals, cloaks, targets):
            z_x, z_c, z_t = (encoder(v[None]) for v in (x, c, t))
            shares.append(along(z_c, z_x, z_t))
            ratios.append(float(((z_c - z_t) ** 2).sum() / ((z_x - z_t) ** 2).sum()))
    return shares, ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_image_args(parser)
    parser.add_argument("--protection", default="glaze")
    parser.add_argument("--countermeasures", default=",".join(COUNTERMEASURES), help="comma-separated specs")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/robust-reach-mini"))
    args = parser.parse_args()

    originals = torch.stack(pick_images(args.corpus, args.images, args.seed))
    cloaker = Cloaker(args.model)
    target = BuiltinStyle(args.target)
    cloaks, budget = {}, None
    for robust in (False, True):
        config = resolve_config("default", "default", protection=args.protection, robust=robust)
        results, _ = cloaker.cloak(list(originals), config, target=target, seed=0)
        cloaks[robust] = torch.stack([r.image for r in results])
        targets = [r.target for r in results]
        budget = results[0].report["perceptual_budget"]
    changed = (cloaks[True] != cloaks[False]).float().mean().item()
    purifier = Purifier(cloaker.pipeline, cloaker.perceptual, budget=budget)

    table = {}
    for spec in args.countermeasures.split(","):
        started = time.perf_counter()
        clean = lambda batch: apply_countermeasure(spec, batch, purifier=purifier,  # noqa: E731
                                                   generator=torch.Generator().manual_seed(args.seed))
        cleaned_x = clean(originals)
        table[spec] = {}
        for robust, name in ((False, "plain"), (True, "robust")):
            shares, ratios = reach(cloaker.encoder, cleaned_x, clean(cloaks[robust]), targets)
            table[spec][name] = {"share_of_way_median": statistics.median(shares), "share_of_way_mean": statistics.fmean(shares),
                                 "ratio_median": statistics.median(ratios), "shares": shares}
        print(spec, {n: round(v["share_of_way_mean"], 3) for n, v in table[spec].items()},
              f"{time.perf_counter() - started:.0f} s", flush=True)

    record = {"model": args.model, "corpus": str(args.corpus), "images": args.images, "target": target.name,
              "protection": args.protection, "seed": args.seed, "pixels_robust_differs": changed,
              "hardware": hardware(), "results": table}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    lines = [f"# Does the cloak's pull survive cleaning? ({args.model}, {args.protection})", "",
             f"`python benchmarks/robust_reach.py --corpus {args.corpus} --images {args.images} --target {args.target} "
             f"--seed {args.seed} --protection {args.protection}` on {record['hardware']['cpu']}, "
             f"{record['hardware']['threads']} thread(s). {args.images} pretraining-artist crops, cloaked toward "
             f"{target.name} at the default preset; originals and cloaks cleaned alike. The robust cloak differs "
             f"from the plain one in {100 * changed:.1f} % of its pixel values.", "",
             "Share of the way: how far E(T(x + δ)) went from E(T(x)) toward the target's latent (0 = not at all, "
             "1 = there), mean over images; in brackets the median squared-distance ratio (1 = not moved).", "",
             "| countermeasure T | plain | robust |", "| --- | --- | --- |"]
    for spec, r in table.items():
        lines.append(f"| {spec} | " + " | ".join(f"{r[n]['share_of_way_mean']:.3f} ({r[n]['ratio_median']:.3f})"
                                                 for n in ("plain", "robust")) + " |")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
