"""A comparison's *parts*: each evaluation of a benchmark or a matrix, kept in the report's folder.

The comparisons take hours of CPU per part, more than one working session, and stage
folders do not outlive a session's machine. So each evaluation's own report is kept as a
part of the comparison's report (``REPORT/parts/NAME/``: ``metrics.json``, ``report.md``,
one case's figure and ``part.json`` with what it was computed from). Committed, the parts
carry the work to the next session: a part whose ``part.json`` matches the evaluation's
settings, the model's weights and the judge's is reused instead of run again.

A part's cases may finish in different sessions. Built by workers (``--jobs``), each case
is kept in the same way as a *case result* in ``PART/cases/CASE/`` (its ``metrics.json``,
``report.md`` and ``part.json``; the part's first case also its figure), so a part whose
cases were all kept, in whatever sessions, is written from them without its stages.

A protected evaluation can take its clean side from a kept clean-only part (``clean_from``,
:func:`kept_clean_entries`): a matrix's cells read their column's clean side, so a new machine
builds only the cells' protected sides. Only on the CPU model that kept it: fine-tunes on two CPU
models do not give the same bits (about ten points of mimicry apart per case), so a cell paired
with another machine's clean mimic would measure the machines, not the cloak. Elsewhere the cell
builds its own clean side.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import replace
from pathlib import Path

from .benchmark_report import grid_rows
from .config import EvaluationConfig
from .contract import hardware
from .fingerprint import model_fingerprint
from .report import write_case_entries
from .run import Case, cases, run_evaluation

__all__ = ["run_part", "part_is_kept", "mark_kept", "case_result", "one_case", "write_from_case_results",
           "adopt_equal_part", "kept_clean_entries"]


def run_part(single: EvaluationConfig, part: Path, work: Path, *, accelerator=None, log=print, kept_only: bool = False,
             grid: bool = False) -> dict | None:
    """One evaluation of a comparison, kept as a part of its report (``part``: its folder).

    A kept part whose ``part.json`` matches the evaluation's settings, the model's weights and the
    judge's is reused; else one whose cases are all kept (:func:`write_from_case_results`) is written
    from them, unless ``grid`` (its row of the grid needs the stages); otherwise the evaluation runs
    (``grid``: and draws its row of the grid), unless ``kept_only``, which returns None for a missing
    part. Returns the part's ``metrics.json`` (empty on the processes other than the main one).
    """
    if part_is_kept(single, part):
        log(f"[part] reused {part}")
        return json.loads((part / "metrics.json").read_text())
    single_process = accelerator is None or accelerator.num_processes == 1
    if not grid and single_process:
        metrics = write_from_case_results(single, part)
        if metrics is not None:
            log(f"[part] written from its kept cases {part}")
            return metrics
    if kept_only:
        log(f"[part] missing {part}")
        return None
    metrics = run_evaluation(single, work, part, accelerator=accelerator, log=log, case_figures=1,
                             clean_kept=kept_clean_entries(single))
    if metrics:
        if grid:
            grid_rows(single, work, part)
        mark_kept(single, part)
    return metrics


def mark_kept(single: EvaluationConfig, part: Path) -> None:
    """Record what the report in ``part`` was computed from; written last, so that only a whole part counts."""
    (part / "part.json").write_text(json.dumps(_part_key(single), indent=1) + "\n")


def part_is_kept(single: EvaluationConfig, part: Path) -> bool:
    """Whether the folder ``part`` keeps this evaluation's figures (settings, model and judge all match)."""
    return _is_current(part, _part_key(single))


def _part_key(single: EvaluationConfig) -> dict:
    """What a kept part must match to stand for an evaluation: its settings, the model's weights, the judge's."""
    from ..judge import JUDGE_WEIGHTS

    return {"config": json.loads(json.dumps(single.to_dict(), default=str)), "model": model_fingerprint(single.model),
            "judge": hashlib.sha256(JUDGE_WEIGHTS.read_bytes()).hexdigest()[:12]}


def _is_current(part: Path, key: dict) -> bool:
    record = part / "part.json"
    return (record.is_file() and (part / "metrics.json").is_file()
            and _comparable(json.loads(record.read_text())) == _comparable(key))


#: Settings added after parts were kept (dotted paths in the config), at the value that computes what those
#: parts computed.
_ADDED_LATER = {"protect.robust": False, "upscaler": None, "matrix": None}


def _comparable(key: dict) -> dict:
    """A part key without the settings its evaluation never used: the ``--art`` judge's, for the built-in victims
    (a setting added to it later must not retire parts that never trained such a judge), and settings added
    later while they keep their old behaviour (:data:`_ADDED_LATER`)."""
    config = dict(key["config"])
    config.pop("clean_from", None)  # where the clean figures were read from does not change them
    if config.get("art") is None:
        config.pop("art_judge", None)
    for path, old in _ADDED_LATER.items():
        *sections, name = path.split(".")
        table = config
        for section in sections:
            table[section] = dict(table.get(section, {}))
            table = table[section]
        if name in table and table[name] == old:
            del table[name]
    return key | {"config": config}


def one_case(single: EvaluationConfig, case: Case) -> EvaluationConfig:
    """The evaluation of one case of a part."""
    return replace(single, cases=((case.victim, case.seed),))


def case_result(part: Path, case: Case) -> Path:
    """Where a part keeps the result of one of its cases."""
    return part / "cases" / case.name


def write_from_case_results(single: EvaluationConfig, part: Path) -> dict | None:
    """Write the part from its kept case results (the first case's figure included), or return None
    unless every case is kept. Gives the report that running the part would (the same entries,
    aggregate, seconds and hardware) without touching a stage."""
    kept = []
    for case in cases(single):
        folder = case_result(part, case)
        if not part_is_kept(one_case(single, case), folder):
            return None
        metrics = json.loads((folder / "metrics.json").read_text())
        kept.append((folder, metrics["cases"][0], metrics["hardware"]))
    return _write_from(single, part, kept)


def adopt_equal_part(single: EvaluationConfig, part: Path, sources, log=print) -> bool:
    """Write the part, unless kept, from a kept part of another comparison (``sources``: report folders) that
    computed the same evaluation under another name, on the same cases or more; returns whether it is kept now.
    Nothing runs: call it before building, so that no worker builds what another report holds."""
    if part_is_kept(single, part):
        return True
    wanted = _computation(_part_key(single))
    for source in sources:
        for record in sorted(Path(source, "parts").glob("*/part.json")):
            if _computation(json.loads(record.read_text())) != wanted:
                continue
            metrics = json.loads((record.parent / "metrics.json").read_text())
            entries = {entry["case"]: entry for entry in metrics["cases"]}
            if all(case.name in entries for case in cases(single)):
                _write_from(single, part, [(record.parent, entries[case.name], metrics["hardware"])
                                           for case in cases(single)])
                log(f"[part] {part} written from the equal part {record.parent}")
                return True
    return False


def kept_clean_entries(single: EvaluationConfig) -> dict[str, dict]:
    """Each case's clean side kept in ``single.clean_from`` (case name -> its metrics entry), for the cases
    kept there, as a case result or in the whole part, under the settings of ``single``'s clean side, by a
    machine with this one's CPU model (and GPU)."""
    if single.clean_from is None or single.clean_only:
        return {}
    wanted = _clean_computation(_part_key(replace(single, clean_only=True, clean_from=None)))
    here = _machine(hardware())
    source, found = Path(single.clean_from), {}
    for case in cases(single):
        for folder in (case_result(source, case), source):
            record, metrics = folder / "part.json", folder / "metrics.json"
            if not (record.is_file() and metrics.is_file()
                    and _clean_computation(json.loads(record.read_text())) == wanted):
                continue
            metrics = json.loads(metrics.read_text())
            entries = {entry["case"]: entry for entry in metrics["cases"]}
            if case.name in entries and _machine(entries[case.name].get("hardware", metrics["hardware"])) == here:
                found[case.name] = entries[case.name]
                break
    return found


def _machine(hw: dict) -> tuple:
    """What makes two fine-tunes give the same bits: the CPU model and the GPU."""
    return hw.get("cpu"), hw.get("gpu")


def _clean_computation(key: dict) -> dict:
    """What a clean-only part computed for each case: the cloak's settings never enter it, the countermeasure does."""
    key = _computation(key)
    protect = key["config"]["protect"]
    return key | {"config": key["config"] | {"protect": {"countermeasure": protect.get("countermeasure", "none")}}}


def _computation(key: dict) -> dict:
    """What a part computed for each case, whatever its comparison's name and cases."""
    key = _comparable(key)
    return key | {"config": {k: v for k, v in key["config"].items() if k not in ("name", "cases")}}


def _write_from(single: EvaluationConfig, part: Path, kept: list[tuple[Path, dict, dict]]) -> dict:
    """Write the part from one kept entry per case (``kept``: the folder holding it, the entry, its stages'
    hardware); the first case's figure is copied where its folder has it, as a run of the part draws it."""
    part.mkdir(parents=True, exist_ok=True)
    entries = []
    for k, (folder, entry, stages_hardware) in enumerate(kept):
        if k == 0 and entry["figure"] and (folder / entry["figure"]).is_file():
            shutil.copyfile(folder / entry["figure"], part / entry["figure"])
        elif entry["figure"]:
            entry = entry | {"figure": None}
        entries.append({"hardware": stages_hardware} | entry)  # a case kept before entries named their own
    metrics = write_case_entries(single, entries, kept[0][2], part)
    mark_kept(single, part)
    return metrics
