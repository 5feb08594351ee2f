"""The README's own command-line examples, run as written on photographs, offline, with outside connections refused."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from conftest import guard_outside_connections
from PIL import Image

from sfumato.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


def examples(command: str) -> list[str]:
    """Every ``.venv/bin/sfumato COMMAND`` line in the README's bash blocks (continuation lines joined)."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    return [line for line in lines if line.startswith(f".venv/bin/sfumato {command} ")]


def cloak_examples() -> list[str]:
    return examples("cloak") + examples("poison")  # poison takes the same inputs and --out


def _photographs(folder: Path) -> None:
    """The files the examples name, from scikit-image's photographs (real photos shipped on PyPI)."""
    from skimage import data

    photos = {"a.png": data.astronaut(), "b.jpg": data.coffee(), "sketch.png": data.chelsea(),
              "starry-night.jpg": data.rocket(), "my-art/cat.png": data.chelsea(), "my-art/coffee.jpg": data.coffee()}
    for name, array in photos.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.asarray(array)).save(folder / name)


def test_readme_has_the_cloak_examples():
    examples = cloak_examples()
    assert len(examples) >= 5 and any("--protection" in e for e in examples) and any("prompt:" in e for e in examples)


@pytest.mark.parametrize("command", sorted(set(cloak_examples())))
def test_readme_cloak_example_runs_offline(command, tmp_path, monkeypatch):
    _photographs(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # the command itself must keep offline
    args = shlex.split(command)[1:]
    with guard_outside_connections() as attempts:
        assert main(args) == 0, command
    assert attempts == [], f"{command}: outside connections {attempts}"
    out = Path(args[args.index("--out") + 1])
    inputs = args[1:next(i for i, a in enumerate(args) if a.startswith("--"))]
    expected = [p.stem for i in inputs for p in (sorted(Path(i).iterdir()) if Path(i).is_dir() else [Path(i)])]
    kind = {"cloak": "cloaked", "poison": "poisoned"}[args[0]]
    assert sorted(p.name for p in out.glob(f"*.{kind}.png")) == sorted(f"{stem}.{kind}.png" for stem in expected)


def evaluate_examples() -> list[str]:
    return examples("evaluate")


@pytest.mark.parametrize("command", sorted(set(evaluate_examples())))
def test_readme_evaluate_example_resolves_offline(command, tmp_path, monkeypatch):
    """Each evaluate example parses, loads its config and reaches the harness offline; the harness itself is
    stood in for here (the runs take from 15 minutes to days), and a real run of the harness through the same
    command line is tested on a tiny pipeline in test_evaluation.py."""
    import os

    import sfumato.evaluation
    import sfumato.evaluation.benchmark
    import sfumato.evaluation.matrix
    import sfumato.evaluation.poisoning

    reached = []
    monkeypatch.setattr(sfumato.evaluation, "run_evaluation",
                        lambda config, work, report, **kw: reached.append((config, report)) or {"aggregate": {}})
    monkeypatch.setattr(sfumato.evaluation.benchmark, "run_benchmark",
                        lambda config, work, report, **kw: reached.append((config, report)) or {"protections": {}})
    monkeypatch.setattr(sfumato.evaluation.matrix, "run_matrix",
                        lambda config, work, report, **kw: reached.append((config, report)) or {"verdict": "-"})
    monkeypatch.setattr(sfumato.evaluation.poisoning, "run_poisoning",
                        lambda config, work, report, **kw: reached.append((config, report)) or {"verdict": "-"})
    monkeypatch.setattr(sfumato.evaluation.poisoning, "run_poisoning_jobs",  # --jobs N: processes see no patch
                        lambda config, work, report, **kw: reached.append((config, report)) or {"verdict": "-"})
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    args = shlex.split(command)[1:]
    with guard_outside_connections() as attempts:
        assert main(args) == 0, command
    assert attempts == []
    (config, report), = reached
    assert config.name == args[args.index("--config") + 1] and str(report) == args[args.index("--report") + 1]
    assert os.environ["HF_HUB_OFFLINE"] == "1", "the command keeps itself offline"


def test_readme_has_the_evaluate_examples():
    assert {"mini-quick", "mini-full", "mini-bench", "mini-poison", "mini-counter"} <= {
        c.split("--config ")[1].split()[0] for c in evaluate_examples()}


def test_a_benchmark_part_without_the_sweep(monkeypatch, tmp_path):
    """--protections a,b --no-sweep: those protections at the main intensity only (a part to run beside others)."""
    import sfumato.evaluation.benchmark

    from sfumato.evaluation.workers import CaseWorkers

    reached = []
    monkeypatch.setattr(sfumato.evaluation.benchmark, "run_benchmark",
                        lambda config, work, report, **kw: reached.append((config, kw)) or {"protections": {}})
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", "--config", "mini-bench", "--protections", "advdm,mist", "--no-sweep"]) == 0
    bench = reached[0][0].benchmark
    assert bench.protections == ("advdm", "mist") and bench.sweep_intensities == () and bench.intensities == ("default",)
    assert reached[0][1]["workers"] is None, "one process unless --jobs"
    assert main(["evaluate", "--config", "mini-bench", "--jobs", "2", "--quiet"]) == 0
    workers = reached[1][1]["workers"]
    assert isinstance(workers, CaseWorkers) and workers.jobs == 2
