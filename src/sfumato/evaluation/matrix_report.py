"""The countermeasure matrix's report: its figures, the verdict, the table and the figure.

:mod:`.matrix` runs the cells and keeps them as parts; this module writes what they show.

Per cell: protection success over the cases where that column's clean mimic reached 60 %, and the
mimicry drop (that clean mimic's share minus the cloaked mimic's, case by case: what the cloak itself
did, since the clean mimic's own misses count as protection too). A cell adopted from another
comparison, or built on a CPU model other than its column's clean side's, keeps a clean mimic of its
own, trained on the machine its cloaked mimic was (fine-tunes differ across CPU models), and is marked.

Per column: the clean mimic's success and what a zero cloak would score. Per row, ``best``: in each
case the countermeasure that gives the cloaked mimic its highest success, as an adaptive attacker
would choose it, among those that leave the attacker's clean mimic working in that case.

The verdict: whether the best robust row keeps :data:`ROBUST_TARGET` under every countermeasure that
leaves the clean mimic working; a row's lowest cell so far bounds it, so a miss is known early.
"""

from __future__ import annotations

import json
from pathlib import Path

from .config import EvaluationConfig
from .contract import cpus_of_cases, cpus_words, hardware_words, versions
from .summary import ATTACK_WORKS, pct

__all__ = ["write_matrix_report", "matrix_figures", "row_name", "ROBUST_TARGET"]

#: The issue's bar for the best robust protection under every countermeasure that leaves the clean mimic working.
ROBUST_TARGET = 0.85


def row_name(protection: str, robust: bool) -> str:
    return protection + ("+robust" if robust else "")


def _per_case(metrics: dict, side: str) -> dict[str, float]:
    return {c["case"]: c["scores"]["mimicry_success"][side] for c in metrics["cases"]}


def _mean(values) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None


def matrix_figures(config: EvaluationConfig, cleans: dict, cells: dict) -> dict:
    """The report's figures from each column's clean-only part (``cleans``: countermeasure -> metrics) and each
    cell's (``cells``: (row, countermeasure) -> metrics, run on the cases where that column's clean mimic worked)."""
    columns = [cm for cm in config.matrix.countermeasures if cm in cleans]
    rows = [row_name(p, r) for p in config.matrix.protections for r in config.matrix.robust]
    clean = {}
    for cm in columns:
        per_case = _per_case(cleans[cm], "clean")
        clean[cm] = {"mimicry_success": _mean(per_case.values()), "per_case": per_case,
                     "cases_where_attack_worked": sum(v >= ATTACK_WORKS for v in per_case.values()),
                     # A zero cloak leaves the cloaked mimic the clean one: every cell's floor in this column.
                     "no_cloak_protection_success": _mean(1 - v for v in per_case.values() if v >= ATTACK_WORKS)}
    matrix = {}
    for row in rows:
        matrix[row] = {}
        for cm in columns:
            worked = [case for case, v in clean[cm]["per_case"].items() if v >= ATTACK_WORKS]
            if not worked:  # nothing to protect: the countermeasure ruined the clean mimic in every case
                matrix[row][cm] = {"protection_success": None, "cases_where_attack_worked": 0, "per_case": {}}
                continue
            if (row, cm) not in cells:
                continue
            # A cell is a paired experiment: its figures stand against the clean mimic it was scored with. That is
            # the column's kept clean side for a cell the matrix built, and its own report's (trained on the
            # machine its cloaked side was) for a cell adopted from another comparison: fine-tunes on two CPU
            # models differ by about ten points per case, as much as a cloak's whole effect.
            paired, cloaked = _per_case(cells[(row, cm)], "clean"), _per_case(cells[(row, cm)], "cloaked")
            worked = [case for case, v in paired.items() if v >= ATTACK_WORKS]
            matrix[row][cm] = {"protection_success": _mean(1 - cloaked[c] for c in worked),
                               "mimicry_drop": _mean(paired[c] - cloaked[c] for c in worked),
                               "cases_where_attack_worked": len(worked), "mimicry_cloaked": _mean(cloaked.values()),
                               "per_case": {c: 1 - v for c, v in cloaked.items()},
                               "psnr_db": cells[(row, cm)]["aggregate"]["visibility"]["psnr_db"]}
            if paired != {c: v for c, v in clean[cm]["per_case"].items() if c in paired}:
                matrix[row][cm]["own_clean_side"] = {"mimicry_success": _mean(paired.values()),
                                                     "hardware": cells[(row, cm)]["hardware"].get("cpu", "?")}
        measured = [cm for cm in columns if cm in matrix[row]]
        # best: per case, the countermeasure the cloaked mimic gains most from, once the row has every column
        if len(measured) == len(columns) == len(config.matrix.countermeasures):
            worked = [c for c, v in clean["none"]["per_case"].items() if v >= ATTACK_WORKS] if "none" in clean else []
            chosen = {c: max((cm for cm in measured if c in matrix[row][cm]["per_case"]),
                             key=lambda cm: 1 - matrix[row][cm]["per_case"][c]) for c in worked}
            matrix[row]["best"] = {"protection_success": _mean(matrix[row][chosen[c]]["per_case"][c] for c in worked),
                                   "cases_where_attack_worked": len(worked), "chosen": chosen}
    return {"columns": columns, "rows": rows, "clean": clean, "matrix": matrix}


def _verdict(figures: dict) -> str:
    """Whether some robust row keeps ROBUST_TARGET under every countermeasure that leaves the clean mimic working."""
    clean = {cm: figures["clean"][cm]["mimicry_success"] for cm in figures["columns"]}
    fair = [cm for cm, value in clean.items() if value is not None and value >= ATTACK_WORKS]
    ruinous = [cm for cm in figures["columns"] if cm not in fair]
    ruined = (f" The clean mimic itself fell below {ATTACK_WORKS:.0%} under {', '.join(ruinous)}: those "
              "countermeasures defeat the mimic, not the cloak, and are left out of the verdict." if ruinous else "")
    if not fair:
        return "No column's clean mimic worked, so this run shows nothing about protection." + ruined
    robust_rows = [r for r in figures["rows"] if r.endswith("+robust")] or figures["rows"]
    measured = {r: [cm for cm in fair if cm in figures["matrix"][r]] for r in robust_rows}
    # A row's lowest cell so far bounds it from above: a cell still to come (or a column whose clean side is still
    # to come) can only lower the lowest. So the bar can be known missed long before the matrix is whole.
    bounds = {r: min(figures["matrix"][r][cm]["protection_success"] or 0.0 for cm in cms) for r, cms in measured.items()
              if cms}
    if any(len(cms) < len(fair) for cms in measured.values()):
        if len(bounds) == len(robust_rows) and max(bounds.values()) < ROBUST_TARGET:
            best = max(bounds, key=bounds.get)
            return (f"The {ROBUST_TARGET:.0%} bar is **not reached**, before the matrix is whole: every robust row is "
                    f"already below it on the cells measured so far (the best, {best}, has {pct(bounds[best])} at its "
                    f"lowest, over {', '.join(measured[best])}), and the cells still to come can only lower a row's "
                    "lowest." + ruined)
        return "Not every cell the verdict needs is measured yet." + ruined
    best = max(bounds, key=bounds.get)
    held = bounds[best] >= ROBUST_TARGET
    return (f"The best robust protection, {best}, keeps at least {pct(bounds[best])} protection success under every "
            f"countermeasure that leaves the clean mimic working ({', '.join(fair)}): the {ROBUST_TARGET:.0%} bar is "
            f"{'reached' if held else '**not reached**'}." + ruined)


def write_matrix_report(config: EvaluationConfig, cleans: dict, cells: dict, out: str | Path, *,
                        missing: list[str] = (), command: str | None = None) -> dict:
    """``metrics.json``, ``report.md`` and ``matrix.png`` of the countermeasure matrix (``command``: the one
    command that runs or resumes it)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figures = matrix_figures(config, cleans, cells)
    any_part = next(iter(cleans.values()))
    metrics = {"name": config.name, "cases": [c["case"] for c in any_part["cases"]], **figures,
               "verdict": _verdict(figures), "missing": list(missing), "config": config.to_dict(),
               "hardware": any_part["hardware"], "versions": versions(), "command": command,
               "cpus": cpus_of_cases([*cleans.values(), *cells.values()]),
               "compute_seconds": sum(m["compute_seconds"] for m in [*cleans.values(), *cells.values()])}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1, default=str) + "\n")
    _draw(figures, out / "matrix.png")
    columns = [*figures["columns"], "best"]
    lines = [f"# Countermeasures: {config.name}", "",
             "Each cell: protection success (cloaked-mimic images not judged the artist's style) over the cases "
             f"whose clean mimic, under the same countermeasure, reached {ATTACK_WORKS:.0%}. `best`: per case, the "
             "countermeasure that helped the cloaked mimic most. In brackets, the cell's mimicry drop in points: the "
             "column's clean mimic's share minus the cloaked mimic's, case by case (0 for no cloak). `no cloak`: what a "
             "zero cloak scores in that column (the clean mimic's own misses).", "",
             f"- Cases: {', '.join(metrics['cases'])}; intensity `{config.matrix.intensity}`; "
             f"{config.generate.images_per_prompt} images per prompt.",
             f"- Hardware: {hardware_words(any_part['hardware'])}{cpus_words(metrics['cpus'])}; compute {metrics['compute_seconds'] / 60:.1f} min over all cells.",
             *([f"- Command (it resumes from the kept parts and case results): `{command}`."] if command else []),
             "", "| | " + " | ".join(f"`{c}`" for c in columns) + " |", "|---" * (len(columns) + 1) + "|",
             "| clean mimic | " + " | ".join(pct(figures["clean"][c]["mimicry_success"]) if c in figures["clean"]
                                             else "" for c in columns) + " |",
             "| no cloak | " + " | ".join(pct(figures["clean"][c]["no_cloak_protection_success"]) if c in figures["clean"]
                                          else "" for c in columns) + " |"]
    for row in figures["rows"]:
        lines.append(f"| {row} | " + " | ".join(_cell_text(figures["matrix"][row].get(c)) for c in columns) + " |")
    lines += ["", *_own_clean_sides(figures), f"**Verdict**: {metrics['verdict']}", "", "![matrix](matrix.png)", ""]
    if missing:
        lines += ["**Not measured yet**: " + "; ".join(missing) + ".", ""]
    (out / "report.md").write_text("\n".join(lines))
    return metrics


def _cell_text(cell: dict | None) -> str:
    if cell is None:
        return "not measured"
    if cell["cases_where_attack_worked"] == 0:
        return "no clean mimic to stop"
    drop = cell.get("mimicry_drop")  # best has none: its countermeasure differs from case to case
    return (pct(cell["protection_success"]) + ("" if drop is None else f" ({100 * drop:+.1f})")
            + (" †" if "own_clean_side" in cell else ""))


def _own_clean_sides(figures: dict) -> list[str]:
    """The note under the table for the cells (†) scored against a clean side of their own, not their column's."""
    own = [f"{row} against {cm} ({cell['own_clean_side']['hardware']}, clean mimic "
           f"{pct(cell['own_clean_side']['mimicry_success'])})"
           for row, cells in figures["matrix"].items() for cm, cell in cells.items() if "own_clean_side" in cell]
    if not own:
        return []
    return ["† Scored against a clean mimic of its own, trained on the machine its cloaked mimic was, not against "
            "the column's (a cell adopted from another comparison, or built on another CPU model): " + "; ".join(own)
            + ". Fine-tunes on different CPU models do not give the same bits (about ten points apart per case), so "
            "a cell is always paired with a clean mimic from its own machine.", ""]


def _draw(figures: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns, rows = figures["columns"], ["clean mimic", *figures["rows"]]
    values = [[figures["clean"][c]["mimicry_success"] for c in columns]]
    values += [[figures["matrix"][r].get(c, {}).get("protection_success") for c in columns] for r in figures["rows"]]
    fig, ax = plt.subplots(figsize=(1.3 * len(columns) + 2, 0.6 * len(rows) + 1.2))
    grid = [[float("nan") if v is None else v for v in row] for row in values]
    ax.imshow(grid, vmin=0, vmax=1, cmap="RdYlGn", aspect="auto")
    for i, row in enumerate(values):
        for j, v in enumerate(row):
            ax.text(j, i, "–" if v is None else f"{v:.0%}", ha="center", va="center", fontsize=9)
    ax.set_xticks(range(len(columns)), columns, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_title("clean mimicry (top row) and protection success", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
