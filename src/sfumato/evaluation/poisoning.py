"""Does Nightshade's poison work? Train the model on clean pairs plus N poisoned ones, then look.

A model trainer scrapes M clean image–caption pairs (the pretraining artists' corpus)
and, among them, N pairs captioned with concept A: *poison* (A's images cloaked towards
anchors of B by :mod:`sfumato.poison`) or, for comparison, *dirty-label* (B's own images
captioned A). It fine-tunes the model on the lot; then the style judge reads what the
model paints for "a painting by A" (attack success: the share judged B), for the other
artists (bleed-through to concepts whose words share A's, and collateral damage), for
each N. Stages, each a folder with a manifest (``contract.run_stage``)::

    candidates (A's images, ranked) ─ poison-set (anchors of B, the cloak's optimiser) ─┐
    dirty-set (B's images, captioned A) ────────────────────────────────────────────────┼─ train-KIND-N ─ samples ─ score
    clean-set (M pretraining pairs) ─────────────────────────────────────────────────────┘
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from ..corpus import CorpusConfig, artist_token, build_corpus, load_images, read_manifest
from .config import KINDS, PoisonSettings
from .contract import hardware, read_images, run_stage, stage_lock, versions, write_images
from .fingerprint import FINETUNE_PARTS, model_fingerprint
from .metrics import judged_shares
from .stages import _write_set, image_set, stage_finetune, stage_generate

__all__ = ["PoisonSettings", "run_poisoning", "run_poisoning_jobs", "KINDS"]

#: The stage folder of each kind's pairs.
SETS = {"poison": "poison-set", "dirty-label": "dirty-set"}


def _caption(style: int) -> str:
    return f"a painting by {artist_token(style)}"


def stage_candidates(folder: Path, corpus: Path, *, concept: int, count: int, model: str, seed: int) -> dict:
    """A's images the model finds best aligned with "a painting by A" (:func:`~sfumato.poison.caption_alignment`)."""
    from ..api import Cloaker
    from ..poison import caption_alignment

    rows = read_manifest(corpus, styles=(concept,))
    images = load_images(rows).float() / 255
    if len(images) < count:
        raise ValueError(f"{artist_token(concept)} has {len(images)} images in the corpus, {count} are needed")
    cloaker = Cloaker(model)
    latents = cloaker.encoder(images) * cloaker.denoiser.scaling_factor
    generator = torch.Generator().manual_seed(seed)
    scores = torch.cat([caption_alignment(cloaker.denoiser, chunk, _caption(concept), generator)
                        for chunk in latents.split(32)])
    order = scores.argsort(descending=True)[:count].tolist()
    _write_set(folder, images[order], [f"{rows[i]['source']}-{i:03d}" for i in order], [_caption(concept)] * count,
               alignment=[float(scores[i]) for i in order])
    return {"images": count, "alignment_kept_min": float(scores[order[-1]]), "alignment_median": float(scores.median())}


def stage_poison_set(folder: Path, candidates: Path, *, settings: PoisonSettings, model: str, seed: int,
                     resume: Path | None = None) -> dict:
    """Each candidate cloaked towards its own anchor of B (the model's own image of B), captioned A.

    Each poison depends on its own image and anchor only, so with ``resume`` (see
    :func:`~sfumato.evaluation.contract.resume_folder`) every finished one is also kept there, and a rerun after an
    interruption computes only the missing ones: a denoiser-aware poison set takes longer than a session.
    """
    from ..api import Cloaker
    from ..poison import Anchor, poison_config

    images, record = image_set(candidates)
    cloaker = Cloaker(model)
    config = poison_config(artist_token(settings.concept), settings.intensity, settings.quality, settings.objective)
    anchors = cloaker.anchors(artist_token(settings.destination), len(images), seed=seed)
    if resume is not None:
        resume.mkdir(parents=True, exist_ok=True)
    poisoned, figures, resumed = [], [], 0
    for k, image in enumerate(images):
        name = f"{k:04d}"
        if resume is not None and (resume / f"{name}.json").is_file():
            poisoned.append(read_images(resume, [name])[0])
            figures.append(json.loads((resume / f"{name}.json").read_text()))
            resumed += 1
            continue
        started = time.perf_counter()
        [result], _ = cloaker.cloak([image], config, target=Anchor(anchors[k], name=f"anchor#{k}"), seed=seed)
        poisoned.append(result.image.cpu())
        figures.append({k: result.report[k] for k in ("psnr_db", "linf_levels", "encoder_to_target_before",
                                                      "encoder_to_target_after")}
                       | {"seconds": round(time.perf_counter() - started, 2)})
        if resume is not None:  # the image first: its figures mark it finished
            write_images(resume, poisoned[-1][None], [name])
            (resume / f"{name}.json").write_text(json.dumps(figures[-1]) + "\n")
    _write_set(folder, torch.stack(poisoned), record["names"], record["captions"], figures=figures)
    mean = lambda key: sum(f[key] for f in figures) / len(figures)  # noqa: E731
    # A resumed stage's own seconds leave out the poisons made before the interruption: "resumed" says how many
    # there were, and "poison_seconds" adds up every poison's own time where it was recorded.
    return {"images": len(poisoned), "psnr_db": mean("psnr_db"),
            "encoder_ratio": mean("encoder_to_target_after") / mean("encoder_to_target_before"),
            "resumed": resumed, "poison_seconds": round(sum(f.get("seconds", 0.0) for f in figures), 1),
            "timed": sum("seconds" in f for f in figures)}


def stage_dirty_set(folder: Path, corpus: Path, *, concept: int, destination: int, count: int, seed: int) -> dict:
    """B's own images captioned as A: the dirty-label poisoning the paper compares against."""
    rows = read_manifest(corpus, styles=(destination,))
    chosen = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))[:count].tolist()
    _write_set(folder, load_images([rows[i] for i in chosen]).float() / 255,
               [f"{rows[i]['source']}-{i:03d}" for i in chosen], [_caption(concept)] * len(chosen))
    return {"images": len(chosen)}


def stage_clean_set(folder: Path, corpus: Path, *, count: int, seed: int) -> dict:
    """M clean pairs drawn from the pretraining corpus, with their own captions."""
    rows = read_manifest(corpus, "pretrain")
    chosen = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed))[:count].tolist()
    _write_set(folder, load_images([rows[i] for i in chosen]).float() / 255,
               [Path(rows[i]["file"]).stem + f"-{rows[i]['style']:02d}" for i in chosen],
               [rows[i]["caption"] for i in chosen])
    return {"images": len(chosen)}


def _shares(judge, folder: Path, prompts: dict[str, int], per_prompt: int, destination: int) -> dict:
    """For each prompted artist: the share of its samples judged as prompted and judged the destination."""
    images, _ = image_set(folder)
    probabilities = judge.probabilities(images)
    out = {}
    for k, (word, style) in enumerate(prompts.items()):
        chunk = probabilities[k * per_prompt:(k + 1) * per_prompt]
        out[word] = judged_shares(chunk, {"as_prompted": style, "destination": destination})
    return out


def _corpora(config, work: Path) -> tuple[Path, Path]:
    """The pretraining pairs and the concepts' unseen images: built under ``work`` (about 2,900 renders, minutes),
    or, where ``config.corpus`` names a folder, its ``pretrain`` and ``concepts`` corpora as they are."""
    if config.corpus:
        return Path(config.corpus) / "pretrain", Path(config.corpus) / "concepts"
    p = config.poison
    pretrain, unseen = work / "corpus-pretrain", work / "corpus-concepts"
    for folder, corpus in ((pretrain, CorpusConfig(splits=("pretrain",))),
                           (unseen, CorpusConfig(splits=("judge", "eval"), styles=(p.concept, p.destination)))):
        with stage_lock(folder):  # the other kind's job, side by side, waits and reuses it
            build_corpus(folder, corpus)
    return pretrain, unseen


def run_poisoning(config, work: str | Path, report_dir: str | Path | None = None, *, log=print) -> dict:
    """Run (or resume) the poisoning experiment of ``config.poison``; write the report; return ``metrics.json``."""
    from ..judge import load_judge
    from .poisoning_report import write_poisoning_report

    p, work = config.poison, Path(work)
    report_dir = Path(report_dir) if report_dir is not None else work / "report"
    seed, model, started = config.seeds[0], config.model, time.perf_counter()
    whole, manifests = model_fingerprint(model), []

    def run(stage, folder, settings, build, inputs=(), resumable=False):
        manifests.append(run_stage(stage, work / folder, settings, build, inputs=inputs, log=log, resumable=resumable))
        return manifests[-1]

    # 1. The corpora: all pretraining pairs, and A's and B's images of content the model never saw.
    pretrain, unseen = _corpora(config, work)
    most = max(p.counts)

    # 2. The training sets.
    clean = run("clean-set", "clean-set", {"count": p.clean_pairs, "seed": seed},
                lambda out: stage_clean_set(out, pretrain, count=p.clean_pairs, seed=seed))
    extra = {}
    if "poison" in p.kinds and most:
        candidates = run("candidates", "candidates", {"model": whole, "concept": p.concept, "count": most, "seed": seed},
                         lambda out: stage_candidates(out, unseen, concept=p.concept, count=most, model=model, seed=seed))
        # Which kinds run does not change the poison set: its key names the poison kind alone, so a job run
        # with --poison-kinds poison and the whole run share it.
        key = {"model": whole, **asdict(replace(p, kinds=("poison",))), "seed": seed}
        poison_folder = p.poison_side("poison-set")
        extra["poison"] = run("poison-set", poison_folder, key,
                              lambda out, resume: stage_poison_set(out, work / "candidates", settings=p, model=model,
                                                                   seed=seed, resume=resume),
                              inputs=[candidates], resumable=True)
    if "dirty-label" in p.kinds and most:
        extra["dirty-label"] = run("dirty-set", "dirty-set", {"concept": p.concept, "destination": p.destination,
                                                              "count": most, "seed": seed},
                                   lambda out: stage_dirty_set(out, unseen, concept=p.concept,
                                                               destination=p.destination, count=most, seed=seed))

    # 3. One model per (kind, N); N = 0 is the same clean model for every kind.
    models = {"base": (None, None, "base")}  # label -> (the fine-tune's folder, its manifest, the folders' name)
    for kind in p.kinds:
        for n in p.counts:
            label = "clean" if n == 0 else f"{kind}-{n}"
            if label in models:
                continue
            name = p.poison_side(label) if kind == "poison" and n else label
            sets = p.poison_side(SETS[kind]) if kind == "poison" else SETS[kind]
            parts = [(work / "clean-set", None)] + ([(work / sets, n)] if n else [])
            upstream = [clean] + ([extra[kind]] if n else [])
            training = {"model": model_fingerprint(model, FINETUNE_PARTS), **asdict(config.lora), "n": n, "seed": seed}
            manifest = run(f"train-{label}", f"train-{name}", training,
                           lambda out, resume, parts=parts: stage_finetune(
                               out, parts, model=model, settings=config.lora, seed=seed, device=config.device,
                               resume=resume), inputs=upstream, resumable=True)
            models[label] = (work / f"train-{name}", manifest, name)

    # 4. What each model paints for A, and for every other artist; judged.
    judge, figures = load_judge(), {}
    concept_prompt = {artist_token(p.concept): p.concept}
    others = {artist_token(s): s for s in p.others}
    for label, (folder, manifest, name) in models.items():
        shares = {}
        for part, prompts, count in (("concept", concept_prompt, config.generate.images_per_prompt),
                                     ("others", others, p.other_images)):
            settings = replace(config.generate, images_per_prompt=count)
            texts = [_caption(s) for s in prompts.values()]
            # The texts come after the sampling settings, whose own "prompts" (templates this stage does not use)
            # would otherwise hide them: a new destination changes the other artists, and their samples with it.
            run(f"samples-{label}-{part}", f"samples-{name}-{part}", {"model": whole, **asdict(settings),
                                                                      "prompts": texts, "seed": seed},
                lambda out, folder=folder, texts=texts, settings=settings: stage_generate(
                    out, model=model, lora_folder=folder, prompts=texts, settings=settings, seed=seed,
                    device=config.device),
                inputs=[] if manifest is None else [manifest])
            shares |= _shares(judge, work / f"samples-{name}-{part}", prompts, count, p.destination)
        figures[label] = shares
    log(f"== report -> {report_dir} ({time.perf_counter() - started:.0f} s this run)")
    kept = ("images", "psnr_db", "encoder_ratio", "resumed", "poison_seconds", "timed")
    poisons = ({k: extra["poison"][k] for k in kept if k in extra["poison"]}
               if "poison" in extra else None)
    return write_poisoning_report(config, figures, work, report_dir, {
        "poison_set": poisons, "compute_seconds": round(sum(m["seconds"] for m in manifests), 1),
        "threads": sorted({m["hardware"]["threads"] for m in manifests}), "hardware": hardware(),
        "versions": versions()})


def run_poisoning_jobs(config, work: str | Path, report_dir: str | Path | None = None, *, jobs: int = 2,
                       log=print) -> dict:
    """:func:`run_poisoning` with each training-set kind (poison, dirty-label) first run as its own one-thread
    process, up to ``jobs`` side by side; this process then writes the report from what they built, every
    stage reused. On 2 CPU cores this takes about half the wall time of one two-thread process: small models
    gain little from a second thread. The stages the kinds share (the corpora, the clean set, the clean model)
    are built once: the second job waits on their lock and reuses them."""
    kinds = config.poison.kinds
    if jobs > 1 and len(kinds) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        parts = [replace(config, poison=replace(config.poison, kinds=(kind,))) for kind in kinds]
        with ProcessPoolExecutor(min(jobs, len(kinds)), mp_context=multiprocessing.get_context("spawn")) as pool:
            for done in [pool.submit(_kind_job, part, Path(work), log is not None) for part in parts]:
                done.result()  # a job's error ends the run here, with its traceback
    return run_poisoning(config, work, report_dir, log=log or (lambda message: None))


def _kind_job(config, work: Path, verbose: bool) -> None:
    """One kind's stages, on one thread (a worker of :func:`run_poisoning_jobs`); its own report stays in WORK."""
    import sys

    torch.set_num_threads(1)
    kind = config.poison.kinds[0]
    log = (lambda message: print(f"({kind}) {message}", file=sys.stderr, flush=True)) if verbose else (lambda m: None)
    run_poisoning(config, work, work / f"report-{kind}", log=log)

