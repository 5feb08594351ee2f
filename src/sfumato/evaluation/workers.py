"""A comparison's cases as one-thread worker processes side by side (``sfumato evaluate --jobs N``).

A benchmark or a countermeasure matrix is many ordinary evaluations (*parts*) of a few cases
each. On a small CPU, two one-thread processes do about twice the work of one two-thread process
(sfumato-mini's layers are too small for a second thread to pay). So before the comparison runs a
wave of parts whose settings are known in advance (the benchmark's protections at its main
intensity, then its sweep once the ranking is in; the matrix's clean columns, then its cells),
:meth:`CaseWorkers.prefetch` runs every case of every part not yet kept as its own evaluation in a
worker, jobs case by case so that two workers rarely wait on the same case's shared stages. The
comparison then runs as without workers and reuses every stage they built. Interrupted, a rerun
starts from the stages (and the fine-tunes' checkpoints) already on disk.
"""

from __future__ import annotations

import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

from .config import EvaluationConfig
from .run import cases, run_evaluation

__all__ = ["CaseWorkers"]


class CaseWorkers:
    """Up to ``jobs`` one-thread processes that build the stages of a comparison's cases in ``work``.

    Use as a context manager. Each job's own report goes to ``work/case-reports/PART/CASE``.
    """

    def __init__(self, jobs: int, work: str | Path, *, verbose: bool = True):
        if jobs < 2:
            raise ValueError(f"workers are for two jobs or more, got {jobs}")
        self.jobs, self.work, self.verbose = jobs, Path(work), verbose
        self._pool = None

    def __enter__(self) -> CaseWorkers:
        self._pool = ProcessPoolExecutor(self.jobs, mp_context=multiprocessing.get_context("spawn"))
        return self

    def __exit__(self, *exc) -> None:
        self._pool.shutdown(cancel_futures=True)

    def prefetch(self, parts: list[tuple[EvaluationConfig, Path]]) -> int:
        """Build every case of every part (an evaluation and its part folder) not yet kept, in the workers;
        returns the number of jobs. Every job runs to its end even when another fails; the first failure
        is raised after them."""
        from .benchmark import part_is_kept

        jobs = [(replace(single, cases=((case.victim, case.seed),)), f"{part.name}/{case.name}")
                for single, part in parts if not part_is_kept(single, part) for case in cases(single)]
        futures = [self._pool.submit(_case_job, job, self.work, self.work / "case-reports" / label,
                                     label if self.verbose else None) for job, label in jobs]
        errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            raise errors[0]
        return len(jobs)


def _case_job(config: EvaluationConfig, work: Path, report: Path, label: str | None) -> None:
    """One case's evaluation on one thread (a worker of :class:`CaseWorkers`); ``label`` prefixes its messages."""
    import torch

    torch.set_num_threads(1)
    log = (lambda message: print(f"({label}) {message}", file=sys.stderr, flush=True)) if label else (lambda m: None)
    run_evaluation(config, work, report, log=log, case_figures=0)
