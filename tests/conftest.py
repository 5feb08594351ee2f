"""Shared fixtures: tiny seeded diffusers components, built in code as diffusers' own tests do."""

from __future__ import annotations

import contextlib
import os
import socket

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import numpy as np
import pytest
import torch


def get_dummy_vae(seed: int = 0):
    """A tiny random AutoencoderKL with Stable Diffusion's layout: 8x downsampling, 4 latent channels."""
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)  # tests only: diffusers' components take no generator
    return AutoencoderKL(
        block_out_channels=(8, 16, 16, 16),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=4,
        sample_size=64,
    ).eval()


def get_dummy_components(seed: int = 0) -> dict:
    """Every component of a tiny StableDiffusionPipeline, with an in-memory CLIP tokenizer."""
    from diffusers import DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16,
        norm_num_groups=4,
        attention_head_dim=2,
    )
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=0, eos_token_id=2, pad_token_id=1, hidden_size=16, intermediate_size=32,
        layer_norm_eps=1e-05, num_attention_heads=2, num_hidden_layers=2, vocab_size=1000,
        max_position_embeddings=77,
    ))
    return {
        "unet": unet,
        "scheduler": scheduler,
        "vae": get_dummy_vae(seed),
        "text_encoder": text_encoder,
        "tokenizer": get_dummy_tokenizer(),
        "safety_checker": None,
        "feature_extractor": None,
        "image_encoder": None,
    }


def get_dummy_tokenizer():
    """A CLIPTokenizer built from an in-memory byte-level vocabulary (no files)."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer

    symbols = sorted(ByteLevel.alphabet())
    vocab = {s: i for i, s in enumerate(symbols + [s + "</w>" for s in symbols])}
    for token in ("<|startoftext|>", "<|endoftext|>"):
        vocab[token] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


LOOPBACK = ("127.0.0.1", "::1", "localhost")


@contextlib.contextmanager
def guard_outside_connections():
    """Refuse, and record, every connection to a non-loopback address made inside the block."""
    attempts, original = [], socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else str(address)
        if self.family in (socket.AF_INET, socket.AF_INET6) and host not in LOOPBACK:
            attempts.append(address)
            raise OSError(f"test blocks outside connections: {address}")
        return original(self, address)

    socket.socket.connect = guarded
    try:
        yield attempts
    finally:
        socket.socket.connect = original


@pytest.fixture(scope="module")
def perceptual():
    """The offline perceptual metric (EfficientNet-Lite0 features, shipped with a PyPI package)."""
    from sfumato.perceptual import load_perceptual

    return load_perceptual("effnet-lite0")


class OtherArtwork:
    """A stand-in style target: another seeded artwork of the same size."""

    name = "other-artwork"

    def __call__(self, images):
        return make_artwork(*images.shape[-2:], seed=99)[None].to(images)


@pytest.fixture(scope="session")
def tiny_vae_dir(tmp_path_factory):
    """A saved tiny AutoencoderKL folder."""
    path = tmp_path_factory.mktemp("tiny-vae")
    get_dummy_vae().save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_pipeline_dir(tmp_path_factory):
    """A saved tiny StableDiffusionPipeline folder, loadable offline."""
    from diffusers import StableDiffusionPipeline

    path = tmp_path_factory.mktemp("tiny-sd")
    StableDiffusionPipeline(**get_dummy_components(), requires_safety_checker=False).save_pretrained(path)
    return path


def make_artwork(height: int, width: int, seed: int = 0) -> torch.Tensor:
    """A seeded (3, H, W) image in [0, 1] on the 8-bit grid: gradients, shapes and texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    image = np.stack([0.5 + 0.4 * np.sin(6 * xx + rng.uniform(0, 6)),
                      0.5 + 0.4 * np.cos(5 * yy + rng.uniform(0, 6)),
                      0.5 + 0.3 * np.sin(9 * (xx + yy))])
    for _ in range(6):
        cy, cx, r = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(0.05, 0.25) * min(height, width)
        inside = (np.mgrid[0:height, 0:width][0] - cy) ** 2 + (np.mgrid[0:height, 0:width][1] - cx) ** 2 < r * r
        image[:, inside] = rng.uniform(0, 1, size=(3, 1))
    image += rng.normal(0, 0.04, size=image.shape)
    return torch.from_numpy(np.round(np.clip(image, 0, 1) * 255) / 255).float()
