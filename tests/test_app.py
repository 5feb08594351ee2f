"""The web app, driven through gradio_client against a live local server (embedded sfumato-mini, offline)."""

from __future__ import annotations

import json
import socket
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sfumato.cloak import visible_perturbation
from sfumato.ui.handlers import Limits, check_uploads

from conftest import guard_outside_connections, make_artwork

@pytest.fixture(scope="module")
def outside_connections():
    """Every connection attempt to a non-loopback address while the app runs (there must be none)."""
    with guard_outside_connections() as attempts:
        yield attempts


@pytest.fixture(scope="module")
def server(outside_connections):
    import os

    from sfumato.ui import build_app, stay_offline
    from sfumato.ui.app import THEME

    os.environ.pop("HF_HUB_OFFLINE", None)  # as `python app.py` starts: stay_offline() must do the work
    stay_offline()
    assert os.environ["HF_HUB_OFFLINE"] == "1"

    app = build_app(limits=Limits(max_files=4))
    app.queue(default_concurrency_limit=2)
    _, url, _ = app.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=None, theme=THEME, quiet=True)
    yield url
    app.close()


@pytest.fixture(scope="module")
def uploads(tmp_path_factory):
    folder = tmp_path_factory.mktemp("uploads")
    rgb = (make_artwork(96, 128, seed=1).permute(1, 2, 0).numpy() * 255).round().astype("uint8")
    Image.fromarray(rgb).save(folder / "painting.png")
    rgba = np.dstack([(make_artwork(112, 80, seed=2).permute(1, 2, 0).numpy() * 255).round().astype("uint8"),
                      np.full((112, 80), 255, np.uint8)])
    rgba[:30, :40, 3] = 0
    rgba[60:, :, 3] = 128
    Image.fromarray(rgba, "RGBA").save(folder / "sketch.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    return folder


def _client(url):
    from gradio_client import Client

    return Client(url, verbose=False)


def test_cloak_two_images_one_rgba_files_keep_size_and_alpha(server, uploads):
    from gradio_client import handle_file

    status, _, _, gallery, figures, downloads = _client(server).predict(
        [handle_file(str(uploads / "painting.png")), handle_file(str(uploads / "sketch.png"))],
        "default", "faster", "style-3", "mini", 0, "glaze", api_name="/cloak")
    assert status.startswith("Cloaked 2 image(s)")
    files = {Path(p).name: Path(p) for p in downloads}
    assert set(files) == {"painting.cloaked.png", "painting.cloak.json", "sketch.cloaked.png", "sketch.cloak.json",
                          "sfumato-cloaked.zip"}
    painting = Image.open(files["painting.cloaked.png"])
    assert painting.size == (128, 96) and painting.mode == "RGB"
    sketch, original = Image.open(files["sketch.cloaked.png"]), Image.open(uploads / "sketch.png")
    assert sketch.size == (80, 112) and sketch.mode == "RGBA"
    assert np.array_equal(np.asarray(sketch)[..., 3], np.asarray(original)[..., 3])  # alpha intact
    changed = np.abs(np.asarray(sketch)[..., :3].astype(int) - np.asarray(original)[..., :3].astype(int))
    assert 0 < changed.max() <= 8  # the default intensity's cap
    sidecar = json.loads(files["sketch.cloak.json"].read_text())
    assert sidecar["target"] == "style-3" and sidecar["quality"] == "faster"
    assert [row[0] for row in figures["data"]] == ["painting.png", "sketch.png"]
    with zipfile.ZipFile(files["sfumato-cloaked.zip"]) as archive:
        assert sorted(archive.namelist()) == sorted(n for n in files if n != "sfumato-cloaked.zip")
    assert len(gallery) == 2


def test_poison_tab_writes_poisoned_images_with_captions_and_skips_a_bad_file(server, uploads):
    from gradio_client import handle_file

    status, gallery, downloads = _client(server).predict(
        [handle_file(str(uploads / "broken.png")), handle_file(str(uploads / "painting.png"))],
        "artist05", "artist19", "default", "faster", "mini", 0, api_name="/poison")
    assert status.startswith("Poisoned 1 image(s).") and "skipped broken.png" in status
    files = {Path(p).name: Path(p) for p in downloads}
    assert set(files) == {"painting.poisoned.png", "painting.poisoned.txt", "painting.poison.json",
                          "sfumato-poisoned.zip"}
    assert files["painting.poisoned.txt"].read_text() == "a painting by artist05\n"
    sidecar = json.loads(files["painting.poison.json"].read_text())
    assert sidecar["target"] == "anchor:artist19#0" and sidecar["destination"] == "artist19"
    assert sidecar["linf_levels"] <= 8 + 1e-4 and len(gallery) == 1


def test_poison_tab_refuses_a_destination_equal_to_the_concept(server, uploads):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="must differ"):
        _client(server).predict([handle_file(str(uploads / "painting.png"))], "artist05", "artist05", "default",
                                "faster", "mini", 0, api_name="/poison")


def test_preview_one_image_in_seconds(server, uploads):
    from gradio_client import handle_file

    status, slider, perturbation, gallery, figures, downloads = _client(server).predict(
        [handle_file(str(uploads / "painting.png")), handle_file(str(uploads / "sketch.png"))],
        "default", "auto", "mini", 0, "glaze", api_name="/preview")
    assert status.startswith("**Preview only** of painting.png") and "do not publish" in status  # the first image only
    assert len(figures["data"]) == 1 and figures["data"][0][0] == "painting.png"
    names = sorted(Path(d).name for d in downloads)
    assert names == ["painting.cloak.json", "painting.preview.png"], "named as a preview, and no ZIP"
    assert Path(perturbation).is_file() and len(slider) == 2


def test_corrupt_upload_gives_a_clear_error_and_others_go_on(server, uploads):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    client = _client(server)
    status, *_, downloads = client.predict(
        [handle_file(str(uploads / "broken.png")), handle_file(str(uploads / "painting.png"))],
        "low", "faster", "style-5", "mini", 0, "glaze", api_name="/cloak")
    assert status.startswith("Cloaked 1 image(s).") and status.count("skipped broken.png") == 1
    assert any(Path(p).name == "painting.cloaked.png" for p in downloads)
    # One message for the one failed file, in the status line: no error badge on every panel.
    status, slider, perturbation, gallery, figures, downloads = client.predict(
        [handle_file(str(uploads / "broken.png"))], "default", "faster", "auto", "mini", 0, "glaze", api_name="/cloak")
    assert status.startswith("No image could be cloaked:") and status.count("broken.png") == 1
    assert slider is None and perturbation is None and not gallery and not downloads
    with pytest.raises(AppError, match="Upload at least one image"):
        client.predict([], "default", "faster", "auto", "mini", 0, "glaze", api_name="/cloak")


def test_stop_ends_a_running_cloak_within_seconds(server, uploads, tmp_path, monkeypatch):
    """Stop (as closing the tab does) makes the server's worker quit at its next optimiser step."""
    import time

    import sfumato.api
    from gradio_client import handle_file

    steps, original = [], sfumato.api.cloak_image

    def observed(*args, callback=None, **kwargs):
        def step(s, loss):
            steps.append(time.monotonic())
            if callback is not None:
                callback(s, loss)
        return original(*args, callback=step, **kwargs)

    monkeypatch.setattr(sfumato.api, "cloak_image", observed)
    big = tmp_path / "big.png"
    Image.fromarray((make_artwork(256, 256, seed=11).permute(1, 2, 0).numpy() * 255).round().astype("uint8")).save(big)
    client = _client(server)
    job = client.submit([handle_file(str(big))], "default", "slower", "style-3", "mini", 0, "glaze", api_name="/cloak")
    deadline = time.monotonic() + 120
    while len(steps) < 5 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(steps) >= 5, "the cloak did not start"
    client.predict(api_name="/stop")
    stopped = time.monotonic()
    time.sleep(4)
    assert steps[-1] < stopped + 3, "the worker kept computing after Stop"
    assert len(steps) < 250, "stopped before the last of the slower preset's 250 steps"
    job.cancel()


def test_two_clients_at_once_get_their_own_results(server, uploads):
    from gradio_client import handle_file

    jobs = {}
    barrier = threading.Barrier(2)

    def cloak(name, seed):
        client = _client(server)
        barrier.wait()
        jobs[name] = client.predict([handle_file(str(uploads / name))], "default", "faster", "style-3", "mini", seed,
                                    "glaze", api_name="/cloak")

    threads = [threading.Thread(target=cloak, args=(n, s)) for n, s in (("painting.png", 1), ("sketch.png", 2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name, seed in (("painting.png", 1), ("sketch.png", 2)):
        downloads = jobs[name][5]
        assert {Path(p).name for p in downloads} == {f"{Path(name).stem}.cloaked.png", f"{Path(name).stem}.cloak.json",
                                                     "sfumato-cloaked.zip"}
        sidecar = json.loads(next(Path(p) for p in downloads if p.endswith(".json")).read_text())
        assert sidecar["seed"] == seed and sidecar["input"] == name


def test_no_outside_connection(server, outside_connections):
    import urllib.request

    page = urllib.request.urlopen(server).read().decode()
    assert "sfumato" in page
    assert outside_connections == []
    assert "fonts.googleapis.com" not in page


def test_upload_limits(tmp_path):
    paths = []
    for i in range(5):
        path = tmp_path / f"{i}.png"
        Image.new("RGB", (64, 64)).save(path)
        paths.append(path)
    big = tmp_path / "big.bin"
    big.write_bytes(b"0" * (2 * 2**20))
    kept, errors = check_uploads(paths + [big], Limits(max_files=6, max_file_mb=1))
    assert kept == paths and errors == ["big.bin: 2 MB, over the 1 MB limit"]
    kept, errors = check_uploads(paths, Limits(max_files=3))
    assert kept == paths[:3] and "at most 3 per run" in errors[0]


def test_amplified_perturbation_spans_the_range():
    import torch

    before = torch.full((3, 4, 4), 0.5)
    after = before.clone()
    after[0, 0, 0] += 4 / 255
    after[1, 1, 1] -= 2 / 255
    view = visible_perturbation(before, after)
    assert view[0, 0, 0] == pytest.approx(1.0) and view[1, 1, 1] == pytest.approx(0.25) and view[2, 2, 2] == 0.5


def test_evaluate_tab_runs_the_harness_on_uploaded_art(tiny_pipeline_dir, tmp_path):
    from dataclasses import replace

    from gradio_client import Client, handle_file

    from sfumato.evaluation import load_config
    from sfumato.evaluation.art_judge import ArtJudgeSettings
    from sfumato.finetune import LoraSettings
    from sfumato.ui import build_app

    art = []
    for i in range(7):  # 3 train the mimic, 4 its judge
        path = tmp_path / f"work-{i}.png"
        Image.fromarray((make_artwork(64, 64, seed=i).permute(1, 2, 0).numpy() * 255).round().astype("uint8")).save(path)
        art.append(path)
    quick = load_config("mini-quick")
    tiny = replace(quick, model=str(tiny_pipeline_dir), images=3,
                   protect=replace(quick.protect, quality="preview", target="3"),
                   lora=LoraSettings(steps=2, batch_size=2, rank=2, alpha=2.0),
                   generate=replace(quick.generate, images_per_prompt=2, steps=2),
                   art_judge=ArtJudgeSettings(held_out=4, base_samples=4, min_recall=0, min_specificity=0, negative_styles=3))
    app = build_app(evaluation=tiny, work=tmp_path / "work")
    app.queue()
    _, url, _ = app.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        figure, chart, summary = Client(url, verbose=False).predict("artist02", [handle_file(str(p)) for p in art],
                                                                   api_name="/evaluate")
    finally:
        app.close()
    assert Path(figure).is_file() and Image.open(figure).width > 200
    assert "# Mimicry evaluation" in summary and "sks" in summary


def test_same_name_uploaded_twice_gets_two_outputs(tmp_path, tiny_vae_dir):
    from sfumato.ui.handlers import ModelPool, cloak_uploads

    paths = []
    for i in range(2):
        folder = tmp_path / f"upload{i}"
        folder.mkdir()
        image = (make_artwork(64, 64, seed=i).permute(1, 2, 0).numpy() * 255).round().astype("uint8")
        Image.fromarray(image).save(folder / "art.png")
        paths.append(folder / "art.png")
    batch = cloak_uploads(ModelPool(), paths, tmp_path / "out", model=str(tiny_vae_dir), quality="2", target="3")
    assert [r.output.name for r in batch.results] == ["art.cloaked.png", "art-2.cloaked.png"]
    assert [r.sidecar.name for r in batch.results] == ["art.cloak.json", "art-2.cloak.json"]
    assert all(r.sidecar.is_file() for r in batch.results) and not batch.errors


def test_a_robust_cloak_is_recorded_in_the_sidecar(tmp_path, tiny_vae_dir):
    from sfumato.ui.handlers import ModelPool, cloak_uploads

    (tmp_path / "in").mkdir()
    image = (make_artwork(64, 64, seed=6).permute(1, 2, 0).numpy() * 255).round().astype("uint8")
    Image.fromarray(image).save(tmp_path / "in" / "art.png")
    batch = cloak_uploads(ModelPool(), [tmp_path / "in" / "art.png"], tmp_path / "out", model=str(tiny_vae_dir),
                          quality="2", target="3", robust=True)
    sidecar = json.loads(batch.results[0].sidecar.read_text())
    assert not batch.errors and sidecar["config"]["robust"] is True and sidecar["robust"] is True


def test_a_denoiser_protection_cloaks_on_a_tiny_pipeline(tmp_path, tiny_pipeline_dir):
    from sfumato.ui.handlers import ModelPool, cloak_uploads

    (tmp_path / "in").mkdir()
    image = (make_artwork(80, 64, seed=4).permute(1, 2, 0).numpy() * 255).round().astype("uint8")
    Image.fromarray(image).save(tmp_path / "in" / "art.png")
    batch = cloak_uploads(ModelPool(), [tmp_path / "in" / "art.png"], tmp_path / "out", model=str(tiny_pipeline_dir),
                          quality="2", target="3", protection="advdm")
    assert not batch.errors
    sidecar = json.loads(batch.results[0].sidecar.read_text())
    assert sidecar["protection"] == "advdm" and sidecar["config"]["protection"] == "advdm"
    with pytest.raises(ValueError, match="unknown protection"):
        cloak_uploads(ModelPool(), [tmp_path / "in" / "art.png"], tmp_path / "out", model=str(tiny_pipeline_dir),
                      protection="nightshade")


def test_unknown_model_is_a_clear_error(tmp_path, uploads):
    from sfumato.models import ModelLoadError
    from sfumato.ui.handlers import ModelPool, cloak_uploads

    with pytest.raises(ModelLoadError, match="not-a-folder"):
        cloak_uploads(ModelPool(), [uploads / "painting.png"], tmp_path, model=str(tmp_path / "not-a-folder"))


def test_app_py_command_line_serves_on_loopback(monkeypatch):
    import os
    import urllib.request

    from sfumato.ui import serve

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    app = serve(["--port", str(port), "--max-file-mb", "2.5", "--concurrency", "1"], block=False)
    try:
        assert app.local_url.startswith(f"http://127.0.0.1:{port}")
        assert app.max_file_size == int(2.5 * 2**20)
        assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"
        assert b"sfumato" in urllib.request.urlopen(app.local_url).read()
    finally:
        app.close()


def test_about_tab_and_readme_quote_every_reports_verdict():
    """The figure a person reads is each report's verdict (over the cases where the attack worked), with the
    protection, its intensity and its PSNR, read from the committed metrics.json, never a mean inflated by
    failed attacks."""
    from sfumato.evaluation.summary import headline
    from sfumato.ui.app import RESULTS, about_text, report_verdict

    readme = (RESULTS.parents[1] / "README.md").read_text()
    about = about_text()
    reports = sorted(RESULTS.glob("*/metrics.json"))
    assert reports
    for path in reports:
        metrics = json.loads(path.read_text())
        text = report_verdict(metrics)
        if text is None:
            continue
        assert f"`{path.parent.name}`: {text}" in about
        assert f"[{path.parent.name}](evaluation/results/{path.parent.name}/report.md): {text}" in readme
        if "protections" not in metrics and headline(metrics) is None:
            continue  # a poisoning run's or a countermeasure matrix's own verdict
        if metrics["config"].get("clean_only"):
            assert text.startswith("clean-only run, no cloak") and "reached 60 %" in text
        else:
            assert "over the" in text and "PSNR" in text and "levels" in text and "where the clean mimic worked" in text
