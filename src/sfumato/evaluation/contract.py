"""The on-disk contract between stages: a folder per stage, with a ``manifest.json``.

A stage is a plain function that fills a fresh folder. :func:`run_stage` calls it
only when the folder's manifest does not already record the same settings and the
same inputs (the manifests of the stages it reads), so an interrupted run resumes
where it stopped, and a rerun with the same settings does nothing. The folder is
filled under a temporary name and renamed when complete: a half-written stage is
never mistaken for a finished one. Jobs that share a work folder take turns at a
stage (a lock file beside its folder), so the second one reuses what the first built.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from PIL import Image

__all__ = ["MANIFEST", "run_stage", "resume_folder", "stage_lock", "is_current", "read_manifest", "write_images",
           "read_images", "versions", "hardware"]

MANIFEST = "manifest.json"


def versions() -> dict:
    import diffusers
    import peft

    from .. import __version__

    return {"sfumato": __version__, "torch": torch.__version__, "diffusers": diffusers.__version__,
            "peft": peft.__version__, "python": platform.python_version()}


def hardware() -> dict:
    """The machine a stage ran on."""
    cpu = platform.machine()
    if Path("/proc/cpuinfo").is_file():
        cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), cpu)
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return {"platform": platform.platform(), "cpu": cpu, "threads": torch.get_num_threads(), "gpu": gpu,
            "torch": torch.__version__}


def comparison_command(name: str, work: str | Path, report: str | Path) -> str:
    """The one command that runs (or resumes) a comparison, as its report names it."""
    return f"sfumato evaluate --config {name} --jobs 2 --work {work} --report {report}"


def cpus_of_cases(metrics: list[dict]) -> dict[str, int]:
    """How many case runs each CPU model made, over reports' ``metrics.json`` (a case entry's own ``hardware``,
    else its report's): fine-tunes on different CPU models do not give the same bits."""
    counts: dict[str, int] = {}
    for m in metrics:
        for case in m["cases"]:
            cpu = case.get("hardware", m["hardware"]).get("cpu", "?")
            counts[cpu] = counts.get(cpu, 0) + 1
    return counts


def cpus_words(counts: dict[str, int]) -> str:
    """'' for one CPU model; else ' (case runs on A: n, B: m)' for a report's hardware line."""
    return "" if len(counts) < 2 else " (case runs on " + ", ".join(f"{cpu}: {n}" for cpu, n in counts.items()) + ")"


def hardware_words(hw: dict, threads=None) -> str:
    """A :func:`hardware` record in words for a report: "Intel Xeon, 1 thread per job, no GPU, torch 2.x".
    ``threads``: the thread counts of the stages behind the report, where they differ from ``hw``'s."""
    counts = sorted(set(threads or [])) or [hw.get("threads", "?")]
    return (f"{hw.get('cpu', '?')}, {' or '.join(map(str, counts))} thread{'' if counts == [1] else 's'} per job, "
            f"{hw.get('gpu') or 'no GPU'}, torch {hw.get('torch', '?')}")


def _key(stage: str, settings: dict, inputs: list[dict]) -> str:
    blob = json.dumps({"stage": stage, "settings": settings, "inputs": [m["key"] for m in inputs]}, sort_keys=True,
                      default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def read_manifest(folder: str | Path) -> dict | None:
    path = Path(folder) / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else None


def is_current(stage: str, folder: str | Path, settings: dict, inputs: list[dict] = ()) -> bool:
    """Whether ``folder`` already holds this stage's output for these settings and inputs."""
    found = read_manifest(folder)
    return found is not None and found.get("key") == _key(stage, settings, list(inputs))


def run_stage(stage: str, folder: str | Path, settings: dict, build, *, inputs: list[dict] = (), log=print,
              resumable: bool = False) -> dict:
    """Run ``build(folder) -> dict`` unless ``folder`` already holds this stage for these settings.

    Args:
        stage (`str`): the stage's name.
        folder (`str` or `Path`): its output folder.
        settings (`dict`): everything that decides its output (JSON-serialisable), seeds included.
        build: fills the (fresh, empty) folder it is given and returns figures for the manifest.
        inputs (`list[dict]`): the manifests of the stages it reads; a change upstream reruns it.
        resumable (`bool`): call ``build(folder, resume)`` instead, ``resume`` being the stage's
            :func:`resume_folder`, where a long build keeps its finished pieces across interruptions.

    Returns:
        `dict`: the stage's manifest, with ``"reused": True`` when nothing was run.
    """
    folder, inputs = Path(folder), list(inputs)
    with stage_lock(folder):  # a second process at the same stage waits here, then reuses it
        if resumable:
            resume, resumable_build = resume_folder(stage, folder, settings, inputs), build
            build = lambda out: resumable_build(out, resume)  # noqa: E731
        return _run_unlocked(stage, folder, settings, build, inputs, log)


def resume_folder(stage: str, folder: str | Path, settings: dict, inputs: list[dict] = ()) -> Path:
    """Where a long stage may keep its finished pieces, so that a rerun after an interruption (a session's end)
    starts from the first missing one: beside ``folder``, named by the stage's key, so that a change of
    settings or upstream starts afresh. :func:`run_stage` removes it once the stage is done."""
    folder = Path(folder)
    return folder.with_name(f"{folder.name}.resume-{_key(stage, settings, list(inputs))}")


@contextmanager
def stage_lock(folder: Path):
    """Hold the lock file ``.NAME.lock`` beside a stage's folder (POSIX; a no-op where fcntl is missing).

    Jobs run side by side on one work folder (two benchmark parts, say) then share a stage
    neither has yet instead of both building it into the same ``.partial`` folder. Folders
    built outside :func:`run_stage` (the corpora) take the same lock.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.with_name(f".{folder.name}.lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes, or when the process dies
        yield


def _run_unlocked(stage: str, folder: Path, settings: dict, build, inputs: list[dict], log) -> dict:
    key = _key(stage, settings, inputs)
    if is_current(stage, folder, settings, inputs):
        log(f"[{stage}] reused {folder}")
        return read_manifest(folder) | {"reused": True}
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    log(f"[{stage}] running -> {folder}")
    started = time.perf_counter()
    figures = build(partial) or {}
    manifest = {"stage": stage, "key": key, "settings": settings, "inputs": [m["key"] for m in inputs],
                "seconds": round(time.perf_counter() - started, 2), "versions": versions(), "hardware": hardware(),
                "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"), **figures}
    (partial / MANIFEST).write_text(json.dumps(manifest, indent=1, default=str) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(partial, folder)
    for kept in folder.parent.glob(f"{folder.name}.resume-*"):
        shutil.rmtree(kept, ignore_errors=True)
    log(f"[{stage}] done in {manifest['seconds']:.1f} s")
    return manifest | {"reused": False}


def write_images(folder: Path, images: torch.Tensor, names: list[str]) -> None:
    """(N, 3, H, W) images in [0, 1] -> ``folder/NAME.png`` (8-bit RGB)."""
    from ..io import to_uint8

    if len(images) != len(names):
        raise ValueError(f"{len(images)} images for {len(names)} names")
    for image, name in zip(images, names):
        Image.fromarray(to_uint8(image)).save(folder / f"{name}.png")


def read_images(folder: Path, names: list[str]) -> torch.Tensor:
    """The PNGs written by :func:`write_images`, back as (N, 3, H, W) in [0, 1]."""
    arrays = [np.asarray(Image.open(Path(folder) / f"{name}.png").convert("RGB")) for name in names]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255
