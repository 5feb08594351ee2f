"""Rewrite the README's list of committed results from each report's own verdict (as the About tab quotes it).

    .venv/bin/python scripts/readme_results.py

The list sits between the README's ``<!-- results -->`` and ``<!-- /results -->`` markers: one line per
top-level folder of ``evaluation/results`` whose ``metrics.json`` states a verdict, in name order. The test
suite checks that the README says what the reports say; this writes it.
"""

from __future__ import annotations

import json
from pathlib import Path

from sfumato.ui.app import RESULTS, report_verdict

START, END = "<!-- results -->", "<!-- /results -->"


def results_lines(results: Path = RESULTS) -> list[str]:
    lines = []
    for path in sorted(results.glob("*/metrics.json")):
        text = report_verdict(json.loads(path.read_text()))
        if text is not None:
            lines.append(f"- [{path.parent.name}](evaluation/results/{path.parent.name}/report.md): {text}")
    return lines


def main() -> None:
    readme = RESULTS.parents[1] / "README.md"
    text = readme.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"README.md has no {START} ... {END} markers")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(head + START + "\n" + "\n".join(results_lines()) + "\n" + END + tail)


if __name__ == "__main__":
    main()
