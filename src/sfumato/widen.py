"""A wider decoder for a trained autoencoder, with the encoder and its latent space kept.

A text-to-image model's UNet learned the latents of one encoder, and a cloak targets that
encoder; a better decoder must leave both alone. diffusers' ``AsymmetricAutoencoderKL``
(Zhu et al. 2023, "Designing a Better Asymmetric VQGAN for StableDiffusion") holds an
encoder and a decoder of different widths. :func:`widen_decoder` builds one from an
``AutoencoderKL`` by Net2WiderNet (Chen et al. 2016): every decoder channel is repeated
``factor`` times, its outgoing weights shared among the copies, so the wide decoder
computes the same images as the narrow one before it trains further.
"""

from __future__ import annotations

import torch

__all__ = ["widen_decoder"]


def widen_decoder(vae, factor: int = 2, *, noise: float = 0.0, generator: torch.Generator | None = None):
    """An ``AsymmetricAutoencoderKL`` with ``vae``'s encoder and a decoder ``factor`` times as wide.

    Args:
        vae (`diffusers.AutoencoderKL`): the trained autoencoder; not modified.
        factor (`int`, defaults to 2): how many times wider each decoder block becomes.
        noise (`float`, defaults to 0): the std, relative to each widened tensor's own, of
            Gaussian noise added to it. Copies of a channel get equal gradients and never
            part unless noise breaks the tie; 0 keeps the decoder's function exactly.
        generator (`torch.Generator`, *optional*): draws the noise; required when ``noise`` > 0.

    Repeating a channel in place keeps every GroupNorm group's members, so its statistics
    stay the same. The mid-block attention has one head as wide as the block: its queries
    are scaled by ``1 / sqrt(factor)`` so that the wider dot product gives the same scores.
    The mask-conditioning encoder that ``AsymmetricAutoencoderKL`` adds for inpainting keeps
    its fresh initialisation; text-to-image decoding never calls it.
    """
    from diffusers import AsymmetricAutoencoderKL

    if factor < 1:
        raise ValueError(f"factor must be at least 1, got {factor}")
    if noise < 0 or (noise > 0 and generator is None):
        raise ValueError("noise must be >= 0, and needs a generator when > 0")
    if type(vae).__name__ != "AutoencoderKL":
        raise TypeError(f"widen_decoder takes an AutoencoderKL, got {type(vae).__name__}")
    config = vae.config
    if not (config.use_quant_conv and config.use_post_quant_conv and config.mid_block_add_attention):
        raise ValueError("widen_decoder needs quant convs and a mid-block attention, as AsymmetricAutoencoderKL has")
    wide = AsymmetricAutoencoderKL(
        in_channels=config.in_channels, out_channels=config.out_channels,
        down_block_types=tuple(config.down_block_types), down_block_out_channels=tuple(config.block_out_channels),
        layers_per_down_block=config.layers_per_block, up_block_types=tuple(config.up_block_types),
        up_block_out_channels=tuple(factor * c for c in config.block_out_channels),
        layers_per_up_block=config.layers_per_block, act_fn=config.act_fn, latent_channels=config.latent_channels,
        norm_num_groups=config.norm_num_groups, sample_size=config.sample_size,
        scaling_factor=config.scaling_factor)
    narrow = vae.state_dict()
    state = {}
    for name, target in wide.state_dict().items():
        if name.startswith("decoder.condition_encoder."):
            state[name] = target
            continue
        tensor = _repeat_channels(narrow[name], target.shape)
        if tensor.shape != narrow[name].shape:
            if ".attentions." in name and ".to_q." in name:
                tensor = tensor / factor ** 0.5
            if noise > 0:
                draw = torch.randn(tensor.shape, generator=generator, device=generator.device).to(tensor)
                tensor = tensor + noise * tensor.std() * draw
        state[name] = tensor
    wide.load_state_dict(state)
    return wide if (vae.device, vae.dtype) == (wide.device, wide.dtype) else wide.to(vae.device, vae.dtype)


def _repeat_channels(tensor: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Repeat each channel of a grown dimension in place; a weight's input copies share its value."""
    for dim, (old, new) in enumerate(zip(tensor.shape, shape)):
        if old == new:
            continue
        if new % old:
            raise ValueError(f"cannot widen a dimension of {old} to {new}")
        tensor = tensor.repeat_interleave(new // old, dim=dim)
        if dim == 1:  # a weight's input channels: the copies together carry what one did
            tensor = tensor / (new // old)
    return tensor
