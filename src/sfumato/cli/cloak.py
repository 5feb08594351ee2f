"""``sfumato cloak``: write OUT/<name>.cloaked.png and OUT/<name>.cloak.json for each input."""

from __future__ import annotations

import argparse
import sys

import torch

from ..config import resolve_config
from ..losses import PROTECTIONS
from ..models import ModelLoadError, check_device
from ..offline import stay_offline
from ..targets import parse_target
from ._files import (add_budget_options, add_model_option, error, finish, load_models, out_and_inputs, read_inputs,
                     write_each)


def add_parser(sub) -> None:
    c = sub.add_parser("cloak", help="cloak images against style mimicry",
                       description="Write OUT/<name>.cloaked.png and OUT/<name>.cloak.json for each input.")
    c.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, or folders of images (required)")
    c.add_argument("--out", required=True, metavar="DIR", help="output folder, created when missing (required)")
    c.add_argument("--protection", default="glaze", choices=list(PROTECTIONS),
                   help="the objective (default: glaze). " + "; ".join(f"{k}: {v.summary}" for k, v in PROTECTIONS.items()))
    add_budget_options(c)
    c.add_argument("--target", default="auto",
                   help="auto, a built-in style 0-25 (or style-N), a style image file, or 'prompt:<style words>' "
                        "(img2img on the model's full pipeline) (default: auto)")
    c.add_argument("--flips", action="store_true",
                   help="also optimise the mirror image, which mimics train on as well; twice the time "
                        "(default: off: not yet measured to protect more)")
    c.add_argument("--robust", action="store_true",
                   help="optimise in expectation over what a mimic may do to the image first (noise, resizing, "
                        "blur, JPEG); about the same time (default: off)")
    add_model_option(c)
    c.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same bytes on the CPU (default: 0)")
    c.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    c.add_argument("--half", action="store_true", help="run the frozen networks in float16 (GPU only; default: off, float32)")
    c.add_argument("--perceptual", default="auto", choices=["auto", "lpips-alex", "effnet-lite0"],
                   help="perceptual distance for the budget (default: LPIPS if its weights are local, else effnet-lite0)")
    c.add_argument("--format", default="png", choices=["png", "jpeg"], help="output format (default: png)")
    c.add_argument("--strip-metadata", action="store_true",
                   help="drop the ICC profile and EXIF from the outputs (by default the ICC profile and the EXIF "
                        "attribution fields are kept; location, camera data and thumbnails never are) (default: off)")
    c.add_argument("--quiet", action="store_true", help="no progress bar (default: off)")
    c.add_argument("--online", action="store_true",
                   help="allow downloads: a model given as a hub id, LPIPS's AlexNet weights (default: off, local "
                        "files and caches only)")
    c.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    stay_offline(args.online)
    # 1. Check every setting and the inputs' names before any work.
    try:
        config = resolve_config(args.intensity, args.quality, protection=args.protection, flips=args.flips,
                                robust=args.robust)
        target_spec = parse_target(args.target)
        check_device(args.device, torch.float16 if args.half else torch.float32)
    except (ValueError, ModelLoadError) as err:
        error(str(err))
        return 2
    out_dir, inputs = out_and_inputs(args)
    if not inputs:
        return 2
    suffix = ".jpg" if args.format == "jpeg" else ".png"
    if args.format == "jpeg":
        print("warning: JPEG compression weakens the cloak; prefer PNG", file=sys.stderr)

    # 2. Load the models once; fail early.
    from ..api import Cloaker

    cloaker = Cloaker(args.model, device=args.device, half=args.half, perceptual=args.perceptual, online=args.online)
    if not load_models(cloaker, config):
        return 1

    # 3. Read every input: bad files are reported and skipped.
    out_dir.mkdir(parents=True, exist_ok=True)  # created when missing, as users expect
    jobs, failures = read_inputs(inputs, out_dir, f".cloaked{suffix}", args.format, cloaker.encoder.downsample)

    # 4. One target for the whole set (Glaze gives an artist one target style).
    if jobs:
        try:
            target, choice = cloaker.resolve_target(target_spec, [small for _, _, small in jobs], args.seed)
        except (ModelLoadError, ValueError) as err:
            error(str(err))
            return 1

    # 5. Cloak and write each image; its full-size pixels are read again here to keep memory flat.
    record = {"intensity": args.intensity, "quality": args.quality, "target_choice": choice if jobs else None}

    def cloak_one(index, path, out, bar):
        return cloaker.cloak_file(path, out, config, target=target, seed=args.seed, format=args.format,
                                  strip_metadata=args.strip_metadata, record=record,
                                  callback=lambda step, loss: bar.update(1) if bar else None)

    failures += write_each(args, jobs, config.steps, cloak_one)
    return finish(failures, len(inputs))
