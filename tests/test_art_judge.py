"""The judge of an art folder's own style (``sfumato evaluate --art DIR``): split, training, refusals, end to end."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest
import torch

from sfumato.corpus import build_corpus, read_manifest
from sfumato.evaluation.art_judge import (ARTIST, MIN_HELD_OUT, ArtJudgeSettings, check_art_counts, held_out_rates,
                                          own_styles, train_art_judge, weakness)
from sfumato.evaluation.stages import VICTIM_CORPUS, image_set, stage_art
from sfumato.judge import load_judge
from sfumato.targets import BuiltinStyle

STYLE = 7  # a built-in victim style: the test artist's folder is the corpus's images in it


@pytest.fixture(scope="module")
def corpus_art(tmp_path_factory):
    """A folder of one artist's images built from the corpus: its content crops rendered in style 7 (30 images)."""
    corpus = tmp_path_factory.mktemp("corpus")
    build_corpus(corpus, replace(VICTIM_CORPUS, styles=(STYLE,), crops_per_split=2))
    folder = tmp_path_factory.mktemp("artist")
    for row in read_manifest(corpus):
        shutil.copy(corpus / row["file"], folder / f"{row['source']}-{len(list(folder.iterdir())):02d}.png")
    return folder


@pytest.fixture(scope="module")
def style_judge():
    return load_judge()


def _folder_of(tmp_path, source, count):
    folder = tmp_path / f"art-{count}"
    folder.mkdir()
    for path in sorted(source.iterdir())[:count]:
        shutil.copy(path, folder / path.name)
    return folder


def test_the_split_keeps_the_judges_images_from_the_mimic(corpus_art, tmp_path):
    stage_art(tmp_path / "a", victim=None, art=str(corpus_art), artist="sks", count=10, resolution=64, seed=0,
              corpus=tmp_path, held_out=8)
    _, mimic = image_set(tmp_path / "a")
    _, held = image_set(tmp_path / "a" / "held-out")
    assert len(mimic["names"]) == 10 and len(held["names"]) == 8
    assert not set(mimic["names"]) & set(held["names"])
    stage_art(tmp_path / "b", victim=None, art=str(corpus_art), artist="sks", count=10, resolution=64, seed=1,
              corpus=tmp_path, held_out=8)
    assert image_set(tmp_path / "b")[1]["names"] != mimic["names"], "the split is the case seed's draw"
    second = _folder_of(tmp_path, corpus_art, 5)
    stage_art(tmp_path / "c", victim=None, art=str(corpus_art), artist="sks", count=10, resolution=64, seed=0,
              corpus=tmp_path, held_out=8, judge_art=str(second))
    assert sorted(image_set(tmp_path / "c" / "held-out")[1]["names"]) == sorted(p.stem for p in second.iterdir())


def test_counts_are_checked_before_any_work():
    settings = ArtJudgeSettings()
    check_art_counts("art", 24, 16, settings)
    with pytest.raises(ValueError, match=r"art: 23 images, too few to split: --art needs at least 24 \(16 to train"):
        check_art_counts("art", 23, 16, settings)
    with_second = replace(settings, judge_art="more")
    check_art_counts("art", 16, 16, with_second, judge_found=MIN_HELD_OUT)
    with pytest.raises(ValueError, match="more: 3 images, the style judge needs at least 4"):
        check_art_counts("art", 16, 16, with_second, judge_found=3)
    with pytest.raises(ValueError, match="held_out must be >= 4"):
        ArtJudgeSettings(held_out=3)


def test_own_styles_finds_the_built_in_style_of_a_folder(corpus_art, style_judge):
    images, _ = _images(corpus_art, 12)
    assert own_styles(style_judge, images) == [STYLE]
    other = BuiltinStyle(3)(images)
    assert own_styles(style_judge, other) == [3]


def _images(folder, count):
    from sfumato.evaluation.stages import _square
    from sfumato.io import load_image

    paths = sorted(folder.iterdir())[:count]
    return torch.stack([_square(load_image(p).rgb, 128) for p in paths]), paths


def test_weakness_names_the_figures_and_the_thresholds():
    settings = ArtJudgeSettings()
    assert weakness({"recall": 0.9, "specificity": 0.95, "positives": 16, "negatives": 400}, settings) is None
    why = weakness({"recall": 0.5, "specificity": 0.95, "positives": 16, "negatives": 400}, settings)
    assert "recall 50%" in why and "at least 80% and 90%" in why


def test_evaluate_art_reports_the_artists_judge_mimicry_and_protection(tiny_pipeline_dir, corpus_art, tmp_path,
                                                                      capsys):
    """The acceptance run: sfumato evaluate --art on a folder built from the corpus, with the default judge settings."""
    from sfumato.cli import main

    config = tmp_path / "tiny.toml"
    config.write_text('name = "art"\nimages = 8\n[protect]\nquality = "preview"\ntarget = "3"\n'
                      '[lora]\nsteps = 2\nbatch_size = 2\nrank = 2\n[generate]\nimages_per_prompt = 4\nsteps = 2\n')
    code = main(["evaluate", "--config", str(config), "--model", str(tiny_pipeline_dir), "--art", str(corpus_art),
                 "--work", str(tmp_path / "w"), "--quiet"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "mimicry success: base" in out.out and "protection success" in out.out
    metrics = json.loads((tmp_path / "w" / "report" / "metrics.json").read_text())
    case = metrics["cases"][0]
    judge = case["art_judge"]
    assert judge["positives"] == 8 and judge["negatives"] > 8  # the mimic's training images, unseen by the judge
    assert judge["recall"] >= 0.8 and judge["specificity"] >= 0.9  # the defaults it had to pass
    assert set(case["scores"]["mimicry_success"]) == {"base", "clean", "cloaked"}
    assert case["scores"]["protection_success"] == pytest.approx(1 - case["scores"]["mimicry_success"]["cloaked"])
    record = json.loads((tmp_path / "w" / "sks-seed0" / "judge" / "judge.json").read_text())
    assert record["excluded_styles"] == [STYLE]  # the artist's own style is not among the negatives
    assert "held-out recall" in (tmp_path / "w" / "report" / "report.md").read_text()


def test_evaluate_refuses_a_folder_of_five_images_in_one_line(corpus_art, tmp_path, capsys):
    from sfumato.cli import main

    small = _folder_of(tmp_path, corpus_art, 5)
    code = main(["evaluate", "--art", str(small), "--work", str(tmp_path / "w"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1
    assert "5 images, too few to split: --art needs at least 24" in err and "--judge-art" in err
    assert not (tmp_path / "w").exists(), "refused before any work"


def test_a_weak_judge_is_refused_before_the_fine_tunes(tiny_pipeline_dir, corpus_art, tmp_path, monkeypatch):
    from sfumato.evaluation import EvaluationConfig, GenerateSettings, ProtectSettings, run_evaluation
    from sfumato.evaluation import art_judge
    from sfumato.finetune import LoraSettings

    monkeypatch.setattr(art_judge, "held_out_rates",
                        lambda judge, pos, neg: {"recall": 0.25, "specificity": 1.0, "positives": len(pos),
                                                 "negatives": len(neg)})
    config = EvaluationConfig(model=str(tiny_pipeline_dir), art=str(corpus_art), images=8,
                              protect=ProtectSettings(quality="preview"), lora=LoraSettings(steps=2, batch_size=2),
                              generate=GenerateSettings(images_per_prompt=2, steps=2),
                              art_judge=ArtJudgeSettings(base_samples=4, negative_styles=3))
    messages = []
    with pytest.raises(ValueError, match="too weak to trust: held-out recall 25%"):
        run_evaluation(config, tmp_path, log=messages.append)
    assert not any("[finetune-clean] running" in m for m in messages)


def test_train_art_judge_separates_one_style_from_the_others_on_unseen_content(corpus_art, style_judge):
    images, _ = _images(corpus_art, 16)
    train, test = images[:8], images[8:]
    others = [BuiltinStyle(s) for s in (0, 3, 5, 11, 19)]
    judge = train_art_judge(style_judge.trunk, train, torch.cat([o(train) for o in others]))
    assert judge.head.out_features == 2
    rates = held_out_rates(judge, test, torch.cat([o(test) for o in others]))
    assert rates["recall"] >= 0.8 and rates["specificity"] >= 0.9
    assert judge.probabilities(test).argmax(-1).eq(ARTIST).float().mean() == rates["recall"]
