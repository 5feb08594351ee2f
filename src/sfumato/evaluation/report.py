"""The report of a mimicry evaluation: ``metrics.json``, ``report.md`` and its figures (:mod:`.charts`)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from .charts import score_chart, side_by_side
from .contract import hardware, hardware_words, versions
from .summary import aggregate, pct, seed_spread, verdict

__all__ = ["write_report", "write_case_entries"]


def write_report(config, results: list[dict], out: str | Path, case_figures: int | None = None, *,
                 charts: bool = True) -> dict:
    """Write the report files into ``out``; returns what ``metrics.json`` holds.

    ``case_figures`` limits the side-by-side figures to the first cases (a benchmark's
    committed parts keep one each); None draws one per case. ``charts=False`` leaves out the
    bar chart (a case result kept inside a part needs none).

    ``metrics.json`` holds only figures that a rerun reproduces (stage times come from
    the stage manifests), so a resumed run writes the same file.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cases = []
    for k, r in enumerate(results):
        case = r["case"]
        figure = f"side-by-side-{case.name}.png" if case_figures is None or k < case_figures else None
        if figure:
            side_by_side(r["stage_folders"], out / figure)
        cases.append({"case": case.name, "artist": case.artist, "victim": case.victim, "seed": case.seed,
                      "scores": r["scores"], "stage_seconds": r["seconds"], "threads": _stage_threads(r),
                      "hardware": _stage_hardware([r]), "figure": figure} | ({"art_judge": r["art_judge"]} if r.get("art_judge") else {}))
    return write_case_entries(config, cases, _stage_hardware(results), out, charts=charts)


def write_case_entries(config, cases: list[dict], stage_hardware: dict, out: Path, *, charts: bool = True) -> dict:
    """The report of cases already scored (``metrics.json``'s ``cases`` entries; their figures already in ``out``)."""
    if charts and any("mimicry_success" in c["scores"] for c in cases):
        score_chart(cases, out / "scores.png")
    stage_seconds = [s for c in cases for s in c["stage_seconds"].values()]
    metrics = {"name": config.name, "config": config.to_dict(), "aggregate": aggregate(cases), "cases": cases,
               "compute_seconds": round(sum(stage_seconds), 1), "hardware": stage_hardware,
               "versions": versions()}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1, default=str) + "\n")
    (out / "report.md").write_text(_markdown(metrics))
    return metrics


def _stage_threads(result: dict) -> list[int]:
    """The CPU thread counts a case's stages ran with, as their manifests recorded them."""
    threads = set()
    for stage in result["seconds"]:
        manifest = json.loads((Path(result["stage_folders"][stage]) / "manifest.json").read_text())
        threads.add(manifest.get("hardware", {}).get("threads"))
    return sorted(t for t in threads if t is not None)


def _stage_hardware(results: list[dict]) -> dict:
    """The hardware the stages ran on (recorded in their manifests), else this machine's."""
    for r in results:
        manifest = json.loads((Path(r["stage_folders"]["score"]) / "manifest.json").read_text())
        if "hardware" in manifest:
            return manifest["hardware"]
    return hardware()


def _per_case(threads: list) -> str:
    return " (per case in metrics.json)" if len(threads) > 1 else ""


def _markdown(m: dict) -> str:
    cfg, agg = m["config"], m["aggregate"]
    hw = m["hardware"]
    threads = sorted({t for c in m["cases"] for t in c.get("threads", [])}) or [hw.get("threads", "?")]
    lines = [f"# Mimicry evaluation: {m['name']}", "",
             "A mimic fine-tunes the model with LoRA on an artist's images, once on the originals and once on "
             "the cloaked copies (identical settings), then generates from both with the same prompts and seeds. "
             "The style judge says whether each generated image is in the artist's style.", "",
             f"- Model: `{cfg['model']}`; {_who(cfg)}; {cfg['images']} training images per artist.",
             ("- Cloak: none, a clean-only run (the mimic on the originals and the base model)."
              if cfg.get("clean_only") else
              f"- Cloak: {cfg['protect'].get('protection', 'glaze')}, intensity `{cfg['protect']['intensity']}`, "
              f"quality `{cfg['protect']['quality']}`, target `{cfg['protect']['target']}`, "
              f"countermeasure `{cfg['protect']['countermeasure']}`{_cloak_options(cfg['protect'])}."),
             f"- LoRA: rank {cfg['lora']['rank']}, {cfg['lora']['steps']} steps of {cfg['lora']['batch_size']}, "
             f"learning rate {cfg['lora']['learning_rate']}, min-SNR γ {cfg['lora'].get('snr_gamma', 5.0)}, "
             f"offset noise {cfg['lora'].get('noise_offset', 0.0)}, modules {', '.join(cfg['lora']['target_modules'])}.",
             f"- Sampling: {cfg['generate']['images_per_prompt']} images per prompt, prompts "
             + ", ".join(f"\"{p}\"" for p in cfg["generate"]["prompts"])
             + f", {cfg['generate']['steps']} steps, guidance {cfg['generate']['guidance']}.",
             f"- Hardware: {hardware_words(hw, threads)}{_per_case(threads)}; "
             f"compute {m['compute_seconds'] / 60:.1f} min over all stages.", ""]
    protected = not cfg.get("clean_only")
    lines += _art_judge_rows(m)
    if "mimicry_success" in agg:
        lines += _headline_rows(agg, protected, _spread_rows(m))
    lines += _case_rows(m) if protected else _clean_case_rows(m)
    for c in m["cases"]:
        if c["figure"]:
            lines += [f"### {c['case']}", "", f"![{c['case']}]({c['figure']})", ""]
    lines += _glossary()
    return "\n".join(lines)


def _who(cfg: dict) -> str:
    """The artists and seeds a report covers: its explicit cases where it has them."""
    if cfg["art"]:
        return f"artists: folder `{cfg['art']}` as `{cfg['artist']}`; seeds {list(cfg['seeds'])}"
    if cfg.get("cases"):
        return "cases: " + ", ".join(f"artist{v:02d}-seed{s}" for v, s in cfg["cases"])
    return "artists: " + ", ".join(f"artist{v:02d}" for v in cfg["victims"]) + f"; seeds {list(cfg['seeds'])}"


def _cloak_options(protect: dict) -> str:
    """The cloak's non-default options, as the report's settings line names them."""
    scale = protect.get("budget_scale", 1.0)
    return ((f", {scale:g}× the perceptual budget" if scale != 1 else "")
            + (", flips" if protect.get("flips") else "") + (", robust" if protect.get("robust") else ""))


def _art_judge_rows(m: dict) -> list[str]:
    """How far the art folder's own style judge can be trusted, measured on images it never trained on."""
    judged = [c for c in m["cases"] if "art_judge" in c]
    if not judged:
        return []
    lines = ["## The artist's style judge", "",
             "A binary judge of this artist's style, trained on images the mimic never saw (held out from the "
             "folder, or `--judge-art`) against the same images in the built-in styles and the base model's "
             "samples, and tested on images it did not train on: the mimic's training images (recall), and those "
             "in the built-in styles plus other base samples (specificity).", "",
             "| case | held-out recall | held-out specificity |", "|---|---|---|"]
    for c in judged:
        j = c["art_judge"]
        lines.append(f"| {c['case']} | {pct(j['recall'])} of {j['positives']} | {pct(j['specificity'])} of "
                     f"{j['negatives']} |")
    return lines + [""]


def _spread_rows(m: dict) -> list[str]:
    """The seed-to-seed sentence, beside the binomial error its sample count alone would give."""
    spread = seed_spread(m["cases"])
    if spread is None:
        return []
    samples = m["config"]["generate"]["images_per_prompt"] * len(m["config"]["generate"]["prompts"])
    p = m["aggregate"]["mimicry_success"]["clean"]
    return [f"Seed to seed (the mimic's own noise): over the {spread['victims']} victim(s) run at two seeds or more, "
            f"one victim's clean mimicry moved by {100 * spread['mean_range']:.1f} points between its seeds on average; "
            f"one run's standard deviation, pooled within victims, is {100 * spread['pooled_sd']:.1f} points, where "
            f"{samples} samples alone would give {100 * math.sqrt(p * (1 - p) / samples):.1f}.", ""]


def _headline_rows(agg: dict, protected: bool, spread: list[str] = ()) -> list[str]:
    ms = agg["mimicry_success"]
    lines = ["## Headline", "", "| | share judged the artist's style |", "|---|---|",
             f"| base model (never saw the artist) | {pct(ms['base'])} |",
             f"| LoRA on the originals (mimicry success, clean) | {pct(ms['clean'])} |"]
    if protected:
        lines += [f"| LoRA on the cloaked copies (mimicry success, cloaked) | {pct(ms['cloaked'])} |", "",
                  f"**Protection success** (cloaked-LoRA images not judged the artist's style): "
                  f"**{pct(agg['protection_success'])}**, mean over {agg['cases']} case(s)."]
    lines += ["", f"**Verdict**: {verdict(agg)}", ""]
    if protected:
        lines += ["| artist | seeds | mimicry, clean | mimicry, cloaked | protection |", "|---|---|---|---|---|"]
        lines += [f"| {artist} | {v['seeds']} | {pct(v['mimicry_clean'])} | {pct(v['mimicry_cloaked'])} | "
                  f"{pct(v['protection_success'])} |" for artist, v in agg["per_victim"].items()]
    else:
        lines += ["| artist | seeds | mimicry, clean (mean of seeds) |", "|---|---|---|"]
        lines += [f"| {artist} | {v['seeds']} | {pct(v['mimicry_clean'])} |" for artist, v in agg["per_victim"].items()]
    return lines + ["", *spread, "![scores](scores.png)", ""]


def _clean_case_rows(m: dict) -> list[str]:
    lines = ["## Every case", "",
             "| case | mimicry: base / clean | top styles, clean LoRA | Fréchet to real: base / clean | stage minutes |",
             "|---|---|---|---|---|"]
    for c in m["cases"]:
        s = c["scores"]
        mimicry = s.get("mimicry_success", {})
        top = ", ".join(f"{k} {pct(v)}" for k, v in s["clean"].get("top_styles", {}).items()) or "n/a"
        lines.append(f"| {c['case']} | {pct(mimicry.get('base'))} / {pct(mimicry.get('clean'))} | {top} | "
                     f"{s['base']['frechet_to_real']:.1f} / {s['clean']['frechet_to_real']:.1f} | "
                     f"{sum(c['stage_seconds'].values()) / 60:.1f} |")
    return lines + ["", "Per-stage seconds are in `metrics.json`.", ""]


def _case_rows(m: dict) -> list[str]:
    lines = ["## Every case", "",
              "| case | mimicry: clean / cloaked | judged as target (cloaked LoRA) | "
              "Fréchet to real: base / clean / cloaked | cloak PSNR | SSIM | perceptual | L∞ | stage minutes |",
              "|---|---|---|---|---|---|---|---|---|"]
    for c in m["cases"]:
        s = c["scores"]
        target = s["cloaked"]["judged"].get("target")
        vis = s["visibility"]
        mimicry = s.get("mimicry_success", {})
        lines.append(f"| {c['case']} | {pct(mimicry.get('clean'))} / {pct(mimicry.get('cloaked'))} | "
                     f"{pct(target)} ({s['target'].get('target')}) | "
                     f"{s['base']['frechet_to_real']:.1f} / {s['clean']['frechet_to_real']:.1f} / "
                     f"{s['cloaked']['frechet_to_real']:.1f} | {vis['psnr_db']['mean']:.1f} dB | "
                     f"{vis['ssim']['mean']:.3f} | {vis['perceptual_distance']['mean']:.4f} | "
                     f"{vis['linf_levels']['max']:.0f} | {sum(c['stage_seconds'].values()) / 60:.1f} |")
    return lines + ["", "Per-stage seconds are in `metrics.json`.", ""]


def _glossary() -> list[str]:
    return ["## What the numbers mean", "",
              "- *Mimicry success*: the share of images generated for the artist's prompt that sfumato's style "
              "judge (EfficientNet-Lite0 features + a linear head over the 26 styles) puts in the artist's style. "
              "The base model's share is the floor; the clean LoRA's share says whether the attack works at all.",
              "- *Protection success*: 1 − mimicry success of the LoRA trained on the cloaked copies.",
              "- *Fréchet to real*: Fréchet distance between the generated images' and the artist's real images' "
              "EfficientNet-Lite0 features (lower = closer); with a few dozen images it is biased upwards, so "
              "compare rows, not absolute values.",
              "- *Cloak PSNR / SSIM / perceptual / L∞*: how visible the cloak is on the training images.",
              "- The judge and the figures are the mini world's; on Stable Diffusion, use `clip_model` for a "
              "CLIP zero-shot score as Glaze does.", ""]
