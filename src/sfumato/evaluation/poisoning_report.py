"""The poisoning experiment's report: ``metrics.json``, ``report.md``, the curve and a grid."""

from __future__ import annotations

import json
from pathlib import Path

from ..corpus import artist_token
from .contract import hardware_words
from .charts import palette
from .stages import image_set
from .summary import pct

__all__ = ["write_poisoning_report", "ATTACK_TARGET"]

#: The issue's bar: the share of "a painting by A" images judged B that counts as a working poison.
ATTACK_TARGET = 0.7


def _model_figures(shares: dict, p) -> dict:
    """One model's figures from its judged shares per prompted artist."""
    concept = shares[artist_token(p.concept)]
    related = [artist_token(s) for s in p.related_concepts]
    unrelated = [w for w in shares if w not in related and w != artist_token(p.concept)]
    mean = lambda words, key: sum(shares[w][key] for w in words) / len(words) if words else None  # noqa: E731
    return {"attack_success": concept["destination"], "still_concept": concept["as_prompted"],
            "bleed_through": {"related": mean(related, "destination"), "unrelated": mean(unrelated, "destination"),
                              "related_as_prompted": mean(related, "as_prompted")},
            "collateral": mean([w for w in shares if w != artist_token(p.concept)], "as_prompted")}


def write_poisoning_report(config, shares: dict, work: Path, out: Path, machine: dict) -> dict:
    """Write the report from ``shares`` (model label -> prompted artist -> judged shares); returns the metrics."""
    p = config.poison
    out.mkdir(parents=True, exist_ok=True)
    per_model = {label: _model_figures(s, p) for label, s in shares.items()}
    metrics = {"name": config.name, "concept": artist_token(p.concept), "destination": artist_token(p.destination),
               "base": per_model["base"]}
    for kind in p.kinds:
        metrics[kind.replace("-", "_")] = {str(n): per_model["clean" if n == 0 else f"{kind}-{n}"] for n in p.counts}
    metrics["bleed_through"] = {label: f["bleed_through"] for label, f in per_model.items()}
    metrics["collateral"] = {label: f["collateral"] for label, f in per_model.items()}
    metrics["verdict"] = _verdict(metrics, p)
    metrics |= {"config": json.loads(json.dumps(config.to_dict(), default=str)), **machine}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    _curve(metrics, p, out / "attack-success.png")
    top = max(p.counts)
    rows = {"base": "base", "clean": "clean", f"poison-{top}": p.poison_side(f"poison-{top}"),
            f"dirty-label-{top}": f"dirty-label-{top}"}
    _grid(work, {label: name for label, name in rows.items() if label in shares}, out / "grid.png")
    (out / "report.md").write_text(_markdown(metrics, p))
    return metrics


def _verdict(metrics: dict, p) -> str:
    poison = metrics.get("poison", {})
    dirty = metrics.get("dirty_label", {})
    reached = [int(n) for n, f in poison.items() if int(n) and f["attack_success"] >= ATTACK_TARGET
               and (str(n) not in dirty or f["attack_success"] > dirty[str(n)]["attack_success"])]
    if reached:
        return (f"the poison works: at N = {min(reached)} poisoned pairs among {p.clean_pairs} clean ones, "
                f"{pct(poison[str(min(reached))]['attack_success'])} of the images for \"a painting by "
                f"{metrics['concept']}\" are judged {metrics['destination']}"
                + (", more than with dirty-label pairs." if dirty else " (no dirty-label pairs were run)."))
    best = max((f["attack_success"], int(n)) for n, f in poison.items()) if poison else (None, None)
    verdict = (f"the poison does not reach {ATTACK_TARGET:.0%} at any N up to {max(p.counts)} (best "
               f"{pct(best[0])} at N = {best[1]})"
               + (", or does not beat dirty-label pairs where it does." if dirty else "; no dirty-label pairs were run."))
    control = max((f["attack_success"] for f in dirty.values()), default=None)
    if control is not None and control < ATTACK_TARGET:  # the control failed too: the run cannot judge the poison
        verdict += (f" The dirty-label control (the destination's own images, captioned as the concept) reached at "
                    f"most {pct(control)} too, so this run cannot tell whether the poison works: the trainer or "
                    f"the judge does not reach the destination at all.")
    return verdict


def _curve(metrics: dict, p, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    for kind in p.kinds:
        series = metrics[kind.replace("-", "_")]
        ax.plot(list(map(int, series)), [100 * f["attack_success"] for f in series.values()], marker="o", label=kind)
    ax.axhline(100 * ATTACK_TARGET, color="grey", lw=0.6, ls="--")
    ax.set_xlabel(f"N pairs for \"a painting by {metrics['concept']}\"\n(among {p.clean_pairs} clean ones)", fontsize=8)
    ax.set_ylabel(f"judged {metrics['destination']} (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    palette(path)


def _grid(work: Path, labels: dict[str, str], path: Path, samples: int = 6) -> None:
    """The first samples of "a painting by A" from each model, one row per model (``labels``: row label -> the
    model's folder name)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(labels), samples, figsize=(1.3 * samples, 1.3 * len(labels) + 0.2), squeeze=False)
    for r, (label, name) in enumerate(labels.items()):
        images = image_set(work / f"samples-{name}-concept")[0][:samples]
        for c, image in enumerate(images):
            axes[r][c].imshow(image.permute(1, 2, 0).numpy())
            axes[r][c].set_xticks([]), axes[r][c].set_yticks([])
        axes[r][0].set_ylabel(label, fontsize=7)
    fig.tight_layout(pad=0.3)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    palette(path)


def _markdown(m: dict, p) -> str:
    cfg = m["config"]
    lines = [f"# Poisoning: \"a painting by {m['concept']}\" towards {m['destination']}", "",
             f"A trainer fine-tunes `{cfg['model']}` on {p.clean_pairs} clean pairs of the pretraining artists plus N "
             f"pairs captioned \"a painting by {m['concept']}\": poison ({p.objective} towards the model's own images of "
             f"{m['destination']}, intensity {p.intensity})"
             + (f" or dirty-label ({m['destination']}'s images). " if "dirty-label" in p.kinds else ". ")
             + f"Fine-tune: {'whole UNet' if cfg['lora'].get('full_unet') else 'LoRA rank ' + str(cfg['lora']['rank'])}, "
             f"{cfg['lora']['steps']} steps of {cfg['lora']['batch_size']}, learning rate {cfg['lora']['learning_rate']}. "
             f"Judge: sfumato's style judge; {cfg['generate']['images_per_prompt']} images for the concept, "
             f"{p.other_images} for each other artist.", "",
             f"**Verdict**: {m['verdict']}", "",
             "| pairs | N | judged destination (attack success) | still judged the concept | bleed-through, related | "
             "bleed-through, unrelated | others judged as prompted (collateral) |", "|---|---|---|---|---|---|---|",
             f"| base model | - | {pct(m['base']['attack_success'])} | {pct(m['base']['still_concept'])} | "
             f"{pct(m['base']['bleed_through']['related'])} | {pct(m['base']['bleed_through']['unrelated'])} | "
             f"{pct(m['base']['collateral'])} |"]
    for kind in p.kinds:
        for n, f in m[kind.replace("-", "_")].items():
            lines.append(f"| {kind} | {n} | {pct(f['attack_success'])} | {pct(f['still_concept'])} | "
                         f"{pct(f['bleed_through']['related'])} | {pct(f['bleed_through']['unrelated'])} | "
                         f"{pct(f['collateral'])} |")
    lines += ["", "![attack success against N](attack-success.png)", "", "![a painting by the concept](grid.png)", ""]
    if m.get("poison_set"):
        s = m["poison_set"]
        lines += [f"The {s['images']} poisons: mean PSNR {s['psnr_db']:.1f} dB against their originals; the squared "
                  f"encoder distance to their anchors cut by {1 - s['encoder_ratio']:.0%} on average."
                  + (f" {s['resumed']} of them were made by an earlier, interrupted run and read back; their time "
                     "is not in the compute below." if s.get("resumed") else "")
                  + (f" Each poison's own time, where it was recorded ({s['timed']} of {s['images']}), adds up to "
                     f"{s['poison_seconds'] / 60:.1f} min." if s.get("timed") else ""), ""]
    lines.append(f"Hardware: {hardware_words(m['hardware'], m.get('threads'))}"
                 + (f"; compute {m['compute_seconds'] / 60:.0f} min over the stages (the corpora's rendering not "
                    "counted)." if "compute_seconds" in m else "."))
    return "\n".join(lines) + "\n"
