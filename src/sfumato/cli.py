"""``sfumato`` command line: a thin layer of files and flags over :class:`~sfumato.api.Cloaker`."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from . import __version__
from .config import INTENSITY_PRESETS, QUALITY_PRESETS, resolve_config
from .io import ImageError, check_output_path, find_images, load_image
from .losses import PROTECTIONS, needs_denoiser
from .models import ModelLoadError, check_device
from .offline import stay_offline
from .resize import fit_to_grid
from .targets import parse_target

def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def cmd_cloak(args: argparse.Namespace) -> int:
    stay_offline(args.online)
    # 1. Check every setting and the inputs' names before any work.
    try:
        config = resolve_config(args.intensity, args.quality, protection=args.protection, flips=args.flips,
                                robust=args.robust)
        target_spec = parse_target(args.target)
        check_device(args.device, torch.float16 if args.half else torch.float32)
    except (ValueError, ModelLoadError) as err:
        _error(str(err))
        return 2
    out_dir, inputs = _out_and_inputs(args)
    if not inputs:
        return 2
    suffix = ".jpg" if args.format == "jpeg" else ".png"
    if args.format == "jpeg":
        print("warning: JPEG compression weakens the cloak; prefer PNG", file=sys.stderr)

    # 2. Load the models once; fail early.
    from .api import Cloaker

    cloaker = Cloaker(args.model, device=args.device, half=args.half, perceptual=args.perceptual, online=args.online)
    if not _load_models(cloaker, config):
        return 1

    # 3. Read every input: bad files are reported and skipped.
    out_dir.mkdir(parents=True, exist_ok=True)  # created when missing, as users expect
    jobs, failures = _read_inputs(inputs, out_dir, f".cloaked{suffix}", args.format, cloaker.encoder.downsample)

    # 4. One target for the whole set (Glaze gives an artist one target style).
    if jobs:
        try:
            target, choice = cloaker.resolve_target(target_spec, [small for _, _, small in jobs], args.seed)
        except (ModelLoadError, ValueError) as err:
            _error(str(err))
            return 1

    # 5. Cloak and write each image; its full-size pixels are read again here to keep memory flat.
    record = {"intensity": args.intensity, "quality": args.quality, "target_choice": choice if jobs else None}

    def cloak_one(index, path, out, bar):
        return cloaker.cloak_file(path, out, config, target=target, seed=args.seed, format=args.format,
                                  strip_metadata=args.strip_metadata, record=record,
                                  callback=lambda step, loss: bar.update(1) if bar else None)

    failures += _write_each(args, jobs, config.steps, cloak_one)
    return _finish(failures, len(inputs))


def _load_models(cloaker, config, *, pipeline: bool = False) -> bool:
    """Load what the protection needs once, before any image (the whole pipeline for the UNet's losses)."""
    try:
        cloaker.encoder, cloaker.perceptual
        if pipeline:
            cloaker.pipeline
        if needs_denoiser(config.protection):
            cloaker.denoiser
    except (ModelLoadError, ValueError) as err:
        _error(str(err))
        return False
    return True


def _finish(failures: int, count: int) -> int:
    if failures:
        _error(f"{failures} of {count} inputs failed")
    return 1 if failures else 0


def _out_and_inputs(args) -> tuple[Path, list[Path]]:
    """The output folder and the input files; no inputs (after a one-line error) where either is unusable."""
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        _error(f"--out {out_dir} is a file, not a folder")
        return out_dir, []
    inputs = find_images(args.inputs)
    if not inputs:
        _error("no input images")
    return out_dir, inputs


def cmd_poison(args: argparse.Namespace) -> int:
    stay_offline(args.online)
    from .poison import Anchor, check_concepts, concept_prompt, poison_config

    # 1. Check every setting and the inputs' names before any work.
    try:
        config = poison_config(args.concept, args.intensity, args.quality, args.objective)
        check_concepts(args.concept, args.destination, args.model)
        check_device(args.device)
    except (ValueError, ModelLoadError) as err:
        _error(str(err))
        return 2
    out_dir, inputs = _out_and_inputs(args)
    if not inputs:
        return 2

    # 2. Load the models once (the whole pipeline: the anchors are the model's own images of the destination).
    from .api import Cloaker

    cloaker = Cloaker(args.model, device=args.device, online=args.online)
    if not _load_models(cloaker, config, pipeline=True):
        return 1

    # 3. Read every input, then draw one anchor per readable image.
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs, failures = _read_inputs(inputs, out_dir, ".poisoned.png", "png", cloaker.encoder.downsample)
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

    failures += _write_each(args, jobs, config.steps, poison_one)
    return _finish(failures, len(inputs))


def _read_inputs(inputs: list[Path], out_dir: Path, ending: str, fmt: str, downsample: int):
    """Check each input and its output name; returns ``[(path, out, small preview)]`` and the failure count.

    A bad file is reported in one line and skipped; the others go on.
    """
    failures, jobs, taken = 0, [], set()
    for path in inputs:
        out = out_dir / f"{path.stem}{ending}"
        try:
            check_output_path(out, inputs)
            if out.resolve() in taken:
                raise ImageError(f"{path.name}: another input already writes {out.name}")
            art = load_image(path)
            if fmt == "jpeg" and art.alpha is not None:
                raise ImageError(f"{path.name}: has transparency, which JPEG cannot store; use PNG")
        except ImageError as err:
            _error(str(err))
            failures += 1
            continue
        taken.add(out.resolve())
        jobs.append((path, out, fit_to_grid(art.rgb[None], 128, downsample)[0]))
    return jobs, failures


def _write_each(args, jobs: list, steps: int, work) -> int:
    """Run ``work(index, path, out, bar) -> (result, sidecar)`` for each job, one line per result or failure;
    returns the failure count (one image fails, the others go on)."""
    failures = 0
    for index, (path, out, _) in enumerate(jobs):
        try:
            bar = _progress(args, path.name, steps)
            result, _ = work(index, path, out, bar)
            if bar:
                bar.close()
        except (ImageError, ValueError, RuntimeError, OSError) as err:
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            _error(reason if reason.startswith(path.name) else f"{path.name}: {reason}")
            failures += 1
            continue
        r = result.report
        print(f"{path.name} -> {out}  ({r['perceptual_metric']} {r['perceptual_distance']:.4f}, "
              f"PSNR {r['psnr_db']:.1f} dB, target {r['target']}, {r['seconds']:.1f}s)")
    return failures


def cmd_evaluate(args: argparse.Namespace) -> int:
    stay_offline(args.online)
    from .evaluation import load_config, run_evaluation

    try:
        config = load_config(args.config)
        if args.poison_kinds and config.poison is None:
            raise ValueError("--poison-kinds is for a poisoning config (mini-poison)")
        if args.countermeasures and config.matrix is None:
            raise ValueError("--countermeasures is for a countermeasure matrix config (mini-counter)")
        config = config.with_overrides(
            **{"poison.kinds": None if not args.poison_kinds else tuple(args.poison_kinds.split(","))})
        config = config.with_overrides(
            model=args.model, art=args.art, artist=args.artist, images=args.images, device=args.device,
            upscaler=args.upscaler,
            clean_only=args.clean_only or None, **{"art_judge.judge_art": args.judge_art},
            victims=None if args.victims is None else tuple(int(v) for v in args.victims.split(",")),
            seeds=None if args.seeds is None else tuple(int(v) for v in args.seeds.split(",")),
            **{"protect.intensity": args.intensity, "protect.quality": args.quality, "protect.target": args.target,
               "protect.countermeasure": args.countermeasure, "protect.protection": args.protection,
               "protect.budget_scale": args.budget_scale, "protect.flips": args.flips or None,
               "protect.robust": args.robust or None,
               "lora.steps": args.lora_steps,
               "lora.rank": args.lora_rank, "generate.images_per_prompt": args.images_per_prompt,
               "benchmark.protections": None if args.protections is None else tuple(args.protections.split(",")),
               "matrix.countermeasures": None if args.countermeasures is None
               else tuple(args.countermeasures.split(",")),
               "benchmark.sweep_intensities": () if args.no_sweep and (config.benchmark or args.protections) else None})
        if args.kept_parts and config.benchmark is None and config.matrix is None:
            raise ValueError("--kept-parts reports a benchmark's kept parts; give a benchmark config "
                             "(mini-bench, mini-counter) or --protections")
        check_device(config.device)
    except (ValueError, ModelLoadError) as err:
        _error(str(err))
        return 2
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=config.device == "cpu")
    work = Path(args.work) if args.work else Path("sfumato-evaluation") / config.name
    report = Path(args.report) if args.report else work / "report"
    log = (lambda *a: None) if args.quiet else (lambda message: print(message, file=sys.stderr, flush=True))
    try:
        if config.poison is not None:
            from .evaluation.poisoning import run_poisoning

            metrics = run_poisoning(config, work, report, log=log)
            print(f"verdict: {metrics['verdict']}\nreport: {report / 'report.md'}")
            return 0
        if config.matrix is not None and not config.clean_only:
            from .evaluation.matrix import run_matrix

            metrics = run_matrix(config, work, report, accelerator=accelerator, log=log,
                                 kept_parts_only=args.kept_parts)
            if accelerator.is_main_process:
                print(f"verdict: {metrics['verdict']}\nreport: {report / 'report.md'}")
            return 0
        if config.benchmark is not None and not config.clean_only:  # clean-only: the cases' shared clean side
            from .evaluation.benchmark import run_benchmark

            metrics = run_benchmark(config, work, report, accelerator=accelerator, log=log,
                                    kept_parts_only=args.kept_parts)
        else:
            metrics = run_evaluation(config, work, report, accelerator=accelerator, log=log)
    except (ValueError, ModelLoadError, ImageError, FileNotFoundError) as err:
        _error(str(err))
        return 1
    if accelerator.is_main_process and config.benchmark is not None and not config.clean_only:
        for name, entry in metrics["protections"].items():
            for levels, f in entry["intensities"].items():
                success = f["protection_success"]
                print(f"{name} at ±{levels}: protection success "
                      f"{'n/a' if success is None else f'{success:.1%}'} over {f['cases_where_attack_worked']} "
                      f"case(s), PSNR {f['psnr_db']:.1f} dB")
        print(f"report: {report / 'report.md'}")
    elif accelerator.is_main_process:
        aggregate = metrics["aggregate"]
        if "mimicry_success" in aggregate:
            ms = aggregate["mimicry_success"]
            line = f"mimicry success: base {ms['base']:.1%}, clean LoRA {ms['clean']:.1%}"
            if "cloaked" in ms:
                line += f", cloaked LoRA {ms['cloaked']:.1%}; protection success {aggregate['protection_success']:.1%}"
            print(line)
        print(f"report: {report / 'report.md'}")
    return 0


def _progress(args, name: str, total: int):
    if args.quiet:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=name, unit="step", leave=False, file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sfumato", description="Protect artwork from AI style mimicry.")
    parser.add_argument("--version", action="version", version=f"sfumato {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    c = sub.add_parser("cloak", help="cloak images against style mimicry",
                       description="Write OUT/<name>.cloaked.png and OUT/<name>.cloak.json for each input.")
    c.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, or folders of images (required)")
    c.add_argument("--out", required=True, metavar="DIR", help="output folder, created when missing (required)")
    c.add_argument("--protection", default="glaze", choices=list(PROTECTIONS),
                   help="the objective (default: glaze). " + "; ".join(f"{k}: {v.summary}" for k, v in PROTECTIONS.items()))
    c.add_argument("--intensity", default="default",
                   help=f"{', '.join(INTENSITY_PRESETS)}, or the L-inf cap in 8-bit levels (default: default = 8)")
    c.add_argument("--quality", default="default",
                   help=f"{', '.join(QUALITY_PRESETS)}, or a number of optimiser steps (default: default)")
    c.add_argument("--target", default="auto",
                   help="auto, a built-in style 0-25 (or style-N), a style image file, or 'prompt:<style words>' "
                        "(img2img on the model's full pipeline) (default: auto)")
    c.add_argument("--flips", action="store_true",
                   help="also optimise the mirror image, which mimics train on as well; twice the time "
                        "(default: off: not yet measured to protect more)")
    c.add_argument("--robust", action="store_true",
                   help="optimise in expectation over what a mimic may do to the image first (noise, resizing, "
                        "blur, JPEG); about the same time (default: off)")
    c.add_argument("--model", default="mini",
                   help="mini, a Stable Diffusion hub id or a local diffusers folder (default: mini, built in)")
    c.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same bytes (default: 0)")
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
    c.set_defaults(func=cmd_cloak)

    targeted = [k for k, v in PROTECTIONS.items() if v.targeted]
    q = sub.add_parser("poison", help="poison images of one concept so that a model trained on them learns another",
                       description="Nightshade: write OUT/<name>.poisoned.png, its caption OUT/<name>.poisoned.txt "
                                   "(the concept's) and OUT/<name>.poison.json for each input; the model's encoder "
                                   "sees each image as the destination concept.")
    q.add_argument("inputs", nargs="+", metavar="INPUT", help="images of the concept, files or folders (required)")
    q.add_argument("--concept", required=True, help="what the images show, e.g. artist05 on sfumato-mini (required)")
    q.add_argument("--destination", required=True,
                   help="what a model trained on them should learn instead, e.g. artist19 (required)")
    q.add_argument("--out", required=True, metavar="DIR", help="output folder, created when missing (required)")
    q.add_argument("--objective", default="glaze", choices=targeted,
                   help="the objective towards the anchors (default: glaze, the paper's encoder objective)")
    q.add_argument("--intensity", default="default",
                   help=f"{', '.join(INTENSITY_PRESETS)}, or the L-inf cap in 8-bit levels (default: default = 8)")
    q.add_argument("--quality", default="default",
                   help=f"{', '.join(QUALITY_PRESETS)}, or a number of optimiser steps (default: default)")
    q.add_argument("--model", default="mini",
                   help="mini, a Stable Diffusion hub id or a local diffusers folder (default: mini, built in)")
    q.add_argument("--seed", type=int, default=0,
                   help="seeds the anchors and the optimiser; the same seed gives the same bytes (default: 0)")
    q.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    q.add_argument("--quiet", action="store_true", help="no progress bar (default: off)")
    q.add_argument("--online", action="store_true",
                   help="allow downloads of a model given as a hub id (default: off, local files and caches only)")
    q.set_defaults(func=cmd_poison)

    e = sub.add_parser("evaluate", help="measure whether cloaking stops a LoRA mimic",
                       description="Fine-tune the model with LoRA on an artist's clean and cloaked images, generate "
                                   "from both with the same prompts and seeds, and write a report with scores. "
                                   "Stages are cached in WORK: a rerun resumes. Flags override the config file.")
    e.add_argument("--config", metavar="TOML", default="mini-quick",
                   help="a shipped config (mini-quick, mini-full, mini-bench, mini-poison, sd15-gpu) or a TOML file "
                        "(default: mini-quick: one victim, the fixed mimic recipe)")
    e.add_argument("--work", metavar="DIR", help="stage folders (default: sfumato-evaluation/NAME)")
    e.add_argument("--report", metavar="DIR", help="where the report goes (default: WORK/report)")
    e.add_argument("--model", help="mini, a Stable Diffusion hub id or a local diffusers folder (default: the config's)")
    e.add_argument("--victims", help="sfumato-mini victim artists, comma-separated, from 2,7,11,16,20,24 (default: the config's)")
    e.add_argument("--art", metavar="DIR", help="a folder of one artist's images instead of the built-in victims (default: none)")
    e.add_argument("--judge-art", metavar="DIR",
                   help="a second folder of the same artist's images for the --art style judge (default: none; "
                        "8 images of --art are held out instead)")
    e.add_argument("--artist", help="the prompt word for --art images (default: the config's, sks)")
    e.add_argument("--images", type=int, help="training images per artist (default: the config's, 16)")
    e.add_argument("--seeds", help="comma-separated seeds, one full run each (default: the config's)")
    e.add_argument("--protection", help="the protection to evaluate (as sfumato cloak; default: the config's)")
    e.add_argument("--protections", metavar="A,B,C",
                   help="compare these protections on the same cases, one report (default: the config's [benchmark], if any)")
    e.add_argument("--flips", action="store_true",
                   help="cloak the mirror image too, as sfumato cloak --flips (default: the config's, off)")
    e.add_argument("--robust", action="store_true",
                   help="robust cloaks, as sfumato cloak --robust (default: the config's, off)")
    e.add_argument("--no-sweep", action="store_true",
                   help="a benchmark's protections at its main intensity only, no frontier sweep: a part of the "
                        "benchmark, to run beside other parts; a later full run reuses it (default: off)")
    e.add_argument("--poison-kinds", metavar="A,B",
                   help="a poisoning config's training sets to run, from poison,dirty-label: one per job to run "
                        "two jobs side by side on one --work (they share the clean model); a last run with "
                        "both writes the whole report (default: the config's)")
    e.add_argument("--kept-parts", action="store_true",
                   help="a benchmark's report from the parts already kept in REPORT/parts, naming what is "
                        "missing; runs nothing (default: off)")
    e.add_argument("--intensity", help="cloak intensity, as sfumato cloak (default: the config's)")
    e.add_argument("--budget-scale", type=float,
                   help="multiply the cloak's perceptual budget (default: the config's, 1 = calibrated)")
    e.add_argument("--quality", help="cloak render quality, as sfumato cloak (default: the config's)")
    e.add_argument("--target", help="cloak target, as sfumato cloak (default: the config's)")
    e.add_argument("--countermeasure",
                   help="what the mimic does to every scraped image, cloaked and clean, before fine-tuning: none, "
                        "jpeg:Q, blur:S, noise:S, resize:F, upscale:S (noisy upscaling), diffpure:T or impress "
                        "(default: the config's, none)")
    e.add_argument("--upscaler", metavar="MODEL",
                   help="a x4 upscaler (hub id or folder, e.g. Stable Diffusion's) for the upscale:S countermeasure "
                        "(default: the config's; none: the model's own img2img stands in)")
    e.add_argument("--countermeasures", metavar="A,B",
                   help="a countermeasure matrix's columns to run (mini-counter): a part beside others; a later "
                        "full run reuses it (default: the config's)")
    e.add_argument("--clean-only", action="store_true",
                   help="run the clean side only: the mimic on the originals, no cloak (default: off; a later "
                        "full run in the same --work reuses it)")
    e.add_argument("--lora-steps", type=int, help="the mimic's fine-tuning steps (default: the config's)")
    e.add_argument("--lora-rank", type=int, help="the mimic's LoRA rank (default: the config's)")
    e.add_argument("--images-per-prompt", type=int, help="images generated per prompt (default: the config's, 64)")
    e.add_argument("--device", help="cpu or cuda; under accelerate launch, accelerate's device is used "
                                    "(default: the config's, cpu)")
    e.add_argument("--quiet", action="store_true", help="no progress messages (default: off)")
    e.add_argument("--online", action="store_true",
                   help="allow downloads of a model given as a hub id (default: off, local files and caches only)")
    e.set_defaults(func=cmd_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    try:
        code = args.func(args)
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    if not getattr(args, "quiet", False):
        print(f"done in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
