"""The poisoning experiment's stages and report, end to end on a tiny pipeline and a stand-in corpus."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from conftest import make_artwork
from PIL import Image

from sfumato.corpus import PRETRAIN_STYLES, artist_token
from sfumato.evaluation import EvaluationConfig, GenerateSettings
from sfumato.evaluation.config import PoisonSettings
from sfumato.evaluation.poisoning import run_poisoning, run_poisoning_jobs
from sfumato.evaluation.stages import image_set
from sfumato.finetune import LoraSettings


def _corpus(folder, split, styles, per_style):
    rows = []
    for style in styles:
        for k in range(per_style):
            rel = f"{split}/style-{style:02d}/img-{k:03d}.png"
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            image = make_artwork(64, 64, seed=100 * style + k)
            Image.fromarray((image.permute(1, 2, 0).numpy() * 255).round().astype("uint8")).save(folder / rel)
            rows.append({"file": rel, "split": split, "style": style, "artist": artist_token(style),
                         "caption": f"a painting by {artist_token(style)}", "source": f"src{k}", "box": [0, 0, 64, 64]})
    (folder / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    root = tmp_path_factory.mktemp("poison-corpus")
    _corpus(root / "pretrain", "pretrain", PRETRAIN_STYLES[:4], 2)
    _corpus(root / "concepts", "eval", (5, 12, 19), 4)
    return root


def _config(model, corpus, **changes):
    poison = PoisonSettings(concept=5, destination=19, clean_pairs=6, counts=(0, 2, 3), quality="preview",
                            other_images=1, related=(0, 1))
    return EvaluationConfig(name="tiny-poison", model=str(model), corpus=str(corpus), poison=poison,
                            lora=LoraSettings(steps=2, batch_size=2, rank=2, alpha=2.0, learning_rate=1e-2),
                            generate=GenerateSettings(images_per_prompt=2, steps=2, batch_size=18), **changes)


def test_poisoning_runs_every_stage_and_reports_the_curve(tiny_pipeline_dir, corpora, tmp_path):
    config = _config(tiny_pipeline_dir, corpora)
    messages, work = [], tmp_path / "work"
    # One one-thread process per kind runs first (--jobs 2); the report then reuses everything they built.
    metrics = run_poisoning_jobs(config, work, tmp_path / "report", jobs=2, log=messages.append)
    assert not any("running" in m for m in messages), "the report reuses both kinds' jobs"
    for kind, other in (("dirty-label", "poison"), ("poison", "dirty_label")):
        first = json.loads((work / f"report-{kind}" / "metrics.json").read_text())
        assert set(first[kind.replace("-", "_")]) == {"0", "2", "3"} and first.get(other) is None
    candidates, record = image_set(work / "candidates")
    assert len(candidates) == 3 and record["alignment"] == sorted(record["alignment"], reverse=True)
    poisoned, poison_record = image_set(work / "poison-set-preview")  # the tiny run's quality is in its names
    assert poisoned.shape == candidates.shape and set(poison_record["captions"]) == {"a painting by artist05"}
    assert max(f["linf_levels"] for f in poison_record["figures"]) <= 8 + 1e-4
    assert set(image_set(work / "dirty-set")[1]["captions"]) == {"a painting by artist05"}
    trained = sorted(f.name for f in work.glob("train-*"))
    assert trained == ["train-clean", "train-dirty-label-2", "train-dirty-label-3", "train-poison-2-preview",
                       "train-poison-3-preview"]
    for key in ("0", "2", "3"):
        assert 0 <= metrics["poison"][key]["attack_success"] <= 1 and key in metrics["dirty_label"]
    assert metrics["poison"]["0"] == metrics["dirty_label"]["0"], "N = 0 is the same clean model"
    assert set(metrics["bleed_through"]["poison-3"]) == {"related", "unrelated", "related_as_prompted"}
    assert "base" in metrics["collateral"] and metrics["verdict"].startswith("the poison")
    for name in ("report.md", "metrics.json", "attack-success.png", "grid.png"):
        assert (tmp_path / "report" / name).is_file(), name
    report = (tmp_path / "report" / "report.md").read_text()
    assert "| poison | 3 |" in report and "The 3 poisons: mean PSNR" in report and "min over the stages" in report
    assert "own time, where it was recorded (3 of 3), adds up to" in report
    assert metrics["poison_set"]["images"] == 3 and metrics["compute_seconds"] > 0

    messages.clear()
    again = run_poisoning(config, work, tmp_path / "report", log=messages.append)
    assert not any("running" in m for m in messages), "a rerun reuses every stage"
    assert again["poison"] == metrics["poison"]

    # A second objective in the same work folder shares the clean stages and keeps its own poison side.
    messages.clear()
    other = replace(config, poison=replace(config.poison, objective="style-dm", kinds=("poison",), counts=(0, 3)))
    screened = run_poisoning(other, work, tmp_path / "report-style-dm", log=messages.append)
    running = {m.split("]")[0][1:] for m in messages if "running" in m}
    assert running == {"poison-set", "train-poison-3", "samples-poison-3-concept", "samples-poison-3-others"}
    assert (work / "poison-set-style-dm-preview" / "manifest.json").is_file()
    assert (work / "train-poison-3-style-dm-preview").is_dir()
    assert set(screened["poison"]) == {"0", "3"} and screened["poison"]["0"] == metrics["poison"]["0"]
    messages.clear()
    run_poisoning(config, work, tmp_path / "report", log=messages.append)
    assert not any("running" in m for m in messages), "the first objective's stages are untouched"

    # Another destination leaves the clean model but changes the other artists: their samples are made again.
    messages.clear()
    moved = replace(config, poison=replace(config.poison, destination=12, kinds=("dirty-label",), counts=(0,)))
    run_poisoning(moved, work, tmp_path / "report-12", log=messages.append)
    running = {m.split("]")[0][1:] for m in messages if "running" in m}
    assert running == {"samples-base-others", "samples-clean-others"}, running


def test_poison_settings_refuse_bad_experiments():
    with pytest.raises(ValueError, match="two different pretraining artists"):
        PoisonSettings(concept=5, destination=5)
    with pytest.raises(ValueError, match="two different pretraining artists"):
        PoisonSettings(concept=2, destination=19)  # artist02 is a held-out victim, not a pretraining artist
    with pytest.raises(ValueError, match="counts must rise from 0"):
        PoisonSettings(counts=(25, 50))
    with pytest.raises(ValueError, match="no target to point the poison at"):
        PoisonSettings(objective="advdm")
    assert PoisonSettings(concept=5, destination=19).related_concepts == (0, 1, 3, 4, 6, 8, 9)
    # Another poison keeps its own side of a shared work folder; the paper's default keeps the plain names.
    assert PoisonSettings().poison_side("poison-set") == "poison-set"
    assert PoisonSettings(objective="style-dm").poison_side("train-poison-200") == "train-poison-200-style-dm"
    assert PoisonSettings(intensity="high", quality="faster").poison_side("poison-set") == "poison-set-high-faster"


def test_poison_kinds_flag_is_for_a_poisoning_config(capsys):
    from sfumato.cli import main

    assert main(["evaluate", "--config", "mini-quick", "--poison-kinds", "poison", "--quiet"]) == 2
    assert "--poison-kinds is for a poisoning config" in capsys.readouterr().err
    assert main(["evaluate", "--config", "mini-quick", "--jobs", "2", "--quiet"]) == 2
    assert "--jobs is for a comparison (mini-bench, mini-counter, --protections) or a poisoning" in capsys.readouterr().err


def test_verdict_says_when_the_dirty_label_control_failed_too():
    from sfumato.evaluation.poisoning_report import _verdict

    p = PoisonSettings(counts=(0, 25, 200))
    row = lambda share: {"attack_success": share}  # noqa: E731
    failed = {"poison": {"0": row(0.0), "25": row(0.0), "200": row(0.05)},
              "dirty_label": {"0": row(0.0), "25": row(0.1), "200": row(0.3)}}
    verdict = _verdict(failed, p)
    assert "best 5.0 % at N = 200" in verdict and "cannot tell whether the poison works" in verdict
    control_worked = {**failed, "dirty_label": {**failed["dirty_label"], "200": row(0.9)}}
    assert "cannot tell" not in _verdict(control_worked, p)
    works = {"concept": "artist05", "destination": "artist12", "poison": {"0": row(0.0), "25": row(0.8), "200": row(0.9)},
             "dirty_label": {"0": row(0.0), "25": row(0.2), "200": row(0.95)}}
    assert _verdict(works, p).startswith("the poison works: at N = 25")
    assert _verdict(works, p).endswith("more than with dirty-label pairs.")
    poison_only = {"poison": failed["poison"]}  # a screen of the poison alone says so, and no control verdict
    assert _verdict(poison_only, p).endswith("(best 5.0 % at N = 200); no dirty-label pairs were run.")
    assert _verdict({**works, "dirty_label": {}}, p).endswith("(no dirty-label pairs were run).")


def test_an_interrupted_poison_set_resumes_from_its_finished_poisons(tiny_pipeline_dir, tmp_path, monkeypatch):
    from sfumato.api import Cloaker
    from sfumato.evaluation.contract import resume_folder, run_stage
    from sfumato.evaluation.poisoning import stage_poison_set
    from sfumato.evaluation.stages import _write_set

    images = torch.stack([make_artwork(64, 64, seed=k) for k in range(3)])
    _write_set(tmp_path / "candidates", images, ["a", "b", "c"], ["a painting by artist05"] * 3)
    settings = PoisonSettings(concept=5, destination=19, quality="preview")
    calls, cloak = [], Cloaker.cloak

    def counted(self, *args, **kwargs):
        if len(calls) == 2 and fail:
            raise KeyboardInterrupt  # the session ends during the third poison
        calls.append(1)
        return cloak(self, *args, **kwargs)

    monkeypatch.setattr(Cloaker, "cloak", counted)
    folder, key = tmp_path / "poison-set", {"settings": "these"}
    resume = resume_folder("poison-set", folder, key)
    build = lambda out, kept: stage_poison_set(out, tmp_path / "candidates", settings=settings,  # noqa: E731
                                               model=str(tiny_pipeline_dir), seed=0, resume=kept)
    fail = True
    with pytest.raises(KeyboardInterrupt):
        run_stage("poison-set", folder, key, build, log=lambda m: None, resumable=True)
    assert sorted(p.name for p in resume.iterdir()) == ["0000.json", "0000.png", "0001.json", "0001.png"]
    fail = False
    manifest = run_stage("poison-set", folder, key, build, log=lambda m: None, resumable=True)
    assert len(calls) == 3, "the rerun computes the missing poison only"
    assert manifest["resumed"] == 2, "the report can say which poisons' time this run does not count"
    assert not resume.exists(), "a finished stage removes what it kept"
    resumed, record = image_set(folder)

    calls.clear()
    fresh = tmp_path / "fresh"
    fresh_manifest = run_stage("poison-set", fresh, key, lambda out: stage_poison_set(
        out, tmp_path / "candidates", settings=settings, model=str(tiny_pipeline_dir), seed=0), log=lambda m: None)
    again, fresh_record = image_set(fresh)
    assert len(calls) == 3 and torch.equal(resumed, again), "resuming changes no poison"
    assert fresh_manifest["resumed"] == 0 and fresh_manifest["poison_seconds"] > 0
    untimed = lambda figures: [{k: v for k, v in f.items() if k != "seconds"} for f in figures]  # noqa: E731
    assert untimed(record["figures"]) == untimed(fresh_record["figures"])
    assert resume_folder("poison-set", folder, {"settings": "others"}) != resume
