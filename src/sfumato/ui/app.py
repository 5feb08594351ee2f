"""The Gradio page: Cloak, Evaluate and About tabs over :mod:`sfumato.ui.handlers`.

:func:`build_app` makes the page; the models load lazily, once, into a pool that the
page's handlers share. Nothing per user lives outside a request: each request works
in its own temporary folder.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from ..config import INTENSITY_PRESETS, QUALITY_PRESETS  # noqa: E402
from ..corpus import VICTIM_STYLES, artist_token  # noqa: E402
from ..evaluation import load_config  # noqa: E402
from ..evaluation.benchmark import benchmark_headline  # noqa: E402
from ..evaluation.summary import headline  # noqa: E402
from ..losses import PROTECTIONS  # noqa: E402
from ..models import ModelLoadError  # noqa: E402
from ..targets import style_labels, style_names  # noqa: E402
from .handlers import Limits, ModelPool, cloak_uploads, style_thumbnails  # noqa: E402

__all__ = ["build_app", "THEME", "about_text"]

#: System fonts only: the page fetches nothing from outside.
THEME = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])

INTENSITY_HELP = ("How much the image may change. Higher protects more and is more visible; "
                  + ", ".join(f"{k}: at most {v['max_levels']:.0f} of 255 levels" for k, v in INTENSITY_PRESETS.items())
                  + ".")
QUALITY_HELP = ("How long the cloak is optimised. Slower finds a stronger cloak at the same visibility; "
                + ", ".join(f"{k}: {v['steps']} steps" for k, v in QUALITY_PRESETS.items() if k != "preview") + ".")
PROTECTION_HELP = ("How the cloak misleads the mimic. glaze and photoguard need only the model's image encoder; "
                   "the others also attack its denoiser (slower). See the About tab for what each achieved.")
ROBUST_HELP = ("Optimise the cloak against what a mimic may do to your image first (noise, resizing, blur, "
               "JPEG), one of them at random at every step. About the same time; on sfumato-mini it has not protected "
               "more than the plain cloak (within noise), and after JPEG or noise a mimic still copies the style in most "
               "of its images (the About tab has the matrix).")
MODEL_NOTE = ("**Model.** The built-in `sfumato-mini` is a small demonstration model. A cloak protects against the "
              "model it was computed for: to protect real work, choose under *Model and seed* the model a mimic "
              "would use (a Stable Diffusion hub id or a local folder).")
TARGET_HELP = "The style the model is misled towards. 'auto' picks, for the whole batch, the style farthest from your art."
RESULTS = Path(__file__).resolve().parents[3] / "evaluation" / "results"


def report_verdict(metrics: dict) -> str | None:
    """The line the About tab and the README quote for a committed report: a benchmark's headline, a mimicry
    run's verdict figure, or the verdict a poisoning run or a countermeasure matrix states (None: not judged)."""
    if "protections" in metrics:
        return benchmark_headline(metrics)
    return headline(metrics) or metrics.get("verdict")


def about_text(results: Path = RESULTS) -> str:
    """What cloaking does and does not promise, with the measured figures where a checkout has them."""
    lines = ["## What sfumato does",
             "sfumato adds a small, carefully computed change to your image (a *cloak*). People barely see it; "
             "a text-to-image model's image encoder sees your artwork as if it were painted in another style. "
             "The aim is that a mimic who fine-tunes a model on cloaked images learns the wrong style. On the "
             "embedded model, sfumato-mini, no protection does that yet at the default intensity: see Measured.",
             "", "## What it does not promise",
             "- It does not stop anyone from copying, printing or looking at your image.",
             "- It is measured against today's fine-tuning recipes and the encoder it was computed for; a future "
             "model, or a countermeasure (heavy compression, noisy upscaling, retraining), may weaken it.",
             "- Stronger intensity protects more and shows more. Nothing here is a guarantee.",
             "", "## Measured"]
    found = sorted(results.glob("*/metrics.json")) if results.is_dir() else []
    lines.append("Each line is a committed report's verdict: protection success over the cases where the mimic "
                 "trained on the originals worked (a failed mimic makes any cloak look good).")
    for path in found:
        text = report_verdict(json.loads(path.read_text()))
        if text:
            lines.append(f"- `{path.parent.name}`: {text}")
    if not found:
        lines.append("- No evaluation results in this installation; run the Evaluate tab or `sfumato evaluate`.")
    return "\n".join(lines)


#: What the Poison tab says before anything else.
POISON_NOTE = ("**Nightshade's poison** (Shan et al., 2024): each image keeps its look and its caption (the "
               "concept), but the model's encoder sees it as the destination, one of the model's own images of it. "
               "A cloak protects one artist's style from a mimic who targets them; a poison is a deterrent against "
               "scraping in general: a model trained on enough poisoned pairs paints the destination when asked "
               "for the concept. **On sfumato-mini it does not work**: up to 200 poisons among 2,000 clean pairs "
               "barely move the model, where 25 of the destination's own images captioned as the concept do; the "
               "About tab gives the measured curve.")

#: The Cloak tab's outputs after a stop or when no file could be cloaked: the status says why, the rest stays empty.
EMPTY = (None, None, [], None, [])


class Cancelled(Exception):
    """The user stopped a running cloak (Stop, or closing the tab)."""


def _session(request) -> str:
    """The browser session a request comes from (one per tab; gradio_client has one per client)."""
    return getattr(request, "session_hash", None) or "no-session"


def _figures_table(batch) -> list[list]:
    return [[r.name, r.figures.get("perceptual_metric", ""), round(r.figures.get("perceptual_distance", 0), 4),
             round(r.figures.get("psnr_db", 0), 2), r.figures.get("target", ""), round(r.figures.get("seconds", 0), 1)]
            for r in batch.results]


def build_app(*, model: str = "mini", device: str = "cpu", limits: Limits = Limits(),
              work: str | Path | None = None, evaluation=None) -> gr.Blocks:
    """The whole page.

    ``work`` holds the Evaluate tab's stage folders (reused across runs); ``evaluation``
    is the :class:`~sfumato.evaluation.EvaluationConfig` that tab runs (``mini-quick``).
    """
    pool = ModelPool(device)
    evaluate_lock = threading.Lock()
    work = Path(work) if work else Path(tempfile.gettempdir()) / "sfumato-app-evaluate"
    thumbnails = []

    def thumbs():
        if not thumbnails:
            thumbnails.extend(style_thumbnails())
        return thumbnails

    stop_requested: set[str] = set()  # browser sessions whose running cloak should stop (Stop, or the tab closed)

    def run_cloak(files, intensity, quality, target, model_name, seed, protection, preview, progress, session,
                  poison=None, robust=False):
        if not files:
            raise gr.Error("Upload at least one image.")
        out_dir = Path(tempfile.mkdtemp(prefix="sfumato-"))
        stop_requested.discard(session)

        def report(name, index, count, step, steps):
            if session in stop_requested:
                raise Cancelled(f"stopped at step {step} of {steps} of {name}")
            progress((step, steps), desc=f"{name} ({index + 1} of {count})")

        try:
            batch = cloak_uploads(pool, [getattr(f, "name", f) for f in files], out_dir, model=model_name,
                                  intensity=intensity, quality=quality, target=target, seed=int(seed or 0),
                                  protection=protection or "glaze", limits=limits, preview=preview, poison=poison,
                                  robust=bool(robust), progress=report)
        except Cancelled as stop:
            return (f"Stopped ({stop}); nothing was written.",) + EMPTY
        except (ValueError, ModelLoadError) as err:
            raise gr.Error(str(err)) from None
        finally:
            stop_requested.discard(session)
        skipped = "".join(f"\n- skipped {message}" for message in batch.errors)  # one line per failed file
        if not batch.results:
            return (f"No image could be {'poisoned' if poison else 'cloaked'}:" + skipped,) + EMPTY
        first = batch.results[0]
        downloads = [str(p) for r in batch.results for p in (r.output, r.sidecar, *r.extra)]
        downloads += [str(batch.archive)] if batch.archive else []
        if preview:
            status = (f"**Preview only** of {first.name}: a 256 px draft at the fastest setting, to judge the look. "
                      "It is not a protected copy; do not publish it. Press Cloak for the real one.")
        else:
            status = f"{'Poisoned' if poison else 'Cloaked'} {len(batch.results)} image(s)." + skipped
        return (status, (first.before, first.after), first.perturbation,
                [(str(r.output), r.name) for r in batch.results], _figures_table(batch), downloads)

    def on_cloak(files, intensity, quality, target, model_name, seed, protection="glaze", robust=False,
                 request: gr.Request = None, progress=gr.Progress()):
        return run_cloak(files, intensity, quality, target, model_name, seed, protection, False, progress,
                         _session(request), robust=robust)

    def on_preview(files, intensity, target, model_name, seed, protection="glaze", robust=False,
                   request: gr.Request = None, progress=gr.Progress()):
        return run_cloak(files, intensity, "preview", target, model_name, seed, protection, True, progress,
                         _session(request), robust=robust)

    def on_poison(files, concept, destination, intensity, quality, model_name, seed, request: gr.Request = None,
                  progress=gr.Progress()):
        out = run_cloak(files, intensity, quality, "auto", model_name, seed, "glaze", False, progress, _session(request),
                        poison=(concept, destination))
        return out[0], out[3], out[5]  # status, gallery, downloads

    def on_stop(request: gr.Request = None):
        stop_requested.add(_session(request))

    def on_style_pick(evt: gr.SelectData):
        return style_names()[evt.index]

    def on_evaluate(victim, files, progress=gr.Progress()):
        from ..evaluation import run_evaluation

        config = evaluation or load_config("mini-quick")
        if files:
            art = Path(tempfile.mkdtemp(prefix="sfumato-art-"))
            for f in files:
                source = Path(getattr(f, "name", f))
                (art / source.name).write_bytes(source.read_bytes())
            spare = len(files) - (0 if config.art_judge.judge_art else config.art_judge.held_out)  # the judge's share
            config = config.with_overrides(art=str(art), artist="sks",
                                           images=min(config.images, spare) if spare >= 1 else None)
        else:
            config = config.with_overrides(victims=(int(victim.removeprefix("artist")),))
        if not evaluate_lock.acquire(blocking=False):
            raise gr.Error("Another evaluation is running; try again when it has finished.")
        try:
            report_dir = Path(tempfile.mkdtemp(prefix="sfumato-report-"))
            metrics = run_evaluation(config, work, report_dir, log=lambda message: progress(0, desc=message))
        except (ValueError, FileNotFoundError, ModelLoadError) as err:
            raise gr.Error(str(err)) from None
        finally:
            evaluate_lock.release()
        case = metrics["cases"][0]
        chart = report_dir / "scores.png"
        return (str(report_dir / case["figure"]), str(chart) if chart.is_file() else None,
                (report_dir / "report.md").read_text().split("## Every case")[0])

    with gr.Blocks(title="sfumato", analytics_enabled=False) as app:
        gr.Markdown("# sfumato\nCloak your artwork against AI style mimicry. Everything runs on this computer.")
        with gr.Tab("Cloak"):
            with gr.Row():
                with gr.Column():
                    files = gr.File(label=f"Artwork (up to {limits.max_files} images)", file_count="multiple",
                                    file_types=["image"])
                    intensity = gr.Radio(list(INTENSITY_PRESETS), value="default", label="Intensity", info=INTENSITY_HELP)
                    quality = gr.Radio([q for q in QUALITY_PRESETS if q != "preview"], value="default",
                                       label="Render quality", info=QUALITY_HELP)
                    protection = gr.Dropdown([(f"{name}: {p.summary}", name) for name, p in PROTECTIONS.items()],
                                             value="glaze", label="Protection", info=PROTECTION_HELP)
                    robust = gr.Checkbox(False, label="Robust to cleaning", info=ROBUST_HELP)
                    target = gr.Dropdown([("auto", "auto"), *zip(style_labels(), style_names())], value="auto",
                                         label="Target style", info=TARGET_HELP)
                    styles = gr.Gallery(label="Target styles (click one to choose it)", columns=9, height=260,
                                        allow_preview=False)
                    gr.Markdown(MODEL_NOTE)
                    with gr.Accordion("Model and seed", open=False):
                        model_box = gr.Textbox(model, label="Model", info="mini (built in, offline), or a Stable "
                                                                            "Diffusion hub id or local folder")
                        seed = gr.Number(0, precision=0, label="Seed", info="the same seed gives the same result")
                    with gr.Row():
                        preview_button = gr.Button("Preview", variant="secondary")
                        cloak_button = gr.Button("Cloak", variant="primary")
                        stop_button = gr.Button("Stop", variant="stop")
                with gr.Column():
                    status = gr.Markdown("Upload artwork, then **Preview** (seconds) or **Cloak**.", min_height=70)
                    slider = gr.ImageSlider(label="Before / after", type="numpy", max_height=520)
                    perturbation = gr.Image(label="The change, amplified", type="numpy", height=360)
                    gallery = gr.Gallery(label="Cloaked images", columns=4, height=280, object_fit="contain",
                                         preview=False, fit_columns=False)
                    figures = gr.Dataframe(headers=["image", "metric", "distance", "PSNR dB", "target", "s"],
                                           label="Figures (distance: the perceptual metric's)", wrap=True, max_height=240,
                                           column_widths=["24%", "16%", "16%", "12%", "20%", "12%"])
                    downloads = gr.File(label="Downloads (PNG, JSON, ZIP of all)", file_count="multiple")
            outputs = [status, slider, perturbation, gallery, figures, downloads]
            running = [  # one progress bar, on the status line, not one per output panel
                cloak_button.click(on_cloak, [files, intensity, quality, target, model_box, seed, protection, robust],
                                   outputs,
                                   api_name="cloak", show_progress_on=[status]),
                preview_button.click(on_preview, [files, intensity, target, model_box, seed, protection, robust],
                                     outputs,
                                     api_name="preview", show_progress_on=[status])]
            stop_button.click(on_stop, None, None, api_name="stop", cancels=running)
            styles.select(on_style_pick, None, target)
        with gr.Tab("Poison"):
            gr.Markdown(POISON_NOTE)
            with gr.Row():
                with gr.Column():
                    poison_files = gr.File(label="Images of one concept", file_count="multiple", file_types=["image"])
                    artists = [artist_token(s) for s in range(len(style_names()))]
                    concept = gr.Dropdown(artists, value="artist05", allow_custom_value=True,
                                          label="Concept: what the images show (their caption)")
                    destination = gr.Dropdown(artists, value="artist12", allow_custom_value=True,
                                              label="Destination: what a model trained on them learns instead")
                    poison_intensity = gr.Radio(list(INTENSITY_PRESETS), value="default", label="Intensity",
                                                info=INTENSITY_HELP)
                    poison_quality = gr.Radio([q for q in QUALITY_PRESETS if q != "preview"], value="default",
                                              label="Render quality", info=QUALITY_HELP)
                    with gr.Accordion("Model and seed", open=False):
                        poison_model = gr.Textbox(model, label="Model", info="mini (built in, offline), or a Stable "
                                                                              "Diffusion hub id or local folder")
                        poison_seed = gr.Number(0, precision=0, label="Seed", info="seeds the anchors and the optimiser")
                    poison_button = gr.Button("Poison", variant="primary")
                with gr.Column():
                    poison_status = gr.Markdown("Upload images of the concept, then **Poison**.", min_height=70)
                    poison_gallery = gr.Gallery(label="Poisoned images", columns=4, height=280, object_fit="contain",
                                                preview=False, fit_columns=False)
                    poison_downloads = gr.File(label="Downloads (PNG, caption, JSON, ZIP of all)", file_count="multiple")
            poison_button.click(on_poison, [poison_files, concept, destination, poison_intensity, poison_quality,
                                            poison_model, poison_seed], [poison_status, poison_gallery, poison_downloads],
                                api_name="poison", show_progress_on=[poison_status])
        with gr.Tab("Evaluate"):
            gr.Markdown("Run the `mini-quick` mimicry test: LoRA-fine-tune sfumato-mini on 16 clean images and on "
                        "their cloaked copies, then compare what each mimic paints (about 15 minutes on 2 CPU cores).")
            with gr.Row():
                quick = evaluation or load_config("mini-quick")
                victim = gr.Dropdown([artist_token(v) for v in VICTIM_STYLES], value=artist_token(quick.victims[0]),
                                     label="Built-in victim artist")
                art_files = gr.File(label="...or your own artwork (24 images: 16 train the mimic, 8 train a judge "
                                          "of your style)", file_count="multiple",
                                    file_types=["image"])
            evaluate_button = gr.Button("Run the mimicry test", variant="primary")
            side_by_side = gr.Image(label="Originals | cloaked | mimic on originals | mimic on cloaked", type="filepath")
            chart = gr.Image(label="Scores", type="filepath")
            summary = gr.Markdown()
            evaluate_button.click(on_evaluate, [victim, art_files], [side_by_side, chart, summary], api_name="evaluate",
                                  concurrency_limit=1)
        with gr.Tab("About"):
            gr.Markdown(about_text())
        app.load(thumbs, None, styles, show_progress="hidden")
        app.unload(on_stop)  # closing the tab stops its running cloak
    return app
