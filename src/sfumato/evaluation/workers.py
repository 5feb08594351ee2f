"""A comparison's cases as one-thread worker processes side by side (``sfumato evaluate --jobs N``).

A benchmark or a countermeasure matrix is many ordinary evaluations (*parts*) of a few cases
each. On a small CPU, two one-thread processes do about twice the work of one two-thread process
(sfumato-mini's layers are too small for a second thread to pay). For each wave of parts whose
settings are known in advance (the benchmark's protections at its main intensity with the
reference's sweep, then the best ones' sweep once the ranking is in; the matrix's first column,
then its cells with the other clean columns, then their cells), :meth:`CaseWorkers.submit` queues every case of every part not yet kept as its own evaluation for the workers, part by part
and case by case within a part, so that two workers rarely wait on the same case's shared stages.
Each case is kept as a *case result* inside its part (``PART/cases/CASE/``, :mod:`.parts`) as soon as it
is done, and a case already kept there is not run again: committed, case results carry a part that is
half done to the next session even when the stage folders are lost. As each part's cases are done, the
comparison writes that part as it would without workers, from its case results (or, for a part that draws
a row of the grid, reusing every stage they built); so parts land while the wave goes on. Interrupted, a
rerun starts from the case results, the stages and the fine-tunes' checkpoints already on disk.
"""

from __future__ import annotations

import multiprocessing
import sys
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

from .config import EvaluationConfig
from .parts import case_result, kept_clean_entries, mark_kept, one_case, part_is_kept
from .run import cases, run_evaluation

__all__ = ["CaseWorkers", "as_built"]


def as_built(workers: CaseWorkers | None, items: list[tuple[EvaluationConfig, Path]]):
    """Yield each (evaluation, part folder) of ``items`` in order once its cases are built by ``workers``
    (raising a case's error), or at once where there are none: the caller then writes the part."""
    pending = workers.submit(items) if workers is not None else [[]] * len(items)
    for item, building in zip(items, pending):
        for case in building:
            case.result()
        yield item


class CaseWorkers:
    """Up to ``jobs`` one-thread processes that build the stages of a comparison's cases in ``work``.

    Use as a context manager. Each job's result is kept in ``PART/cases/CASE`` (:func:`~.parts.case_result`).
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

    def submit(self, parts: list[tuple[EvaluationConfig, Path]]) -> list[list[Future]]:
        """Start building every case of every part (an evaluation and its part folder) not yet kept, nor kept
        as a case result.

        Returns, per part, its cases' futures (none for a kept part or case): once they are all done
        (``result()`` raises a case's error), the part's case results are all kept and the part can be written."""
        pending = []
        for single, part in parts:
            building = []
            if not part_is_kept(single, part):
                for k, case in enumerate(cases(single)):
                    one, folder = one_case(single, case), case_result(part, case)
                    if not part_is_kept(one, folder):
                        label = f"{part.name}/{case.name}" if self.verbose else None
                        building.append(self._pool.submit(_case_job, one, self.work, folder, k == 0, label))
            pending.append(building)
        return pending


def _case_job(config: EvaluationConfig, work: Path, folder: Path, figure: bool, label: str | None) -> None:
    """One case's evaluation on one thread (a worker of :class:`CaseWorkers`), kept as a case result in
    ``folder`` (``figure``: with its side-by-side figure, for the part's first case); ``label`` prefixes its
    messages."""
    import torch

    torch.set_num_threads(1)
    log = (lambda message: print(f"({label}) {message}", file=sys.stderr, flush=True)) if label else (lambda m: None)
    run_evaluation(config, work, folder, log=log, case_figures=int(figure), charts=False,
                   clean_kept=kept_clean_entries(config))
    mark_kept(config, folder)
