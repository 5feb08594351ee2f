"""A judge for one artist's own style, for ``sfumato evaluate --art DIR``.

The shipped style judge knows only the 26 built-in styles, so it cannot say whether a
mimic caught *your* style. For an art folder the harness trains a binary judge instead:
"this artist" against everything else the mimic could plausibly produce. Like the
shipped judge it is a linear head on EfficientNet-Lite0's pooled features; only the
data differ:

- **positives**: the artist's images held out from the mimic (the folder's *judge part*,
  or a second folder, ``--judge-art``), never the images the mimic trains on, so that a
  mimic that memorises its training set is not rewarded by a judge that saw them;
- **negatives**: the same images rendered in the built-in styles (the same content in
  other styles, so the judge must learn style, not subject), and the base model's own
  samples for the mimic's prompts (what the model paints without the artist).

It is then tested on images it did not train on: the mimic's training images (held-out
positives), those rendered in the built-in styles, and a second half of base samples
(held-out negatives). A judge below :attr:`ArtJudgeSettings.min_recall` or
:attr:`ArtJudgeSettings.min_specificity` is refused: its own errors would move the
mimicry figures by more than the differences the report compares.

Tensors in, tensors and numbers out; the stage that writes files is ``stages.stage_judge``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..judge import StyleJudge, fit_linear_head
from ..targets import NUM_STYLES

__all__ = ["ArtJudgeSettings", "check_art_counts", "own_styles", "train_art_judge", "held_out_rates", "weakness", "ARTIST"]

#: The art judge's class index for "in this artist's style" (0 is "anything else").
ARTIST = 1

#: Fewer held-out images than this cannot train a judge worth testing.
MIN_HELD_OUT = 4


@dataclass(frozen=True)
class ArtJudgeSettings:
    """How the per-artist judge of an ``--art`` evaluation is built and when it is refused.

    Args:
        held_out (`int`, defaults to 8): images of the art folder kept from the mimic to train
            the judge (ignored when ``judge_art`` is given: all of that folder is used).
        judge_art (`str`, *optional*): a second folder of the same artist's images for the judge.
        base_samples (`int`, defaults to 32): base-model samples drawn as negatives; half train the
            judge, half test it.
        min_recall (`float`, defaults to 0.8): refuse a judge that finds fewer of the artist's
            held-out images than this. A judge that misses a fifth of the artist's own images
            would under-report a working mimic by as much.
        min_specificity (`float`, defaults to 0.9): refuse a judge that calls more than this share of
            held-out other-style images the artist's. False alarms set a floor under every mimicry
            figure (the base model's included), and 10 points is the size of the differences the
            report compares.
        negative_styles (`int`, defaults to 26): how many of the built-in styles render the
            negatives (the first ones, after leaving out the artist's own). All of them for a real
            judge; a few make a quick run or a test cheaper (each style renders every image).
    """

    held_out: int = 8
    judge_art: str | None = None
    base_samples: int = 32
    min_recall: float = 0.8
    min_specificity: float = 0.9
    negative_styles: int = NUM_STYLES

    def __post_init__(self) -> None:
        if self.held_out < MIN_HELD_OUT:
            raise ValueError(f"held_out must be >= {MIN_HELD_OUT} images, got {self.held_out}")
        if not 1 <= self.negative_styles <= NUM_STYLES:
            raise ValueError(f"negative_styles must be in [1, {NUM_STYLES}], got {self.negative_styles}")
        if self.base_samples < 2:
            raise ValueError(f"base_samples must be >= 2 (half train, half test), got {self.base_samples}")
        for name in ("min_recall", "min_specificity"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")


def check_art_counts(art: str, found: int, images: int, settings: ArtJudgeSettings, judge_found: int | None = None):
    """Refuse, before any work, an art folder too small to give both the mimic and the judge their images."""
    if settings.judge_art is not None:
        if found < images:
            raise ValueError(f"{art}: {found} images, the mimic trains on {images} (--images)")
        if judge_found is not None and judge_found < MIN_HELD_OUT:
            raise ValueError(f"{settings.judge_art}: {judge_found} images, the style judge needs at least "
                             f"{MIN_HELD_OUT}")
        return
    need = images + settings.held_out
    if found < need:
        raise ValueError(f"{art}: {found} images, too few to split: --art needs at least {need} ({images} to train "
                         f"the mimic, {settings.held_out} held out to train a judge of the artist's style), "
                         f"or a second folder of the artist's images with --judge-art")


def own_styles(style_judge: StyleJudge, images: torch.Tensor) -> list[int]:
    """The built-in styles the shipped judge puts most of the artist's images in (usually none).

    An artist whose work *is* one of the built-in styles (a test folder made from the corpus)
    must not have that style among the negatives.
    """
    top = style_judge.probabilities(images).argmax(-1)
    counts = torch.bincount(top, minlength=NUM_STYLES)
    return [int(s) for s in torch.nonzero(counts > len(images) / 2).flatten()]


def train_art_judge(trunk, positives: torch.Tensor, negatives: torch.Tensor, *, steps: int = 200) -> StyleJudge:
    """A two-class judge (0: other, 1: the artist) fitted on images in [0, 1], classes weighted equally.

    Deterministic (L-BFGS from zeros, no random draw).
    """
    if len(positives) < 1 or len(negatives) < 1:
        raise ValueError("the art judge needs positive and negative images")
    judge = StyleJudge(trunk=trunk, num_styles=2)
    features = torch.cat([judge.features(positives), judge.features(negatives)])
    labels = torch.cat([torch.full((len(positives),), ARTIST), torch.zeros(len(negatives), dtype=torch.long)])
    weight = torch.tensor([len(labels) / (2 * len(negatives)), len(labels) / (2 * len(positives))])
    return fit_linear_head(judge, features, labels, steps=steps, class_weight=weight)


def held_out_rates(judge: StyleJudge, positives: torch.Tensor, negatives: torch.Tensor) -> dict:
    """Recall on held-out artist images and specificity on held-out other images, with their counts."""
    recall = float((judge.probabilities(positives).argmax(-1) == ARTIST).float().mean())
    specificity = float((judge.probabilities(negatives).argmax(-1) != ARTIST).float().mean())
    return {"recall": recall, "specificity": specificity, "positives": len(positives), "negatives": len(negatives)}


def weakness(rates: dict, settings: ArtJudgeSettings) -> str | None:
    """Why a judge is too weak to trust, in one clause, or None."""
    if rates["recall"] >= settings.min_recall and rates["specificity"] >= settings.min_specificity:
        return None
    return (f"held-out recall {rates['recall']:.0%} and specificity {rates['specificity']:.0%} (on "
            f"{rates['positives']} and {rates['negatives']} images it did not train on); a judge needs at least "
            f"{settings.min_recall:.0%} and {settings.min_specificity:.0%}, or its own errors would move the "
            f"mimicry figures by more than the differences they are read for")
