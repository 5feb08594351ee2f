"""Does a cloak survive the mimic's horizontal flip? The encoder's view of each cloak and of its mirror image.

    python benchmarks/flip_reach.py --images build/eval/screen/artist02-seed0/art --out benchmarks/results/flip-reach-mini.json

Mimics train on every image and its mirror image. For the first ``--count`` images of a
stage's set, each protection cloaks at the default intensity and preset, with and without
``CloakConfig.flips``, and this records, for the image as written and for its mirror
image: the RMS shift of the encoder's latent means, the cosine between the two latent
changes (the mirror's flipped back: 1 = the flip keeps the cloak's effect whole), and,
for targeted protections, how much closer the latents come to the target's (1 − d_after /
d_before, squared distances, the target mirrored with the image). Writes JSON; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from sfumato import Cloaker, resolve_config
from sfumato.evaluation.contract import hardware
from sfumato.evaluation.stages import image_set
from sfumato.losses import PROTECTIONS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, required=True, help="a stage folder with images.json")
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--protections", nargs="+", default=["glaze", "untargeted"])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    cloaker = Cloaker("mini")
    encode = cloaker.encoder
    x = image_set(args.images)[0][: args.count]
    target, record = cloaker.resolve_target("auto", list(x), seed=0)
    distance = lambda a, b: (a - b).pow(2).flatten(1).sum(1)  # noqa: E731
    with torch.no_grad():
        styled = target(x)
        z, z_mirror = encode(x), encode(x.flip(-1))
        zt, zt_mirror = encode(styled), encode(styled.flip(-1))
    rows = []
    for protection in args.protections:
        for flips in (False, True):
            config = resolve_config("default", "default", protection=protection, flips=flips)
            started = time.perf_counter()
            results, _ = cloaker.cloak(list(x), config, target=target, seed=0)
            seconds = (time.perf_counter() - started) / len(x)
            cloaked = torch.stack([r.image for r in results])
            with torch.no_grad():
                zc, zc_mirror = encode(cloaked), encode(cloaked.flip(-1))
            change, change_mirror = (zc - z).flatten(1), (zc_mirror - z_mirror).flip(-1).flatten(1)
            row = {"protection": protection, "flips": flips, "seconds_per_image": round(seconds, 2),
                   "psnr_db": sum(r.report["psnr_db"] for r in results) / len(results),
                   "rms_shift": float(change.pow(2).mean().sqrt()),
                   "rms_shift_mirror": float(change_mirror.pow(2).mean().sqrt()),
                   "cosine_change_vs_mirror": float(torch.nn.functional.cosine_similarity(change, change_mirror).mean())}
            if PROTECTIONS[protection].targeted:
                row["closer_to_target"] = float(1 - (distance(zc, zt) / distance(z, zt)).mean())
                row["closer_to_target_mirror"] = float(1 - (distance(zc_mirror, zt_mirror) /
                                                            distance(z_mirror, zt_mirror)).mean())
            rows.append(row)
            print(json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"images": str(args.images), "count": len(x), "target": record["target"],
                                    "rows": rows, "hardware": hardware()}, indent=1) + "\n")


if __name__ == "__main__":
    main()
