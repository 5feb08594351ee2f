"""What a mimic that fits its training latents exactly would paint, for every cloak of the protections benchmark.

    python benchmarks/fit_bound.py --work build/eval/mini-full \
        --cases artist07-seed0,artist11-seed0,artist16-seed0,artist20-seed0,artist24-seed0 \
        --benchmark evaluation/results/protections/metrics.json --out benchmarks/results/fit-bound-mini.json

A latent diffusion mimic fits the latents E(x + δ) of its training images, and its samples are
decoded by D. A mimic that reproduced them exactly would paint D(E(x + δ)); if the judge still
reads the artist's style there, a cloak can only protect by keeping the fine-tune from fitting,
not by what it writes into the latents. For each protection's cloaks already kept in a benchmark's
work folder (the ``protect*`` stages, read as they are: nothing is cloaked or trained here), this
records the judge's share of the artist's style on the cloaked pixels and on D(E(x + δ)) (and of
the target's style there, for a targeted protection), the latents' RMS shift, and, from the
benchmark's metrics, the protection success measured against the real mimic beside it. A diagnostic: it selects nothing and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from sfumato import Cloaker
from sfumato.evaluation.contract import hardware, read_manifest
from sfumato.evaluation.stages import image_set
from sfumato.judge import load_judge
from sfumato.losses import PROTECTIONS


def protection_of(folder: Path) -> str:
    """A protect stage's protection and intensity as the benchmark names them: ``glaze``, ``mist``, ``glaze-i16``."""
    return folder.name.removeprefix("protect").removeprefix("-") or "glaze"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="the benchmark's --work folder")
    parser.add_argument("--cases", required=True, help="case folders, comma-separated (artistNN-seedS)")
    parser.add_argument("--benchmark", type=Path, help="the benchmark's metrics.json, for the measured figures")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    cloaker, judge = Cloaker("mini"), load_judge()
    measured = json.loads(args.benchmark.read_text())["protections"] if args.benchmark else {}
    rows = []
    for case in args.cases.split(","):
        victim = int(case.removeprefix("artist").split("-")[0])
        share = lambda images, label=victim: float((judge.probabilities(images).argmax(-1) == label).float().mean())  # noqa: E731
        x = image_set(args.work / case / "art")[0]
        with torch.no_grad():
            z0 = cloaker.encoder(x)
            rows.append({"case": case, "protection": "none", "judged_artist_pixels": share(x),
                         "judged_artist_autoencoded": share(cloaker.encoder_view(x)), "rms_latent_shift": 0.0,
                         "latent_std": float(z0.std())})
            print(rows[-1], flush=True)
            for folder in sorted(p for p in (args.work / case).glob("protect*") if read_manifest(p) is not None):
                cloaked = image_set(folder)[0]
                name = protection_of(folder)
                manifest = read_manifest(folder)
                intensity, target = manifest["config"]["max_levels"], (manifest.get("target") or {}).get("style")
                target = target if PROTECTIONS[manifest["config"]["protection"]].targeted else None
                view = cloaker.encoder_view(cloaked)
                real = measured.get(name, {}).get("intensities", {}).get(f"{intensity:g}", {})
                rows.append({"case": case, "protection": name, "max_levels": intensity,
                             "judged_artist_pixels": share(cloaked),
                             "judged_artist_autoencoded": share(view),
                             "judged_target_autoencoded": None if target is None else share(view, target),
                             "rms_latent_shift": float((cloaker.encoder(cloaked) - z0).pow(2).mean().sqrt()),
                             "protection_success_measured": real.get("per_case", {}).get(case)})
                print(rows[-1], flush=True)
    summary = {}
    for name in dict.fromkeys(r["protection"] for r in rows):
        mine = [r for r in rows if r["protection"] == name]
        summary[name] = {key: sum(r[key] for r in mine) / len(mine)
                         for key in ("judged_artist_pixels", "judged_artist_autoencoded", "rms_latent_shift",
                                     "judged_target_autoencoded") if all(r.get(key) is not None for r in mine)}
        summary[name]["cases"] = len(mine)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"work": str(args.work), "cases": args.cases.split(","), "summary": summary, "rows": rows,
                                    "hardware": hardware()}, indent=1) + "\n")
    for name, s in summary.items():
        print(f"{name:16s} pixels {s['judged_artist_pixels']:.3f}  D(E(x+δ)) {s['judged_artist_autoencoded']:.3f}  "
              f"shift {s['rms_latent_shift']:.3f}  ({s['cases']} cases)")


if __name__ == "__main__":
    main()
