"""The mimic's LoRA fine-tune and sampling, on a tiny random Stable Diffusion pipeline."""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import pytest
import torch

from sfumato.finetune import LoraSettings, finetune_lora, generate

from conftest import get_dummy_components, make_artwork

FAST = LoraSettings(steps=12, batch_size=4, rank=2, alpha=2.0, learning_rate=1e-2)


def _pipeline():
    from diffusers import StableDiffusionPipeline

    pipeline = StableDiffusionPipeline(**get_dummy_components(), requires_safety_checker=False)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def _art(n=4):
    return torch.stack([make_artwork(64, 64, seed=i) for i in range(n)]), [f"a painting by artist02 {i}" for i in range(n)]


def test_lora_trains_only_the_adapter_and_is_seeded():
    images, captions = _art()
    runs = []
    for _ in range(2):
        pipeline = _pipeline()
        before = {k: v.clone() for k, v in pipeline.unet.state_dict().items()}
        log = finetune_lora(pipeline, images, captions, FAST, generator=torch.Generator().manual_seed(0))
        after = pipeline.unet.state_dict()
        lora = [k for k in after if "lora_" in k]
        assert lora and any("conv1" in k for k in lora) and any("to_q" in k for k in lora)
        base_keys = [k for k in before if k in after]
        assert all(torch.equal(before[k], after[k]) for k in base_keys if "lora_" not in k)
        assert any(not torch.equal(v, torch.zeros_like(v)) for k, v in after.items() if "lora_B" in k)
        runs.append((log, generate(pipeline, "a painting by artist02", 2, seed=3, steps=2)))
    assert runs[0][0] == runs[1][0]
    assert torch.equal(runs[0][1], runs[1][1])
    assert runs[0][1].shape == (2, 3, 64, 64)


def _fixed_loss(pipeline, images, captions):
    """Noise-prediction loss on fixed draws of noise and timesteps."""
    from diffusers import DDPMScheduler

    from sfumato.finetune import diffusion_loss, encode_posteriors

    latents = encode_posteriors(pipeline.vae, images).chunk(2, dim=1)[0] * pipeline.vae.config.scaling_factor
    scheduler = DDPMScheduler.from_config(pipeline.scheduler.config)
    generator = torch.Generator().manual_seed(123)
    with torch.no_grad():
        return sum(diffusion_loss(pipeline.unet, pipeline.text_encoder, pipeline.tokenizer, scheduler, latents.repeat(8, 1, 1, 1),
                                  captions * 8, generator).item() for _ in range(4))


def test_lora_lowers_the_loss_on_its_images():
    images, captions = _art(2)
    pipeline = _pipeline()
    before = _fixed_loss(pipeline, images, captions)
    settings = LoraSettings(steps=40, batch_size=4, rank=4, alpha=4.0, learning_rate=1e-2)
    finetune_lora(pipeline, images, captions, settings, generator=torch.Generator().manual_seed(0))
    assert _fixed_loss(pipeline, images, captions) < 0.9 * before


def test_generate_batches_and_seeds():
    pipeline = _pipeline()
    whole = generate(pipeline, "x", 3, seed=5, steps=2, batch_size=3)
    split = generate(pipeline, "x", 3, seed=5, steps=2, batch_size=2)
    assert whole.shape == split.shape == (3, 3, 64, 64)
    assert torch.equal(generate(pipeline, "x", 3, seed=5, steps=2, batch_size=2), split)


def test_bad_finetune_inputs():
    images, captions = _art(2)
    with pytest.raises(ValueError, match="captions"):
        finetune_lora(_pipeline(), images, captions[:1], FAST, generator=torch.Generator())
    with pytest.raises(ValueError, match="rank"):
        LoraSettings(rank=0)


def test_saved_lora_reloads_into_a_fresh_pipeline_exactly(tmp_path):
    from sfumato.finetune import load_lora, save_lora

    images, captions = _art(2)
    pipeline = _pipeline()
    before = generate(pipeline, "a painting by artist02", 2, seed=1, steps=2)
    finetune_lora(pipeline, images, captions, replace(FAST, learning_rate=5e-2), generator=torch.Generator().manual_seed(0))
    after = generate(pipeline, "a painting by artist02", 2, seed=1, steps=2)
    save_lora(pipeline, tmp_path)
    fresh = _pipeline()
    load_lora(fresh, tmp_path)
    assert (after - before).abs().max() > 0.01  # the adapter matters
    assert torch.equal(generate(fresh, "a painting by artist02", 2, seed=1, steps=2), after)  # attention and convs reload


def test_lora_does_not_depend_on_the_global_rng():
    images, captions = _art(2)
    adapters = []
    for global_seed in (1, 2):
        pipeline = _pipeline()
        torch.manual_seed(global_seed)  # whatever the caller's global state, the generator decides
        finetune_lora(pipeline, images, captions, replace(FAST, steps=2), generator=torch.Generator().manual_seed(0))
        adapters.append({k: v for k, v in pipeline.unet.state_dict().items() if "lora_" in k})
    assert adapters[0].keys() == adapters[1].keys()
    assert all(torch.equal(adapters[0][k], adapters[1][k]) for k in adapters[0])


def test_noise_offset_shifts_each_channel_of_the_noise_by_a_constant():
    from diffusers import DDPMScheduler

    from sfumato.finetune import diffusion_loss

    pipeline = _pipeline()
    scheduler = DDPMScheduler.from_config(pipeline.scheduler.config)
    seen = []

    def unet(noisy, timesteps, encoder_hidden_states):  # records its input, predicts no noise
        seen.append((noisy, timesteps))
        return type("Output", (), {"sample": torch.zeros_like(noisy)})()

    latents = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    for offset in (0.0, 0.5):
        diffusion_loss(unet, pipeline.text_encoder, pipeline.tokenizer, scheduler, latents, ["x"] * 3,
                       torch.Generator().manual_seed(1), noise_offset=offset)
    (plain, t_plain), (shifted, t_shifted) = seen
    assert torch.equal(t_plain, t_shifted)  # same timesteps and base noise: only the offset differs
    shift = shifted - plain
    assert shift.abs().amax() > 0.01
    torch.testing.assert_close(shift, shift.mean(dim=(2, 3), keepdim=True).expand_as(shift), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="noise_offset"):
        LoraSettings(noise_offset=-0.1)


def test_full_unet_trains_every_weight_and_reloads_exactly(tmp_path):
    from sfumato.evaluation.run import _lora_key
    from sfumato.finetune import load_lora, save_lora

    images, captions = _art(2)
    pipeline = _pipeline()
    before = {k: v.clone() for k, v in pipeline.unet.state_dict().items()}
    settings = replace(FAST, full_unet=True, learning_rate=1e-3)
    finetune_lora(pipeline, images, captions, settings, generator=torch.Generator().manual_seed(0))
    after = pipeline.unet.state_dict()
    assert after.keys() == before.keys()  # no adapter: the UNet's own weights moved
    assert all(not torch.equal(before[k], after[k]) for k in before if "conv" in k or "to_q" in k)
    assert all(p.requires_grad for p in pipeline.unet.parameters())
    assert not any(p.requires_grad for p in pipeline.text_encoder.parameters())
    samples = generate(pipeline, "a painting by artist02", 2, seed=1, steps=2)
    save_lora(pipeline, tmp_path)  # the whole UNet, to unet/
    assert (tmp_path / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    fresh = _pipeline()
    load_lora(fresh, tmp_path)
    assert torch.equal(generate(fresh, "a painting by artist02", 2, seed=1, steps=2), samples)
    # the option enters a fine-tune stage's key only when used, so existing stages keep theirs
    assert "full_unet" not in _lora_key(LoraSettings()) and _lora_key(settings)["full_unet"] is True


class _Interrupted(Exception):
    pass


@pytest.mark.parametrize("accelerated", [False, True], ids=["plain", "one-process-accelerator"])
def test_an_interrupted_finetune_resumes_to_the_same_weights(tmp_path, accelerated):
    """A session ends mid-fine-tune: the rerun continues from the last kept state and ends bit for bit where an
    uninterrupted run does (mid-epoch, so the epoch's remaining order must carry over too). The command line
    always runs through an accelerator, of one process on a CPU."""
    from sfumato.finetune import STATE

    images, captions = _art()
    whole = _pipeline()
    log = finetune_lora(whole, images, captions, FAST, generator=torch.Generator().manual_seed(0))
    if accelerated:
        from accelerate import Accelerator

        finetune = partial(finetune_lora, accelerator=Accelerator(cpu=True))
    else:
        finetune = finetune_lora

    def stop(step, loss):
        if step == 7:
            raise _Interrupted

    state = tmp_path / "state"
    with pytest.raises(_Interrupted):
        finetune(_pipeline(), images, captions, FAST, generator=torch.Generator().manual_seed(0), callback=stop,
                 checkpoint=state, checkpoint_every=5)
    assert (state / STATE).is_file()
    resumed, steps = _pipeline(), []
    again = finetune(resumed, images, captions, FAST, generator=torch.Generator().manual_seed(0),
                     callback=lambda step, loss: steps.append(step), checkpoint=state, checkpoint_every=5)
    assert steps == list(range(5, FAST.steps)), "continues after the 5 steps kept"
    assert again == log
    expected, got = whole.unet.state_dict(), resumed.unet.state_dict()
    assert expected.keys() == got.keys() and all(torch.equal(expected[k], got[k]) for k in expected)
