"""Names for a model's weights, whole or by part, that the evaluation's stage keys record.

Retrained weights at the same path must rerun the stages that read them, and only those:
a cloak reads the VAE's encoder, a fine-tune also the UNet and text side, sampling all of it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

__all__ = ["PROTECT_PARTS", "FINETUNE_PARTS", "model_fingerprint"]

#: What the cloak reads of a model: its encoder (built-in and style-image targets need no more).
PROTECT_PARTS = ("vae.encoder",)
#: What a fine-tune reads: the encoder's latents, and the parts it trains or conditions on.
FINETUNE_PARTS = ("vae.encoder", "unet", "text_encoder", "tokenizer", "scheduler")
#: The encoder's settings: (their names in either autoencoder class, the value where absent).
#: ``AsymmetricAutoencoderKL`` always has quant convs and a mid-block attention.
_ENCODER_CONFIG = {"in_channels": ((), 3), "down_block_types": ((), None),
                   "down_block_out_channels": (("block_out_channels",), None),
                   "layers_per_down_block": (("layers_per_block",), None), "act_fn": ((), "silu"),
                   "latent_channels": ((), 4), "norm_num_groups": ((), 32), "scaling_factor": ((), 0.18215),
                   "shift_factor": ((), None), "latents_mean": ((), None), "latents_std": ((), None),
                   "use_quant_conv": ((), True), "mid_block_add_attention": ((), True)}


def model_fingerprint(model: str, parts: tuple[str, ...] | None = None) -> str:
    """Names a model's exact weights, so that retrained weights at the same path rerun the stages.

    Local folders hash what a pipeline loads: ``model_index.json`` and the files in its
    component folders (files over 100 MB: their size and modification time), not the
    documents beside them (a model card, its figures), so rewriting a card reruns nothing.
    ``parts`` narrows the hash to some component folders, where ``"vae.encoder"`` is the
    autoencoder's encoder alone (its tensors and settings): a retrained or widened decoder
    then leaves the cloaks and fine-tunes in place and reruns only the sampling. A hub id
    stands for itself.
    """
    from ..models import resolve_model

    folder = Path(resolve_model(model))
    if not folder.is_dir():
        return model
    digest = hashlib.sha256()
    if parts is None:
        _hash_files(folder, [p for p in folder.iterdir() if p.is_dir() or p.name == "model_index.json"], digest)
        return f"{model}@{digest.hexdigest()[:12]}"
    for part in sorted(parts):
        digest.update(part.encode())
        if part == "vae.encoder":
            _hash_encoder(folder / "vae", digest)
        else:
            _hash_files(folder, [folder / part], digest)
    return f"{model}@{digest.hexdigest()[:12]}[{','.join(parts)}]"


def _hash_files(root: Path, entries: list[Path], digest) -> None:
    files = [f for e in entries for f in ([e] if e.is_file() else e.rglob("*")) if f.is_file()]
    for path in sorted(files):
        stat = path.stat()
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes() if stat.st_size < 100 * 2**20 else f"{stat.st_size}:{stat.st_mtime_ns}".encode())


def _hash_encoder(vae: Path, digest) -> None:
    """The encoder's settings and tensors (``encoder.*``, ``quant_conv.*``); the whole folder if not safetensors."""
    from safetensors import safe_open

    weights = sorted(vae.glob("*.safetensors"))
    if not (vae / "config.json").is_file() or len(weights) != 1:
        _hash_files(vae.parent, [vae], digest)
        return
    config = json.loads((vae / "config.json").read_text())
    settings = {key: next((config[k] for k in (key, *aliases) if k in config), default)
                for key, (aliases, default) in _ENCODER_CONFIG.items()}
    digest.update(json.dumps(settings, sort_keys=True).encode())
    with safe_open(weights[0], framework="pt") as tensors:
        for name in sorted(k for k in tensors.keys() if k.startswith(("encoder.", "quant_conv."))):
            tensor = tensors.get_tensor(name)
            digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
            digest.update(tensor.contiguous().view(-1).view(torch.uint8).numpy().tobytes())
