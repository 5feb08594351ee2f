"""sfumato-mini: the architecture of the small embedded text-to-image model.

Stable Diffusion's own classes at a size that trains on a CPU: an 8x
``AutoencoderKL`` (128 px images, 16x16x8 latents), a ``UNet2DConditionModel``
with cross-attention, a small ``CLIPTextModel`` and a ``CLIPTokenizer`` whose
vocabulary is built in memory from the corpus's caption words (each a single
token; CLIP's pre-tokenizer splits digits, so "artist07" is "artist", "0", "7"). ``scripts/train_mini.py`` trains it; the
result is an ordinary diffusers pipeline folder under ``weights/sfumato-mini``.
"""

from __future__ import annotations

from .corpus import SKIMAGE_SOURCES, SKLEARN_SOURCES, artist_token
from .targets import NUM_STYLES

__all__ = ["RESOLUTION", "LATENT_CHANNELS", "MAX_TOKENS", "vae_config", "unet_config", "text_config",
           "caption_words", "learn_merges", "build_tokenizer"]

RESOLUTION = 128
LATENT_CHANNELS = 8
#: Captions are short; a 16-token context keeps the text encoder and cross-attention cheap.
MAX_TOKENS = 16


def vae_config() -> dict:
    """``AutoencoderKL`` settings: four blocks (8x), one resnet per encoder block.

    Four channels per GroupNorm group at the 16-channel full-resolution blocks: with
    one channel per group, the norm before ``conv_out`` erases each channel's mean
    and the decoder cannot reproduce an image's overall colour (PSNR stalls at 14 dB).
    """
    return dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
                up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(16, 32, 64, 64),
                layers_per_block=1, latent_channels=LATENT_CHANNELS, norm_num_groups=4,
                sample_size=RESOLUTION)


def unet_config() -> dict:
    """``UNet2DConditionModel`` settings for 16x16 latents, attention at 16, 8 and 4."""
    return dict(sample_size=RESOLUTION // 8, in_channels=LATENT_CHANNELS, out_channels=LATENT_CHANNELS,
                block_out_channels=(64, 128, 128), layers_per_block=1,
                down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
                cross_attention_dim=128, attention_head_dim=4, norm_num_groups=32)  # 4 heads (diffusers' legacy name)


def text_config(vocab_size: int) -> dict:
    """``CLIPTextConfig`` settings: 2 layers of width 128."""
    return dict(vocab_size=vocab_size, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                num_attention_heads=4, max_position_embeddings=MAX_TOKENS, projection_dim=128,
                bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1, pad_token_id=vocab_size - 1)


def caption_words() -> list[str]:
    """Every word the corpus's captions use, artist tokens first."""
    words = [artist_token(s) for s in range(NUM_STYLES)] + ["a", "painting", "by", "of", "in", "the", "style"]
    for content in list(SKIMAGE_SOURCES.values()) + list(SKLEARN_SOURCES.values()):
        words += content.split()
    return list(dict.fromkeys(words))


def learn_merges(pieces: list[str]) -> list[tuple[str, str]]:
    """Byte-pair merges that spell each piece as one token, CLIP-style (``</w>`` ends a word).

    Plain BPE training: merge the most frequent adjacent pair everywhere, until every
    piece is a single symbol. Ties go to the alphabetically first pair, so the result is
    the same in every process (the ``tokenizers`` trainer breaks ties in an order that
    changes between processes).
    """
    from collections import Counter

    corpus = Counter(tuple(piece[:-1]) + (piece[-1] + "</w>",) for piece in pieces if piece)
    merges = []
    while True:
        pairs = Counter()
        for symbols, count in corpus.items():
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] += count
        if not pairs:
            return merges
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merges.append(best)
        merged = Counter()
        for symbols, count in corpus.items():
            out, i = [], 0
            while i < len(symbols):
                if symbols[i : i + 2] == best:
                    out.append(best[0] + best[1])
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            merged[tuple(out)] += count
        corpus = merged


def build_tokenizer(words: list[str] | None = None):
    """A ``CLIPTokenizer`` built in memory: byte-level symbols plus one token per word.

    Any text tokenizes (unknown words fall back to characters); the letters of each of
    ``words`` (default :func:`caption_words`) form one token, by BPE merges learned on them
    (:func:`learn_merges`). The same in every process.
    """
    import re

    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer

    words = caption_words() if words is None else words
    symbols = sorted(ByteLevel.alphabet())
    # The pieces CLIP's pre-tokenizer will cut: letter runs and single digits.
    merges = learn_merges([piece for word in words for piece in re.findall(r"[^\W\d_]+|\d", word.lower())])
    vocab = {s: i for i, s in enumerate(symbols + [s + "</w>" for s in symbols])}
    for left, right in merges:
        vocab.setdefault(left + right, len(vocab))
    for token in ("<|startoftext|>", "<|endoftext|>"):
        vocab[token] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=MAX_TOKENS)
