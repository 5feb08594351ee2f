"""The harness's stages: art → protect → (countermeasure) → fine-tune → generate → score.

Each is a plain function ``stage(folder, ...) -> figures`` that fills an empty folder
from its inputs' folders; :func:`sfumato.evaluation.contract.run_stage` decides
whether it needs to run. Image sets are PNG files plus an ``images.json`` that lists
their names and captions.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

from ..corpus import CorpusConfig, artist_token, build_corpus, load_images, read_manifest
from ..finetune import LoraSettings, finetune_lora, generate, load_lora, save_lora
from ..targets import NUM_STYLES
from .config import GenerateSettings, ProtectSettings
from .contract import read_images, stage_lock, write_images
from .metrics import frechet_distance, judged_shares, summary, visibility

__all__ = ["VICTIM_CORPUS", "victim_corpus", "image_set", "stage_art", "stage_protect", "stage_countermeasure",
           "purifier_for",
           "stage_finetune", "stage_generate", "stage_judge", "stage_score", "top_styles", "image_sets"]

#: The built-in victims' images: the same images as ``scripts/train_mini.py``'s victim corpus
#: (one victim's style is rendered at a time, see :func:`victim_corpus`).
VICTIM_CORPUS = CorpusConfig(crops_per_split=8, seed=0, splits=("victim",))


def victim_corpus(corpus: Path, victim: int) -> Path:
    """Build (or reuse) one victim's images under ``corpus/artistNN``; returns that folder."""
    folder = Path(corpus) / artist_token(victim)
    with stage_lock(folder):  # jobs side by side may need the same victim
        build_corpus(folder, replace(VICTIM_CORPUS, styles=(victim,)))
    return folder


def _write_set(folder: Path, images: torch.Tensor, names: list[str], captions: list[str], **extra) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_images(folder, images, names)
    (folder / "images.json").write_text(json.dumps({"names": names, "captions": captions, **extra}, indent=1) + "\n")


def image_set(folder: str | Path) -> tuple[torch.Tensor, dict]:
    """An image set written by a stage: (N, 3, H, W) in [0, 1] and its ``images.json``."""
    record = json.loads((Path(folder) / "images.json").read_text())
    return read_images(Path(folder), record["names"]), record


def _square(image: torch.Tensor, side: int) -> torch.Tensor:
    """Centre-crop (3, H, W) to a square and resize it to ``side`` (antialiased)."""
    h, w = image.shape[-2:]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    crop = image[:, top:top + s, left:left + s][None]
    return F.interpolate(crop, size=(side, side), mode="bicubic", antialias=True, align_corners=False)[0].clamp(0, 1)


def stage_art(folder: Path, *, victim: int | None, art: str | None, artist: str, count: int, resolution: int,
              seed: int, corpus: Path, held_out: int = 0, judge_art: str | None = None) -> dict:
    """The artist's clean images: ``count`` of a built-in victim's corpus images, or of a folder.

    The choice is a seeded draw; images are centre-cropped and resized to ``resolution``.
    For a folder, ``held_out`` further images of the same draw (or all of ``judge_art``) go
    to ``folder/held-out``, for the artist's style judge; the mimic never sees them.
    """
    generator = torch.Generator().manual_seed(seed)
    if victim is not None:
        rows = read_manifest(victim_corpus(corpus, victim), "victim", styles=(victim,))
        chosen = [rows[i] for i in torch.randperm(len(rows), generator=generator)[:count].tolist()]
        images = load_images(chosen).float() / 255
        names = [Path(r["file"]).stem for r in chosen]
        captions = [r["caption"] for r in chosen]
    else:
        from ..io import find_images, load_image

        paths = find_images([art])
        held = 0 if judge_art else held_out
        if len(paths) < count + held:
            raise ValueError(f"{art}: {len(paths)} images, the evaluation needs {count + held}")
        order = [paths[i] for i in torch.randperm(len(paths), generator=generator).tolist()]
        judge_paths, paths = (find_images([judge_art]) if judge_art else order[:held]), order[held:held + count]
        if judge_paths:
            _write_set(folder / "held-out", torch.stack([_square(load_image(p).rgb, resolution) for p in judge_paths]),
                       [p.stem for p in judge_paths], [f"a painting by {artist}"] * len(judge_paths))
        images = torch.stack([_square(load_image(p).rgb, resolution) for p in paths])
        names = [p.stem for p in paths]
        captions = [f"a painting by {artist}"] * len(paths)
    if images.shape[-1] != resolution:
        images = torch.stack([_square(image, resolution) for image in images])
    _write_set(folder, images, names, captions)
    return {"images": len(names)}


def stage_protect(folder: Path, art_folder: Path, *, model: str, settings: ProtectSettings, seed: int,
                  device: str = "cpu", cloaker=None) -> dict:
    """Cloak the artist's images with ``sfumato cloak``'s settings; one target for the whole set."""
    from ..api import Cloaker
    from ..config import resolve_config

    images, record = image_set(art_folder)
    cloaker = cloaker or Cloaker(model, device=device)
    config = resolve_config(settings.intensity, settings.quality, protection=settings.protection,
                            budget_scale=settings.budget_scale, flips=settings.flips,
                            robust=settings.robust)
    results, choice = cloaker.cloak(list(images), config, target=settings.target, seed=seed)
    cloaked = torch.stack([r.image.cpu() for r in results])
    _write_set(folder, cloaked, record["names"], record["captions"])
    reports = [{k: v for k, v in r.report.items() if isinstance(v, (int, float, str))} for r in results]
    choice = choice | {"style": _style_of(choice.get("target"))}
    (folder / "cloaks.json").write_text(json.dumps({"target": choice, "images": reports}, indent=1) + "\n")
    return {"target": choice, "config": config.to_dict(), "perceptual_metric": reports[0].get("perceptual_metric")}


def _style_of(name) -> int | None:
    """The built-in style index of a target's name ("style-07" -> 7), else None."""
    if isinstance(name, str) and name.startswith("style-") and name[6:].isdigit():
        return int(name[6:])
    return None


def purifier_for(model: str, device: str = "cpu", upscaler: str | None = None):
    """The model-run countermeasures' :class:`~sfumato.countermeasures.Purifier` for ``model``: its img2img
    pipeline, for IMPRESS the perceptual metric with a default cloak's budget (the purifier may change the
    image as much as a ±8 cloak does), and for noisy upscaling the x4 upscaler ``upscaler`` if one is named."""
    from ..config import resolve_config
    from ..countermeasures import Purifier
    from ..models import load_img2img_pipeline, load_upscale_pipeline
    from ..perceptual import load_perceptual

    perceptual = load_perceptual("auto").to(device)
    return Purifier(load_img2img_pipeline(model, device=device), perceptual,
                    budget=resolve_config("default").perceptual_budget(perceptual.name),
                    upscaler=None if upscaler is None else load_upscale_pipeline(upscaler, device=device),
                    upscaler_name=upscaler)


def stage_countermeasure(folder: Path, source_folder: Path, *, spec: str, model: str | None = None, seed: int = 0,
                         device: str = "cpu", purifier=None) -> dict:
    """What a mimic does to scraped images first (:mod:`sfumato.countermeasures`), to the cloaked set or,
    for the clean baseline, to the originals. Model-run countermeasures load ``model`` (or take ``purifier``)."""
    from ..countermeasures import apply_countermeasure, parse_countermeasure

    images, record = image_set(source_folder)
    cm = parse_countermeasure(spec)
    if cm.needs_model and purifier is None:
        if model is None:
            raise ValueError(f"countermeasure {spec!r} runs the model: pass the model")
        purifier = purifier_for(model, device)
    images = apply_countermeasure(cm, images, purifier=purifier, generator=torch.Generator().manual_seed(seed))
    _write_set(folder, images, record["names"], record["captions"], countermeasure=spec)
    return {"countermeasure": spec}


def image_sets(parts: list[tuple[Path, int | None]]) -> tuple[torch.Tensor, list[str]]:
    """Several image sets as one: the first ``n`` images of each folder (all where ``n`` is None) and their captions."""
    images, captions = [], []
    for folder, n in parts:
        record = json.loads((Path(folder) / "images.json").read_text())
        names = record["names"][:n] if n is not None else record["names"]
        if not names:
            continue
        images.append(read_images(Path(folder), names))
        captions += record["captions"][:len(names)]
    return torch.cat(images), captions


def stage_finetune(folder: Path, images_folder: Path | list[tuple[Path, int | None]], *, model: str,
                   settings: LoraSettings, seed: int, device: str = "cpu", accelerator=None,
                   resume: Path | None = None) -> dict:
    """Fine-tune the model on an image set (LoRA on a frozen base, or the whole UNet with ``settings.full_unet``);
    write the result in diffusers' format. ``images_folder`` may list several sets, as :func:`image_sets` reads them.
    With ``resume`` (a :func:`~sfumato.evaluation.contract.resume_folder`) the training state is kept there every
    100 steps, and a rerun after an interruption continues from it to the same weights."""
    from ..models import load_text2img_pipeline

    if isinstance(images_folder, (str, Path)):
        images, record = image_set(images_folder)
    else:
        images, captions = image_sets(images_folder)
        record = {"captions": captions}
    if accelerator is not None:
        device = accelerator.device
    pipeline = load_text2img_pipeline(model, device=device)
    rank = 0 if accelerator is None else accelerator.process_index
    generator = torch.Generator().manual_seed(seed + 7919 * rank)
    log = finetune_lora(pipeline, images, record["captions"], settings, generator=generator, accelerator=accelerator,
                        checkpoint=resume if accelerator is None or accelerator.num_processes == 1 else None)
    if accelerator is None or accelerator.is_main_process:
        save_lora(pipeline, folder)
    (folder / "loss.json").write_text(json.dumps(log) + "\n")
    return {"final_loss": log[-1]["loss"], "steps": settings.steps}


def stage_generate(folder: Path, *, model: str, lora_folder: Path | None, prompts: list[str],
                   settings: GenerateSettings, seed: int, device: str = "cpu") -> dict:
    """Sample every prompt ``images_per_prompt`` times with fixed seeds, with or without a LoRA."""
    from ..models import load_text2img_pipeline

    pipeline = load_text2img_pipeline(model, device=device)
    if lora_folder is not None:
        load_lora(pipeline, lora_folder)
    names, captions, images = [], [], []
    for p, prompt in enumerate(prompts):
        images.append(generate(pipeline, prompt, settings.images_per_prompt, seed=seed + 100_000 * p,
                               steps=settings.steps, guidance=settings.guidance, batch_size=settings.batch_size))
        names += [f"p{p}-{k:03d}" for k in range(settings.images_per_prompt)]
        captions += [prompt] * settings.images_per_prompt
    _write_set(folder, torch.cat(images), names, captions)
    return {"images": len(names)}


#: Offset of the art judge's base-model sampling seeds from the case's, far from the harness's own.
JUDGE_SEED_OFFSET = 1_000_003


def stage_judge(folder: Path, *, art_folder: Path, model: str, prompts: list[str], settings: GenerateSettings,
                judge_settings, seed: int, style_judge, device: str = "cpu", engine=None) -> dict:
    """Train and test the art folder's own style judge (see :mod:`sfumato.evaluation.art_judge`).

    Writes ``art-judge.safetensors`` and ``judge.json`` (held-out recall and specificity, the
    built-in styles left out of the negatives); refusing a weak judge is the caller's call.
    """
    from ..judge import save_judge_head
    from ..targets import BuiltinStyle, _engine
    from .art_judge import held_out_rates, own_styles, train_art_judge

    train_pos, _ = image_set(art_folder / "held-out")
    test_pos, _ = image_set(art_folder)  # the mimic's training images: never seen by the judge
    excluded = own_styles(style_judge, train_pos)
    engine = engine or _engine()  # one style network for every style
    styles = [BuiltinStyle(s, engine) for s in range(NUM_STYLES) if s not in excluded]
    styles = styles[:judge_settings.negative_styles]
    stage_generate(folder / "base-samples", model=model, lora_folder=None, prompts=prompts,
                   settings=replace(settings, images_per_prompt=judge_settings.base_samples),
                   seed=seed + JUDGE_SEED_OFFSET, device=device)
    base, _ = image_set(folder / "base-samples")

    def negatives(content: torch.Tensor, half: int) -> torch.Tensor:
        return torch.cat([*(style(content) for style in styles), base[half::2]])

    judge = train_art_judge(style_judge.trunk, train_pos, negatives(train_pos, 0))
    rates = held_out_rates(judge, test_pos, negatives(test_pos, 1))
    save_judge_head(judge, folder / "art-judge.safetensors")
    record = {"rates": rates, "excluded_styles": excluded, "train": {"positives": len(train_pos)}}
    (folder / "judge.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def stage_score(folder: Path, *, art_folder: Path, protect_folder: Path | None, generated: dict[str, Path],
                artist_class: int | None, real: torch.Tensor, judge, perceptual, clip: dict | None = None) -> dict:
    """Every figure of one case, written to ``scores.json`` and returned.

    Args:
        protect_folder: the cloaked copies, or None for a clean-only run (no visibility, no target).
        generated: ``{"base": folder, "clean": folder, "cloaked": folder}`` (no ``cloaked`` when clean-only).
        artist_class: the judge's class for the artist's style: a victim's built-in style with the
            shipped judge, :data:`~sfumato.evaluation.art_judge.ARTIST` with an art folder's own judge.
        real: the artist's real images (N, 3, H, W), for the Fréchet distances.
        judge: a :class:`~sfumato.judge.StyleJudge` (its trunk gives the Fréchet features); the
            cloak's target style is judged only by the shipped 26-style judge.
        perceptual: the perceptual metric for the cloaks' visibility.
        clip: ``{"model": id, "labels": [...], "index": i}`` for a CLIP zero-shot score.
    """
    scores, target = {}, {}
    if protect_folder is not None:
        art, _ = image_set(art_folder)
        cloaked, _ = image_set(protect_folder)
        target = json.loads((protect_folder / "cloaks.json").read_text())["target"]
        scores["visibility"] = {k: summary(v) for k, v in visibility(art, cloaked, perceptual).items()}
    real_features = judge.features(real)
    for name, gen_folder in generated.items():
        images, _ = image_set(gen_folder)
        probabilities = judge.probabilities(images)
        styles = {}
        if artist_class is not None:
            styles["artist"] = artist_class
        built_in = judge.head.out_features == NUM_STYLES  # not an art folder's binary judge
        if target.get("style") is not None and built_in:
            styles["target"] = target["style"]
        entry = {"judged": judged_shares(probabilities, styles),
                 "frechet_to_real": frechet_distance(judge.features(images), real_features)}
        if built_in:
            entry["top_styles"] = top_styles(probabilities)
        if clip is not None:
            from .metrics import clip_style_shares

            entry["clip_artist_share"] = clip_style_shares(images, clip["model"], clip["labels"])[clip["index"]]
        scores[name] = entry
    if artist_class is not None:
        scores["mimicry_success"] = {k: scores[k]["judged"]["artist"] for k in generated}
        if "cloaked" in generated:
            scores["protection_success"] = 1 - scores["mimicry_success"]["cloaked"]
    if protect_folder is not None:
        scores["target"] = target
    (folder / "scores.json").write_text(json.dumps(scores, indent=1) + "\n")
    return {"scores": scores}


def top_styles(probabilities: torch.Tensor, k: int = 3) -> dict[str, float]:
    """The ``k`` styles the judge picks most often, with their shares."""
    counts = torch.bincount(probabilities.argmax(-1), minlength=probabilities.shape[1]).float() / len(probabilities)
    top = counts.topk(k)
    return {artist_token(int(i)): float(v) for v, i in zip(top.values, top.indices) if v > 0}
