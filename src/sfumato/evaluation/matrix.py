"""The adaptive mimic: protection with and without each countermeasure, on the same cases.

A mimic who knows about cloaks cleans every scraped image before it fine-tunes
(:mod:`sfumato.countermeasures`). Each cell of the matrix, a protection (plain or robust)
against a countermeasure, is one ordinary evaluation in a shared ``--work`` folder, kept as a
part of the report as the protections benchmark keeps its parts (:func:`~.parts.run_part`).
The countermeasure is applied to the originals too, so each column has its own clean
baseline, shared by every row: a countermeasure that ruins the clean mimic defeats the mimic,
not the cloak, and is reported apart.

A cell reads its column's clean side from that kept clean-only part (``clean_from``), so on a new
machine of the same CPU model it builds only its protected side, not the clean fine-tune again.

A cell that another comparison already holds (``[matrix] reuse``: the protections benchmark's
report, whose parts are the plain cells against ``none``) is written from that kept part, not run.

Each column starts with its clean side alone (a clean-only part); the cells then run only on the
cases where that clean mimic reached 60 %, the only cases a cell's figure counts. A countermeasure
that ruins the clean mimic in every case costs one clean fine-tune per case and no cloaked one.

What the report shows and how its figures are made: :mod:`.matrix_report`.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from .config import EvaluationConfig
from .contract import comparison_command
from .matrix_report import row_name, write_matrix_report
from .summary import ATTACK_WORKS
from .workers import as_built

__all__ = ["run_matrix"]


def _cell(config: EvaluationConfig, protection: str, robust: bool, countermeasure: str) -> EvaluationConfig:
    settings = config.matrix
    return replace(config, matrix=None, protect=replace(config.protect, protection=protection, robust=robust,
                                                         intensity=settings.intensity, countermeasure=countermeasure))


def _clean_side(config: EvaluationConfig, countermeasure: str) -> EvaluationConfig:
    """A column's clean side alone: the mimic trained on the originals after the countermeasure."""
    return replace(_cell(config, config.matrix.protections[0], False, countermeasure), clean_only=True)


def _worked(clean: dict) -> tuple[tuple[int, int], ...]:
    """The (victim, seed) cases of a clean-only part whose clean mimic reached ATTACK_WORKS."""
    return tuple((c["victim"], c["seed"]) for c in clean["cases"]
                 if c["scores"]["mimicry_success"]["clean"] >= ATTACK_WORKS)


def _fair_first(countermeasures: list[str], cleans: dict) -> list[str]:
    """The columns whose clean mimic reached ATTACK_WORKS on average (the only ones the verdict reads) first, each
    group in the config's order; a column whose clean side is not in yet goes last."""
    def ruinous(countermeasure: str) -> bool:
        shares = [c["scores"]["mimicry_success"]["clean"] for c in cleans.get(countermeasure, {}).get("cases", [])]
        return not shares or sum(shares) / len(shares) < ATTACK_WORKS
    return sorted(countermeasures, key=ruinous)


def run_matrix(config: EvaluationConfig, work: str | Path, report_dir: str | Path, *, accelerator=None, log=print,
               kept_parts_only: bool = False, workers=None) -> dict:
    """Run (or resume) each column's clean side, then that column's cells; write the report; return its metrics.

    The first column (``none`` in the shipped configs) goes first and its cells next, robust rows first: they
    bound the verdict (a robust row below the bar without any countermeasure cannot reach it), so it is known
    many CPU-hours before the matrix is whole; the other columns' robust cells (the verdict's rows) come before
    their plain ones, and within each, the columns whose clean mimic worked (the verdict's columns) before those
    that ruined it. With ``workers`` (a :class:`~.workers.CaseWorkers`) three waves are built case by case in
    them: the first column's clean side; its cells with every other clean side; the other cells. Each part is
    written as soon as its cases are in."""
    from .parts import adopt_equal_part, run_part

    if config.matrix is None:
        raise ValueError("the config has no [matrix] table (protections, robust, countermeasures)")
    if config.art is not None:
        raise ValueError("the countermeasure matrix needs the built-in victims' judge; drop --art")
    work, parts = Path(work), Path(report_dir) / "parts"
    folder = lambda countermeasure: countermeasure.replace(":", "")  # noqa: E731
    cleans, worked, cells, missing = {}, {}, {}, []
    rows = [(p, r) for p in config.matrix.protections for r in config.matrix.robust]

    def side(countermeasure: str) -> tuple[EvaluationConfig, Path]:
        return _clean_side(config, countermeasure), parts / f"clean--{folder(countermeasure)}"

    def column(countermeasure: str, order=rows) -> list[tuple[EvaluationConfig, Path]]:
        """A column's cells, on the cases where its clean mimic worked (none until its clean side is in)."""
        return [(replace(_cell(config, p, r, countermeasure), cases=worked[countermeasure],
                         clean_from=str(side(countermeasure)[1])),
                 parts / f"{row_name(p, r)}--{folder(countermeasure)}")
                for p, r in order if worked.get(countermeasure)]

    def take_clean(single: EvaluationConfig, part: Path) -> None:
        countermeasure = single.protect.countermeasure
        log(f"=== the clean mimic against {countermeasure}")
        clean = run_part(single, part, work, accelerator=accelerator, log=log, kept_only=kept_parts_only)
        if clean is None:
            missing.append(f"the clean mimic against {countermeasure} (and its cells)")
            return
        if accelerator is not None:  # every process needs the cases the cells run on; the main one wrote them
            accelerator.wait_for_everyone()
            clean = json.loads((part / "metrics.json").read_text())
        cleans[countermeasure], worked[countermeasure] = clean, _worked(clean)
        if not worked[countermeasure]:
            log(f"the clean mimic failed in every case against {countermeasure}: no cell runs")

    def take_cell(single: EvaluationConfig, part: Path) -> None:
        row, countermeasure = row_name(single.protect.protection, single.protect.robust), single.protect.countermeasure
        log(f"=== {row} against {countermeasure}")
        metrics = run_part(single, part, work, accelerator=accelerator, log=log, kept_only=kept_parts_only)
        if metrics is None:
            missing.append(f"{row} against {countermeasure}")
        elif metrics:
            cells[(row, countermeasure)] = metrics

    def wave(items: list[tuple[EvaluationConfig, Path]]) -> None:
        if accelerator is None or accelerator.is_main_process:  # another report's equal parts are not built again
            for single, part in items:
                adopt_equal_part(single, part, config.matrix.reuse, log)
        if accelerator is not None:
            accelerator.wait_for_everyone()
        for single, part in as_built(None if kept_parts_only else workers, items):
            (take_clean if single.clean_only else take_cell)(single, part)

    first, *others = config.matrix.countermeasures
    robust_first = sorted(rows, key=lambda row: not row[1])
    wave([side(first)])
    wave(column(first, robust_first) + [side(cm) for cm in others])
    wave([cell for group in ([r for r in rows if r[1]], [r for r in rows if not r[1]])
          for cm in _fair_first(others, cleans) for cell in column(cm, group)])
    if accelerator is not None and not accelerator.is_main_process:
        return {}
    if not cleans:
        raise ValueError(f"no kept part in {parts} matches this config; run the matrix first")
    return write_matrix_report(config, cleans, cells, report_dir, missing=missing,
                               command=comparison_command(config.name, work, report_dir))
