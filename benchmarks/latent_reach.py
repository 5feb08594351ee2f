"""How far each protection moves the encoder's latents, against the latents' own spread.

    python benchmarks/latent_reach.py --images build/eval/screen/artist02-seed0/art --out benchmarks/results/latent-reach-mini.json

For a stage's image set (the first ``--count`` images), each protection cloaks at the
default intensity and preset (``--budget-scales`` multiplies the perceptual budget) and
the RMS shift of the encoder's latent means is recorded, with PSNR. The bound row runs the
untargeted objective with no perceptual hinge and no budget check: the most the ±8 cap
alone allows. Writes JSON; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from sfumato import Cloaker, resolve_config
from sfumato.evaluation.contract import hardware
from sfumato.evaluation.stages import image_set
from sfumato.optim import optimize_perturbation
from sfumato.targets import BuiltinStyle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, required=True, help="a stage folder with images.json")
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--protections", nargs="+", default=["glaze", "untargeted", "sds", "advdm"])
    parser.add_argument("--budget-scales", nargs="+", type=float, default=[1.0, 2.0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    cloaker = Cloaker("mini")
    x = image_set(args.images)[0][: args.count]
    with torch.no_grad():
        z0 = cloaker.encoder(x)
    rms = lambda images: float((cloaker.encoder(images) - z0).pow(2).mean().sqrt())  # noqa: E731
    rows = []
    for protection in args.protections:
        for scale in args.budget_scales:
            config = resolve_config("default", "default", protection=protection, budget_scale=scale)
            results, _ = cloaker.cloak(list(x), config, target=BuiltinStyle(13), seed=0)
            with torch.no_grad():
                shift = rms(torch.stack([r.image for r in results]))
            rows.append({"protection": protection, "budget_scale": scale, "rms_latent_shift": round(shift, 4),
                         "psnr_db": round(sum(r.report["psnr_db"] for r in results) / len(results), 2)})
            print(rows[-1], flush=True)
    # The bound: the untargeted direction under the ±8 cap alone (no perceptual hinge, no budget check).
    config = resolve_config("default", "default")
    bound = optimize_perturbation(x, lambda xa: -(cloaker.encoder(xa) - z0).pow(2).mean(), epsilon=config.epsilon,
                                  steps=config.steps, step_size=config.step_size,
                                  generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        rows.append({"protection": "untargeted, cap only", "budget_scale": None,
                     "rms_latent_shift": round(rms((x + bound.delta).clamp(0, 1)), 4)})
    print(rows[-1])
    result = {"images": str(args.images), "count": len(x), "latent_std": round(float(z0.std()), 4), "rows": rows,
              "hardware": hardware()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
