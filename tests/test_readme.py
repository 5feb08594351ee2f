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


def cloak_examples() -> list[str]:
    """Every ``.venv/bin/sfumato cloak`` command in the README's bash blocks (continuation lines joined)."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    commands = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith(".venv/bin/sfumato cloak"):
                commands.append(line)
    return commands


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
    inputs = [a for a in args[1:args.index("--out")]]
    expected = [p.stem for i in inputs for p in (sorted(Path(i).iterdir()) if Path(i).is_dir() else [Path(i)])]
    assert sorted(p.name for p in out.glob("*.cloaked.png")) == sorted(f"{stem}.cloaked.png" for stem in expected)
