"""Protections compared head to head: every protection on the same cases, one report.

Each (protection, intensity) is one ordinary evaluation (:func:`run_evaluation`) in a
shared ``--work`` folder, so the clean stages (the art, the clean fine-tune and its
samples, the base model's samples) run once and every protection adds only its cloaks,
one cloaked fine-tune and one generation per case. The report compares them: protection
success over the cases where the clean mimic worked, visibility, and cost.

The benchmark takes hours of CPU per protection, more than one working session, and
stage folders do not outlive a session's machine. So each evaluation's own report is
kept as a *part* of the benchmark's report (``REPORT/parts/PROTECTION-INTENSITY/``:
``metrics.json``, ``report.md``, one case's figure and its row of the grid, and
``part.json`` with what it was computed from). Committed, the parts carry the work to the
next session: a part whose ``part.json`` matches the evaluation's settings, the model's
weights and the judge's is reused instead of run again.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import replace
from pathlib import Path

import torch

from ..config import resolve_config
from ..losses import PROTECTIONS
from .config import EvaluationConfig
from .contract import versions
from .fingerprint import model_fingerprint
from .report import ATTACK_WORKS, _palette
from .run import case_folders, cases, run_evaluation
from .stages import image_set

__all__ = ["run_benchmark", "run_part", "write_benchmark_report", "benchmark_headline", "SPEED_FILE"]

#: Seconds and peak memory per 128 px image, measured by ``benchmarks/bench_cloak.py`` in fresh processes.
SPEED_FILE = Path(__file__).resolve().parents[3] / "benchmarks" / "results" / "protections-mini-cpu" / "results.json"


def _levels(intensity: str) -> str:
    """An intensity preset or number -> its L∞ cap in 8-bit levels, as a key ("8")."""
    return f"{resolve_config(intensity).max_levels:g}"


def standard_error(values: list[float]) -> float | None:
    """The standard error of the mean over cases (sample standard deviation / √n); None below two values."""
    if len(values) < 2:
        return None
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1) / len(values))


def _figures(metrics: dict, images: int, targeted: bool) -> dict:
    """The benchmark's figures of one evaluation's ``metrics.json`` (``targeted``: the protection has a style target)."""
    cases = metrics["cases"]
    worked = [c for c in cases if c["scores"]["mimicry_success"]["clean"] >= ATTACK_WORKS]
    target = [c["scores"]["cloaked"]["judged"]["target"] for c in cases
              if targeted and "target" in c["scores"]["cloaked"]["judged"]]
    mean = lambda values: sum(values) / len(values) if values else None  # noqa: E731
    visibility = metrics["aggregate"]["visibility"]
    return {
        "protection_success": mean([c["scores"]["protection_success"] for c in worked]),
        "protection_success_se": standard_error([c["scores"]["protection_success"] for c in worked]),
        "protection_success_all_cases": mean([c["scores"]["protection_success"] for c in cases]),
        "cases_where_attack_worked": len(worked),
        "mimicry_cloaked": mean([c["scores"]["mimicry_success"]["cloaked"] for c in cases]),
        "judged_as_target": mean(target),
        "psnr_db": visibility["psnr_db"], "ssim": visibility["ssim"],
        "perceptual_distance": visibility["perceptual_distance"], "linf_levels": visibility["linf_levels"],
        "seconds_per_image_in_run": mean([c["stage_seconds"]["protect"] / images for c in cases]),
        "per_case": {c["case"]: c["scores"]["protection_success"] for c in cases},
    }


def _single(config: EvaluationConfig, protection: str, intensity: str) -> EvaluationConfig:
    """The one evaluation of a benchmark that runs ``protection`` at ``intensity``."""
    return replace(config, benchmark=None, protect=replace(config.protect, protection=protection, intensity=intensity))


def run_benchmark(config: EvaluationConfig, work: str | Path, report_dir: str | Path, *, accelerator=None,
                  log=print, kept_parts_only: bool = False) -> dict:
    """Run (or resume) every protection of ``config.benchmark`` on the config's cases; write the report.

    With ``kept_parts_only`` nothing runs: the report is written from the parts already kept
    in ``REPORT/parts`` that match the config, and names the ones still missing (a benchmark
    spread over sessions reports what it has so far).
    """
    bench = config.benchmark
    if bench is None:
        raise ValueError("the config has no [benchmark] table (protections and intensities)")
    if config.art is not None:
        raise ValueError("a benchmark compares protection success, which needs the built-in victims' judge; "
                         "drop --art")
    work, parts = Path(work), Path(report_dir) / "parts"
    runs, figures, missing = {}, {}, []

    def evaluate(protection: str, intensity: str) -> None:
        log(f"=== {protection} at intensity {intensity}")
        metrics = run_part(_single(config, protection, intensity), parts / f"{protection}-{intensity}", work,
                           accelerator=accelerator, log=log, kept_only=kept_parts_only,
                           grid=_levels(intensity) == _levels(bench.intensities[0]))
        if metrics is None:
            missing.append(f"{protection} at ±{_levels(intensity)}")
            return
        if metrics:  # empty on the processes other than the main one
            runs[(protection, intensity)] = metrics
            figures.setdefault(protection, {})[_levels(intensity)] = _figures(metrics, config.images,
                                                                               PROTECTIONS[protection].targeted)

    # 1. Every protection at the main intensities.
    for protection in bench.protections:
        for intensity in bench.intensities:
            evaluate(protection, intensity)
    if accelerator is not None and not accelerator.is_main_process:
        return {}
    # 2. The frontier: the reference protections and the best ones at the first intensity, at the others.
    first = _levels(bench.intensities[0])
    measured = [p for p in bench.protections if first in figures.get(p, {})]
    ranked = sorted(measured, key=lambda p: -(figures[p][first]["protection_success"] or 0))
    if len(measured) < len(bench.protections):  # the best ones are not known until every protection is in
        ranked = []
        if bench.sweep_best and bench.sweep_intensities:
            missing.append(f"the best {bench.sweep_best} at ±{first} at "
                           + " and ".join(f"±{_levels(i)}" for i in bench.sweep_intensities))
    for protection in dict.fromkeys([*bench.sweep, *ranked[:bench.sweep_best]]):
        for intensity in bench.sweep_intensities:
            evaluate(protection, intensity)
    if not runs:
        raise ValueError(f"no kept part in {parts} matches this config; run the benchmark first")
    return write_benchmark_report(config, runs, figures, report_dir, missing=missing)


def run_part(single: EvaluationConfig, part: Path, work: Path, *, accelerator=None, log=print, kept_only: bool = False,
             grid: bool = False) -> dict | None:
    """One evaluation of a comparison, kept as a part of its report (``part``: its folder).

    A kept part whose ``part.json`` matches the evaluation's settings, the model's weights and the
    judge's is reused; otherwise the evaluation runs (``grid``: and draws its row of the grid), unless
    ``kept_only``, which returns None for a missing part. Returns the part's ``metrics.json`` (empty
    on the processes other than the main one).
    """
    key = _part_key(single)
    if _is_current(part, key):
        log(f"[part] reused {part}")
        return json.loads((part / "metrics.json").read_text())
    if kept_only:
        log(f"[part] missing {part}")
        return None
    metrics = run_evaluation(single, work, part, accelerator=accelerator, log=log, case_figures=1)
    if metrics:
        if grid:
            grid_rows(single, work, part)
        (part / "part.json").write_text(json.dumps(key, indent=1) + "\n")  # last: the part is whole
    return metrics


def _part_key(single: EvaluationConfig) -> dict:
    """What a kept part must match to stand for an evaluation: its settings, the model's weights, the judge's."""
    from ..judge import JUDGE_WEIGHTS

    return {"config": json.loads(json.dumps(single.to_dict(), default=str)), "model": model_fingerprint(single.model),
            "judge": hashlib.sha256(JUDGE_WEIGHTS.read_bytes()).hexdigest()[:12]}


def _is_current(part: Path, key: dict) -> bool:
    record = part / "part.json"
    return (record.is_file() and (part / "metrics.json").is_file()
            and _comparable(json.loads(record.read_text())) == _comparable(key))


#: Settings added after parts were kept (dotted paths in the config), at the value that computes what those
#: parts computed.
_ADDED_LATER = {"protect.robust": False, "upscaler": None, "matrix": None}


def _comparable(key: dict) -> dict:
    """A part key without the settings its evaluation never used: the ``--art`` judge's, for the built-in victims
    (a setting added to it later must not retire parts that never trained such a judge), and settings added
    later while they keep their old behaviour (:data:`_ADDED_LATER`)."""
    config = dict(key["config"])
    if config.get("art") is None:
        config.pop("art_judge", None)
    for path, old in _ADDED_LATER.items():
        *sections, name = path.split(".")
        table = config
        for section in sections:
            table[section] = dict(table.get(section, {}))
            table = table[section]
        if name in table and table[name] == old:
            del table[name]
    return key | {"config": config}


def _speed() -> dict:
    """{protection: row} at 128 px and the default quality, from the speed benchmark's file (if present)."""
    if not SPEED_FILE.is_file():
        return {}
    data = json.loads(SPEED_FILE.read_text())
    return {r["protection"]: r | {"hardware": data["hardware"]} for r in data["results"]
            if r["size"] == "128x128" and r["quality"] == "default"}


def write_benchmark_report(config: EvaluationConfig, runs: dict, figures: dict, out: str | Path, *,
                           missing: list[str] = ()) -> dict:
    """``metrics.json``, ``report.md``, ``frontier.png`` and ``grid.png`` of a benchmark (its parts in ``out/parts``).

    ``missing`` names the protections and intensities the benchmark has not measured yet.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    any_run = next(iter(runs.values()))
    cases = [c["case"] for c in any_run["cases"]]
    clean = {c["case"]: c["scores"]["mimicry_success"]["clean"] for c in any_run["cases"]}
    speed = _speed()
    for protection, by_level in figures.items():
        for entry in by_level.values():
            row = speed.get(protection, {})
            entry["seconds_per_image"] = row.get("seconds")
            entry["peak_rss_mb"] = row.get("peak_rss_mb")
    metrics = {"name": config.name, "cases": cases, "clean_mimicry": sum(clean.values()) / len(clean),
               "clean_mimicry_per_case": clean, "attack_works_at": ATTACK_WORKS, "missing": list(missing),
               "protections": {p: {"intensities": by_level} for p, by_level in figures.items()},
               "speed_measured_by": None if not speed else {"script": "benchmarks/bench_cloak.py",
                                                            "hardware": next(iter(speed.values()))["hardware"]},
               "config": config.to_dict(), "hardware": any_run["hardware"], "versions": versions()}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1, default=str) + "\n")
    frontier_figure(figures, out / "frontier.png")
    grid_figure(runs, config, out / "parts", out / "grid.png")
    (out / "report.md").write_text(_markdown(metrics))
    return metrics


def frontier_figure(figures: dict, path: Path) -> None:
    """Protection success against PSNR, SSIM and perceptual distance: one line per protection over intensities."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes_keys = (("psnr_db", "PSNR (dB), higher = less visible"), ("ssim", "SSIM"),
                 ("perceptual_distance", "perceptual distance"))
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4), sharey=True)
    for protection, by_level in figures.items():
        levels = sorted(by_level, key=float)
        ys = [100 * (by_level[lv]["protection_success"] or 0) for lv in levels]
        for ax, (key, _) in zip(axes, axes_keys):
            ax.plot([by_level[lv][key] for lv in levels], ys, marker="o", label=protection)
            for lv, x, y in zip(levels, [by_level[lv][key] for lv in levels], ys):
                ax.annotate(f"±{lv}", (x, y), fontsize=6, xytext=(2, 2), textcoords="offset points")
    for ax, (_, label) in zip(axes, axes_keys):
        ax.set_xlabel(label)
        ax.axhline(90, color="grey", lw=0.6, ls="--")
    axes[0].set_ylabel("protection success (%)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    _palette(path)


#: Generated samples per row of the benchmark's grid.
GRID_SAMPLES = 3


def grid_rows(single: EvaluationConfig, work: Path, part: Path) -> None:
    """The grid's rows for one evaluation's first case, kept with its part while the stage images exist:
    ``row-clean.png`` (the artwork, then the clean mimic's first samples) and ``row-cloaked.png`` (the
    cloaked artwork, then the cloaked mimic's)."""
    from PIL import Image

    f = case_folders(single, work, cases(single)[0])
    for name, art, generated in (("clean", f["art"], f["generate-clean"]),
                                 ("cloaked", f["protect"], f["generate-cloaked"])):
        strip = torch.cat([image_set(art)[0][0], *image_set(generated)[0][:GRID_SAMPLES]], dim=-1)
        Image.fromarray((strip.permute(1, 2, 0).numpy() * 255).round().astype("uint8")).save(part / f"row-{name}.png")
        _palette(part / f"row-{name}.png")


def grid_figure(runs: dict, config: EvaluationConfig, parts: Path, path: Path) -> None:
    """One case, one row each: the original and the clean mimic, then each protection's cloak and its mimic
    (at the first intensity), from the rows kept with the parts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    default = _levels(config.benchmark.intensities[0])
    chosen = [(p, parts / f"{p}-{i}") for (p, i) in runs if _levels(i) == default]
    rows = [("original / clean mimic", chosen[0][1] / "row-clean.png")]
    rows += [(p, part / "row-cloaked.png") for p, part in chosen]
    rows = [(label, row) for label, row in rows if row.is_file()]
    if not rows:
        return
    fig, axes = plt.subplots(len(rows), 1, figsize=(1.6 * (GRID_SAMPLES + 1), 1.6 * len(rows) + 0.3), squeeze=False)
    for ax, (label, row) in zip(axes[:, 0], rows):
        ax.imshow(Image.open(row).convert("RGB"))
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_ylabel(label, fontsize=7)
    axes[0][0].set_title(f"{cases(config)[0].name}: the artwork, then what the mimic paints", fontsize=7)
    fig.tight_layout(pad=0.3)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    _palette(path)


def benchmark_headline(metrics: dict) -> str:
    """A benchmark's verdict in one line: every protection at ±8 levels, best first, over the cases whose clean
    mimic worked (as the README and the About tab quote it)."""
    rows = [(name, entry["intensities"]["8"]) for name, entry in metrics["protections"].items() if "8" in entry["intensities"]]
    rows.sort(key=lambda row: -(row[1]["protection_success"] or 0))
    worked = rows[0][1]["cases_where_attack_worked"] if rows else 0
    missing = metrics.get("missing") or []
    return (f"protection success at ±8 levels over the {worked} of {len(metrics['cases'])} case(s) where the clean "
            f"mimic worked: " + ", ".join(f"{name} {_pct(f['protection_success'])} (PSNR {f['psnr_db']:.1f} dB)"
                                         for name, f in rows) + "."
            + (f" Not measured yet: {len(missing)} part(s) of the benchmark." if missing else ""))


def _binomial_points(images: int) -> int:
    """The standard error, in points, of a share near 50 % judged on ``images`` images."""
    return round(100 * math.sqrt(0.25 / images))


def _pct(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f} %"


def _markdown(metrics: dict) -> str:
    cfg = metrics["config"]
    lora, gen = cfg["lora"], cfg["generate"]
    lines = [f"# Protections compared: `{metrics['name']}`", "",
             f"Cases ({len(metrics['cases'])}): {', '.join(metrics['cases'])}. Clean mimicry (the mimic trained on the "
             f"originals): {_pct(metrics['clean_mimicry'])} on average; per case "
             + ", ".join(f"{k} {_pct(v)}" for k, v in metrics["clean_mimicry_per_case"].items()) + ".", "",
             f"Mimic: LoRA rank {lora['rank']}, {lora['steps']} steps, learning rate {lora['learning_rate']}, "
             f"{cfg['images']} images; {gen['images_per_prompt']} images per prompt, {gen['steps']} sampling steps, "
             f"guidance {gen['guidance']}. Protection success = 1 − the share of the cloaked mimic's images judged "
             f"the artist's style, averaged over the cases whose clean mimic reached "
             f"{100 * metrics['attack_works_at']:.0f} %.", "",
             "| protection | ±levels | protection success | over all cases | judged as target | PSNR (dB) | SSIM | "
             "perceptual distance | s / image (128 px) | peak RSS (MB) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    notes = ["", "± is the standard error of the mean over the cases (their spread, sample standard deviation / √n); "
             f"each case's share also has a sampling error of about {_binomial_points(gen['images_per_prompt'])} points "
             f"near 50 % ({gen['images_per_prompt']} images). Two protections whose means differ by less than about "
             "twice the larger standard error are within noise of each other."]
    for protection, entry in metrics["protections"].items():
        for level, f in sorted(entry["intensities"].items(), key=lambda kv: float(kv[0])):
            se = f.get("protection_success_se")
            lines.append(f"| {protection} | {level} | {_pct(f['protection_success'])}"
                         f"{'' if se is None else f' ± {100 * se:.1f}'} ({f['cases_where_attack_worked']} cases) | {_pct(f['protection_success_all_cases'])} | "
                         f"{_pct(f['judged_as_target'])} | {f['psnr_db']:.1f} | {f['ssim']:.3f} | "
                         f"{f['perceptual_distance']:.3f} | {f['seconds_per_image'] or 'n/a'} | "
                         f"{f['peak_rss_mb'] or 'n/a'} |")
    lines += notes
    if metrics.get("missing"):
        lines += ["", f"**Not measured yet** ({len(metrics['missing'])}): " + "; ".join(metrics["missing"])
                  + ". This report is a part of the benchmark; nothing here ranks what is missing."]
    speed = metrics["speed_measured_by"]
    lines += ["", "Seconds and peak memory per 128 px image at the default quality: "
              + (f"`{speed['script']}` in fresh processes on {speed['hardware'].get('cpu', '?')} "
                 f"({speed['hardware'].get('torch_threads', '?')} threads)." if speed else "not measured yet."),
              "", "![protection against visibility](frontier.png)", "", "![one case, every protection](grid.png)",
              "", f"Hardware of the runs: {metrics['hardware']}."]
    return "\n".join(lines) + "\n"
