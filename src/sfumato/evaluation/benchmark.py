"""Protections compared head to head: every protection on the same cases, one report.

Each (protection, intensity) is one ordinary evaluation (:func:`run_evaluation`) in a
shared ``--work`` folder, so the clean stages (the art, the clean fine-tune and its
samples, the base model's samples) run once and every protection adds only its cloaks,
one cloaked fine-tune and one generation per case. The report compares them: protection
success over the cases where the clean mimic worked, visibility, and cost.

The benchmark takes hours of CPU per protection, more than one working session, so each
evaluation is kept as a *part* of the benchmark's report (``REPORT/parts/PROTECTION-INTENSITY/``,
:mod:`.parts`), reused by any later run with the same settings, model and judge. The report itself
is written by :mod:`.benchmark_report`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..losses import PROTECTIONS
from .benchmark_report import benchmark_headline, levels_key, write_benchmark_report
from .config import EvaluationConfig
from .contract import comparison_command
from .metrics import standard_error
from .parts import part_is_kept, run_part
from .summary import ATTACK_WORKS
from .workers import as_built

__all__ = ["run_benchmark", "run_part", "part_is_kept", "standard_error", "write_benchmark_report", "benchmark_headline"]


def _figures(metrics: dict, images: int, targeted: bool) -> dict:
    """The benchmark's figures of one evaluation's ``metrics.json`` (``targeted``: the protection has a style target)."""
    cases = metrics["cases"]
    worked = [c for c in cases if c["scores"]["mimicry_success"]["clean"] >= ATTACK_WORKS]
    target = [c["scores"]["cloaked"]["judged"]["target"] for c in cases
              if targeted and "target" in c["scores"]["cloaked"]["judged"]]
    mean = lambda values: sum(values) / len(values) if values else None  # noqa: E731
    visibility = metrics["aggregate"]["visibility"]
    return {
        "protection_success": mean([c["scores"]["protection_success"] for c in worked]),
        "protection_success_se": standard_error([c["scores"]["protection_success"] for c in worked]),
        "protection_success_all_cases": mean([c["scores"]["protection_success"] for c in cases]),
        # What the cloak itself did, case by case: the clean mimic's share minus the cloaked one's (a zero cloak: 0).
        "mimicry_drop": mean(drops := [_drop(c) for c in worked]),
        "mimicry_drop_se": standard_error(drops),
        "cases_where_attack_worked": len(worked),
        "mimicry_cloaked": mean([c["scores"]["mimicry_success"]["cloaked"] for c in cases]),
        "judged_as_target": mean(target),
        "psnr_db": visibility["psnr_db"], "ssim": visibility["ssim"],
        "perceptual_distance": visibility["perceptual_distance"], "linf_levels": visibility["linf_levels"],
        "seconds_per_image_in_run": mean([c["stage_seconds"]["protect"] / images for c in cases]),
        "per_case": {c["case"]: c["scores"]["protection_success"] for c in cases},
    }


def _drop(case: dict) -> float:
    """The clean mimic's share of the artist's style minus the cloaked mimic's, in one case."""
    shares = case["scores"]["mimicry_success"]
    return shares["clean"] - shares["cloaked"]


def _single(config: EvaluationConfig, protection: str, intensity: str) -> EvaluationConfig:
    """The one evaluation of a benchmark that runs ``protection`` at ``intensity``."""
    return replace(config, benchmark=None, protect=replace(config.protect, protection=protection, intensity=intensity))


def run_benchmark(config: EvaluationConfig, work: str | Path, report_dir: str | Path, *, accelerator=None,
                  log=print, kept_parts_only: bool = False, workers=None) -> dict:
    """Run (or resume) every protection of ``config.benchmark`` on the config's cases; write the report.

    With ``kept_parts_only`` nothing runs: the report is written from the parts already kept
    in ``REPORT/parts`` that match the config, and names the ones still missing (a benchmark
    spread over sessions reports what it has so far). With ``workers`` (a
    :class:`~.workers.CaseWorkers`) each wave of parts is built case by case in them, and each part is written
    as soon as its cases are in.
    """
    bench = config.benchmark
    if bench is None:
        raise ValueError("the config has no [benchmark] table (protections and intensities)")
    if config.art is not None:
        raise ValueError("a benchmark compares protection success, which needs the built-in victims' judge; "
                         "drop --art")
    work, parts = Path(work), Path(report_dir) / "parts"
    runs, figures, missing = {}, {}, []

    def evaluate(protection: str, intensity: str) -> None:
        log(f"=== {protection} at intensity {intensity}")
        metrics = run_part(_single(config, protection, intensity), parts / f"{protection}-{intensity}", work,
                           accelerator=accelerator, log=log, kept_only=kept_parts_only,
                           grid=levels_key(intensity) == levels_key(bench.intensities[0]))
        if metrics is None:
            missing.append(f"{protection} at ±{levels_key(intensity)}")
            return
        if metrics:  # empty on the processes other than the main one
            runs[(protection, intensity)] = metrics
            figures.setdefault(protection, {})[levels_key(intensity)] = _figures(metrics, config.images,
                                                                               PROTECTIONS[protection].targeted)

    def wave(pairs: list[tuple[str, str]]) -> None:
        items = [(_single(config, p, i), parts / f"{p}-{i}") for p, i in pairs]
        for (protection, intensity), _ in zip(pairs, as_built(None if kept_parts_only else workers, items)):
            evaluate(protection, intensity)

    # 1. Every protection at the main intensities; the reference protections' frontier too (known in advance, it
    # keeps the workers busy while the last main parts finish).
    wave([(p, i) for p in bench.protections for i in bench.intensities]
         + [(p, i) for p in bench.sweep for i in bench.sweep_intensities])
    if accelerator is not None and not accelerator.is_main_process:
        return {}
    # 2. The frontier of the best ones at the first intensity, besides the reference protections.
    first = levels_key(bench.intensities[0])
    measured = [p for p in bench.protections if first in figures.get(p, {})]
    ranked = sorted(measured, key=lambda p: -(figures[p][first]["protection_success"] or 0))
    if len(measured) < len(bench.protections):  # the best ones are not known until every protection is in
        ranked = []
        if bench.sweep_best and bench.sweep_intensities:
            missing.append(f"the best {bench.sweep_best} besides {', '.join(bench.sweep)} (ranked at ±{first} once "
                           "every protection is in) at " + " and ".join(f"±{levels_key(i)}" for i in bench.sweep_intensities))
    best = [p for p in ranked if p not in bench.sweep][:bench.sweep_best]
    wave([(p, i) for p in best for i in bench.sweep_intensities])
    if not runs:
        raise ValueError(f"no kept part in {parts} matches this config; run the benchmark first")
    return write_benchmark_report(config, runs, figures, report_dir, missing=missing,
                                  command=comparison_command(config.name, work, report_dir))
