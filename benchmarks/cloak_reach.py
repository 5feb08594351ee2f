"""How far does the cloak move an artwork's latents toward its target style?

For each setting, cloak the same artworks toward the same style and measure, on the
model's encoder E, the squared distance to the target after cloaking over before
(1 = not moved, 0 = on the target), and the share of the way along the line from
E(x) to E(Ω(x, T)) that E(x + δ) went. Settings cover the shipped presets and the
same L∞ caps with no perceptual hinge (α = 0), which separates the two limits: the
perceptual budget and the L∞ cap.

    python benchmarks/cloak_reach.py --corpus build/mini/pretrain --out benchmarks/results/cloak-reach-mini

Images: ``--images`` crops drawn with a fixed seed from a sfumato-mini corpus folder
(``scripts/train_mini.py --stage corpus``); use the pretraining artists' crops, not a
victim's or the judge's evaluation crops, so that nothing here tunes the cloak on the
images the evaluation scores.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from sfumato.api import Cloaker
from sfumato.config import resolve_config
from sfumato.corpus import load_images, read_manifest
from sfumato.evaluation.contract import hardware
from sfumato.targets import BuiltinStyle

#: name -> (intensity, quality, CloakConfig overrides); "no-hinge" is α = 0, the L∞ cap alone
SETTINGS = {
    "default": ("default", "default", {}),
    "default-no-hinge": ("default", "default", {"alpha": 0.0}),
    "default-slower": ("default", "slower", {}),
    "high": ("high", "default", {}),
    "high-no-hinge": ("high", "default", {"alpha": 0.0}),
    "32-levels-no-hinge": (32, "default", {"alpha": 0.0}),
}


def along(z_cloaked: torch.Tensor, z_x: torch.Tensor, z_target: torch.Tensor) -> float:
    """Share of the way from z_x to z_target that z_cloaked went (projection on that line)."""
    line = (z_target - z_x).flatten()
    return float(torch.dot((z_cloaked - z_x).flatten(), line) / torch.dot(line, line))


def add_image_args(parser: argparse.ArgumentParser) -> None:
    """The images, model and target a reach benchmark cloaks."""
    parser.add_argument("--corpus", type=Path, default=Path("build/mini/pretrain"))
    parser.add_argument("--model", default="mini")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--target", type=int, default=17, help="built-in style index all images are cloaked toward")
    parser.add_argument("--seed", type=int, default=3)


def pick_images(corpus: Path, count: int, seed: int) -> list[torch.Tensor]:
    """``count`` crops of a corpus folder, drawn with a fixed seed, as (3, H, W) in [0, 1]."""
    rows = read_manifest(corpus)
    pick = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))[:count].tolist()
    return list(load_images([rows[i] for i in pick]).float() / 255)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_image_args(parser)
    parser.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated names from SETTINGS")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/cloak-reach-mini"))
    args = parser.parse_args()

    images = pick_images(args.corpus, args.images, args.seed)
    cloaker = Cloaker(args.model)
    encoder, target = cloaker.encoder, BuiltinStyle(args.target)
    results = {}
    for name in args.settings.split(","):
        intensity, quality, overrides = SETTINGS[name]
        cloaked, _ = cloaker.cloak(images, resolve_config(intensity, quality, **overrides), target=target, seed=0)
        ratios, shares = [], []
        with torch.no_grad():
            for x, r in zip(images, cloaked):
                z_x, z_t, z_c = (encoder(v[None]) for v in (x, r.target, r.image))
                ratios.append(r.report["encoder_to_target_after"] / r.report["encoder_to_target_before"])
                shares.append(along(z_c, z_x, z_t))
        reports = [r.report for r in cloaked]
        results[name] = {
            "ratio_after_before_median": statistics.median(ratios), "ratio_after_before_min": min(ratios),
            "share_of_way_median": statistics.median(shares), "share_of_way_max": max(shares),
            "perceptual_distance_mean": statistics.mean(r["perceptual_distance"] for r in reports),
            "perceptual_budget": reports[0]["perceptual_budget"],
            "linf_levels_max": max(r["linf_levels"] for r in reports),
            "psnr_db_mean": statistics.mean(r["psnr_db"] for r in reports),
            "seconds_median": statistics.median(r["seconds"] for r in reports),
        }
        print(name, {k: round(v, 3) for k, v in results[name].items()}, flush=True)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {"model": args.model, "corpus": str(args.corpus), "images": args.images, "target": target.name,
              "seed": args.seed, "hardware": hardware(), "results": results}
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    lines = [f"# How far the cloak moves latents toward the target ({args.model})", "",
             f"`python benchmarks/cloak_reach.py --corpus {args.corpus} --images {args.images} --target {args.target} "
             f"--seed {args.seed}` on {record['hardware']['cpu']}, {record['hardware']['threads']} threads. "
             f"{args.images} pretraining-artist crops, all cloaked toward {target.name}.", "",
             "Ratio: squared encoder distance to the target after cloaking over before (1 = not moved). "
             "Share of the way: projection of the latent's move on the line to the target's latent.", "",
             "| setting | ratio, median | share of the way, median | perceptual distance / budget | L∞ max | PSNR | s per image |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['ratio_after_before_median']:.3f} | {r['share_of_way_median']:.3f} | "
                     f"{r['perceptual_distance_mean']:.2f} / {r['perceptual_budget']:.2f} | {r['linf_levels_max']:.0f} | "
                     f"{r['psnr_db_mean']:.1f} dB | {r['seconds_median']:.1f} |")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
