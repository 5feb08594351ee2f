"""Can a cloak work through the encoder's posterior spread instead of its mean?

A LoRA mimic trains on draws z = μ(x) + σ(x)·ε from the autoencoder's posterior, so a
perturbation that inflated σ would feed the mimic noisy latents. This measures how large
σ is next to the latents themselves, and how far projected sign-gradient ascent on the
mean σ² can push it within an L∞ cap (no perceptual hinge: an upper bound for any cloak
at that cap). Writes JSON; asserts nothing.

    python benchmarks/posterior_spread.py --images build/eval/screen/artist02-seed0/art \
        --out benchmarks/results/posterior-spread-mini.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from sfumato import Cloaker
from sfumato.evaluation.contract import hardware
from sfumato.evaluation.stages import image_set


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, required=True, help="a stage folder with images.json")
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--levels", type=float, default=8.0, help="the L-infinity cap, in 8-bit levels")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    vae = Cloaker("mini").encoder.vae
    x = image_set(args.images)[0][: args.count]

    def posterior(images):
        dist = vae.encode(images * 2 - 1).latent_dist
        return dist.mean, dist.std

    with torch.no_grad():
        mean0, std0 = posterior(x)
    cap, delta, trace = args.levels / 255, torch.zeros_like(x, requires_grad=True), []
    for step in range(args.steps):
        mean, std = posterior((x + delta).clamp(0, 1))
        std.pow(2).mean().backward()
        with torch.no_grad():
            delta += delta.grad.sign() / 255
            delta.clamp_(-cap, cap)
            delta.grad = None
        if (step + 1) % 20 == 0:
            trace.append({"step": step + 1, "std_mean": round(float(std.detach().mean()), 5),
                          "mean_shift_rms": round(float((mean.detach() - mean0).pow(2).mean().sqrt()), 4)})
    result = {"images": str(args.images), "count": len(x), "levels": args.levels,
              "latent_mean_rms": round(float(mean0.pow(2).mean().sqrt()), 4),
              "std_clean": {"mean": round(float(std0.mean()), 5), "median": round(float(std0.median()), 5)},
              "ascent": trace, "hardware": hardware()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
