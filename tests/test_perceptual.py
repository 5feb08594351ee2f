"""Perceptual distances and image figures: properties, sizes, batching, offline loading, errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sfumato.perceptual import (
    PERCEPTUAL_NAMES,
    EfficientNetLite0Distance,
    LpipsAlex,
    load_perceptual,
)
from sfumato.quality import linf_255, psnr, ssim


def artwork(batch: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """Smooth colour fields with a little texture, (B, 3, H, W) in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, 3, 5, 7, generator=generator)
    smooth = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    texture = 0.05 * torch.rand(batch, 1, height, width, generator=generator)
    return (0.95 * smooth + texture).clamp(0, 1)


def add_noise(images: torch.Tensor, levels: float, seed: int = 1) -> torch.Tensor:
    """images + uniform noise in [-levels, levels] 8-bit levels, clipped to [0, 1]."""
    noise = torch.rand(images.shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    return (images + levels / 255 * noise).clamp(0, 1)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Run this module single-threaded: on a small shared CPU, competing OpenMP pools slow tiny convs 10x."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def effnet():
    return EfficientNetLite0Distance()


def _use_torch_home(path, monkeypatch) -> None:
    """Point the torch hub cache at ``path``; skip if torch.hub.set_dir() pinned it elsewhere."""
    monkeypatch.setenv("TORCH_HOME", str(path))
    if not LpipsAlex.weights_path().is_relative_to(path):
        pytest.skip("torch.hub.set_dir() overrides TORCH_HOME in this process")


@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch):
    """A torch hub cache with no AlexNet checkpoint in it."""
    _use_torch_home(tmp_path, monkeypatch)
    assert not LpipsAlex.weights_available()
    return tmp_path


@pytest.fixture
def fake_alexnet_home(tmp_path, monkeypatch):
    """A torch hub cache holding a seeded random stand-in for torchvision's AlexNet checkpoint.

    LPIPS only runs AlexNet's conv trunk; the classifier's 58M weights are saved as
    expanded zeros, which keeps the file at ~10 MB.
    """
    from torchvision.models import alexnet

    _use_torch_home(tmp_path, monkeypatch)
    with torch.device("meta"):
        shapes = {key: value.shape for key, value in alexnet().state_dict().items()}
    generator = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in shapes.items():
        if key.startswith("features.") and key.endswith("weight"):
            state[key] = torch.randn(shape, generator=generator) * math.sqrt(2 / shape[1:].numel())
        else:
            state[key] = torch.zeros(1).expand(shape)
    LpipsAlex.weights_path().parent.mkdir(parents=True)
    torch.save(state, LpipsAlex.weights_path())
    return tmp_path


# --------------------------------------------------------------------------- effnet-lite0


def test_identity_gives_zero(effnet):
    x = artwork(2, 64, 64)
    assert effnet(x, x.clone()).shape == (2,)
    assert torch.allclose(effnet(x, x.clone()), torch.zeros(2), atol=1e-6)


def test_symmetric_and_positive_for_different_images(effnet):
    x, y = artwork(1, 64, 80, seed=0), artwork(1, 64, 80, seed=1)
    d_xy, d_yx = effnet(x, y), effnet(y, x)
    assert torch.allclose(d_xy, d_yx, rtol=1e-5, atol=1e-7)
    assert float(d_xy) > 0


def test_grows_with_noise_amplitude(effnet):
    x = artwork(1, 96, 96)
    distances = [float(effnet(add_noise(x, k), x)) for k in (2, 8, 32)]
    assert 0 < distances[0] < distances[1] < distances[2], distances


def test_differentiable_wrt_first_argument(effnet):
    x = artwork(1, 64, 64)
    x_adv = add_noise(x, 4).requires_grad_(True)
    effnet(x_adv, x).sum().backward()
    assert torch.isfinite(x_adv.grad).all()
    assert x_adv.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in effnet.parameters())


def test_distance_to_a_fixed_image_matches_and_reuses_its_features(effnet, monkeypatch):
    x = artwork(2, 64, 80, seed=4)
    x_adv = add_noise(x, 6).requires_grad_(True)
    distance = effnet.distance_to(x)
    calls = []
    monkeypatch.setattr(effnet, "_features", lambda images, f=effnet._features: calls.append(1) or f(images))
    value = distance(x_adv)
    assert torch.allclose(value, effnet(x_adv, x), rtol=1e-5, atol=1e-7)
    assert len(calls) == 2 + 1  # the direct call above: 2 passes; the fixed-reference call: x_adv only
    value.sum().backward()
    assert x_adv.grad.abs().sum() > 0
    with pytest.raises(ValueError):
        distance(x_adv[:, :, :32])


def test_odd_size_and_batch_match_single_calls(effnet):
    x = artwork(3, 65, 97, seed=2)
    y = add_noise(x, 6)
    batched = effnet(x, y)
    singles = torch.cat([effnet(x[i : i + 1], y[i : i + 1]) for i in range(3)])
    assert batched.shape == (3,)
    assert torch.allclose(batched, singles, rtol=1e-4, atol=1e-6)


def test_features_one_map_per_stride(effnet):
    maps = effnet.features(artwork(2, 65, 97))
    shapes = [tuple(m.shape) for m in maps]
    strides, channels = (2, 4, 8, 16, 32), (32, 24, 40, 112, 320)
    assert shapes == [(2, c, math.ceil(65 / s), math.ceil(97 / s)) for s, c in zip(strides, channels)]


def test_folded_taps_match_the_package_model(effnet):
    """The batch-norm-folded trunk computes what the package's own blocks compute."""
    model = effnet.model
    x = artwork(2, 65, 97, seed=5)
    h = model._swish(model._bn0(model._conv_stem((x * 255 - 127) / 128)))
    expected = [h]
    for index, block in enumerate(model._blocks[: effnet.BLOCK_TAPS[-1] + 1]):
        h = block(h)
        if index in effnet.BLOCK_TAPS:
            expected.append(h)
    for want, got in zip(expected, effnet.features(x), strict=True):
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-4 * float(want.abs().max()))


def test_frozen_and_stays_in_eval_mode(effnet):
    assert effnet.name == "effnet-lite0"
    assert not any(p.requires_grad for p in effnet.parameters())
    effnet.train()
    assert not effnet.training and not effnet.model.training


@pytest.mark.parametrize(
    "x, y, match",
    [
        (torch.rand(3, 64, 64), torch.rand(3, 64, 64), r"\(B, 3, H, W\)"),
        (torch.rand(1, 1, 64, 64), torch.rand(1, 1, 64, 64), r"\(B, 3, H, W\)"),
        (torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 72), "same shape"),
        (torch.rand(1, 3, 16, 64), torch.rand(1, 3, 16, 64), "at least 32"),
        (torch.rand(1, 3, 64, 64) * 255, torch.rand(1, 3, 64, 64), r"in \[0, 1\]"),
    ],
)
def test_bad_inputs_raise_value_error(effnet, x, y, match):
    with pytest.raises(ValueError, match=match):
        effnet(x, y)


# --------------------------------------------------------------------------- loading


def test_auto_loads_offline():
    metric = load_perceptual("auto")
    assert metric.name in ("lpips-alex", "effnet-lite0")
    x = artwork(1, 64, 64)
    assert float(metric(add_noise(x, 8), x)) > 0


def test_auto_without_alexnet_weights_is_effnet_and_lpips_explains(empty_torch_home):
    assert load_perceptual().name == "effnet-lite0"
    with pytest.raises(ValueError, match="alexnet-owt-7be5be79.pth") as excinfo:
        load_perceptual("lpips-alex")
    assert str(LpipsAlex.weights_path()) in str(excinfo.value)


def test_lpips_downloads_only_when_asked(empty_torch_home, monkeypatch):
    calls = []
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", lambda url, **kw: calls.append(url))  # no network
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # the environment does not decide: the caller does
    with pytest.raises(ValueError, match="--online"):
        load_perceptual("lpips-alex")
    assert load_perceptual("auto").name == "effnet-lite0" and calls == [], "auto never downloads"
    with pytest.raises(ValueError, match="alexnet-owt"):  # the stand-in download writes nothing
        load_perceptual("lpips-alex", download=True)
    assert calls == ["https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"]


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as excinfo:
        load_perceptual("lpips-vgg")
    for name in PERCEPTUAL_NAMES:
        assert name in str(excinfo.value)


def test_lpips_alex_with_local_checkpoint(fake_alexnet_home):
    assert LpipsAlex.weights_available()
    metric = load_perceptual("auto")
    assert isinstance(metric, LpipsAlex) and metric.name == "lpips-alex"
    assert not any(p.requires_grad for p in metric.parameters())
    x = artwork(2, 64, 64)
    x_adv = add_noise(x, 8).requires_grad_(True)
    distance = metric(x_adv, x)
    assert distance.shape == (2,) and (distance > 0).all()
    assert torch.allclose(distance, metric(x, x_adv), rtol=1e-5)
    assert torch.allclose(metric(x, x.clone()), torch.zeros(2), atol=1e-6)
    assert torch.allclose(metric.distance_to(x)(x_adv), distance, rtol=1e-5)
    distance.sum().backward()
    assert torch.isfinite(x_adv.grad).all() and x_adv.grad.abs().sum() > 0


# --------------------------------------------------------------------------- psnr, ssim, linf


def test_psnr_known_values():
    x = artwork(2, 32, 48) * 0.9
    for c in (1 / 255, 0.05):
        assert torch.allclose(psnr(x + c, x), torch.full((2,), 20 * math.log10(1 / c)), atol=1e-3)
    assert torch.isinf(psnr(x, x)).all()
    assert torch.allclose(psnr(255 * x, 255 * (x + 0.05), data_range=255), psnr(x, x + 0.05), atol=1e-4)


def test_ssim_properties():
    x = artwork(2, 64, 64)
    assert torch.allclose(ssim(x, x.clone()), torch.ones(2), atol=1e-6)
    y = add_noise(x, 16)
    assert torch.allclose(ssim(x, y), ssim(y, x), atol=1e-6)
    values = [ssim(add_noise(x, k), x) for k in (2, 8, 32)]
    assert ((values[0] > values[1]) & (values[1] > values[2])).all()
    assert ((values[2] >= -1) & (values[0] <= 1)).all()
    assert (ssim(x, 1 - x) < 0.5).all()


def test_ssim_matches_scikit_image():
    metrics = pytest.importorskip("skimage.metrics")
    x = artwork(2, 40, 57, seed=3)
    y = add_noise(x, 20)
    ours = ssim(x, y)
    for i in range(2):
        reference = metrics.structural_similarity(
            x[i].permute(1, 2, 0).double().numpy(), y[i].permute(1, 2, 0).double().numpy(),
            channel_axis=-1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0,
        )
        assert float(ours[i]) == pytest.approx(reference, abs=1e-5)


def test_linf_255_in_levels():
    x = artwork(2, 32, 32)
    y = x.clone()
    y[0, 1, 5, 7] += 3 / 255
    y[1] = (y[1] - 10 / 255).clamp(0, 1)
    assert torch.allclose(linf_255(y, x), torch.tensor([3.0, 10.0]), atol=1e-4)
    assert torch.equal(linf_255(x, x), torch.zeros(2))


@pytest.mark.parametrize("fn", [psnr, ssim, linf_255])
def test_figures_reject_bad_shapes(fn):
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        fn(torch.rand(3, 32, 32), torch.rand(3, 32, 32))
    with pytest.raises(ValueError, match="same shape"):
        fn(torch.rand(1, 3, 32, 32), torch.rand(2, 3, 32, 32))


def test_ssim_needs_the_window_to_fit():
    with pytest.raises(ValueError, match="at least 11"):
        ssim(torch.rand(1, 3, 10, 40), torch.rand(1, 3, 10, 40))


def test_sampled_ssim_is_exact_up_to_a_megapixel_and_estimates_it_above():
    from sfumato.quality import SSIM_MAX_PIXELS, ssim_region, ssim_sampled

    g = torch.Generator().manual_seed(0)
    small = torch.rand(1, 3, 64, 80, generator=g)
    noisy = (small + 0.05 * torch.randn(small.shape, generator=g)).clamp(0, 1)
    assert torch.equal(ssim_sampled(noisy, small), ssim(noisy, small))
    assert ssim_region((1000, 1000)) == "the whole image"
    side = 1100  # just above a megapixel: 16 tiles of 256 px
    assert side * side > SSIM_MAX_PIXELS and ssim_region((side, side)) == "16 tiles of 256 px on an even grid"
    smooth = F.interpolate(torch.rand(1, 3, 40, 40, generator=g), size=(side, side), mode="bilinear")
    noisy = (smooth + 0.03 * torch.randn(smooth.shape, generator=g)).clamp(0, 1)
    assert ssim_sampled(noisy, smooth).item() == pytest.approx(ssim(noisy, smooth).item(), abs=0.01)
