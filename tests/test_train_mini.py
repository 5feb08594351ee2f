"""scripts/train_mini.py's shared autoencoder loop, on a tiny random autoencoder."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from conftest import get_dummy_vae

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_mini.py"


def load_script():
    spec = importlib.util.spec_from_file_location("train_mini", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def train(steps: int, calls: list, stop: int | None = None, **weights):
    images = torch.randint(0, 256, (6, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    vae = get_dummy_vae().train()
    log = load_script().train_autoencoder(vae, images, steps=steps, batch=2, lr=1e-3, warmup=1,
                                          generator=torch.Generator().manual_seed(0),
                                          on_step=lambda step, model: calls.append(step), stop=stop, **weights)
    return vae, log


def test_train_autoencoder_calls_the_hook_before_every_step_and_logs():
    calls = []
    vae, log = train(3, calls, mse=4.0, perceptual=0.03, kl=1e-5)
    assert calls == [0, 1, 2]
    assert [row["step"] for row in log] == [0, 2]
    assert {"mse", "l1", "perceptual", "kl", "psnr", "seconds"} <= set(log[0])
    assert not torch.equal(vae.encoder.conv_in.weight, get_dummy_vae().encoder.conv_in.weight)


def test_train_autoencoder_is_deterministic_and_its_weights_matter():
    first, _ = train(2, [], mse=0.0, perceptual=0.03, kl=1e-5)
    again, _ = train(2, [], mse=0.0, perceptual=0.03, kl=1e-5)
    other, _ = train(2, [], mse=0.0, perceptual=0.0, kl=1e-5)
    weight = lambda vae: vae.encoder.conv_in.weight  # noqa: E731
    assert torch.equal(weight(first), weight(again))
    assert not torch.equal(weight(first), weight(other))


def test_train_autoencoder_stops_early_on_the_longer_schedule():
    calls = []
    stopped, log = train(5, calls, stop=3, mse=0.0, perceptual=0.0, kl=0.0)
    assert calls == [0, 1, 2] and [row["step"] for row in log] == [0]
    short, _ = train(3, [], mse=0.0, perceptual=0.0, kl=0.0)  # a 3-step schedule decays its learning rate sooner
    assert not torch.equal(stopped.encoder.conv_in.weight, short.encoder.conv_in.weight)


def test_train_autoencoder_adds_the_adversarial_term_from_its_start():
    from sfumato.patch_gan import PatchDiscriminator

    weights = dict(mse=0.0, perceptual=0.0, kl=1e-5)
    discriminator = lambda: PatchDiscriminator(width=4, generator=torch.Generator().manual_seed(2))  # noqa: E731
    plain, _ = train(3, [], **weights)
    late, _ = train(3, [], discriminator=discriminator(), gan_start=3, **weights)  # never reached
    judge = discriminator()
    adversarial, log = train(3, [], discriminator=judge, gan_start=1, **weights)
    assert torch.equal(plain.encoder.conv_in.weight, late.encoder.conv_in.weight)
    assert not torch.equal(plain.encoder.conv_in.weight, adversarial.encoder.conv_in.weight)
    assert "g_loss" not in log[0] and {"g_loss", "d_loss", "gan_weight"} <= set(log[1])
    assert not torch.equal(judge[0].weight, discriminator()[0].weight)  # the discriminator trained too


def test_train_autoencoder_can_fix_the_adversarial_weight():
    from sfumato.patch_gan import PatchDiscriminator

    def run(adaptive):
        judge = PatchDiscriminator(width=4, generator=torch.Generator().manual_seed(2))
        return train(2, [], discriminator=judge, gan=1.0, gan_start=0, gan_adaptive=adaptive,
                     mse=0.0, perceptual=0.0, kl=1e-5)

    (adaptive, adaptive_log), (fixed, fixed_log) = run(True), run(False)
    assert fixed_log[0]["gan_weight"] == 1.0 and adaptive_log[0]["gan_weight"] != 1.0
    assert not torch.equal(adaptive.encoder.conv_in.weight, fixed.encoder.conv_in.weight)
