"""Calibrate the perceptual budget per 8-bit level for each perceptual metric.

A perceptual distance's scale depends on its network, so the intensity presets
(an L∞ cap in 8-bit levels) are tied to each metric by one number: the mean
distance that uniform noise of ±k levels causes on real photographs, divided by k.
The script prints that number for k = 4, 8 and 16 and writes them to a JSON file;
``sfumato.config.PERCEPTUAL_BUDGET_PER_LEVEL`` holds the value for k = 8.

    pip install -e .
    python benchmarks/calibrate_budget.py --out bench-out/calibration.json

Images: scikit-image's and scikit-learn's bundled sample photographs, resized to
256 px on the longer side (the preview working resolution).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from sfumato.perceptual import LpipsAlex, load_perceptual
from sfumato.resize import fit_to_grid

LEVELS = (4, 8, 16)


def sample_photos() -> list[torch.Tensor]:
    """Real photographs that ship inside scikit-image and scikit-learn, as (3, H, W) in [0, 1]."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    arrays = [getattr(skimage.data, name)() for name in ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")]
    arrays += list(load_sample_images().images)
    return [torch.from_numpy(np.array(a)).permute(2, 0, 1).float() / 255 for a in arrays]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--side", type=int, default=256)
    args = parser.parse_args()
    metrics = ["effnet-lite0"] + (["lpips-alex"] if LpipsAlex.weights_available() else [])
    photos = [fit_to_grid(p[None], args.side, 8) for p in sample_photos()]
    generator = torch.Generator().manual_seed(0)
    noise = [torch.rand(p.shape, generator=generator) * 2 - 1 for p in photos]  # uniform in [-1, 1]
    table = {}
    for name in metrics:
        metric = load_perceptual(name)
        table[name] = {}
        for k in LEVELS:
            with torch.no_grad():
                d = [float(metric(torch.round(((p + k / 255 * n).clamp(0, 1)) * 255) / 255, p)) for p, n in zip(photos, noise)]
            table[name][k] = {"mean_distance": float(np.mean(d)), "per_level": float(np.mean(d)) / k,
                              "per_image": [round(v, 5) for v in d]}
            print(f"{name:14s} ±{k:2d} levels: mean distance {np.mean(d):.4f}, per level {np.mean(d) / k:.5f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"side": args.side, "images": len(photos), "metrics": table}, indent=2) + "\n")


if __name__ == "__main__":
    main()
