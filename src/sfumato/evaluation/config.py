"""Settings of one mimicry evaluation, as frozen dataclasses, read from TOML or built in code."""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from ..config import resolve_config
from ..countermeasures import KINDS, parse_countermeasure
from ..corpus import PRETRAIN_STYLES, VICTIM_STYLES, artist_token
from ..finetune import LoraSettings
from .art_judge import ArtJudgeSettings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["ProtectSettings", "GenerateSettings", "BenchmarkSettings", "PoisonSettings", "EvaluationConfig", "load_config",
           "COUNTERMEASURES", "PRESETS", "MatrixSettings"]

#: Ready configs shipped with sfumato: ``mini-quick``, ``mini-full``, ``sd15-gpu``.
PRESETS = Path(__file__).parent / "configs"

#: Countermeasures a mimic may apply to scraped images before fine-tuning (:mod:`sfumato.countermeasures`).
COUNTERMEASURES = tuple(KINDS)


@dataclass(frozen=True)
class ProtectSettings:
    """How the artist cloaks: ``sfumato cloak``'s settings, plus what the mimic does to the result.

    Args:
        protection (`str`): the objective, a name in :data:`sfumato.losses.PROTECTIONS`.
        intensity (`str`): ``low``, ``default``, ``high`` or an L∞ cap in 8-bit levels.
        quality (`str`): ``preview``, ``faster``, ``default``, ``slower`` or a number of steps.
        target (`str`): ``auto``, a built-in style ``0``-``25``, or a style image path.
        countermeasure (`str`): what the mimic does to every scraped image before fine-tuning, the
            cloaked ones and, for the clean baseline, the originals: ``none`` or a spec of
            :mod:`sfumato.countermeasures` (``jpeg:Q``, ``blur:S``, ``noise:S``, ``resize:F``,
            ``upscale:S``, ``diffpure:T``, ``impress``).
        budget_scale (`float`): multiplies the perceptual budget (``CloakConfig.budget_scale``);
            1 keeps the calibrated one.
        flips (`bool`): optimise the mirror image too (``CloakConfig.flips``).
        robust (`bool`): optimise in expectation over the mimic's cleaning (``CloakConfig.robust``).
    """

    protection: str = "glaze"
    intensity: str = "default"
    quality: str = "default"
    target: str = "auto"
    countermeasure: str = "none"
    budget_scale: float = 1.0
    flips: bool = False
    robust: bool = False

    def __post_init__(self) -> None:
        resolve_config(self.intensity, self.quality, protection=self.protection,
                       budget_scale=self.budget_scale)  # raises on a bad setting
        parse_countermeasure(self.countermeasure)


@dataclass(frozen=True)
class GenerateSettings:
    """How the mimic samples. ``{artist}`` in a prompt is replaced by the artist's prompt word.

    Every prompt is sampled ``images_per_prompt`` times with the same seeds for the base
    model, the clean LoRA and the cloaked LoRA.
    """

    prompts: tuple[str, ...] = ("a painting by {artist}",)
    images_per_prompt: int = 64
    steps: int = 20
    guidance: float = 7.0
    batch_size: int = 32

    def __post_init__(self) -> None:
        if not self.prompts or self.images_per_prompt < 1 or self.steps < 1 or self.batch_size < 1:
            raise ValueError("need at least one prompt, and images_per_prompt, steps and batch_size >= 1")


@dataclass(frozen=True)
class BenchmarkSettings:
    """Several protections on the same cases: the clean stages are shared, each protection adds its own.

    Args:
        protections (`tuple[str, ...]`): every protection, each run at ``intensities``.
        intensities (`tuple[str, ...]`): the intensities every protection runs at (``"default"``: ±8 levels).
        sweep_intensities (`tuple[str, ...]`): further intensities for the protections in ``sweep``
            and for the ``sweep_best`` others with the highest protection success at the first
            of ``intensities``, for the frontier of protection against visibility.
        sweep (`tuple[str, ...]`): protections always swept (``glaze``, the reference).
        sweep_best (`int`): how many of the best protections besides those in ``sweep`` are swept too
            (ties keep the order of ``protections``).
    """

    protections: tuple[str, ...] = ("glaze",)
    intensities: tuple[str, ...] = ("default",)
    sweep_intensities: tuple[str, ...] = ()
    sweep: tuple[str, ...] = ("glaze",)
    sweep_best: int = 2

    def __post_init__(self) -> None:
        for name in (*self.protections, *self.sweep):
            resolve_config(protection=name)  # raises on an unknown protection
        for intensity in (*self.intensities, *self.sweep_intensities):
            resolve_config(intensity)
        if not self.protections or not self.intensities or self.sweep_best < 0:
            raise ValueError("a benchmark needs protections and intensities, and sweep_best >= 0")


@dataclass(frozen=True)
class MatrixSettings:
    """The adaptive mimic: protections, plain and robust, against each countermeasure (``[matrix]``).

    Args:
        protections (`tuple[str, ...]`): the protections, each a row (and a ``+robust`` row).
        robust (`tuple[bool, ...]`): which of plain (False) and robust (True) cloaks to run.
        countermeasures (`tuple[str, ...]`): the columns (``none`` among them for ``best`` and the verdict);
            each applied by the mimic to the cloaked images and, for the clean baseline, to the originals.
        intensity (`str`): the cloaks' intensity.
        reuse (`tuple[str, ...]`): report folders of other comparisons (the protections benchmark's) whose kept
            parts stand in for a cell that computes the same evaluation (a plain cell against ``none``).
    """

    protections: tuple[str, ...] = ("glaze",)
    robust: tuple[bool, ...] = (False, True)
    countermeasures: tuple[str, ...] = ("none", "jpeg:75", "noise:0.05", "resize:2", "upscale:0.1", "diffpure:0.2",
                                        "impress")
    intensity: str = "default"
    reuse: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in self.protections:
            resolve_config(self.intensity, protection=name)  # raises on an unknown protection or intensity
        for spec in self.countermeasures:
            parse_countermeasure(spec)
        if not self.protections or not self.robust or not self.countermeasures:
            raise ValueError("a countermeasure matrix needs protections, robust settings and countermeasures")


#: The two ways of poisoning a concept: Nightshade's, and dirty-label (another concept's images, mis-captioned).
KINDS = ("poison", "dirty-label")


@dataclass(frozen=True)
class PoisonSettings:
    """The poisoning experiment (``[poison]`` in a config such as ``mini-poison``).

    Args:
        concept (`int`) and destination (`int`): pretraining artists A (poisoned) and B (what A turns into).
        clean_pairs (`int`): M, clean pairs from the pretraining corpus.
        counts (`tuple[int, ...]`): the numbers N of poisoned (or dirty-label) pairs added, 0 first.
        kinds (`tuple[str, ...]`): ``poison`` and/or ``dirty-label``.
        objective, intensity, quality (`str`): the poison's, as ``sfumato poison``.
        other_images (`int`): samples per other pretraining artist, for bleed-through and collateral damage.
        related (`tuple[int, ...]`, *optional*): concepts that share words with A (default: the pretraining
            artists whose word differs from A's in the last digit only, artist0X for artist05).
    """

    concept: int = 5
    destination: int = 19
    clean_pairs: int = 2000
    counts: tuple[int, ...] = (0, 25, 50, 100, 200)
    kinds: tuple[str, ...] = KINDS
    objective: str = "glaze"
    intensity: str = "default"
    quality: str = "default"
    other_images: int = 16
    related: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        from ..poison import poison_config

        if {self.concept, self.destination} - set(PRETRAIN_STYLES) or self.concept == self.destination:
            raise ValueError(f"concept and destination must be two different pretraining artists "
                             f"{list(PRETRAIN_STYLES)}, got {self.concept} and {self.destination}")
        if not self.counts or self.counts[0] != 0 or list(self.counts) != sorted(set(self.counts)):
            raise ValueError(f"counts must rise from 0, got {list(self.counts)}")
        if not self.kinds or set(self.kinds) - set(KINDS):
            raise ValueError(f"kinds must be among {list(KINDS)}, got {list(self.kinds)}")
        if not 1 <= self.clean_pairs <= 120 * len(PRETRAIN_STYLES):
            raise ValueError(f"clean_pairs must be 1 to {120 * len(PRETRAIN_STYLES)} (the pretraining corpus)")
        poison_config(artist_token(self.concept), self.intensity, self.quality, self.objective)  # raises early

    @property
    def related_concepts(self) -> tuple[int, ...]:
        if self.related is not None:
            return self.related
        return tuple(s for s in PRETRAIN_STYLES if s // 10 == self.concept // 10 and s not in
                     (self.concept, self.destination))

    @property
    def others(self) -> tuple[int, ...]:
        """Every pretraining artist but A and B: bleed-through and collateral damage are read on these."""
        return tuple(s for s in PRETRAIN_STYLES if s not in (self.concept, self.destination))

    def poison_side(self, name: str) -> str:
        """A poison-side folder's name (``poison-set``, ``train-poison-N``, ...): as it is for the paper's
        objective at the default intensity and quality, else with what differs appended, so that another
        poison shares the clean stages of one work folder and keeps its own."""
        differs = [v for v, default in ((self.objective, "glaze"), (self.intensity, "default"),
                                        (self.quality, "default")) if v != default]
        return "-".join([name, *differs])


@dataclass(frozen=True)
class EvaluationConfig:
    """One evaluation: which art, which model, how it is cloaked, how the mimic trains and samples.

    Args:
        name (`str`): names the run in the report.
        model (`str`): ``mini``, a Stable Diffusion hub id or a local diffusers folder.
        victims (`tuple[int, ...]`): sfumato-mini's held-out artists (styles) to test; ignored
            when ``art`` is given.
        art (`str`, *optional*): a folder of one artist's images instead of the built-in victims.
        artist (`str`): the prompt word for ``art`` (built-in victims use ``artistNN``).
        images (`int`): how many of the artist's images the mimic trains on.
        seeds (`tuple[int, ...]`): one full run (image choice, cloak, fine-tune, sampling) per seed.
        cases (`tuple[tuple[int, int], ...]`, *optional*): explicit (victim, seed) pairs instead of
            every victim with every seed (a benchmark's cases, chosen from clean runs).
        corpus (`str`, *optional*): where the built-in victims' corpus is built (defaults to
            ``WORK/corpus``).
        device (`str`): ``cpu`` or ``cuda``; under ``accelerate launch`` the fine-tune uses
            accelerate's device.
        clip_model (`str`, *optional*): a CLIP hub id or local folder for a zero-shot style score.
        clip_labels (`tuple[str, ...]`): the zero-shot labels; the first names the artist's
            style (``{artist}`` is replaced), the others are the alternatives.
        art_judge (`ArtJudgeSettings`): how the judge of ``art``'s own style is trained and when it
            is refused (``[art_judge]`` in TOML; unused for the built-in victims).
        poison (`PoisonSettings`, *optional*): a poisoning experiment instead of a mimicry test
            (``[poison]`` in TOML; ``sfumato evaluate --config mini-poison``).
        matrix (`MatrixSettings`, *optional*): protections against countermeasures, plain and robust
            (``[matrix]`` in TOML; ``sfumato evaluate --config mini-counter``).
        upscaler (`str`, *optional*): a ``StableDiffusionUpscalePipeline`` hub id or folder (Stable Diffusion's
            x4 upscaler) for the ``upscale:S`` countermeasure; without one the model's own img2img stands in.
        clean_only (`bool`): run the clean side only (base and clean-LoRA samples, mimicry figures, no
            cloak); the protected side can follow in the same work folder and reuses those stages.
        clean_from (`str`, *optional*): the report folder of a kept clean-only evaluation (a comparison's
            clean side, with its case results): a protected run takes each case's clean and base figures from
            it, where it keeps that case under the same settings on this CPU model (and GPU), and builds only
            the protected side. The figures are the ones building the clean side again would give (it is
            deterministic on one CPU model, not across them: a case kept on another machine builds its own
            clean side). It saves a clean fine-tune per case on a machine whose work folder is new.
    """

    name: str = "evaluation"
    model: str = "mini"
    victims: tuple[int, ...] = (2,)
    art: str | None = None
    artist: str = "sks"
    images: int = 16
    seeds: tuple[int, ...] = (0,)
    cases: tuple[tuple[int, int], ...] | None = None
    corpus: str | None = None
    device: str = "cpu"
    clip_model: str | None = None
    clip_labels: tuple[str, ...] = ("a painting in the style of {artist}", "a painting", "a photograph")
    clean_only: bool = False
    clean_from: str | None = None
    protect: ProtectSettings = field(default_factory=ProtectSettings)
    lora: LoraSettings = field(default_factory=LoraSettings)
    generate: GenerateSettings = field(default_factory=GenerateSettings)
    benchmark: BenchmarkSettings | None = None
    art_judge: ArtJudgeSettings = field(default_factory=ArtJudgeSettings)
    poison: PoisonSettings | None = None
    matrix: MatrixSettings | None = None
    upscaler: str | None = None

    def __post_init__(self) -> None:
        if self.cases is not None:
            object.__setattr__(self, "cases", tuple(tuple(int(v) for v in pair) for pair in self.cases))
            if not self.cases or any(len(pair) != 2 or pair[0] not in VICTIM_STYLES for pair in self.cases):
                raise ValueError(f"cases must be (victim, seed) pairs with victims among {list(VICTIM_STYLES)}, "
                                 f"got {self.cases}")
        if self.art is None and (not self.victims or set(self.victims) - set(VICTIM_STYLES)):
            raise ValueError(f"victims must be some of sfumato-mini's held-out artists {list(VICTIM_STYLES)}, "
                             f"got {list(self.victims)}")
        if self.images < 1 or not self.seeds:
            raise ValueError("images must be >= 1 and seeds not empty")
        if self.clean_only and self.clean_from is not None:
            raise ValueError("clean_from gives a protected run its clean side; a clean-only run builds it")

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def variant(self) -> str:
        """Names the protected side's stage folders: ``""`` for Glaze at the default intensity (the
        folders every earlier run used), else the protection and intensity, e.g. ``"advdm"``, ``"glaze-i16"``.

        A benchmark varies these two in one ``--work`` folder; any other change reruns the stages in place.
        """
        p = self.protect
        parts = ([] if p.protection == "glaze" else [p.protection]) + ([] if p.intensity == "default"
                                                                       else [f"i{p.intensity}"])
        parts += [] if p.budget_scale == 1 else [f"b{p.budget_scale:g}"]
        parts += ["flips"] if p.flips else []
        parts += ["robust"] if p.robust else []
        return "-".join(parts)

    def with_overrides(self, **values) -> EvaluationConfig:
        """A copy with some top-level fields, or ``section.field`` keys, changed (``None`` values are skipped)."""
        top, sections = {}, {}
        for key, value in values.items():
            if value is None:
                continue
            section, _, name = key.rpartition(".")
            (sections.setdefault(section, {}) if section else top).__setitem__(name, value)
        for section, changes in sections.items():
            current = getattr(self, section)
            if current is None and section == "benchmark":
                current = BenchmarkSettings()
            top[section] = replace(current, **_coerce(type(current), changes))
        return replace(self, **_coerce(EvaluationConfig, top))


def _coerce(cls, values: dict) -> dict:
    """TOML gives lists and ints where the dataclasses hold tuples and strings."""
    known = {f.name: f for f in fields(cls)}
    unknown = set(values) - set(known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} settings: {', '.join(sorted(unknown))}")
    out = {}
    for name, value in values.items():
        if isinstance(value, list):
            value = tuple(value)
        if name in ("protection", "intensity", "quality", "target") and value is not None:
            value = str(value)
        if name in ("protections", "intensities", "sweep_intensities", "sweep", "kinds",
                    "countermeasures") and value is not None:
            value = tuple(str(v) for v in value)
        out[name] = value
    return out


def load_config(path: str | Path) -> EvaluationConfig:
    """Read an :class:`EvaluationConfig` from a TOML file (top-level keys plus ``[protect]``,
    ``[lora]``, ``[generate]``, ``[art_judge]``, ``[benchmark]``, ``[poison]`` and ``[matrix]`` tables), or a shipped preset by name (``"mini-quick"``)."""
    path = Path(path)
    if not path.is_file() and (PRESETS / f"{path}.toml").is_file():
        path = PRESETS / f"{path}.toml"
    if not path.is_file():
        presets = ", ".join(sorted(p.stem for p in PRESETS.glob("*.toml")))
        raise ValueError(f"no evaluation config at {path} (shipped presets: {presets})")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path}: {err}") from None
    sections = {"protect": ProtectSettings, "lora": LoraSettings, "generate": GenerateSettings,
                "art_judge": ArtJudgeSettings}
    parts = {name: cls(**_coerce(cls, data.pop(name, {}))) for name, cls in sections.items()}
    if "benchmark" in data:
        parts["benchmark"] = BenchmarkSettings(**_coerce(BenchmarkSettings, data.pop("benchmark")))
    if "poison" in data:
        parts["poison"] = PoisonSettings(**_coerce(PoisonSettings, data.pop("poison")))
    if "matrix" in data:
        parts["matrix"] = MatrixSettings(**_coerce(MatrixSettings, data.pop("matrix")))
    return EvaluationConfig(**_coerce(EvaluationConfig, data), **parts)
