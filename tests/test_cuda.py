"""The GPU paths, end to end: every protection, the robust and half-precision cloaks, the
countermeasures, poisoning and the evaluation harness with ``device="cuda"``.

Skipped without a CUDA GPU (the default suite runs on CPUs). ``SFUMATO_TEST_DEVICE=cpu``
runs the same checks on the CPU, to check the tests themselves:

    pytest -m gpu tests/test_cuda.py                              # on a GPU machine
    SFUMATO_TEST_DEVICE=cpu pytest -m gpu tests/test_cuda.py      # the tests' own logic, on a CPU
"""

from __future__ import annotations

import json
import os

import pytest
import torch
from conftest import make_artwork
from PIL import Image

from sfumato.api import Cloaker
from sfumato.config import resolve_config
from sfumato.losses import PROTECTIONS, needs_denoiser

pytestmark = pytest.mark.gpu
DEVICE = os.environ.get("SFUMATO_TEST_DEVICE", "cuda")
STEPS = 12  # enough for every objective to move; the CPU suite checks convergence


@pytest.fixture(scope="module")
def device():
    if DEVICE.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (or SFUMATO_TEST_DEVICE=cpu)")
    return DEVICE


@pytest.fixture(scope="module")
def cloaker(device):
    return Cloaker("mini", device=device, perceptual="effnet-lite0")


@pytest.fixture(scope="module")
def art():
    return [make_artwork(96, 128, seed=5)]


def _check_cloak(result, original, config):
    """What every written cloak must satisfy, whatever device made it."""
    image, report = result.image, result.report
    assert image.device.type == "cpu" and image.dtype == torch.float32 and image.shape == original.shape
    assert torch.equal(image, (image * 255).round() / 255), "the cloak must lie on the 8-bit grid"
    assert 0 < float((image - original).abs().max()) * 255 <= config.max_levels + 1e-4
    assert report["perceptual_distance"] <= report["perceptual_budget"] + 1e-6


@pytest.mark.parametrize("protection", list(PROTECTIONS))
def test_every_protection_cloaks_on_the_device_within_its_caps(cloaker, art, protection):
    config = resolve_config("default", STEPS, protection=protection)
    [result], _ = cloaker.cloak(art, config, target="3", seed=0)
    _check_cloak(result, art[0], config)
    if not needs_denoiser(protection):  # a denoiser's loss draws fresh noise each step: the CPU suite compares those
        assert result.report["loss_last"] < result.report["loss_first"]


def test_the_device_repeats_itself_and_lands_near_the_cpu_cloak(cloaker, art, device, record_property):
    """Same seed, same bytes on the CPU. A GPU's kernels may add in another order from run to run,
    and the optimiser's sign steps can turn a last-bit difference into a level here and there; the
    cloak still lands close, and as near the target as the CPU's."""
    config = resolve_config("default", STEPS)
    [first], _ = cloaker.cloak(art, config, target="3", seed=0)
    [again], _ = cloaker.cloak(art, config, target="3", seed=0)
    repeat = (first.image - again.image).abs() * 255
    record_property("repeat_levels_mean", float(repeat.mean()))
    record_property("repeat_levels_max", float(repeat.max()))
    if device == "cpu":
        assert torch.equal(first.image, again.image)
    assert float(repeat.mean()) < 0.5
    [on_cpu], _ = Cloaker("mini", device="cpu", perceptual="effnet-lite0").cloak(art, config, target="3", seed=0)

    def reach(report):
        return report["encoder_to_target_after"] / report["encoder_to_target_before"]

    record_property("cpu_levels_mean", float((first.image - on_cpu.image).abs().mean()) * 255)
    record_property("reach_device_cpu", [reach(first.report), reach(on_cpu.report)])
    assert reach(first.report) == pytest.approx(reach(on_cpu.report), abs=0.05)
    assert float((first.image - on_cpu.image).abs().mean()) * 255 < 2.0


def test_robust_cloak_on_the_device(cloaker, art):
    config = resolve_config("default", STEPS, robust=True)
    [result], _ = cloaker.cloak(art, config, target="3", seed=0)
    _check_cloak(result, art[0], config)


def test_half_precision_cloak(device, art):
    if device == "cpu":
        pytest.skip("half precision is for GPUs")
    config = resolve_config("default", STEPS)
    [result], _ = Cloaker("mini", device=device, half=True, perceptual="effnet-lite0").cloak(art, config, target="3")
    _check_cloak(result, art[0], config)
    assert result.report["encoder_to_target_after"] < result.report["encoder_to_target_before"]


@pytest.mark.parametrize("spec", ["jpeg:75", "noise:0.05", "resize:2", "diffpure:0.2", "upscale:0.1", "impress"])
def test_countermeasures_on_the_device(cloaker, device, spec):
    from sfumato.countermeasures import Purifier, apply_countermeasure

    images = torch.stack([make_artwork(64, 64, seed=s) for s in (1, 2)]).to(device)
    purifier = Purifier(cloaker.pipeline, cloaker.perceptual, budget=0.05, impress_steps=10)
    out = apply_countermeasure(spec, images, purifier=purifier, generator=torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.device == images.device
    written = out.cpu()  # the grid as a file holds it: the CPU divides exactly
    assert torch.equal(written, (written * 255).round() / 255) and float((out - images).abs().mean()) > 0


def test_poison_cli_on_the_device(device, tmp_path):
    from sfumato.cli import main

    source = tmp_path / "dog.png"
    Image.fromarray((make_artwork(72, 96).permute(1, 2, 0).numpy() * 255).round().astype("uint8")).save(source)
    out = tmp_path / "out"
    assert main(["poison", str(source), "--concept", "artist05", "--destination", "artist19", "--out", str(out),
                 "--quality", str(STEPS), "--device", device, "--quiet"]) == 0
    sidecar = json.loads((out / "dog.poison.json").read_text())
    assert sidecar["device"] == device and sidecar["linf_levels"] <= 8 + 1e-4


def test_evaluate_cli_on_the_device(device, tiny_pipeline_dir, tmp_path):
    """The whole harness (art, judge, cloak, both fine-tunes, sampling, scores) on a tiny pipeline."""
    from sfumato.cli import main

    art = tmp_path / "art"
    art.mkdir()
    for i in range(8):
        image = (make_artwork(80, 96, seed=i).permute(1, 2, 0).numpy() * 255).round().astype("uint8")
        Image.fromarray(image).save(art / f"work-{i}.png")
    config = tmp_path / "tiny.toml"
    config.write_text(f'name = "gpu"\nimages = 3\nart = "{art}"\n[protect]\nquality = "preview"\ntarget = "3"\n'
                      'countermeasure = "diffpure:0.2"\n[lora]\nsteps = 2\nbatch_size = 2\nrank = 2\n'
                      '[generate]\nimages_per_prompt = 2\nsteps = 2\n[art_judge]\nheld_out = 4\nbase_samples = 4\n'
                      'min_recall = 0.0\nmin_specificity = 0.0\nnegative_styles = 3\n')
    assert main(["evaluate", "--config", str(config), "--model", str(tiny_pipeline_dir), "--device", device,
                 "--work", str(tmp_path / "w"), "--quiet"]) == 0
    metrics = json.loads((tmp_path / "w" / "report" / "metrics.json").read_text())
    assert metrics["config"]["device"] == device
