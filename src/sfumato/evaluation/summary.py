"""The figures a report gives and the words it says about them: aggregates, the verdict and the headline."""

from __future__ import annotations

import math
import statistics

__all__ = ["ATTACK_WORKS", "aggregate", "seed_spread", "verdict", "headline", "pct"]

def _mean(values) -> float | None:
    values = list(values)
    return statistics.fmean(values) if values else None


def aggregate(cases: list[dict]) -> dict:
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
        return (f"clean-only run: the mimic trained on the originals reached {pct(ms['clean'])} (base model "
                f"{pct(ms['base'])}); it reached {100 * ATTACK_WORKS:.0f} % in {worked} of {aggregate['cases']} case(s). "
                f"No cloak was evaluated.")
    if ms["clean"] < ATTACK_WORKS:
        text = (f"the mimic trained on the originals reached only {pct(ms['clean'])} (below "
                f"{100 * ATTACK_WORKS:.0f} %): the attack did not work here, so this run shows nothing about protection "
                f"(its protection figure would be high without any cloak).")
    elif aggregate["protection_success"] >= 0.9:
        text = (f"the attack works on the originals ({pct(ms['clean'])}) and the cloak stopped it: "
                f"{pct(aggregate['protection_success'])} of the cloaked mimic's images are not in the artist's style.")
    elif ms["cloaked"] >= ms["clean"]:
        text = (f"the attack works on the originals ({pct(ms['clean'])}) and the cloak did not stop it: the cloaked "
                f"mimic reached {pct(ms['cloaked'])}, as much as the mimic trained on the originals or more.")
    else:
        text = (f"the attack works on the originals ({pct(ms['clean'])}) but the cloak stopped it only partly: "
                f"the cloaked mimic still reached {pct(ms['cloaked'])}.")
    worked = aggregate.get("attack_worked")
    if worked is not None and worked["cases"] < aggregate["cases"]:
        text += (f" In {aggregate['cases'] - worked['cases']} of {aggregate['cases']} cases the mimic trained on the "
                 f"originals stayed below {100 * ATTACK_WORKS:.0f} %, which makes their protection figures high without any "
                 f"cloak; over the {worked['cases']} cases where the attack worked, protection success is "
                 f"{pct(worked['protection_success'])}.")
    return text


def pct(x) -> str:
    """A share as a percentage with one decimal, or n/a (None or NaN)."""
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f} %"


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
                f"{pct(agg['mimicry_success']['clean'])} on average (base model {pct(agg['mimicry_success']['base'])}); "
                f"{worked['cases']} of {agg['cases']} case(s) reached {100 * ATTACK_WORKS:.0f} %.")
    from ..config import resolve_config

    protect = metrics["config"]["protect"]
    levels = resolve_config(protect["intensity"]).max_levels
    figure = (f"protection success {pct(worked['protection_success'])} over the {worked['cases']} of {agg['cases']} "
              f"case(s) where the clean mimic worked" if worked["cases"] else
              f"no case where the clean mimic worked (0 of {agg['cases']}), so no protection figure")
    scale = protect.get("budget_scale", 1.0)
    budget = "" if scale == 1 else f" and {scale:g}× the perceptual budget"
    budget += " with flips" if protect.get("flips") else ""
    budget += ", robust" if protect.get("robust") else ""
    budget += "" if protect.get("countermeasure", "none") == "none" else f", mimic cleaning with {protect['countermeasure']}"
    return (f"{protect.get('protection', 'glaze')} at ±{levels:g} levels{budget}, "
            f"PSNR {agg['visibility']['psnr_db']:.1f} dB: {figure} (clean mimicry "
            f"{pct(agg['mimicry_success']['clean'])}).")
