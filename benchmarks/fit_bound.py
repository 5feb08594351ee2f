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


def setting_of(manifest: dict) -> tuple[str, bool]:
    """A protect stage's setting in words (``glaze ±8``, ``mist+robust ±8``, ``untargeted ±8 ×2 budget``) and
    whether the benchmark's table measures it (plain, at the calibrated budget)."""
    c = manifest["config"]
    plain = not c.get("robust") and not c.get("flips") and c["budget_scale"] == 1
    name = c["protection"] + ("+robust" if c.get("robust") else "") + ("+flips" if c.get("flips") else "")
    return f"{name} ±{c['max_levels']:g}" + ("" if c["budget_scale"] == 1 else f" ×{c['budget_scale']:g} budget"), plain


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
            rows.append({"case": case, "setting": "none", "judged_artist_pixels": share(x),
                         "judged_artist_autoencoded": share(cloaker.encoder_view(x)), "rms_latent_shift": 0.0,
                         "latent_std": float(z0.std())})
            print(rows[-1], flush=True)
            for folder in sorted(p for p in (args.work / case).glob("protect*") if read_manifest(p) is not None):
                cloaked, manifest = image_set(folder)[0], read_manifest(folder)
                (setting, plain), c = setting_of(manifest), manifest["config"]
                target = (manifest.get("target") or {}).get("style") if PROTECTIONS[c["protection"]].targeted else None
                view = cloaker.encoder_view(cloaked)
                real = measured.get(c["protection"], {}).get("intensities", {}).get(f"{c['max_levels']:g}", {})
                rows.append({"case": case, "setting": setting, "stage": folder.name,
                             "judged_artist_pixels": share(cloaked),
                             "judged_artist_autoencoded": share(view),
                             "judged_target_autoencoded": None if target is None else share(view, target),
                             "rms_latent_shift": float((cloaker.encoder(cloaked) - z0).pow(2).mean().sqrt()),
                             "protection_success_measured": real.get("per_case", {}).get(case) if plain else None})
                print(rows[-1], flush=True)
    summary = {}
    for name in dict.fromkeys(r["setting"] for r in rows):
        mine = [r for r in rows if r["setting"] == name]
        summary[name] = {key: sum(r[key] for r in mine) / len(mine)
                         for key in ("judged_artist_pixels", "judged_artist_autoencoded", "rms_latent_shift",
                                     "judged_target_autoencoded") if all(r.get(key) is not None for r in mine)}
        summary[name]["cases"] = len(mine)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"work": str(args.work), "cases": args.cases.split(","), "summary": summary, "rows": rows,
                                    "hardware": hardware()}, indent=1) + "\n")
    for name, s in summary.items():
        print(f"{name:24s} pixels {s['judged_artist_pixels']:.3f}  D(E(x+δ)) {s['judged_artist_autoencoded']:.3f}  "
              f"shift {s['rms_latent_shift']:.3f}  ({s['cases']} cases)")


if __name__ == "__main__":
    main()
