"""The walkthrough notebook runs top to bottom, offline, on the embedded model (any cell error fails)."""

from __future__ import annotations

import os
from pathlib import Path


NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "walkthrough.ipynb"


def test_notebook_is_saved_without_outputs():
    import nbformat

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)


def test_walkthrough_executes(tmp_path):
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    [parameters] = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    parameters.source = "IMAGES, LORA_STEPS, SAMPLES = 2, 20, 4"  # the mechanics, not the figures (papermill's way)
    env = {"HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg", "TMPDIR": str(tmp_path)}
    previous = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits them
    try:
        NotebookClient(notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        for k, v in previous.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    outputs = "".join(o.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs)
    assert "protection success" in outputs and "PSNR" in outputs
    assert "the attack works on the originals" in outputs or "the attack did not work here" in outputs, "the verdict"
    assert (tmp_path / "sfumato-walkthrough" / "report" / "report.md").is_file()
