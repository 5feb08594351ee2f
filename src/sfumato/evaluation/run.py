"""Run a whole evaluation: every case's stages in order, then the report.

A *case* is one artist with one seed. Its stages live in ``WORK/<case>/<stage>/``::

    art ─┬─ protect ─ [countermeasure] ─ finetune-cloaked ─ generate-cloaked ─┐
         ├─ finetune-clean ─ generate-clean ─────────────────────────────────┤
         └─ [judge] ─────────────────────────────────────────────────────────┼─ score
    generate-base ───────────────────────────────────────────────────────────┘

``judge`` runs for an art folder only: a judge of that artist's style, trained on images
the mimic never sees (:mod:`sfumato.evaluation.art_judge`); the built-in victims use the
shipped 26-style judge. A clean-only run (``EvaluationConfig.clean_only``) leaves out the
upper branch; the protected side can follow later in the same ``WORK`` and reuses the rest.
A case whose clean side is kept elsewhere (``clean_kept``: a comparison's clean-only part,
``EvaluationConfig.clean_from``) runs the upper branch alone and scores it into
``score-kept-clean``, taking the base and clean figures from what is kept.

Under ``accelerate launch`` the fine-tunes run on every process; the other stages
run on the main process while the others wait.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..corpus import artist_token, load_images, read_manifest
from .art_judge import ARTIST, check_art_counts, weakness
from .config import EvaluationConfig
from .contract import is_current, read_manifest as read_stage, run_stage
from .fingerprint import FINETUNE_PARTS, PROTECT_PARTS, model_fingerprint
from .stages import (image_set, purifier_for, stage_art, stage_countermeasure, stage_finetune, stage_generate,
                     stage_judge, stage_protect, stage_score, victim_corpus)

__all__ = ["Case", "cases", "model_fingerprint", "run_evaluation"]


@dataclass(frozen=True)
class Case:
    victim: int | None  # a built-in victim's style, or None for an art folder
    artist: str  # the prompt word
    seed: int

    @property
    def name(self) -> str:
        return f"{self.artist}-seed{self.seed}"


def cases(config: EvaluationConfig) -> list[Case]:
    if config.art is not None:
        return [Case(None, config.artist, seed) for seed in config.seeds]
    if config.cases is not None:
        return [Case(v, artist_token(v), seed) for v, seed in config.cases]
    return [Case(v, artist_token(v), seed) for v in config.victims for seed in config.seeds]


class _Runner:
    """Runs stages through the on-disk contract, on the main process unless distributed."""

    def __init__(self, accelerator, log):
        self.accelerator, self.log = accelerator, log

    def __call__(self, stage: str, folder: Path, settings: dict, build, inputs=(), distributed: bool = False,
                 resumable: bool = False) -> dict:
        acc, kept = self.accelerator, {"inputs": inputs, "log": self.log, "resumable": resumable}
        if acc is None or acc.num_processes == 1:
            return run_stage(stage, folder, settings, build, **kept)
        if acc.is_main_process:
            manifest = run_stage(stage, folder, settings, build, **kept)
        elif distributed and not is_current(stage, folder, settings, inputs):  # the main process's decision
            scratch = folder.with_name(f"{folder.name}.rank{acc.process_index}")
            scratch.mkdir(parents=True, exist_ok=True)
            # joins the distributed fine-tune (which keeps no resume state); only the main process's output is kept
            build(scratch, None) if resumable else build(scratch)
        acc.wait_for_everyone()
        return read_stage(folder) if not acc.is_main_process else manifest


def _lora_key(settings) -> dict:
    """The fine-tune's settings as a stage records them.

    ``noise_offset`` and ``full_unet`` came later; each enters only when used, so that
    fine-tunes made before it existed (the same computation) are still reused.
    """
    key = asdict(settings)
    for name in ("noise_offset", "full_unet"):
        if not key[name]:
            del key[name]
    return key


def _protect_key(settings) -> dict:
    """The cloak's settings as a stage records them; ``protection``, ``budget_scale``, ``flips`` and ``robust``
    enter only when they are not the defaults, so that cloaks made before they existed (the same computation)
    are reused. The countermeasure comes after the cloak and never changes it: every key records it as
    ``none``, as the keys of cloaks made before it was moved out did."""
    key = asdict(settings) | {"countermeasure": "none"}
    for name, default in (("protection", "glaze"), ("budget_scale", 1.0), ("flips", False), ("robust", False)):
        if key[name] == default:
            del key[name]
    return key


def countermeasure_suffix(spec: str) -> str:
    """A countermeasure's part of a stage folder's name: ``upscale:0.1`` -> ``-cm-upscale0p1``, ``none`` -> ``""``."""
    return "" if spec == "none" else "-cm-" + spec.replace(":", "").replace(".", "p")


def _suffixes(config: EvaluationConfig) -> tuple[str, str, str]:
    """Folder suffixes: the cloak's, the cloak's and countermeasure's together (the protected side
    after cleaning), and the countermeasure's alone (the clean side after cleaning).

    Several protections (or intensities) on the same ``--work`` share the clean stages and
    keep their own protected ones; each countermeasure has its own clean side, shared by all.
    """
    protect = f"-{config.variant}" if config.variant else ""
    cm = countermeasure_suffix(config.protect.countermeasure)
    return protect, protect + cm, cm


def case_folders(config: EvaluationConfig, work: str | Path, case: Case) -> dict[str, Path]:
    """Where each stage of one case lives under ``work`` (protected-side folders carry the variant; a
    clean-only run scores into ``score-clean``, so that the full run's score is never taken for it)."""
    sfx, cm_sfx, cm = _suffixes(config)
    folder = Path(work) / case.name
    folders = {"art": folder / "art", "judge": folder / "judge", "protect": folder / f"protect{sfx}",
               "score": folder / (f"score-clean{cm}" if config.clean_only else f"score{cm_sfx}"),
               "score-kept-clean": folder / f"score-kept-clean{cm_sfx}"}
    if config.protect.countermeasure != "none":
        folders["countermeasure"] = folder / f"countermeasure{cm_sfx}"
        folders["countermeasure-clean"] = folder / f"countermeasure-clean{cm}"
    for side, suffix in (("base", "base"), ("clean", f"clean{cm}"), ("cloaked", f"cloaked{cm_sfx}")):
        if side != "base":
            folders[f"finetune-{side}"] = folder / f"finetune-{suffix}"
        folders[f"generate-{side}"] = folder / f"generate-{suffix}"
    return folders


def _check_art(config: EvaluationConfig) -> None:
    """Refuse an art folder too small to split between the mimic and its judge, before any work."""
    from ..io import find_images

    settings = config.art_judge
    judge_found = len(find_images([settings.judge_art])) if settings.judge_art else None
    check_art_counts(config.art, len(find_images([config.art])), config.images, settings, judge_found)


def _art_judge(s: _Setup, case: Case, f: dict, art: dict):
    """Train (or reuse) the art folder's own style judge; refuse one too weak to trust."""
    from ..judge import load_judge

    config, settings = s.config, s.config.art_judge
    prompts = [p.format(artist=case.artist) for p in config.generate.prompts]
    sampling = asdict(config.generate)
    del sampling["images_per_prompt"]  # the judge draws its own number of base samples
    key = {"model": s.weights, "prompts": prompts, **sampling,
           "base_samples": settings.base_samples, "negative_styles": settings.negative_styles, "seed": case.seed}
    manifest = s.run("judge", f["judge"], key,
                     lambda out: stage_judge(out, art_folder=f["art"], model=config.model, prompts=prompts,
                                             settings=config.generate, judge_settings=settings, seed=case.seed,
                                             style_judge=s.judge, device=config.device), inputs=[art])
    why = weakness(manifest["rates"], settings)
    if why:
        raise ValueError(f"{config.art}: the style judge for this artist is too weak to trust: {why}")
    return load_judge(f["judge"] / "art-judge.safetensors", trunk=s.judge.trunk), [manifest]


@dataclass(frozen=True)
class _Setup:
    """What every case of one evaluation shares: the stage runner, the folders, the model's fingerprints, the judges."""

    config: EvaluationConfig
    work: Path
    corpus: Path
    resolution: int
    run: _Runner
    weights: str  # the whole model (sampling reads it all)
    encoder_weights: str
    lora_weights: str
    judge: object
    judge_version: str
    perceptual: object
    accelerator: object
    _loaded: dict = field(default_factory=dict)

    def purifier(self):
        """The model-run countermeasures' purifier, loaded at its first use."""
        if "purifier" not in self._loaded:
            self._loaded["purifier"] = purifier_for(self.config.model, self.config.device, self.config.upscaler)
        return self._loaded["purifier"]


def _setup(config: EvaluationConfig, work: Path, accelerator, log) -> _Setup:
    from ..judge import JUDGE_WEIGHTS, load_judge
    from ..models import native_resolution
    from ..perceptual import load_perceptual

    return _Setup(config=config, work=work, corpus=Path(config.corpus) if config.corpus else work / "corpus",
                  resolution=native_resolution(config.model), run=_Runner(accelerator, log),
                  weights=model_fingerprint(config.model),
                  encoder_weights=model_fingerprint(config.model, PROTECT_PARTS),
                  lora_weights=model_fingerprint(config.model, FINETUNE_PARTS),
                  judge=load_judge(), perceptual=load_perceptual("auto"),
                  judge_version=hashlib.sha256(JUDGE_WEIGHTS.read_bytes()).hexdigest()[:12],  # new weights: new scores
                  accelerator=accelerator)


def run_evaluation(config: EvaluationConfig, work: str | Path, report_dir: str | Path | None = None, *,
                   accelerator=None, log=print, case_figures: int | None = None, charts: bool = True,
                   clean_kept: dict | None = None) -> dict:
    """Run (or resume) every stage of every case, then write the report; returns ``metrics.json``'s content.

    ``case_figures``: draw the side-by-side figure of the first cases only (None: every case);
    ``charts=False``: no bar chart; ``clean_kept``: case name -> that case's kept clean-side entry
    (:func:`~.parts.kept_clean_entries`), whose base and clean figures stand for building them.
    """
    from .report import write_report

    if config.art is not None:
        _check_art(config)  # before any work
    work = Path(work)
    report_dir = Path(report_dir) if report_dir is not None else work / "report"
    setup = _setup(config, work, accelerator, log)
    started = time.perf_counter()
    results = [_run_case(setup, case, log, (clean_kept or {}).get(case.name)) for case in cases(config)]
    if accelerator is not None and not accelerator.is_main_process:
        return {}
    log(f"== report -> {report_dir} ({time.perf_counter() - started:.0f} s this run)")
    return write_report(config, results, report_dir, case_figures, charts=charts)


def _run_case(s: _Setup, case: Case, log, kept: dict | None = None) -> dict:
    """Every stage of one case, in order; returns what the report needs of it (``kept``: the case's clean side,
    kept elsewhere: only the protected side runs)."""
    config, run = s.config, s.run
    f = case_folders(config, s.work, case)
    kept = None if config.clean_only else kept
    if kept is not None:
        f["score"] = f["score-kept-clean"]
    log(f"== {case.name}")
    held = {} if config.art is None else {"held_out": config.art_judge.held_out, "judge_art": config.art_judge.judge_art}
    art = run("art", f["art"], {"victim": case.victim, "art": config.art, "artist": case.artist,
                                "images": config.images, "resolution": s.resolution, "seed": case.seed, **held},
              lambda out: stage_art(out, victim=case.victim, art=config.art, artist=case.artist, count=config.images,
                                    resolution=s.resolution, seed=case.seed, corpus=s.corpus, **held))
    judge, artist_class, judged = s.judge, case.victim, []
    if config.art is not None:
        judge, judged = _art_judge(s, case, f, art)
        artist_class = ARTIST
    protect, cloaked = (None, None) if config.clean_only else _protected_set(s, case, f, art)
    if kept is None:
        clean = _cleaned(s, case, "countermeasure-clean", f, (f["art"], art))  # the mimic cleans all it scrapes
        tuned = _finetunes(s, case, f, {"clean": clean, **({"cloaked": cloaked} if cloaked else {})})
    else:
        tuned = _finetunes(s, case, f, {"cloaked": cloaked})
    generated = _samples(s, case, f, tuned, base=kept is None)
    real = (load_images(read_manifest(victim_corpus(s.corpus, case.victim), "victim")).float() / 255
            if case.victim is not None else image_set(f["art"])[0])
    clip = None
    if config.clip_model:
        clip = {"model": config.clip_model, "labels": [label.format(artist=case.artist) for label in config.clip_labels],
                "index": 0}
    score_key = {"victim": case.victim, "clip": clip, "judge": s.judge_version,
                 "perceptual": type(s.perceptual).__name__} | ({"clean_only": True} if config.clean_only else {})
    if kept is not None:
        score_key["clean_kept"] = {k: v for k, v in kept["scores"].items() if k in ("base", "clean", "mimicry_success")}
    score = run("score", f["score"], score_key,
                lambda out: stage_score(out, art_folder=f["art"], protect_folder=None if protect is None else f["protect"],
                                        generated={k: f[f"generate-{k}"] for k in generated},
                                        artist_class=artist_class, real=real, judge=judge,
                                        perceptual=s.perceptual, clip=clip),
                inputs=[art, *judged, *([] if protect is None else [protect]), *generated.values()])
    stages = {"art": art, **({"judge": judged[0]} if judged else {}), **({} if protect is None else {"protect": protect}),
              **{f"finetune-{k}": v for k, v in tuned.items()}, **{f"generate-{k}": v for k, v in generated.items()},
              "score": score}
    scores = score["scores"] if kept is None else _with_kept_clean(score["scores"], kept["scores"])
    return {"case": case, "folder": s.work / case.name, "stage_folders": {k: f[k] for k in stages},
            "scores": scores, "art_judge": judged[0]["rates"] if judged else None,
            "seconds": {k: v["seconds"] for k, v in stages.items()},
            "reused": all(v.get("reused") for v in stages.values())}


def _with_kept_clean(scores: dict, kept: dict) -> dict:
    """A protected side's scores with the base and clean figures of its kept clean side."""
    merged = {"base": kept["base"], "clean": kept["clean"]} | scores
    if "mimicry_success" in scores:
        merged["mimicry_success"] = {k: kept["mimicry_success"][k] for k in ("base", "clean")} | scores["mimicry_success"]
    return merged


def _protected_set(s: _Setup, case: Case, f: dict, art: dict) -> tuple[dict, tuple[Path, dict]]:
    """The cloaks (and the countermeasure, if any): the protect manifest, and the folder the mimic trains on."""
    config = s.config
    protect = s.run("protect", f["protect"], {"model": s.encoder_weights, **_protect_key(config.protect),
                                              "seed": case.seed},
                    lambda out: stage_protect(out, f["art"], model=config.model, settings=config.protect,
                                              seed=case.seed, device=config.device), inputs=[art])
    return protect, _cleaned(s, case, "countermeasure", f, (f["protect"], protect))


def _cleaned(s: _Setup, case: Case, name: str, f: dict, source: tuple[Path, dict]) -> tuple[Path, dict]:
    """The mimic's countermeasure on one side's images (``name``: its stage); unchanged without one."""
    from ..countermeasures import parse_countermeasure

    spec = s.config.protect.countermeasure
    if spec == "none":
        return source
    cm, (folder, upstream) = parse_countermeasure(spec), source
    key = {"spec": spec} | ({"seed": case.seed} if cm.draws_noise else {})
    if cm.needs_model:
        key |= {"model": s.weights, **s.purifier().settings}
    manifest = s.run(name, f[name], key,
                     lambda out: stage_countermeasure(out, folder, spec=spec, seed=case.seed,
                                                      purifier=s.purifier() if cm.needs_model else None),
                     inputs=[upstream])
    return f[name], manifest


def _finetunes(s: _Setup, case: Case, f: dict, sources: dict) -> dict:
    """One LoRA per side (``clean``, and ``cloaked`` unless clean-only), with identical settings and seed."""
    config, tuned = s.config, {}
    lora = {"model": s.lora_weights, **_lora_key(config.lora), "seed": case.seed}
    for name, (images, upstream) in sources.items():
        tuned[name] = s.run(f"finetune-{name}", f[f"finetune-{name}"], lora,
                            lambda out, resume, images=images: stage_finetune(
                                out, images, model=config.model, settings=config.lora, seed=case.seed,
                                device=config.device, accelerator=s.accelerator, resume=resume),
                            inputs=[upstream], distributed=True, resumable=True)
    return tuned


def _samples(s: _Setup, case: Case, f: dict, tuned: dict, base: bool = True) -> dict:
    """The base model's samples (``base``) and each LoRA's, with the same prompts and seeds."""
    config = s.config
    prompts = [p.format(artist=case.artist) for p in config.generate.prompts]
    sampling = {"model": s.weights, "prompts": prompts, **asdict(config.generate), "seed": case.seed}
    generated = {}
    for name in (*(["base"] if base else []), *tuned):
        lora_folder = None if name == "base" else f[f"finetune-{name}"]
        generated[name] = s.run(f"generate-{name}", f[f"generate-{name}"], sampling,
                                lambda out, lora_folder=lora_folder: stage_generate(
                                    out, model=config.model, lora_folder=lora_folder, prompts=prompts,
                                    settings=config.generate, seed=case.seed, device=config.device),
                                inputs=[] if name == "base" else [tuned[name]])
    return generated
