"""Which part of sfumato-mini's autoencoder training makes its encoder hard for a cloak to move?

Under the ±8 cap the default cloak takes the latent of an artwork 8 to 11 % of the way to its
target's on the shipped encoder (``cloak-reach-mini``), but far more with random weights in the
same layout (``random-mini-cpu``): the resistance is learnt. This trains the ``vae`` stage's
autoencoder again from scratch (``scripts/train_mini.py``'s loop, seed and images) with one
recipe, and at each checkpoint cloaks the same pretraining crops with the cap alone (glaze, α = 0,
±8 levels) and measures on that checkpoint's encoder the share of the way to the target (as
``cloak_reach.py``) and the reconstruction PSNR of those crops (an encoder that cannot yet
reconstruct says little). Recipes differ from the stage in one term each.

    python benchmarks/vae_reach.py --recipe stage --stop 800 --checkpoints 0,50,100,200,400,800 \
        --out benchmarks/results/vae-reach/stage

Images: pretraining-artist crops (the ones the stage trains on), never a victim's or the
judge's; ``build/mini/pretrain`` comes from ``python scripts/train_mini.py --stage corpus``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from cloak_reach import along, pick_images

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from train_mini import train_autoencoder  # noqa: E402  (a script's loop, not a package's)

from sfumato.api import Cloaker  # noqa: E402
from sfumato.config import resolve_config  # noqa: E402
from sfumato.corpus import load_images, read_manifest  # noqa: E402
from sfumato.evaluation.contract import hardware  # noqa: E402
from sfumato.mini import vae_config  # noqa: E402
from sfumato.patch_gan import PatchDiscriminator  # noqa: E402
from sfumato.quality import psnr  # noqa: E402
from sfumato.targets import BuiltinStyle  # noqa: E402

#: name -> train_autoencoder's loss weights; "stage" is the vae stage's defaults (train_mini.py)
RECIPES = {
    "stage": {"mse": 0.0, "perceptual": 0.03, "kl": 1e-5},
    "no-perceptual": {"mse": 0.0, "perceptual": 0.0, "kl": 1e-5},
    "perceptual-x10": {"mse": 0.0, "perceptual": 0.3, "kl": 1e-5},
    "no-kl": {"mse": 0.0, "perceptual": 0.03, "kl": 0.0},
    "mse": {"mse": 4.0, "perceptual": 0.03, "kl": 1e-5},
    # Stable Diffusion's adversarial term (disc_weight 0.5), once the first reconstructions exist
    "gan": {"mse": 0.0, "perceptual": 0.03, "kl": 1e-5, "gan": 0.5, "gan_start": 200},
    # the same term at a fixed weight (λ = 1), about as large as the reconstruction loss
    "gan-fixed": {"mse": 0.0, "perceptual": 0.03, "kl": 1e-5, "gan": 0.1, "gan_start": 200, "gan_adaptive": False},
}

#: name -> changes to sfumato-mini's autoencoder layout (``vae_config``)
LAYOUTS = {"mini": {}, "wide": {"block_out_channels": (32, 64, 128, 128), "norm_num_groups": 8}}


def measure(vae, images: torch.Tensor, target: BuiltinStyle, folder: Path) -> dict:
    """The cap-alone cloak's share of the way on this autoencoder's encoder, and its PSNR on ``images``."""
    vae.save_pretrained(folder)
    cloaker = Cloaker(str(folder))
    cloaked, _ = cloaker.cloak(list(images), resolve_config("default", "default", alpha=0.0), target=target, seed=0)
    shares = []
    with torch.no_grad():
        for x, r in zip(images, cloaked):
            z_x, z_t, z_c = (cloaker.encoder(v[None]) for v in (x, r.target, r.image))
            shares.append(along(z_c, z_x, z_t))
        decoded = (vae.decode(vae.encode(images * 2 - 1).latent_dist.mode()).sample + 1) / 2
    return {"share_of_way_median": statistics.median(shares), "share_of_way_mean": statistics.mean(shares),
            "psnr_db": psnr(decoded.clamp(0, 1), images).mean().item()}


def markdown(record: dict) -> str:
    """The run's table: PSNR and the cloak's share of the way at each checkpoint."""
    r, hw, layout = record, record["hardware"], record["layout"]
    lines = [f"# The cloak's reach along autoencoder training: recipe {r['recipe']}, layout {layout}", "",
             f"`python benchmarks/vae_reach.py --recipe {r['recipe']} --layout {layout} --steps {r['steps']} "
             f"--stop {r['stop']} --checkpoints {r['checkpoints']}` on {hw['cpu']}, "
             f"{hw['threads']} thread(s). Loss weights {r['weights']}. {r['images']} pretraining crops cloaked toward "
             f"{r['target']} by glaze under the ±8 cap alone.", "",
             "| step | PSNR of the crops | share of the way, median | mean |", "| --- | --- | --- | --- |"]
    lines += [f"| {row['step']} | {row['psnr_db']:.1f} dB | {row['share_of_way_median']:.3f} | "
              f"{row['share_of_way_mean']:.3f} |" for row in r["rows"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("build/mini/pretrain"))
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="stage")
    parser.add_argument("--layout", choices=sorted(LAYOUTS), default="mini", help="mini: the shipped layout")
    parser.add_argument("--steps", type=int, default=1600, help="the cosine schedule's length (the stage: 1600)")
    parser.add_argument("--stop", type=int, help="stop after this many steps (default: --steps)")
    parser.add_argument("--checkpoints", default="0,100,200,400,800,1600",
                        help="steps before which to measure (and the end)")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--target", type=int, default=17, help="built-in style index all images are cloaked toward")
    parser.add_argument("--seed", type=int, default=3, help="picks the measured crops")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/vae-reach/stage"))
    args = parser.parse_args()
    stop = args.stop or args.steps
    checkpoints = sorted({int(c) for c in args.checkpoints.split(",") if int(c) < stop} | {stop})

    from diffusers import AutoencoderKL

    torch.manual_seed(0)  # a script: seeds module initialisation, as the stage does with its --seed 0
    generator = torch.Generator().manual_seed(0)
    train_images = load_images(read_manifest(args.corpus))
    images = torch.stack(pick_images(args.corpus, args.images, args.seed))
    target = BuiltinStyle(args.target)
    vae = AutoencoderKL(**(vae_config() | LAYOUTS[args.layout])).train()
    rows, started = [], time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vae-reach-") as folder:
        def on_step(step, model):
            if step in checkpoints:
                figures = measure(model, images, target, Path(folder))
                rows.append({"step": step, **figures, "seconds": time.perf_counter() - started})
                print(json.dumps(rows[-1]), flush=True)

        recipe = RECIPES[args.recipe]
        seeded = torch.Generator().manual_seed(1)
        discriminator = PatchDiscriminator(generator=seeded).train() if "gan" in recipe else None
        # the vae stage's batch, learning rate and warm-up (scripts/train_mini.py's defaults)
        train_autoencoder(vae, train_images, steps=args.steps, batch=16, lr=1e-3, warmup=50, generator=generator,
                          on_step=on_step, stop=stop, discriminator=discriminator, **recipe)
        on_step(stop, vae)

    record = {"recipe": args.recipe, "layout": args.layout, "weights": RECIPES[args.recipe], "steps": args.steps,
              "stop": stop, "checkpoints": args.checkpoints, "images": args.images, "target": target.name,
              "seed": args.seed, "hardware": hardware(), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(record))


if __name__ == "__main__":
    main()
