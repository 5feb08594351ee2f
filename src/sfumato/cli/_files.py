"""What ``sfumato cloak`` and ``sfumato poison`` share: options, reading inputs, writing each result.

A bad input is reported in one line naming the file and skipped; the others go on.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..config import INTENSITY_PRESETS, QUALITY_PRESETS
from ..io import ImageError, check_output_path, find_images, load_image
from ..losses import needs_denoiser
from ..models import ModelLoadError
from ..resize import fit_to_grid


def error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def add_budget_options(parser: argparse.ArgumentParser) -> None:
    """``--intensity`` and ``--quality``, as the cloak and the poison take them."""
    parser.add_argument("--intensity", default="default",
                        help=f"{', '.join(INTENSITY_PRESETS)}, or the L-inf cap in 8-bit levels (default: default = 8)")
    parser.add_argument("--quality", default="default",
                        help=f"{', '.join(QUALITY_PRESETS)}, or a number of optimiser steps (default: default)")


def add_model_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="mini",
                        help="mini, a Stable Diffusion hub id or a local diffusers folder (default: mini, built in)")


def out_and_inputs(args) -> tuple[Path, list[Path]]:
    """The output folder and the input files; no inputs (after a one-line error) where either is unusable."""
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        error(f"--out {out_dir} is a file, not a folder")
        return out_dir, []
    inputs = find_images(args.inputs)
    if not inputs:
        error("no input images")
    return out_dir, inputs


def load_models(cloaker, config, *, pipeline: bool = False) -> bool:
    """Load what the protection needs once, before any image (the whole pipeline for the UNet's losses)."""
    try:
        cloaker.encoder, cloaker.perceptual
        if pipeline:
            cloaker.pipeline
        if needs_denoiser(config.protection):
            cloaker.denoiser
    except (ModelLoadError, ValueError) as err:
        error(str(err))
        return False
    return True


def read_inputs(inputs: list[Path], out_dir: Path, ending: str, fmt: str, downsample: int):
    """Check each input and its output name; returns ``[(path, out, small preview)]`` and the failure count."""
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
            error(str(err))
            failures += 1
            continue
        taken.add(out.resolve())
        jobs.append((path, out, fit_to_grid(art.rgb[None], 128, downsample)[0]))
    return jobs, failures


def write_each(args, jobs: list, steps: int, work) -> int:
    """Run ``work(index, path, out, bar) -> (result, sidecar)`` for each job, one line per result or failure;
    returns the failure count."""
    failures = 0
    for index, (path, out, _) in enumerate(jobs):
        try:
            bar = _progress(args, path.name, steps)
            result, _ = work(index, path, out, bar)
            if bar:
                bar.close()
        except (ImageError, ValueError, RuntimeError, OSError) as err:
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            error(reason if reason.startswith(path.name) else f"{path.name}: {reason}")
            failures += 1
            continue
        r = result.report
        print(f"{path.name} -> {out}  ({r['perceptual_metric']} {r['perceptual_distance']:.4f}, "
              f"PSNR {r['psnr_db']:.1f} dB, target {r['target']}, {r['seconds']:.1f}s)")
    return failures


def finish(failures: int, count: int) -> int:
    if failures:
        error(f"{failures} of {count} inputs failed")
    return 1 if failures else 0


def _progress(args, name: str, total: int):
    if args.quiet:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=name, unit="step", leave=False, file=sys.stderr)
