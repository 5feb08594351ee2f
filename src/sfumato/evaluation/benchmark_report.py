"""The protections benchmark's report: the table, the frontier figure, the grid and the one-line headline.

:mod:`.benchmark` runs the evaluations and keeps them as parts; this module writes what they show.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from .config import EvaluationConfig
from .contract import cpus_of_cases, cpus_words, hardware_words, versions
from .metrics import standard_error
from ..config import resolve_config
from .charts import palette
from .run import case_folders, cases
from .stages import image_set
from .summary import ATTACK_WORKS, pct

__all__ = ["write_benchmark_report", "benchmark_headline", "frontier_figure", "grid_rows", "grid_figure", "SPEED_FILE"]

#: Seconds and peak memory per 128 px image, measured by ``benchmarks/bench_cloak.py`` in fresh processes.
SPEED_FILE = Path(__file__).resolve().parents[3] / "benchmarks" / "results" / "protections-mini-cpu" / "results.json"


def levels_key(intensity: str) -> str:
    """An intensity preset or number -> its L∞ cap in 8-bit levels, as a key ("8")."""
    return f"{resolve_config(intensity).max_levels:g}"


def _speed() -> dict:
    """{protection: row} at 128 px and the default quality, from the speed benchmark's file (if present)."""
    if not SPEED_FILE.is_file():
        return {}
    data = json.loads(SPEED_FILE.read_text())
    return {r["protection"]: r | {"hardware": data["hardware"]} for r in data["results"]
            if r["size"] == "128x128" and r["quality"] == "default"}


def write_benchmark_report(config: EvaluationConfig, runs: dict, figures: dict, out: str | Path, *,
                           missing: list[str] = (), command: str | None = None) -> dict:
    """``metrics.json``, ``report.md``, ``frontier.png`` and ``grid.png`` of a benchmark (its parts in ``out/parts``).

    ``missing`` names the protections and intensities the benchmark has not measured yet; ``command`` the one
    command that runs or resumes it.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    any_run = next(iter(runs.values()))
    cases = [c["case"] for c in any_run["cases"]]
    clean = {c["case"]: c["scores"]["mimicry_success"]["clean"] for c in any_run["cases"]}
    misses = [1 - share for share in clean.values() if share >= ATTACK_WORKS]
    speed = _speed()
    for protection, by_level in figures.items():
        for entry in by_level.values():
            row = speed.get(protection, {})
            entry["seconds_per_image"] = row.get("seconds")
            entry["peak_rss_mb"] = row.get("peak_rss_mb")
    metrics = {"name": config.name, "cases": cases, "clean_mimicry": sum(clean.values()) / len(clean),
               "clean_mimicry_per_case": clean, "attack_works_at": ATTACK_WORKS, "missing": list(missing),
               # A zero cloak leaves the cloaked mimic the clean one (same images, same seeds): this measure's floor.
               "no_cloak_protection_success": sum(misses) / len(misses) if misses else None,
               "no_cloak_protection_success_se": standard_error(misses),
               "protections": {p: {"intensities": by_level} for p, by_level in figures.items()},
               "speed_measured_by": None if not speed else {"script": "benchmarks/bench_cloak.py",
                                                            "hardware": next(iter(speed.values()))["hardware"]},
               "config": config.to_dict(), "hardware": any_run["hardware"], "versions": versions(),
               "cpus": cpus_of_cases(list(runs.values())),
               "command": command}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1, default=str) + "\n")
    frontier_figure(figures, out / "frontier.png", no_cloak=metrics["no_cloak_protection_success"])
    grid_figure(runs, config, out / "parts", out / "grid.png")
    metrics["verdict"] = goal_verdict(metrics)
    (out / "report.md").write_text(_markdown(metrics))
    return metrics


def frontier_figure(figures: dict, path: Path, *, no_cloak: float | None = None) -> None:
    """Protection success against PSNR, SSIM and perceptual distance: one line per protection over intensities;
    dashed, the 90 % goal and (``no_cloak``) what the same measure gives without any cloak."""
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
        if no_cloak is not None:
            ax.axhline(100 * no_cloak, color="black", lw=0.6, ls=":")
    if no_cloak is not None:
        axes[0].annotate("no cloak", (0, 100 * no_cloak), xycoords=("axes fraction", "data"), fontsize=6,
                         xytext=(2, 2), textcoords="offset points")
    axes[0].set_ylabel("protection success (%)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    palette(path)


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
        palette(part / f"row-{name}.png")


def grid_figure(runs: dict, config: EvaluationConfig, parts: Path, path: Path) -> None:
    """One case, one row each: the original and the clean mimic, then each protection's cloak and its mimic
    (at the first intensity), from the rows kept with the parts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    default = levels_key(config.benchmark.intensities[0])
    chosen = [(p, parts / f"{p}-{i}") for (p, i) in runs if levels_key(i) == default]
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
    palette(path)


#: The protections issue's goal: protection success at the default intensity (±8 levels, PSNR >= 32 dB).
GOAL = 0.9


def goal_verdict(metrics: dict) -> str:
    """Plainly, whether any protection measured at ±8 levels reaches the goal with its cloaks' PSNR >= 32 dB."""
    rows = [(name, entry["intensities"]["8"]) for name, entry in metrics["protections"].items()
            if "8" in entry["intensities"] and entry["intensities"]["8"]["protection_success"] is not None]
    if not rows:
        return "No protection has been measured at ±8 levels yet."
    reached = [(n, f) for n, f in rows if f["protection_success"] >= GOAL and f["psnr_db"] >= 32]
    so_far = " so far" if metrics.get("missing") else ""
    if reached:
        return ("At ±8 levels " + ", ".join(f"{n} ({pct(f['protection_success'])}, PSNR {f['psnr_db']:.1f} dB)"
                                            for n, f in reached)
                + f" {'reaches' if len(reached) == 1 else 'reach'} the {100 * GOAL:.0f} % goal.")
    name, best = max(rows, key=lambda row: row[1]["protection_success"])
    return (f"No protection reaches the {100 * GOAL:.0f} % goal at ±8 levels{so_far}: the best of the {len(rows)} "
            f"measured is {name} at {pct(best['protection_success'])} (PSNR {best['psnr_db']:.1f} dB).")


def benchmark_headline(metrics: dict) -> str:
    """A benchmark's verdict in one line: every protection at ±8 levels, best first, over the cases whose clean
    mimic worked (as the README and the About tab quote it)."""
    rows = [(name, entry["intensities"]["8"]) for name, entry in metrics["protections"].items() if "8" in entry["intensities"]]
    rows.sort(key=lambda row: -(row[1]["protection_success"] or 0))
    worked = rows[0][1]["cases_where_attack_worked"] if rows else 0
    missing = metrics.get("missing") or []
    return (f"protection success at ±8 levels over the {worked} of {len(metrics['cases'])} case(s) where the clean "
            f"mimic worked: " + ", ".join(f"{name} {pct(f['protection_success'])} (PSNR {f['psnr_db']:.1f} dB)"
                                         for name, f in rows) + "."
            + _no_cloak_words(metrics) + f" {goal_verdict(metrics)}"
            + (f" Not measured yet: {'; '.join(missing)}." if missing else ""))


def _no_cloak_words(metrics: dict) -> str:
    """' Without a cloak the same measure gives X %.' (the clean mimic's own misses), where the report has it."""
    floor = metrics.get("no_cloak_protection_success")
    return "" if floor is None else f" Without a cloak the same measure gives {pct(floor)} (the clean mimic's misses)."


def _signed_points(value, se) -> str:
    """A mimicry drop in points, signed, with its standard error: '+11.6 ± 12.0'."""
    if value is None:
        return "n/a"
    return f"{100 * value:+.1f}" + ("" if se is None else f" ± {100 * se:.1f}")


def _binomial_points(images: int) -> int:
    """The standard error, in points, of a share near 50 % judged on ``images`` images."""
    return round(100 * math.sqrt(0.25 / images))



def _markdown(metrics: dict) -> str:
    cfg = metrics["config"]
    lora, gen = cfg["lora"], cfg["generate"]
    lines = [f"# Protections compared: `{metrics['name']}`", "",
             f"Cases ({len(metrics['cases'])}): {', '.join(metrics['cases'])}. Clean mimicry (the mimic trained on the "
             f"originals): {pct(metrics['clean_mimicry'])} on average; per case "
             + ", ".join(f"{k} {pct(v)}" for k, v in metrics["clean_mimicry_per_case"].items()) + ".", "",
             f"Mimic: LoRA rank {lora['rank']}, {lora['steps']} steps, learning rate {lora['learning_rate']}, "
             f"{cfg['images']} images; {gen['images_per_prompt']} images per prompt, {gen['steps']} sampling steps, "
             f"guidance {gen['guidance']}. Protection success = 1 − the share of the cloaked mimic's images judged "
             f"the artist's style, averaged over the cases whose clean mimic reached "
             f"{100 * metrics['attack_works_at']:.0f} %.", "",
             f"**Verdict**: {goal_verdict(metrics)}", ""]
    floor = metrics.get("no_cloak_protection_success")
    if floor is not None:
        se = metrics.get("no_cloak_protection_success_se")
        lines += [f"**Without a cloak** the same measure gives {pct(floor)}"
                  f"{'' if se is None else f' ± {100 * se:.1f}'}: a zero cloak leaves the cloaked mimic the clean one "
                  "(same images, same seeds), whose misses count as protection. What a protection itself does is its "
                  "*mimicry drop*, the clean mimic's share minus the cloaked mimic's, case by case (in points; 0 for "
                  "no cloak, negative where the cloaked mimic did better).", ""]
    lines += ["| protection | ±levels | protection success | mimicry drop (points) | over all cases | judged as target | "
              "PSNR (dB) | SSIM | perceptual distance | s / image (128 px) | peak RSS (MB) |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    notes = ["", "± is the standard error of the mean over the cases (their spread, sample standard deviation / √n); "
             f"each case's share also has a sampling error of about {_binomial_points(gen['images_per_prompt'])} points "
             f"near 50 % ({gen['images_per_prompt']} images). Two protections whose means differ by less than about "
             "twice the larger standard error are within noise of each other."]
    for protection, entry in metrics["protections"].items():
        for level, f in sorted(entry["intensities"].items(), key=lambda kv: float(kv[0])):
            se = f.get("protection_success_se")
            lines.append(f"| {protection} | {level} | {pct(f['protection_success'])}"
                         f"{'' if se is None else f' ± {100 * se:.1f}'} ({f['cases_where_attack_worked']} cases) | "
                         f"{_signed_points(f.get('mimicry_drop'), f.get('mimicry_drop_se'))} | "
                         f"{pct(f['protection_success_all_cases'])} | "
                         f"{pct(f['judged_as_target'])} | {f['psnr_db']:.1f} | {f['ssim']:.3f} | "
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
              "", f"Hardware of the runs: {hardware_words(metrics['hardware'])}{cpus_words(metrics.get('cpus', {}))}."]
    if metrics.get("command"):
        lines += ["", f"Command (it resumes from the kept parts and case results; `--kept-parts` writes this report "
                      f"from them alone): `{metrics['command']}`."]
    return "\n".join(lines) + "\n"
