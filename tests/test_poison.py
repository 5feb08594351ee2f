"""Nightshade's poison on tiny dummy components: the concepts, the anchor target, the objective and `sfumato poison`."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import get_dummy_vae, make_artwork
from test_cli import _save

from sfumato.cli import main
from sfumato.cloak import cloak_image
from sfumato.config import resolve_config
from sfumato.models import VaeEncoder
from sfumato.poison import Anchor, check_concepts, concept_prompt, poison_config

FAST = ["--quality", "3", "--quiet"]


def test_concepts_are_checked():
    check_concepts("artist05", "artist19")
    check_concepts("a dog", "a cat", model="some/sd-model")  # any words on other models
    for concept, destination, match in (("artist05", "artist05", "must differ"), ("dog", "artist19", "unknown concept"),
                                        ("artist05", "artist26", "unknown destination"), ("", "artist19", "empty")):
        with pytest.raises(ValueError, match=match):
            check_concepts(concept, destination)
    assert concept_prompt(" artist05 ") == "a painting by artist05"


def test_a_poison_conditions_on_its_concepts_caption_and_needs_a_target():
    """A denoiser-aware poison reads the image as the trainer will: under the caption of A, not a generic one."""
    config = poison_config("artist05", objective="style-dm")
    assert config.protection == "style-dm" and config.caption == "a painting by artist05"
    assert config.caption != resolve_config(protection="style-dm").caption
    with pytest.raises(ValueError, match="no target"):
        poison_config("artist05", objective="advdm")


def test_the_anchor_is_resized_to_what_the_optimiser_sees():
    anchor = Anchor(make_artwork(32, 48, seed=1), name="anchor:artist19#0")
    out = anchor(torch.zeros(2, 3, 16, 24))
    assert out.shape == (2, 3, 16, 24) and anchor.name == "anchor:artist19#0"
    with pytest.raises(ValueError, match="an anchor is"):
        Anchor(torch.zeros(1, 3, 8, 8))


def test_the_poison_moves_the_encoders_view_towards_the_anchor(perceptual):
    encoder = VaeEncoder(get_dummy_vae())
    config = resolve_config("default", "20")
    image, anchor = make_artwork(64, 64, seed=0), Anchor(make_artwork(64, 64, seed=7))
    result = cloak_image(image, encoder, anchor, perceptual, config, generator=torch.Generator().manual_seed(0))
    report = result.report
    assert report["encoder_to_target_after"] < report["encoder_to_target_before"]
    assert report["linf_levels"] <= 8 + 1e-4 and report["perceptual_distance"] <= report["perceptual_budget"] + 1e-6


def test_poison_cli_writes_image_caption_and_sidecar_and_skips_a_bad_file(tmp_path, tiny_pipeline_dir, capsys):
    good = _save(tmp_path / "dog.png", height=72, width=96)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    out = tmp_path / "out"
    args = ["poison", str(good), str(bad), "--concept", "artist05", "--destination", "artist19", "--out", str(out),
            "--model", str(tiny_pipeline_dir), *FAST]
    assert main(args) == 1  # one input failed, the other was done
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert err[0].startswith("error: broken.png") and "1 of 2 inputs failed" in err[-1]
    assert sorted(p.name for p in out.iterdir()) == ["dog.poison.json", "dog.poisoned.png", "dog.poisoned.txt"]
    assert (out / "dog.poisoned.txt").read_text() == "a painting by artist05\n"
    sidecar = json.loads((out / "dog.poison.json").read_text())
    assert sidecar["concept"] == "artist05" and sidecar["destination"] == "artist19"
    assert sidecar["target"] == "anchor:artist19#0" and sidecar["anchor_prompt"] == "a painting by artist19"
    assert sidecar["linf_levels"] <= 8 + 1e-4 and sidecar["input"] == "dog.png"
    first = (out / "dog.poisoned.png").read_bytes()
    main(args)
    assert (out / "dog.poisoned.png").read_bytes() == first, "the same seed gives the same bytes"


@pytest.mark.parametrize("extra, message", [(["--concept", "artist05", "--destination", "artist05"], "must differ"),
                                            (["--concept", "dog", "--destination", "artist19"], "unknown concept"),
                                            (["--concept", "artist05", "--destination", "artist19", "--objective",
                                              "advdm"], "invalid choice")])
def test_poison_cli_refuses_bad_concepts_before_any_work(tmp_path, extra, message, capsys):
    src = _save(tmp_path / "dog.png")
    try:
        code = main(["poison", str(src), "--out", str(tmp_path / "out"), *extra, *FAST])
    except SystemExit as exit:  # argparse's own refusal of an unknown choice
        code = exit.code
    assert code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
