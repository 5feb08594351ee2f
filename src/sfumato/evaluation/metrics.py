"""The harness's scores: tensors in, numbers out.

- :func:`judged_shares`: how often the style judge puts images in a style (mimicry success).
- :func:`frechet_distance`: Fréchet distance between two sets of feature vectors (as FID,
  here on EfficientNet-Lite0's pooled features, the judge's trunk).
- :func:`visibility`: how visible the cloaks are (perceptual distance, PSNR, SSIM, L∞).
- :func:`clip_style_shares`: a CLIP zero-shot style score, where a CLIP model is at hand.
- :func:`standard_error`: the standard error of a mean over cases.
"""

from __future__ import annotations

import math
import statistics

import torch

from ..quality import linf_255, psnr, ssim

__all__ = ["judged_shares", "frechet_distance", "visibility", "clip_style_shares", "summary", "standard_error"]


def judged_shares(probabilities: torch.Tensor, styles: dict[str, int]) -> dict[str, float]:
    """Share of images whose most probable style is each named style: (N, S) -> {name: share}."""
    top = probabilities.argmax(-1)
    return {name: float((top == style).float().mean()) for name, style in styles.items()}


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """‖μa − μb‖² + Tr(Σa + Σb − 2 (Σa^½ Σb Σa^½)^½) between (N, D) and (M, D) features.

    Computed in float64 through symmetric eigendecompositions, so it stays defined when
    there are fewer images than dimensions (the covariances are then singular).
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or len(a) < 2 or len(b) < 2:
        raise ValueError(f"need two (N >= 2, D) feature sets of the same D, got {tuple(a.shape)} and {tuple(b.shape)}")
    a, b = a.double(), b.double()
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    values, vectors = torch.linalg.eigh(cov_a)
    root_a = vectors @ torch.diag(values.clamp(min=0).sqrt()) @ vectors.T
    middle = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp(min=0).sqrt().sum()
    return float((mean_a - mean_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * middle)


def visibility(original: torch.Tensor, cloaked: torch.Tensor, perceptual) -> dict[str, list[float]]:
    """Per image: the perceptual distance, PSNR (dB), SSIM and L∞ (8-bit levels) of cloaked vs original."""
    with torch.no_grad():
        return {"perceptual_distance": perceptual(cloaked, original).flatten().tolist(),
                "psnr_db": psnr(cloaked, original).tolist(),
                "ssim": ssim(cloaked, original).tolist(),
                "linf_levels": linf_255(cloaked, original).tolist()}


@torch.no_grad()
def clip_style_shares(images: torch.Tensor, clip_model: str, labels: list[str], device: str = "cpu") -> list[float]:
    """Zero-shot: the share of images whose most similar text among ``labels`` is each label.

    ``clip_model`` is a CLIP hub id or local folder (``transformers``' ``CLIPModel`` and
    ``CLIPProcessor``); the labels are full prompts such as "a painting by Claude Monet".
    """
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(clip_model).to(device).eval()
    processor = CLIPProcessor.from_pretrained(clip_model)
    text = processor(text=labels, return_tensors="pt", padding=True)
    pixels = processor(images=list(images.clamp(0, 1)), return_tensors="pt", do_rescale=False).pixel_values
    out = model(input_ids=text.input_ids.to(device), attention_mask=text.attention_mask.to(device),
                pixel_values=pixels.to(device))
    top = out.logits_per_image.argmax(-1).cpu()  # (N, labels): scaled cosine similarities
    return [float((top == i).float().mean()) for i in range(len(labels))]


def summary(values: list[float]) -> dict[str, float]:
    """Mean, min and max of per-image figures."""
    return {"mean": statistics.fmean(values), "min": min(values), "max": max(values)}


def standard_error(values: list[float]) -> float | None:
    """The standard error of the mean over cases (sample standard deviation / √n); None below two values."""
    if len(values) < 2:
        return None
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1) / len(values))
