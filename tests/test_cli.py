"""`sfumato cloak` on files: outputs, sidecars, determinism, alpha, and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import make_artwork
from PIL import Image

from sfumato.cli import main

FAST = ["--quality", "3", "--target", "4", "--quiet"]


def _save(path, height=64, width=80, seed=0, mode="RGB"):
    array = (make_artwork(height, width, seed).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    image = Image.fromarray(array)
    if mode == "RGBA":
        alpha = np.random.default_rng(seed).integers(0, 256, size=(height, width), dtype=np.uint8)
        alpha[:, :10] = 0
        image.putalpha(Image.fromarray(alpha))
    image.save(path)
    return path


@pytest.fixture
def out_dir(tmp_path):
    path = tmp_path / "out"
    path.mkdir()
    return path


def test_cloak_writes_png_and_sidecar(tmp_path, out_dir, tiny_vae_dir, capsys):
    src = _save(tmp_path / "art.png")
    assert main(["cloak", str(src), "--out", str(out_dir), "--model", str(tiny_vae_dir), *FAST]) == 0
    out = Image.open(out_dir / "art.cloaked.png")
    assert out.size == (80, 64) and out.mode == "RGB"
    sidecar = json.loads((out_dir / "art.cloak.json").read_text())
    for key in ("perceptual_metric", "perceptual_distance", "psnr_db", "ssim", "linf_levels",
                "encoder_to_target_before", "encoder_to_target_after", "encoder_to_original_after",
                "steps", "seconds", "device", "model", "sfumato_version", "config", "target_choice"):
        assert key in sidecar, key
    assert sidecar["target"] == "style-4" and sidecar["steps"] == 3
    assert sidecar["linf_levels"] <= sidecar["config"]["max_levels"]
    assert "art.png ->" in capsys.readouterr().out


def test_metadata_kept_unless_stripped(tmp_path, tiny_vae_dir):
    from PIL import ImageCms

    src = tmp_path / "signed.png"
    exif = Image.Exif()
    exif[0x013B], exif[0x8298] = "A. Painter", "(c) 2026 A. Painter"
    exif[0x010F] = "CameraCo"  # camera data: never copied into the cloaked copy
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.open(_save(tmp_path / "plain.png")).save(src, exif=exif.tobytes(), icc_profile=icc)
    for flags, kept in (([], True), (["--strip-metadata"], False)):
        out = tmp_path / f"out-{kept}"
        out.mkdir()
        assert main(["cloak", str(src), "--out", str(out), "--model", str(tiny_vae_dir), *FAST, *flags]) == 0
        written = Image.open(out / "signed.cloaked.png")
        assert (written.info.get("icc_profile") == icc) is kept
        tags = written.getexif()
        assert (tags.get(0x013B), tags.get(0x8298)) == (("A. Painter", "(c) 2026 A. Painter") if kept else (None, None))
        assert 0x010F not in tags


def test_same_seed_same_bytes(tmp_path, tiny_vae_dir):
    src = _save(tmp_path / "art.png", seed=1)
    outputs = []
    for run in ("a", "b", "c"):
        out = tmp_path / run
        out.mkdir()
        seed = "1" if run == "c" else "0"
        assert main(["cloak", str(src), "--out", str(out), "--model", str(tiny_vae_dir), "--seed", seed, *FAST]) == 0
        outputs.append((out / "art.cloaked.png").read_bytes())
    assert outputs[0] == outputs[1]
    assert outputs[0] != outputs[2]


def test_robust_cloak_from_the_command_line_is_repeatable(tmp_path, tiny_vae_dir):
    src = _save(tmp_path / "art.png", seed=2)
    written = []
    for run, flags in (("a", ["--robust"]), ("b", ["--robust"]), ("c", [])):
        out = tmp_path / run
        assert main(["cloak", str(src), "--out", str(out), "--model", str(tiny_vae_dir), *flags, *FAST]) == 0
        written.append((out / "art.cloaked.png").read_bytes())
        assert json.loads((out / "art.cloak.json").read_text())["config"]["robust"] is bool(flags)
    assert written[0] == written[1] != written[2]


def test_alpha_preserved_bit_exact(tmp_path, out_dir, tiny_vae_dir):
    src = _save(tmp_path / "sprite.png", mode="RGBA", seed=2)
    assert main(["cloak", str(src), "--out", str(out_dir), "--model", str(tiny_vae_dir), *FAST]) == 0
    before, after = np.asarray(Image.open(src)), np.asarray(Image.open(out_dir / "sprite.cloaked.png"))
    assert after.shape == before.shape
    assert np.array_equal(after[..., 3], before[..., 3])
    transparent = before[..., 3] == 0
    assert np.array_equal(after[transparent], before[transparent])


def test_auto_target_recorded(tmp_path, out_dir, tiny_vae_dir):
    srcs = [_save(tmp_path / f"a{i}.png", seed=i) for i in range(2)]
    args = ["cloak", *map(str, srcs), "--out", str(out_dir), "--model", str(tiny_vae_dir), "--quality", "2", "--quiet"]
    assert main(args) == 0
    records = [json.loads((out_dir / f"a{i}.cloak.json").read_text())["target_choice"] for i in range(2)]
    assert records[0]["choice"] == "auto" and len(records[0]["distances"]) == 26
    assert records[0]["target"] == records[1]["target"], "one artist, one target style"


def _bad_inputs(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    good = _save(tmp_path / "whole.png")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    text = tmp_path / "notes.png"
    text.write_text("this is not an image\n")
    tiny = _save(tmp_path / "tiny.png", height=10, width=10)
    bomb = tmp_path / "bomb.png"
    Image.new("L", (9000, 9000)).save(bomb)  # 81 MP of zeros: a few kB on disk
    return {"empty.png": empty, "truncated.png": truncated, "notes.png": text, "tiny.png": tiny, "bomb.png": bomb}


def test_bad_inputs_one_line_errors_and_no_output(tmp_path, out_dir, tiny_vae_dir, capsys):
    bad = _bad_inputs(tmp_path)
    good = _save(tmp_path / "fine.png", seed=3)
    code = main(["cloak", *map(str, bad.values()), str(good), "--out", str(out_dir), "--model", str(tiny_vae_dir), *FAST])
    assert code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    for name in bad:
        matching = [line for line in lines if name in line]
        assert len(matching) == 1, (name, err)
    assert sorted(p.name for p in out_dir.iterdir()) == ["fine.cloak.json", "fine.cloaked.png"]


def test_output_equal_to_an_input_is_refused(tmp_path, tiny_vae_dir, capsys):
    """art.png would be written to art.cloaked.png, which is itself an input here: never overwrite it."""
    src = _save(tmp_path / "art.png")
    earlier = _save(tmp_path / "art.cloaked.png", seed=5)
    before = earlier.read_bytes()
    code = main(["cloak", str(src), str(earlier), "--out", str(tmp_path), "--model", str(tiny_vae_dir), *FAST])
    assert code == 1
    assert earlier.read_bytes() == before
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert any("art.cloaked.png" in line and "input" in line for line in err), err
    assert not (tmp_path / "art.cloak.json").exists()
    assert (tmp_path / "art.cloaked.cloaked.png").exists()


@pytest.mark.parametrize("flags,match", [
    (["--intensity", "loud"], "unknown intensity"),
    (["--quality", "inf"], "unknown quality"),
    (["--target", "style-40"], "0 to 25"),
    (["--model", "./nowhere"], "not a folder"),
    (["--device", "gpu"], "unknown device"),
    (["--device", "cpu", "--half"], "half precision needs a GPU"),
])
def test_bad_settings_fail_early(tmp_path, out_dir, tiny_vae_dir, capsys, flags, match):
    src = _save(tmp_path / "art.png")
    args = ["cloak", str(src), "--out", str(out_dir), "--model", str(tiny_vae_dir), "--quiet", *flags]
    assert main(args) != 0
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err
    assert not any(out_dir.iterdir())


def test_corrupt_style_image_is_one_line(tmp_path, out_dir, tiny_vae_dir, capsys):
    src = _save(tmp_path / "art.png")
    style = tmp_path / "style.png"
    style.write_bytes(b"\x89PNG broken")
    code = main(["cloak", str(src), "--out", str(out_dir), "--model", str(tiny_vae_dir), "--target", str(style), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "style.png" in err and "Traceback" not in err
    assert not any(out_dir.iterdir())


def test_progress_bar_and_style_image_target(tmp_path, out_dir, tiny_vae_dir, capsys):
    src = _save(tmp_path / "art.png")
    style = _save(tmp_path / "style.png", height=96, width=96, seed=7)
    assert main(["cloak", str(src), "--out", str(out_dir), "--model", str(tiny_vae_dir), "--quality", "3",
                 "--target", str(style)]) == 0
    err = capsys.readouterr().err
    assert "art.png:" in err and "/3 [" in err and "step" in err, err
    assert json.loads((out_dir / "art.cloak.json").read_text())["target"] == "image:style.png"


def test_mini_without_weights_asks_for_model(tmp_path, out_dir, capsys, monkeypatch):
    monkeypatch.setattr("sfumato.models.EMBEDDED_DIR", tmp_path / "no-weights")  # a build without the weights
    src = _save(tmp_path / "art.png")
    assert main(["cloak", str(src), "--out", str(out_dir), "--quiet"]) == 1
    assert "--model" in capsys.readouterr().err


def test_jpeg_output_warns(tmp_path, out_dir, tiny_vae_dir, capsys):
    src = _save(tmp_path / "art.png")
    assert main(["cloak", str(src), "--out", str(out_dir), "--model", str(tiny_vae_dir), "--format", "jpeg", *FAST]) == 0
    assert "weakens" in capsys.readouterr().err
    assert Image.open(out_dir / "art.cloaked.jpg").format == "JPEG"


@pytest.mark.parametrize("protection", ["glaze", "photoguard", "untargeted", "advdm", "mist", "sds", "ace", "aspl", "udp", "style-dm"])
def test_every_protection_cloaks_offline_on_a_tiny_pipeline(tmp_path, out_dir, tiny_pipeline_dir, protection):
    src = _save(tmp_path / "art.png", height=72, width=96)
    args = ["cloak", str(src), "--out", str(out_dir), "--model", str(tiny_pipeline_dir), "--protection", protection,
            "--quality", "2", "--target", "4", "--quiet"]
    assert main(args) == 0
    sidecar = json.loads((out_dir / "art.cloak.json").read_text())
    assert sidecar["protection"] == protection and sidecar["config"]["protection"] == protection
    assert sidecar["working_resolution"] == 64 and sidecar["working_size"] == [80, 64]  # the tiny VAE's sample size
    first = (out_dir / "art.cloaked.png").read_bytes()
    assert main(args) == 0
    assert (out_dir / "art.cloaked.png").read_bytes() == first, "the same seed gives the same bytes"


def test_denoiser_protection_on_a_vae_only_model_is_one_line(tmp_path, out_dir, tiny_vae_dir, capsys):
    src = _save(tmp_path / "art.png")
    assert main(["cloak", str(src), "--out", str(out_dir), "--model", str(tiny_vae_dir), "--protection", "advdm",
                 *FAST]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot load the pipeline" in err and "model_index.json" in err
    assert not list(out_dir.iterdir()), "nothing is written when the model cannot serve the protection"


def test_missing_output_folder_is_created_and_a_file_is_refused(tmp_path, tiny_vae_dir, capsys):
    src = _save(tmp_path / "art.png")
    out = tmp_path / "new" / "cloaked"
    assert main(["cloak", str(src), "--out", str(out), "--model", str(tiny_vae_dir), *FAST]) == 0
    assert (out / "art.cloaked.png").is_file()
    sidecar = json.loads((out / "art.cloak.json").read_text())
    assert sidecar["input"] == "art.png" and sidecar["output"] == "art.cloaked.png", "file names, no folders"
    assert str(tmp_path) not in (out / "art.cloak.json").read_text()
    capsys.readouterr()
    assert main(["cloak", str(src), "--out", str(src), "--model", str(tiny_vae_dir), *FAST]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_every_option_states_its_default():
    """sfumato cloak, poison, evaluate and python app.py: each option's help says its default (or that it is required)."""
    from sfumato.cli import build_parser
    from sfumato.ui import build_parser as app_parser

    commands = build_parser()._subparsers._group_actions[0].choices
    assert set(commands) == {"cloak", "poison", "evaluate"}
    for name, parser in [*commands.items(), ("app.py", app_parser())]:
        for action in parser._actions:
            if action.dest == "help":
                continue
            text = action.help or ""
            assert "default" in text or "required" in text, f"{name} {action.option_strings or action.dest}: {text!r}"


def test_cloak_connects_nowhere_and_auto_metric_is_local(tmp_path, out_dir, tiny_vae_dir, monkeypatch):
    """Without HF_HUB_OFFLINE and without LPIPS's AlexNet weights on disk, nothing is fetched: the CLI is offline
    by default (it used to download the AlexNet weights), and 'auto' picks the metric the local files allow."""
    import os

    from conftest import guard_outside_connections

    from sfumato.perceptual import LpipsAlex

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    if LpipsAlex.weights_available():
        pytest.skip("torch.hub.set_dir() pinned a cache with the AlexNet weights in this process")
    src = _save(tmp_path / "art.png")
    with guard_outside_connections() as attempts:
        assert main(["cloak", str(src), "--out", str(out_dir), "--model", str(tiny_vae_dir), "--perceptual", "auto",
                     *FAST]) == 0
    assert attempts == [], f"outside connections: {attempts}"
    assert os.environ["HF_HUB_OFFLINE"] == "1", "the CLI stays off the hub unless --online"
    assert json.loads((out_dir / "art.cloak.json").read_text())["perceptual_metric"] == "effnet-lite0"


def test_module_entry_point_for_accelerate_launch():
    """``accelerate launch -m sfumato.cli evaluate ...`` (the GPU config's multi-GPU recipe) needs ``python -m``."""
    import subprocess
    import sys

    from sfumato import __version__

    done = subprocess.run([sys.executable, "-m", "sfumato.cli", "--version"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == f"sfumato {__version__}", done.stderr
