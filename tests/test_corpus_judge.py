"""The sfumato-mini corpus builder and the style judge, at toy scale."""

from __future__ import annotations

import json

import pytest
import torch

from sfumato.corpus import (PRETRAIN_STYLES, SPLIT_STYLES, VICTIM_STYLES, CorpusConfig, build_corpus, caption,
                            load_images, read_manifest)
from sfumato.judge import StyleJudge, fit_linear_head, load_judge, save_judge_head

TOY = CorpusConfig(resolution=32, crops_per_split=1, sources=("chelsea", "flower.jpg"), max_style_side=48)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus")
    build_corpus(path, TOY)
    return path


def test_victims_are_held_out_of_pretraining():
    assert not set(VICTIM_STYLES) & set(PRETRAIN_STYLES)
    assert len(VICTIM_STYLES) + len(PRETRAIN_STYLES) == 26


def test_corpus_layout_and_captions(corpus):
    rows = read_manifest(corpus)
    assert len(rows) == 2 * sum(len(SPLIT_STYLES[s]) for s in TOY.splits)
    assert {r["style"] for r in rows if r["split"] == "pretrain"} == set(PRETRAIN_STYLES)
    assert {r["style"] for r in rows if r["split"] == "victim"} == set(VICTIM_STYLES)
    row = next(r for r in rows if r["source"] == "chelsea")
    assert row["caption"] == caption(row["style"], "a cat") == f"a painting by artist{row['style']:02d} of a cat"
    from PIL import Image

    assert Image.open(row["file"]).size == (32, 32)


def test_load_images_of_manifest_rows(corpus):
    rows = read_manifest(corpus, "victim")
    images = load_images(rows)
    assert images.shape == (len(rows), 3, 32, 32) and images.dtype == torch.uint8


def test_splits_never_share_content(corpus):
    rows = read_manifest(corpus)
    for source in {r["source"] for r in rows}:
        boxes = {}
        for r in rows:
            if r["source"] == source:
                boxes.setdefault(r["split"], set()).add(tuple(r["box"]))
        for a in boxes:
            for b in boxes:
                if a < b:
                    for (l1, t1, r1, b1) in boxes[a]:
                        for (l2, t2, r2, b2) in boxes[b]:
                            assert r1 <= l2 or r2 <= l1 or b1 <= t2 or b2 <= t1, (source, a, b)


def test_corpus_is_deterministic_and_reused(corpus, tmp_path):
    again = tmp_path / "again"
    build_corpus(again, TOY)
    assert (again / "manifest.jsonl").read_text() == (corpus / "manifest.jsonl").read_text()
    first = read_manifest(corpus)[5]["file"]
    assert open(first, "rb").read() == open(first.replace(str(corpus), str(again)), "rb").read()

    class Refuses:
        def stylize(self, *args, **kwargs):
            raise AssertionError("a finished corpus must not be rendered again")

    build_corpus(again, TOY, engine=Refuses())
    assert json.loads((again / "corpus.json").read_text())["images"] == len(read_manifest(again))


def test_a_style_subset_renders_the_same_images(corpus, tmp_path):
    from dataclasses import replace

    build_corpus(tmp_path, replace(TOY, splits=("victim",), styles=(VICTIM_STYLES[0],)))
    rows = read_manifest(tmp_path)
    full = read_manifest(corpus, "victim", styles=(VICTIM_STYLES[0],))
    assert len(rows) == len(full) == 2 and {r["style"] for r in rows} == {VICTIM_STYLES[0]}
    assert torch.equal(load_images(rows), load_images(full))


def test_extra_folders_of_artwork(tmp_path):
    from PIL import Image

    from sfumato.corpus import load_sources

    for folder in ("a", "b"):
        (tmp_path / folder / "sub").mkdir(parents=True)
        Image.new("RGB", (80, 64), "red").save(tmp_path / folder / "sub" / "wall.png")
    config = CorpusConfig(sources=("chelsea",), extra_dirs=(str(tmp_path / "a"), str(tmp_path / "b")))
    names = [name for name, _, _ in load_sources(config)]
    assert names == ["chelsea", "extra0_sub_wall", "extra1_sub_wall"]


def test_bad_corpus_settings():
    with pytest.raises(ValueError, match="unknown sources"):
        CorpusConfig(sources=("mona-lisa",))
    with pytest.raises(ValueError, match="unknown splits"):
        CorpusConfig(splits=("train",))


@pytest.fixture(scope="module")
def judge():
    return StyleJudge(num_styles=3)


def test_judge_fits_separable_features_and_round_trips(judge, tmp_path):
    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 1280, generator=generator)
    labels = torch.arange(3).repeat(20)
    features = centres[labels] + 0.5 * torch.randn(60, 1280, generator=generator)
    fit_linear_head(judge, features, labels, steps=50)
    assert (judge.logits_from_features(features).argmax(-1) == labels).all()
    save_judge_head(judge, tmp_path / "judge.safetensors")
    loaded = load_judge(tmp_path / "judge.safetensors", trunk=judge.trunk)
    images = torch.rand(2, 3, 40, 56, generator=generator)
    probabilities = loaded.probabilities(images)
    assert probabilities.shape == (2, 3)
    assert torch.allclose(probabilities.sum(-1), torch.ones(2))
    assert torch.allclose(probabilities, judge.probabilities(images))


def test_judge_features_are_size_independent_in_shape(judge):
    assert judge.features(torch.rand(3, 3, 64, 96, generator=torch.Generator().manual_seed(1))).shape == (3, 1280)
    with pytest.raises(ValueError, match="B, 3, H, W"):
        judge.features(torch.rand(3, 64, 64))


def test_missing_judge_weights(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_judge"):
        load_judge(tmp_path / "none.safetensors")
