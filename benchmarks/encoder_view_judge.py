"""What a mimic learns from: the style judge on decode(E(x + δ)), the cloaked images as the model's autoencoder keeps them.

    python benchmarks/encoder_view_judge.py --images build/eval/mini-full/artist16-seed1/art --victim 16 \
        --out benchmarks/results/encoder-view-judge-mini.json
    python benchmarks/encoder_view_judge.py --images build/eval/mini-full/artist16-seed1/art --victim 16 \
        --settings probe-latent-l2-cap6,probe-latent-stats-cap6,probe-decoded-l2-cap6 --count 8 \
        --out benchmarks/results/encoder-view-probes-mini.json

A latent diffusion mimic never sees pixels: it fits the distribution of E(x + δ), and its
samples are decoded by D. If D(E(x + δ)) is still judged the artist's style, a mimic that fits
those latents well paints the artist's style, whatever δ did to the pixels. For each
setting, this cloaks a stage's images (a case that is not one of the benchmark's) and records
the judge's share of the artist's style on the originals, on D(E(x)) and on D(E(x + δ)),
with the latents' RMS shift and PSNR. A diagnostic of why a cloak can or cannot work; it
selects nothing and asserts nothing.

Besides the shipped protections, three *probe* objectives run under the cap alone (no
perceptual hinge) through the shared optimiser, each asking a different thing of the
encoder's view towards the same target Ω(x, T): ``latent-l2`` (Glaze's term), ``latent-stats``
(the latents' per-channel means, spreads and channel Gram matrix, a style statistic in latent
space) and ``decoded-l2`` (what the autoencoder returns, D(E(x + δ)), against Ω(x, T) in pixels).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from sfumato import Cloaker, resolve_config
from sfumato.evaluation.contract import hardware
from sfumato.evaluation.stages import image_set
from sfumato.judge import load_judge
from sfumato.optim import optimize_perturbation
from sfumato.quality import psnr
from sfumato.targets import parse_target

#: name -> (protection, intensity, budget scale); a scale of 100 switches the perceptual hinge off in effect.
SETTINGS = {
    "glaze": ("glaze", "default", 1.0),
    "untargeted": ("untargeted", "default", 1.0),
    "glaze-b2": ("glaze", "default", 2.0),
    "untargeted-b2": ("untargeted", "default", 2.0),
    "glaze-cap6": ("glaze", 6, 100.0),
    "untargeted-cap6": ("untargeted", 6, 100.0),
    "glaze-cap16": ("glaze", 16, 100.0),
    "glaze-cap32": ("glaze", 32, 100.0),
    "probe-latent-l2-cap6": ("latent-l2", 6, None),
    "probe-latent-stats-cap6": ("latent-stats", 6, None),
    "probe-decoded-l2-cap6": ("decoded-l2", 6, None),
}
PROBE_STEPS = 100


def _statistics(z: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per-channel mean and spread of (B, C, h, w) latents, and their (B, C, C) channel Gram matrix."""
    flat = z.flatten(2)
    return z.mean((2, 3)), z.std((2, 3)), flat @ flat.transpose(1, 2) / flat.shape[-1]


def probe(name: str, cloaker, x: torch.Tensor, target_images: torch.Tensor, levels: float) -> torch.Tensor:
    """Cloak ``x`` with one probe objective under the L∞ cap alone; returns the quantised images."""
    encoder, vae = cloaker.encoder, cloaker.encoder.vae
    decode = lambda z: ((vae.decode(z).sample + 1) / 2).clamp(0, 1)  # noqa: E731
    with torch.no_grad():
        z_target = encoder(target_images)
        stats_target = _statistics(z_target)
    objectives = {
        "latent-l2": lambda xa: (encoder(xa) - z_target).pow(2).mean(),
        "latent-stats": lambda xa: sum(((a - b) ** 2).mean() for a, b in zip(_statistics(encoder(xa)), stats_target)),
        "decoded-l2": lambda xa: (decode(encoder(xa)) - target_images).pow(2).mean(),
    }
    epsilon = levels / 255
    result = optimize_perturbation(x, objectives[name], epsilon=epsilon, steps=PROBE_STEPS, step_size=epsilon / 10)
    return ((x + result.delta) * 255).round() / 255


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, required=True, help="a stage folder with images.json")
    parser.add_argument("--victim", type=int, required=True, help="the artist's style index (the judge's label)")
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0, help="seeds the automatic choice of the target style")
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    cloaker, judge = Cloaker("mini"), load_judge()
    x = image_set(args.images)[0][: args.count]
    share = lambda images: float((judge.probabilities(images).argmax(-1) == args.victim).float().mean())  # noqa: E731
    with torch.no_grad():
        z0 = cloaker.encoder(x)
        base = {"originals": share(x), "autoencoded": share(cloaker.encoder_view(x))}
    target, choice = cloaker.resolve_target(parse_target("auto"), list(x), args.seed)
    print("base", base, "target", choice, flush=True)
    rows = []
    for name in args.settings.split(","):
        protection, intensity, scale = SETTINGS[name]
        if scale is None:  # a probe objective, the cap alone
            with torch.no_grad():
                target_images = target(x)
            cloaked = probe(protection, cloaker, x, target_images, float(intensity))
        else:
            config = resolve_config(intensity, "default", protection=protection, budget_scale=scale)
            cloaked = torch.stack([r.image for r in cloaker.cloak(list(x), config, target=target, seed=0)[0]])
        with torch.no_grad():
            row = {"setting": name, "protection": protection, "max_levels": float(intensity if scale is None else
                                                                                  config.max_levels),
                   "budget_scale": scale,
                   "psnr_db": float(psnr(cloaked, x).mean()),
                   "rms_latent_shift": float((cloaker.encoder(cloaked) - z0).pow(2).mean().sqrt()),
                   "judged_artist_pixels": share(cloaked),
                   "judged_artist_autoencoded": share(cloaker.encoder_view(cloaked))}
        rows.append(row)
        print(row, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"images": str(args.images), "count": len(x), "victim": args.victim, "seed": args.seed,
                                    "target": choice, "latent_std": float(z0.std()), **base, "rows": rows,
                                    "hardware": hardware()}, indent=1) + "\n")


if __name__ == "__main__":
    main()
