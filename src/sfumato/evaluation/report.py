"""The report: a side-by-side figure per case, a bar chart, ``metrics.json`` and ``report.md``."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from .contract import hardware, hardware_words, versions
from .stages import image_set

__all__ = ["write_report", "write_case_entries", "side_by_side", "score_chart", "verdict", "headline", "ATTACK_WORKS"]

COLUMNS = (("art", "original"), ("protect", "cloaked copy"), ("generate-clean", "mimic trained on originals"),
           ("generate-cloaked", "mimic trained on cloaked"))


def side_by_side(folders: dict, out: Path, rows: int = 4) -> None:
    """Originals | cloaked copies | clean-LoRA | cloaked-LoRA images; generated columns share prompt and seed.

    ``folders`` maps each stage (``art``, ``protect``, ``generate-clean``, ``generate-cloaked``) to its folder;
    a column whose stage is missing (the protected side of a clean-only run) is left out.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = [(name, title) for name, title in COLUMNS if name in folders]  # a clean-only run has two
    sets = [image_set(folders[name])[0] for name, _ in columns]
    rows = min(rows, *(len(s) for s in sets))
    fig, axes = plt.subplots(rows, len(columns), figsize=(1.9 * len(columns), 1.9 * rows + 0.3), squeeze=False)
    for c, ((_, title), images) in enumerate(zip(columns, sets)):
        for r in range(rows):
            ax = axes[r][c]
            ax.imshow(images[r].permute(1, 2, 0).numpy())
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=8)
    fig.tight_layout(pad=0.3)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    _palette(out)


def _palette(path: Path) -> None:
    """Rewrite a PNG with a 256-colour palette: a third of the size, for committed reports."""
    from PIL import Image

    with Image.open(path) as image:
        small = image.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def score_chart(cases: list[dict], out: Path) -> None:
    """Grouped bars per case: the share judged the artist's style for base, clean-LoRA and cloaked-LoRA images."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    judged = [c for c in cases if "mimicry_success" in c["scores"]]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(judged) + 1.5), 3.0))
    width = 0.27
    for k, (key, label) in enumerate((("base", "base model"), ("clean", "LoRA on originals"),
                                      ("cloaked", "LoRA on cloaked"))[:len(judged[0]["scores"]["mimicry_success"])]):
        values = [100 * c["scores"]["mimicry_success"][key] for c in judged]
        ax.bar([i + (k - 1) * width for i in range(len(judged))], values, width, label=label)
    ax.set_xticks(range(len(judged)), [c["case"] for c in judged], rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("judged the artist's style (%)", fontsize=8)
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


def _mean(values) -> float | None:
    values = list(values)
    return statistics.fmean(values) if values else None


def _aggregate(cases: list[dict]) -> dict:
    judged = [c for c in cases if "mimicry_success" in c["scores"]]
    sides = [k for k in ("base", "clean", "cloaked") if k in cases[0]["scores"]]  # no cloaked: clean-only
    protected = "cloaked" in sides
    out = {"cases": len(cases)}
    if judged:
        out["mimicry_success"] = {k: _mean(c["scores"]["mimicry_success"][k] for c in judged) for k in sides}
        worked = [c for c in judged if c["scores"]["mimicry_success"]["clean"] >= ATTACK_WORKS]
        out["attack_worked"] = {"cases": len(worked)}
        if protected:
            out["protection_success"] = _mean(c["scores"]["protection_success"] for c in judged)
            out["attack_worked"]["protection_success"] = _mean(c["scores"]["protection_success"] for c in worked)
        out["per_victim"] = {}
        for artist in dict.fromkeys(c["artist"] for c in judged):
            mine = [c for c in judged if c["artist"] == artist]
            row = {"seeds": [c["seed"] for c in mine],
                   "mimicry_clean": _mean(c["scores"]["mimicry_success"]["clean"] for c in mine)}
            if protected:
                row["mimicry_cloaked"] = _mean(c["scores"]["mimicry_success"]["cloaked"] for c in mine)
                row["protection_success"] = _mean(c["scores"]["protection_success"] for c in mine)
            out["per_victim"][artist] = row
        spread = seed_spread(judged)
        if spread is not None:
            out["seed_spread"] = spread
    out["frechet_to_real"] = {k: _mean(c["scores"][k]["frechet_to_real"] for c in cases) for k in sides}
    if protected:
        out["visibility"] = {k: _mean(c["scores"]["visibility"][k]["mean"] for c in cases)
                             for k in ("perceptual_distance", "psnr_db", "ssim", "linf_levels")}
    return out


def seed_spread(cases: list[dict]) -> dict | None:
    """How far one victim's clean mimicry moves between its seeds: the mimic's own noise.

    A case's seed draws its training images, the fine-tune's noise and the samples, so two seeds
    of one victim are two independent runs of the same attack. Returns None unless some
    victim ran at two seeds or more; else the number of such victims, the mean over them of
    (largest - smallest) clean mimicry, and one run's standard deviation pooled within victims.
    """
    by_victim: dict[str, list[float]] = {}
    for c in cases:
        if "mimicry_success" in c["scores"]:
            by_victim.setdefault(c["artist"], []).append(c["scores"]["mimicry_success"]["clean"])
    repeated = [v for v in by_victim.values() if len(v) > 1]
    if not repeated:
        return None
    squares = sum((x - statistics.fmean(v)) ** 2 for v in repeated for x in v)
    return {"victims": len(repeated), "mean_range": statistics.fmean(max(v) - min(v) for v in repeated),
            "pooled_sd": math.sqrt(squares / sum(len(v) - 1 for v in repeated))}


#: Below this clean-LoRA mimicry success the attack itself has failed, and protection means nothing.
ATTACK_WORKS = 0.6


def verdict(aggregate: dict) -> str:
    """One plain sentence on what the figures show (and do not)."""
    ms = aggregate["mimicry_success"]
    if "protection_success" not in aggregate:
        worked = aggregate["attack_worked"]["cases"]
        return (f"clean-only run: the mimic trained on the originals reached {_pct(ms['clean'])} (base model "
                f"{_pct(ms['base'])}); it reached {100 * ATTACK_WORKS:.0f} % in {worked} of {aggregate['cases']} case(s). "
                f"No cloak was evaluated.")
    if ms["clean"] < ATTACK_WORKS:
        text = (f"the mimic trained on the originals reached only {_pct(ms['clean'])} (below "
                f"{100 * ATTACK_WORKS:.0f} %): the attack did not work here, so this run shows nothing about protection "
                f"(its protection figure would be high without any cloak).")
    elif aggregate["protection_success"] >= 0.9:
        text = (f"the attack works on the originals ({_pct(ms['clean'])}) and the cloak stopped it: "
                f"{_pct(aggregate['protection_success'])} of the cloaked mimic's images are not in the artist's style.")
    elif ms["cloaked"] >= ms["clean"]:
        text = (f"the attack works on the originals ({_pct(ms['clean'])}) and the cloak did not stop it: the cloaked "
                f"mimic reached {_pct(ms['cloaked'])}, as much as the mimic trained on the originals or more.")
    else:
        text = (f"the attack works on the originals ({_pct(ms['clean'])}) but the cloak stopped it only partly: "
                f"the cloaked mimic still reached {_pct(ms['cloaked'])}.")
    worked = aggregate.get("attack_worked")
    if worked is not None and worked["cases"] < aggregate["cases"]:
        text += (f" In {aggregate['cases'] - worked['cases']} of {aggregate['cases']} cases the mimic trained on the "
                 f"originals stayed below {100 * ATTACK_WORKS:.0f} %, which makes their protection figures high without any "
                 f"cloak; over the {worked['cases']} cases where the attack worked, protection success is "
                 f"{_pct(worked['protection_success'])}.")
    return text


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def headline(metrics: dict) -> str | None:
    """A report's verdict figure in one line, as the README and the About tab quote it: protection success over
    the cases whose clean mimic worked, with the protection, its intensity and its PSNR; for a clean-only run,
    the clean mimicry and how many cases worked (None if not judged)."""
    agg = metrics.get("aggregate", {})
    worked = agg.get("attack_worked")
    if worked is None:  # not judged
        return None
    if "protection_success" not in worked:
        return (f"clean-only run, no cloak: the mimic trained on the originals reached "
                f"{_pct(agg['mimicry_success']['clean'])} on average (base model {_pct(agg['mimicry_success']['base'])}); "
                f"{worked['cases']} of {agg['cases']} case(s) reached {100 * ATTACK_WORKS:.0f} %.")
    from ..config import resolve_config

    protect = metrics["config"]["protect"]
    levels = resolve_config(protect["intensity"]).max_levels
    figure = (f"protection success {_pct(worked['protection_success'])} over the {worked['cases']} of {agg['cases']} "
              f"case(s) where the clean mimic worked" if worked["cases"] else
              f"no case where the clean mimic worked (0 of {agg['cases']}), so no protection figure")
    scale = protect.get("budget_scale", 1.0)
    budget = "" if scale == 1 else f" and {scale:g}× the perceptual budget"
    budget += " with flips" if protect.get("flips") else ""
    budget += ", robust" if protect.get("robust") else ""
    budget += "" if protect.get("countermeasure", "none") == "none" else f", mimic cleaning with {protect['countermeasure']}"
    return (f"{protect.get('protection', 'glaze')} at ±{levels:g} levels{budget}, "
            f"PSNR {agg['visibility']['psnr_db']:.1f} dB: {figure} (clean mimicry "
            f"{_pct(agg['mimicry_success']['clean'])}).")


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
    metrics = {"name": config.name, "config": config.to_dict(), "aggregate": _aggregate(cases), "cases": cases,
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
        lines.append(f"| {c['case']} | {_pct(j['recall'])} of {j['positives']} | {_pct(j['specificity'])} of "
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
             f"| base model (never saw the artist) | {_pct(ms['base'])} |",
             f"| LoRA on the originals (mimicry success, clean) | {_pct(ms['clean'])} |"]
    if protected:
        lines += [f"| LoRA on the cloaked copies (mimicry success, cloaked) | {_pct(ms['cloaked'])} |", "",
                  f"**Protection success** (cloaked-LoRA images not judged the artist's style): "
                  f"**{_pct(agg['protection_success'])}**, mean over {agg['cases']} case(s)."]
    lines += ["", f"**Verdict**: {verdict(agg)}", ""]
    if protected:
        lines += ["| artist | seeds | mimicry, clean | mimicry, cloaked | protection |", "|---|---|---|---|---|"]
        lines += [f"| {artist} | {v['seeds']} | {_pct(v['mimicry_clean'])} | {_pct(v['mimicry_cloaked'])} | "
                  f"{_pct(v['protection_success'])} |" for artist, v in agg["per_victim"].items()]
    else:
        lines += ["| artist | seeds | mimicry, clean (mean of seeds) |", "|---|---|---|"]
        lines += [f"| {artist} | {v['seeds']} | {_pct(v['mimicry_clean'])} |" for artist, v in agg["per_victim"].items()]
    return lines + ["", *spread, "![scores](scores.png)", ""]


def _clean_case_rows(m: dict) -> list[str]:
    lines = ["## Every case", "",
             "| case | mimicry: base / clean | top styles, clean LoRA | Fréchet to real: base / clean | stage minutes |",
             "|---|---|---|---|---|"]
    for c in m["cases"]:
        s = c["scores"]
        mimicry = s.get("mimicry_success", {})
        top = ", ".join(f"{k} {_pct(v)}" for k, v in s["clean"].get("top_styles", {}).items()) or "n/a"
        lines.append(f"| {c['case']} | {_pct(mimicry.get('base'))} / {_pct(mimicry.get('clean'))} | {top} | "
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
        lines.append(f"| {c['case']} | {_pct(mimicry.get('clean'))} / {_pct(mimicry.get('cloaked'))} | "
                     f"{_pct(target)} ({s['target'].get('target')}) | "
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
