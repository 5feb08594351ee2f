"""``sfumato evaluate``: fine-tune a mimic on clean and protected art, generate from both, score and report.

One config file names what runs (a mimicry run, a protections benchmark, a countermeasure matrix or a
poisoning curve); flags override it. Stages are cached in the work folder, so a rerun resumes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..io import ImageError
from ..models import ModelLoadError, check_device
from ..offline import stay_offline
from ._files import error


def add_parser(sub) -> None:
    e = sub.add_parser("evaluate", help="measure whether cloaking stops a LoRA mimic",
                       description="Fine-tune the model with LoRA on an artist's clean and cloaked images, generate "
                                   "from both with the same prompts and seeds, and write a report with scores. "
                                   "Stages are cached in WORK: a rerun resumes. Flags override the config file.")
    e.add_argument("--config", metavar="TOML", default="mini-quick",
                   help="a shipped config (mini-quick, mini-full, mini-bench, mini-poison, mini-counter, sd15-gpu) or a TOML file "
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
    e.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="up to N one-thread processes side by side: a benchmark's or countermeasure matrix's cases "
                        "(each a job), or a poisoning config's training-set kinds; then the report (2 on 2 cores: "
                        "about half the wall time; CPU only; default: 1, one process)")
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
    e.set_defaults(func=run)


def config_from_args(args: argparse.Namespace):
    """The config file named by ``--config`` with the flags applied; raises ``ValueError`` on a bad combination."""
    from ..evaluation import load_config

    config = load_config(args.config)
    if args.poison_kinds and config.poison is None:
        raise ValueError("--poison-kinds is for a poisoning config (mini-poison)")
    if args.jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {args.jobs}")
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
    if args.jobs > 1 and (config.poison is None and config.benchmark is None and config.matrix is None
                          or config.clean_only):
        raise ValueError("--jobs is for a comparison (mini-bench, mini-counter, --protections) or a poisoning "
                         "config (mini-poison)")
    if args.jobs > 1 and config.device != "cpu":
        raise ValueError("--jobs runs one-thread CPU processes; on a GPU run one process")
    check_device(config.device)
    return config


def run(args: argparse.Namespace) -> int:
    stay_offline(args.online)
    try:
        config = config_from_args(args)
    except (ValueError, ModelLoadError) as err:
        error(str(err))
        return 2
    from accelerate import Accelerator

    from ..evaluation import run_evaluation

    accelerator = Accelerator(cpu=config.device == "cpu")
    if args.jobs > 1 and accelerator.num_processes > 1:
        error("--jobs starts its own processes; run it without accelerate launch")
        return 2
    work = Path(args.work) if args.work else Path("sfumato-evaluation") / config.name
    report = Path(args.report) if args.report else work / "report"
    log = (lambda *a: None) if args.quiet else (lambda message: print(message, file=sys.stderr, flush=True))
    try:
        if config.poison is not None:
            from ..evaluation.poisoning import run_poisoning, run_poisoning_jobs

            metrics = (run_poisoning(config, work, report, log=log) if args.jobs == 1 else
                       run_poisoning_jobs(config, work, report, jobs=args.jobs, log=None if args.quiet else log))
            print(f"verdict: {metrics['verdict']}\nreport: {report / 'report.md'}")
            return 0
        if config.matrix is not None and not config.clean_only:
            from ..evaluation.matrix import run_matrix

            with _workers(args, work) as workers:
                metrics = run_matrix(config, work, report, accelerator=accelerator, log=log,
                                     kept_parts_only=args.kept_parts, workers=workers)
            if accelerator.is_main_process:
                print(f"verdict: {metrics['verdict']}\nreport: {report / 'report.md'}")
            return 0
        if config.benchmark is not None and not config.clean_only:  # clean-only: the cases' shared clean side
            from ..evaluation.benchmark import run_benchmark

            with _workers(args, work) as workers:
                metrics = run_benchmark(config, work, report, accelerator=accelerator, log=log,
                                        kept_parts_only=args.kept_parts, workers=workers)
        else:
            metrics = run_evaluation(config, work, report, accelerator=accelerator, log=log)
    except (ValueError, ModelLoadError, ImageError, FileNotFoundError) as err:
        error(str(err))
        return 1
    if accelerator.is_main_process:
        _summary(config, metrics)
        print(f"report: {report / 'report.md'}")
    return 0


def _workers(args: argparse.Namespace, work: Path):
    """The case workers of ``--jobs N`` for a comparison, or an empty context where it runs in this process."""
    from contextlib import nullcontext

    from ..evaluation.workers import CaseWorkers

    return CaseWorkers(args.jobs, work, verbose=not args.quiet) if args.jobs > 1 else nullcontext()


def _summary(config, metrics: dict) -> None:
    """The run's headline figures on stdout."""
    if config.benchmark is not None and not config.clean_only:
        for name, entry in metrics["protections"].items():
            for levels, f in entry["intensities"].items():
                success = f["protection_success"]
                print(f"{name} at ±{levels}: protection success "
                      f"{'n/a' if success is None else f'{success:.1%}'} over {f['cases_where_attack_worked']} "
                      f"case(s), PSNR {f['psnr_db']:.1f} dB")
        return
    aggregate = metrics["aggregate"]
    if "mimicry_success" in aggregate:
        ms = aggregate["mimicry_success"]
        line = f"mimicry success: base {ms['base']:.1%}, clean LoRA {ms['clean']:.1%}"
        if "cloaked" in ms:
            line += f", cloaked LoRA {ms['cloaked']:.1%}; protection success {aggregate['protection_success']:.1%}"
        print(line)
