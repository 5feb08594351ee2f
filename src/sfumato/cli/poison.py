"""``sfumato poison`` (Nightshade): images of one concept that a model trained on them learns as another."""

from __future__ import annotations

import argparse

from ..losses import PROTECTIONS
from ..models import ModelLoadError, check_device
from ..offline import stay_offline
from ._files import (add_budget_options, add_model_option, error, finish, load_models, out_and_inputs, read_inputs,
                     write_each)


def add_parser(sub) -> None:
    targeted = [k for k, v in PROTECTIONS.items() if v.targeted]
    q = sub.add_parser("poison", help="poison images of one concept so that a model trained on them learns another",
                       description="Nightshade: write OUT/<name>.poisoned.png, its caption OUT/<name>.poisoned.txt "
                                   "(the concept's) and OUT/<name>.poison.json for each input; the model's encoder "
                                   "sees each image as the destination concept.")
    q.add_argument("inputs", nargs="+", metavar="INPUT", help="images of the concept, files or folders (required)")
    q.add_argument("--concept", required=True, help="what the images show, e.g. artist05 on sfumato-mini (required)")
    q.add_argument("--destination", required=True,
                   help="what a model trained on them should learn instead, e.g. artist12 (required)")
    q.add_argument("--out", required=True, metavar="DIR", help="output folder, created when missing (required)")
    q.add_argument("--objective", default="glaze", choices=targeted,
                   help="the objective towards the anchors (default: glaze, the paper's encoder objective)")
    add_budget_options(q)
    add_model_option(q)
    q.add_argument("--seed", type=int, default=0,
                   help="seeds the anchors and the optimiser; the same seed gives the same bytes on the CPU (default: 0)")
    q.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    q.add_argument("--quiet", action="store_true", help="no progress bar (default: off)")
    q.add_argument("--online", action="store_true",
                   help="allow downloads of a model given as a hub id (default: off, local files and caches only)")
    q.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    stay_offline(args.online)
    from ..poison import Anchor, check_concepts, concept_prompt, poison_config

    # 1. Check every setting and the inputs' names before any work.
    try:
        config = poison_config(args.concept, args.intensity, args.quality, args.objective)
        check_concepts(args.concept, args.destination, args.model)
        check_device(args.device)
    except (ValueError, ModelLoadError) as err:
        error(str(err))
        return 2
    out_dir, inputs = out_and_inputs(args)
    if not inputs:
        return 2

    # 2. Load the models once (the whole pipeline: the anchors are the model's own images of the destination).
    from ..api import Cloaker

    cloaker = Cloaker(args.model, device=args.device, online=args.online)
    if not load_models(cloaker, config, pipeline=True):
        return 1

    # 3. Read every input, then draw one anchor per readable image.
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs, failures = read_inputs(inputs, out_dir, ".poisoned.png", "png", cloaker.encoder.downsample)
    anchors = cloaker.anchors(args.destination, len(jobs), seed=args.seed) if jobs else None
    caption = concept_prompt(args.concept)
    record = {"intensity": args.intensity, "quality": args.quality, "concept": args.concept,
              "destination": args.destination, "caption": caption, "anchor_prompt": concept_prompt(args.destination)}

    # 4. Poison and write each image with its caption and sidecar.
    def poison_one(index, path, out, bar):
        anchor = Anchor(anchors[index], name=f"anchor:{args.destination}#{index}")
        result = cloaker.cloak_file(path, out, config, target=anchor, seed=args.seed, record=record | {
                                        "anchor_seed": args.seed + index},
                                    sidecar_path=out_dir / f"{path.stem}.poison.json",
                                    callback=lambda step, loss: bar.update(1) if bar else None)
        (out_dir / f"{path.stem}.poisoned.txt").write_text(caption + "\n")
        return result

    failures += write_each(args, jobs, config.steps, poison_one)
    return finish(failures, len(inputs))
