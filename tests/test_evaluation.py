"""The mimicry evaluation harness, end to end on a tiny local Stable Diffusion pipeline (HF_HUB_OFFLINE=1)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from PIL import Image

from sfumato.corpus import artist_token
from sfumato.evaluation import EvaluationConfig, GenerateSettings, ProtectSettings, load_config, run_evaluation
from sfumato.evaluation.art_judge import ArtJudgeSettings
from sfumato.evaluation.config import PRESETS
from sfumato.evaluation.contract import read_images, run_stage, write_images
from sfumato.evaluation.metrics import frechet_distance, judged_shares
from sfumato.evaluation.stages import VICTIM_CORPUS, image_set, stage_countermeasure
from sfumato.finetune import LoraSettings

from conftest import make_artwork

STAGES = ("art", "judge", "protect", "finetune-clean", "finetune-cloaked", "generate-base", "generate-clean",
          "generate-cloaked", "score")


def _tiny_config(model_dir, **overrides) -> EvaluationConfig:
    base = EvaluationConfig(
        name="tiny", model=str(model_dir), images=3, seeds=(0,),
        protect=ProtectSettings(quality="preview", target="3"),
        lora=LoraSettings(steps=3, batch_size=2, rank=2, alpha=2.0, learning_rate=1e-2),
        generate=GenerateSettings(images_per_prompt=3, steps=2, batch_size=3),
        art_judge=ArtJudgeSettings(held_out=4, base_samples=4, min_recall=0, min_specificity=0, negative_styles=3))  # mechanics only
    return replace(base, **overrides)


@pytest.fixture(scope="module")
def art_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("art")
    for i in range(8):
        image = (make_artwork(80, 96, seed=i).permute(1, 2, 0).numpy() * 255).round().astype("uint8")
        Image.fromarray(image).save(folder / f"work-{i}.png")
    return folder


@pytest.fixture(scope="module")
def victim_corpus(tmp_path_factory):
    """A stand-in for the built-in victims' corpus: the record build_corpus reuses, with a few images."""
    from dataclasses import asdict

    corpus = tmp_path_factory.mktemp("corpus")
    folder = corpus / "artist02"
    rows = []
    for style in (2,):
        for k in range(5):
            rel = f"victim/style-{style:02d}/img-{k:03d}.png"
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            image = make_artwork(64, 64, seed=100 * style + k)
            Image.fromarray((image.permute(1, 2, 0).numpy() * 255).round().astype("uint8")).save(folder / rel)
            rows.append({"file": rel, "split": "victim", "style": style, "artist": artist_token(style),
                         "caption": f"a painting by {artist_token(style)}", "source": "test", "box": [0, 0, 64, 64]})
    (folder / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    record = asdict(replace(VICTIM_CORPUS, styles=(2,)))
    (folder / "corpus.json").write_text(json.dumps({"config": json.loads(json.dumps(record))}))
    return corpus


@pytest.fixture(scope="module")
def art_run(tiny_pipeline_dir, art_dir, tmp_path_factory):
    work = tmp_path_factory.mktemp("run")
    config = _tiny_config(tiny_pipeline_dir, art=str(art_dir), artist="sks")
    messages = []
    metrics = run_evaluation(config, work, work / "report", log=messages.append)
    return config, work, metrics, messages


def test_every_stage_writes_a_folder_with_a_manifest(art_run):
    config, work, metrics, _ = art_run
    case = work / "sks-seed0"
    for stage in STAGES:
        manifest = json.loads((case / stage / "manifest.json").read_text())
        assert manifest["stage"] == stage and manifest["seconds"] >= 0
        assert {"sfumato", "torch", "diffusers", "peft"} <= set(manifest["versions"])
        assert "seed" in manifest["settings"] or stage == "score"
    held, _ = image_set(case / "art" / "held-out")
    assert held.shape == (4, 3, 64, 64) and (case / "judge" / "art-judge.safetensors").is_file()
    art, record = image_set(case / "art")
    assert art.shape == (3, 3, 64, 64) and record["captions"] == ["a painting by sks"] * 3
    cloaked, _ = image_set(case / "protect")
    assert cloaked.shape == art.shape and not torch.equal(cloaked, art)
    assert (case / "finetune-clean" / "pytorch_lora_weights.safetensors").is_file()
    for name in ("base", "clean", "cloaked"):
        assert image_set(case / f"generate-{name}")[0].shape == (3, 3, 64, 64)


def test_report_files(art_run):
    config, work, metrics, _ = art_run
    report = work / "report"
    assert json.loads((report / "metrics.json").read_text()) == json.loads(json.dumps(metrics, default=str))
    text = (report / "report.md").read_text()
    assert "# Mimicry evaluation: tiny" in text and "Hardware" in text and "Fréchet" in text
    figure = Image.open(report / "side-by-side-sks-seed0.png")
    assert figure.width > 200 and figure.height > 200
    scores = metrics["cases"][0]["scores"]
    assert set(scores["mimicry_success"]) == {"base", "clean", "cloaked"}  # from the folder's own judge
    assert {"recall", "specificity", "positives", "negatives"} <= set(metrics["cases"][0]["art_judge"])
    assert "The artist's style judge" in text and "target" not in scores["cloaked"]["judged"]
    for name in ("base", "clean", "cloaked"):
        assert scores[name]["frechet_to_real"] >= 0
    assert 0 < scores["visibility"]["linf_levels"]["max"] <= 8 + 1e-3  # the default intensity's cap
    recorded = {json.loads(m.read_text())["hardware"]["threads"] for m in (work / "sks-seed0").glob("*/manifest.json")}
    assert metrics["cases"][0]["threads"] == sorted(recorded)  # what each stage ran with, not this process's


def test_rerun_reuses_every_stage_with_identical_numbers(art_run):
    config, work, metrics, _ = art_run
    first = (work / "report" / "metrics.json").read_bytes()
    messages = []
    again = run_evaluation(config, work, work / "report", log=messages.append)
    assert sum("reused" in m for m in messages) == len(STAGES)
    assert not any("running" in m for m in messages)
    assert (work / "report" / "metrics.json").read_bytes() == first
    assert again["aggregate"] == metrics["aggregate"]


def test_changed_sampling_reruns_only_what_depends_on_it(tiny_pipeline_dir, art_dir, tmp_path):
    config = _tiny_config(tiny_pipeline_dir, art=str(art_dir), artist="sks")
    run_evaluation(config, tmp_path, log=lambda m: None)
    messages = []
    changed = replace(config, generate=replace(config.generate, images_per_prompt=2))
    run_evaluation(changed, tmp_path, log=messages.append)
    ran = {m.split("]")[0][1:] for m in messages if "running" in m}
    assert ran == {"generate-base", "generate-clean", "generate-cloaked", "score"}
    assert image_set(tmp_path / "sks-seed0" / "generate-clean")[0].shape[0] == 2


def test_offset_noise_reruns_the_fine_tunes_and_zero_matches_stages_made_before_it(tiny_pipeline_dir, art_dir, tmp_path):
    config = _tiny_config(tiny_pipeline_dir, art=str(art_dir), artist="sks")
    run_evaluation(config, tmp_path, log=lambda m: None)
    manifest = json.loads((tmp_path / "sks-seed0" / "finetune-clean" / "manifest.json").read_text())
    assert "noise_offset" not in manifest["settings"]  # off: recorded as fine-tunes were before the setting existed
    messages = []
    run_evaluation(replace(config, lora=replace(config.lora, noise_offset=0.1)), tmp_path, log=messages.append)
    ran = {m.split("]")[0][1:] for m in messages if "running" in m}
    assert ran == {"finetune-clean", "finetune-cloaked", "generate-clean", "generate-cloaked", "score"}


def test_a_new_decoder_reruns_only_the_sampling(tiny_pipeline_dir, art_dir, tmp_path):
    import shutil

    from diffusers import AutoencoderKL

    from sfumato.widen import widen_decoder

    model = tmp_path / "model"
    shutil.copytree(tiny_pipeline_dir, model)
    config = _tiny_config(model, art=str(art_dir), artist="sks")
    run_evaluation(config, tmp_path / "work", log=lambda m: None)
    wide = widen_decoder(AutoencoderKL.from_pretrained(model / "vae"), noise=0.01, generator=torch.Generator())
    shutil.rmtree(model / "vae")
    wide.save_pretrained(model / "vae")
    (model / "model_index.json").write_text((model / "model_index.json").read_text().replace(
        '"AutoencoderKL"', '"AsymmetricAutoencoderKL"'))
    messages = []
    run_evaluation(config, tmp_path / "work", log=messages.append)
    ran = {m.split("]")[0][1:] for m in messages if "running" in m}
    assert ran == {"judge", "generate-base", "generate-clean", "generate-cloaked", "score"}  # the judge samples too


def test_part_fingerprints_follow_only_their_parts(tiny_pipeline_dir, tmp_path):
    import shutil

    from sfumato.evaluation.run import FINETUNE_PARTS, PROTECT_PARTS, model_fingerprint

    model = tmp_path / "model"
    shutil.copytree(tiny_pipeline_dir, model)

    def prints():
        return [model_fingerprint(str(model), parts) for parts in (None, PROTECT_PARTS, FINETUNE_PARTS)]

    whole, encoder, finetune = prints()
    assert encoder.endswith("[vae.encoder]") and len({whole, encoder, finetune}) == 3
    from safetensors.torch import load_file, save_file

    weights = model / "vae" / "diffusion_pytorch_model.safetensors"
    tensors = load_file(weights)
    tensors["decoder.conv_out.bias"] += 0.1
    save_file(tensors, weights)
    assert prints()[1:] == [encoder, finetune] and prints()[0] != whole
    tensors["encoder.conv_in.bias"] += 0.1
    save_file(tensors, weights)
    assert prints()[1] != encoder
    config = model / "unet" / "config.json"
    config.write_text(config.read_text().replace('"sample_size": 8', '"sample_size": 16'))
    assert prints()[2] != finetune


def test_same_settings_in_a_fresh_folder_give_the_same_images(art_run, tmp_path):
    config, work, _, _ = art_run
    run_evaluation(config, tmp_path, log=lambda m: None)
    for stage in ("protect", "generate-clean", "generate-cloaked"):
        a, _ = image_set(work / "sks-seed0" / stage)
        b, _ = image_set(tmp_path / "sks-seed0" / stage)
        assert torch.equal(a, b), stage


def test_built_in_victim_is_judged_and_protection_reported(tiny_pipeline_dir, victim_corpus, tmp_path):
    config = _tiny_config(tiny_pipeline_dir, victims=(2,), corpus=str(victim_corpus))
    metrics = run_evaluation(config, tmp_path, log=lambda m: None)
    scores = metrics["cases"][0]["scores"]
    assert set(scores["mimicry_success"]) == {"base", "clean", "cloaked"}
    assert scores["protection_success"] == pytest.approx(1 - scores["mimicry_success"]["cloaked"])
    assert scores["target"]["style"] == 3 and "target" in scores["cloaked"]["judged"]
    _, record = image_set(tmp_path / "artist02-seed0" / "art")
    assert record["captions"] == ["a painting by artist02"] * 3
    agg = metrics["aggregate"]
    assert agg["per_victim"]["artist02"]["seeds"] == [0]
    text = (tmp_path / "report" / "report.md").read_text()
    assert "Protection success" in text and "| artist02 | [0] |" in text
    assert (tmp_path / "report" / "scores.png").is_file()


def test_clean_only_run_scores_the_mimic_without_a_cloak_and_the_full_run_reuses_it(
        tiny_pipeline_dir, victim_corpus, tmp_path):
    config = _tiny_config(tiny_pipeline_dir, victims=(2,), corpus=str(victim_corpus), clean_only=True)
    metrics = run_evaluation(config, tmp_path, log=lambda m: None)
    case = tmp_path / "artist02-seed0"
    assert not any(case.glob("protect*")) and not any(case.glob("*cloaked*"))
    scores = metrics["cases"][0]["scores"]
    assert set(scores["mimicry_success"]) == {"base", "clean"} and "protection_success" not in scores
    agg = metrics["aggregate"]
    assert set(agg["mimicry_success"]) == {"base", "clean"} and "protection_success" not in agg
    assert agg["attack_worked"] == {"cases": int(agg["mimicry_success"]["clean"] >= 0.6)}
    text = (tmp_path / "report" / "report.md").read_text()
    assert "clean-only run" in text and "**Protection success**" not in text
    from sfumato.evaluation.summary import headline

    assert headline(metrics).startswith("clean-only run, no cloak: the mimic trained on the originals reached")
    messages = []
    full = run_evaluation(replace(config, clean_only=False), tmp_path, log=messages.append)
    for stage in ("art", "finetune-clean", "generate-base", "generate-clean"):
        assert any(f"[{stage}] reused" in m for m in messages), stage
    assert full["cases"][0]["scores"]["mimicry_success"]["clean"] == scores["mimicry_success"]["clean"]
    assert "protection_success" in full["aggregate"]


def test_countermeasures_change_the_cloaked_images(tmp_path):
    source = tmp_path / "protect"
    source.mkdir()
    images = torch.stack([make_artwork(64, 64, seed=i) for i in range(2)])
    write_images(source, images, ["a", "b"])
    (source / "images.json").write_text(json.dumps({"names": ["a", "b"], "captions": ["x", "y"]}))
    for spec in ("jpeg:50", "blur:1.5"):
        out = tmp_path / spec.replace(":", "-")
        out.mkdir()
        stage_countermeasure(out, source, spec=spec)
        changed, record = image_set(out)
        assert changed.shape == images.shape and record["countermeasure"] == spec
        assert 0 < (changed - images).abs().mean() < 0.2


def test_interrupted_stage_leaves_no_manifest_and_reruns(tmp_path):
    folder = tmp_path / "stage"

    def fails(out):
        (out / "half.txt").write_text("half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        run_stage("demo", folder, {"a": 1}, fails, log=lambda m: None)
    assert not folder.exists()
    manifest = run_stage("demo", folder, {"a": 1}, lambda out: {"figure": 2}, log=lambda m: None)
    assert manifest["figure"] == 2 and not manifest["reused"]
    assert run_stage("demo", folder, {"a": 1}, lambda out: 1 / 0, log=lambda m: None)["reused"]
    upstream = {"key": "changed"}
    assert not run_stage("demo", folder, {"a": 1}, lambda out: {}, inputs=[upstream], log=lambda m: None)["reused"]


def test_jobs_sharing_a_work_folder_build_a_stage_once(tmp_path):
    """Two jobs (threads here, processes in use) reaching the same stage: one builds it, the other waits and reuses it."""
    import threading
    import time

    started, builds, manifests = threading.Event(), [], []

    def slow(out):
        builds.append(out)
        started.set()
        time.sleep(0.3)
        (out / "figure.txt").write_text("1")
        return {"figure": 1}

    def job():
        manifests.append(run_stage("demo", tmp_path / "stage", {"a": 1}, slow, log=lambda m: None))

    first = threading.Thread(target=job)
    first.start()
    started.wait(5)
    second = threading.Thread(target=job)
    second.start()
    first.join(), second.join()
    assert len(builds) == 1 and sorted(m["reused"] for m in manifests) == [False, True]
    assert manifests[0]["key"] == manifests[1]["key"] and (tmp_path / "stage" / "figure.txt").is_file()


def test_image_sets_round_trip(tmp_path):
    images = torch.stack([make_artwork(64, 64, seed=i) for i in range(3)])
    write_images(tmp_path, images, ["x", "y", "z"])
    assert torch.equal(read_images(tmp_path, ["x", "y", "z"]), images)


def test_frechet_distance():
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(200, 8, generator=generator)
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-6)
    shifted = a + torch.tensor([2.0] + [0.0] * 7)
    assert frechet_distance(a, shifted) == pytest.approx(4.0, rel=1e-6)
    few = torch.randn(5, 64, generator=generator)  # fewer images than dimensions: still defined
    assert frechet_distance(few, few * 2) > 0
    with pytest.raises(ValueError, match="feature sets"):
        frechet_distance(a, torch.randn(10, 4))


def test_judged_shares():
    probabilities = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8]])
    assert judged_shares(probabilities, {"artist": 0, "target": 2}) == {"artist": 0.5, "target": 0.25}


def test_shipped_configs_load(tmp_path):
    quick, full = load_config("mini-quick"), load_config("mini-full")
    assert quick.model == full.model == "mini" and len(quick.victims) == 1 and len(full.victims) == 6
    assert len(full.seeds) >= 2 and quick.lora.target_modules == LoraSettings().target_modules
    sd = load_config(PRESETS / "sd15-gpu.toml")
    assert sd.art and sd.device == "cuda" and sd.lora.target_modules == ("to_k", "to_q", "to_v", "to_out.0")
    assert quick.with_overrides(**{"lora.steps": 5, "victims": (7,), "model": None}).lora.steps == 5
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nvictim = [2]\n')
    with pytest.raises(ValueError, match="unknown EvaluationConfig settings: victim"):
        load_config(bad)
    bad.write_text('[protect]\ncountermeasure = "jpeg"\n')
    with pytest.raises(ValueError, match="countermeasure"):
        load_config(bad)
    with pytest.raises(ValueError, match="shipped presets: mini-bench, mini-counter, mini-full, mini-poison, mini-quick, sd15-gpu"):
        load_config("mini-nothing")
    with pytest.raises(ValueError, match="held-out artists"):
        EvaluationConfig(victims=(3,))
    poison = load_config("mini-poison")
    assert poison.poison.clean_pairs >= 2000 and max(poison.poison.counts) <= 200 and poison.lora.full_unet
    counter, bench = load_config("mini-counter"), load_config("mini-bench")
    assert counter.cases == bench.cases and counter.lora == bench.lora and counter.generate == bench.generate
    assert counter.matrix.countermeasures[0] == "none" and counter.matrix.robust == (False, True)
    screen = load_config(Path(__file__).parents[1] / "evaluation/results/nightshade/screen-style-dm.toml")
    assert replace(screen, name=poison.name, poison=replace(screen.poison, objective="glaze", counts=poison.poison.counts,
                                                            kinds=poison.poison.kinds)) == poison, \
        "the written-down screen changes the objective and the counts only"
    first = load_config(Path(__file__).parents[1] / "evaluation/results/nightshade-artist19/mini-poison-artist19.toml")
    assert first == replace(poison, poison=replace(poison.poison, destination=19)), "the first run's record: B alone"
    robust = replace(quick, protect=replace(quick.protect, robust=True, protection="sds"))
    assert robust.variant == "sds-robust" and quick.variant == "", "robust cloaks get folders of their own"


def test_cli_evaluate_on_a_local_pipeline(tiny_pipeline_dir, art_dir, tmp_path, capsys, monkeypatch):
    import sfumato.finetune
    from sfumato.cli import main

    kept = []  # the command line's fine-tunes keep their training state (here after each step) and drop it when done
    save = sfumato.finetune._save_state
    monkeypatch.setattr(sfumato.finetune, "CHECKPOINT_EVERY", 1)
    monkeypatch.setattr(sfumato.finetune, "_save_state", lambda folder, *a: kept.append(folder) or save(folder, *a))

    config = tmp_path / "tiny.toml"
    config.write_text(f'name = "cli"\nimages = 3\nart = "{art_dir}"\n[protect]\nquality = "preview"\ntarget = "3"\n'
                      '[lora]\nsteps = 2\nbatch_size = 2\nrank = 2\n[generate]\nimages_per_prompt = 2\nsteps = 2\n'
                      '[art_judge]\nheld_out = 4\nbase_samples = 4\nmin_recall = 0.0\nmin_specificity = 0.0\nnegative_styles = 3\n')
    code = main(["evaluate", "--config", str(config), "--model", str(tiny_pipeline_dir), "--work", str(tmp_path / "w"),
                 "--quiet"])
    assert code == 0
    assert "report:" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "w" / "report" / "metrics.json").read_text())
    assert metrics["config"]["model"] == str(tiny_pipeline_dir) and metrics["config"]["lora"]["steps"] == 2
    assert {f.name.split(".resume-")[0] for f in kept} == {"finetune-clean", "finetune-cloaked"}
    assert not any(f.exists() for f in kept), "a finished stage removes its kept state"
    assert main(["evaluate", "--config", str(tmp_path / "missing.toml")]) == 2


def test_clip_zero_shot_score_on_a_tiny_local_clip(tmp_path):
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from conftest import get_dummy_tokenizer
    from sfumato.evaluation.metrics import clip_style_shares

    torch.manual_seed(0)  # tests only: a random tiny CLIP
    config = CLIPConfig(text_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                                     "num_attention_heads": 2, "vocab_size": 1000, "bos_token_id": 0,
                                     "eos_token_id": 2, "pad_token_id": 1},
                        vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                                       "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
                        projection_dim=8)
    CLIPModel(config).save_pretrained(tmp_path)
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32},
                                                                 crop_size={"height": 32, "width": 32}),
                              tokenizer=get_dummy_tokenizer())
    processor.save_pretrained(tmp_path)
    images = torch.stack([make_artwork(64, 64, seed=i) for i in range(4)])
    shares = clip_style_shares(images, str(tmp_path), ["a painting by sks", "a photo"])
    assert len(shares) == 2 and sum(shares) == pytest.approx(1.0)


def test_retrained_weights_at_the_same_path_rerun_the_stages_and_a_rewritten_card_does_not(tiny_pipeline_dir, tmp_path):
    import shutil

    from sfumato.evaluation.run import model_fingerprint

    copy = tmp_path / "model"
    shutil.copytree(tiny_pipeline_dir, copy)
    before = model_fingerprint(str(copy))
    assert before == model_fingerprint(str(copy)) and before.startswith(f"{copy}@")
    (copy / "README.md").write_text("a model card, rewritten\n")  # documents beside the weights rerun nothing
    (copy / "measurements.json").write_text("{}\n")
    assert model_fingerprint(str(copy)) == before
    config = copy / "vae" / "config.json"
    config.write_text(config.read_text().replace('"scaling_factor": 0.18215', '"scaling_factor": 0.2'))
    assert model_fingerprint(str(copy)) != before
    assert model_fingerprint("stable-diffusion-v1-5/stable-diffusion-v1-5") == "stable-diffusion-v1-5/stable-diffusion-v1-5"


def test_verdict_says_when_the_attack_itself_failed():
    from sfumato.evaluation.summary import verdict

    failed = {"mimicry_success": {"base": 0.0, "clean": 0.14, "cloaked": 0.14}, "protection_success": 0.86}
    assert "attack did not work" in verdict(failed) and "nothing about protection" in verdict(failed)
    stopped = {"mimicry_success": {"base": 0.0, "clean": 0.8, "cloaked": 0.05}, "protection_success": 0.95}
    assert "the cloak stopped it:" in verdict(stopped)
    partly = {"mimicry_success": {"base": 0.0, "clean": 0.8, "cloaked": 0.5}, "protection_success": 0.5}
    assert "only partly" in verdict(partly)
    none = {"mimicry_success": {"base": 0.0, "clean": 0.984, "cloaked": 1.0}, "protection_success": 0.0}
    assert "did not stop it" in verdict(none) and "only partly" not in verdict(none)


def test_verdict_separates_cases_where_the_attack_failed():
    from sfumato.evaluation.summary import aggregate, verdict

    def case(artist, clean, cloaked):
        scores = {"mimicry_success": {"base": 0.0, "clean": clean, "cloaked": cloaked},
                  "protection_success": 1 - cloaked, **{k: {"frechet_to_real": 1.0} for k in ("base", "clean", "cloaked")},
                  "visibility": {k: {"mean": 1.0} for k in ("perceptual_distance", "psnr_db", "ssim", "linf_levels")}}
        return {"artist": artist, "seed": 0, "scores": scores}

    figures = aggregate([case("a", 0.4, 0.3), case("b", 0.9, 0.8)])
    assert figures["attack_worked"]["cases"] == 1
    assert figures["attack_worked"]["protection_success"] == pytest.approx(0.2)
    text = verdict(figures)
    assert "only partly" in text and "In 1 of 2 cases" in text and "protection success is 20.0 %" in text
    assert "In " not in verdict(aggregate([case("b", 0.9, 0.8)]))


def test_benchmark_shares_the_clean_stages_and_compares_protections(tiny_pipeline_dir, victim_corpus, tmp_path,
                                                                    capfd):
    from sfumato.evaluation.benchmark import _single, run_benchmark
    from sfumato.evaluation.config import BenchmarkSettings
    from sfumato.evaluation.workers import CaseWorkers

    class Recorded(CaseWorkers):
        def submit(self, parts):
            waves.append([part.name for _, part in parts])
            return super().submit(parts)

    config = _tiny_config(tiny_pipeline_dir, cases=((2, 0),), corpus=str(victim_corpus),
                          benchmark=BenchmarkSettings(protections=("glaze", "sds", "photoguard"),
                                                      intensities=("default",), sweep_intensities=("low",),
                                                      sweep=("glaze",), sweep_best=1))
    messages, waves, work = [], [], tmp_path / "work"
    # --jobs 2: two one-thread processes build the cases (here three protections of one case side by side, so
    # they meet at its clean stages); this process writes each part from what they built.
    with Recorded(2, work) as workers:
        metrics = run_benchmark(config, work, tmp_path / "report", log=messages.append, workers=workers)
        assert waves[0] == ["glaze-default", "sds-default", "photoguard-default", "glaze-low"], \
            "the main intensity first, with the reference's sweep (known in advance)"
        assert len(waves) == 2 and waves[1] in (["sds-low"], ["photoguard-low"]), \
            "then the best other's sweep, once the ranking is known"
        kept = (_single(config, "glaze", "default"), tmp_path / "report" / "parts" / "glaze-default")
        assert workers.submit([kept]) == [[]], "a kept part is not built again"
    assert not any("running" in m for m in messages), "the workers built every stage; this process reused them"
    built = capfd.readouterr().err
    assert built.count("[finetune-clean] running") == 1, "the clean side runs once, though two jobs needed it at once"
    assert built.count("[generate-base] running") == 1
    case_result = tmp_path / "report" / "parts" / "glaze-low" / "cases" / "artist02-seed0"
    assert {"metrics.json", "report.md", "part.json", "side-by-side-artist02-seed0.png"} == {f.name for f in case_result.iterdir()}
    assert any("[part] written from its kept cases" in m and m.endswith("glaze-low") for m in messages)
    with pytest.raises(ValueError, match="two jobs or more"):
        CaseWorkers(1, work)
    case = tmp_path / "work" / "artist02-seed0"
    for folder in ("protect", "protect-sds", "protect-photoguard", "protect-ilow", "finetune-cloaked-sds",
                   "generate-cloaked-photoguard", "score-sds"):
        assert (case / folder / "manifest.json").is_file(), folder
    assert metrics["cases"] == ["artist02-seed0"] and 0 <= metrics["clean_mimicry"] <= 1
    levels = {name: set(entry["intensities"]) for name, entry in metrics["protections"].items()}
    assert levels["glaze"] == {"8", "4"} and {"8"} <= levels["sds"] and len([n for n in levels if "4" in levels[n]]) == 2
    entry = metrics["protections"]["sds"]["intensities"]["8"]
    for key in ("protection_success", "psnr_db", "ssim", "perceptual_distance", "seconds_per_image", "peak_rss_mb",
                "judged_as_target"):
        assert key in entry, key
    assert entry["psnr_db"] > 30 and entry["linf_levels"] <= 8 + 1e-4
    for name in ("report.md", "metrics.json", "frontier.png", "grid.png"):
        assert (tmp_path / "report" / name).is_file(), name
    assert "| sds | 8 |" in (tmp_path / "report" / "report.md").read_text()
    from sfumato.evaluation.summary import ATTACK_WORKS

    assert metrics["no_cloak_protection_success"] == pytest.approx(1 - metrics["clean_mimicry"]) or \
        metrics["clean_mimicry"] < ATTACK_WORKS
    assert entry["mimicry_drop"] is None or entry["mimicry_drop"] == pytest.approx(
        entry["protection_success"] - metrics["no_cloak_protection_success"])
    assert "standard error of the mean over the cases" in (tmp_path / "report" / "report.md").read_text()
    assert metrics["command"] == f"sfumato evaluate --config {config.name} --jobs 2 --work {work} --report {tmp_path / 'report'}"
    assert f"`{metrics['command']}`" in (tmp_path / "report" / "report.md").read_text()
    from sfumato.evaluation.benchmark import benchmark_headline

    line = benchmark_headline(metrics)
    assert line.startswith("protection success at ±8 levels over the") and all(p in line for p in levels)
    part = tmp_path / "report" / "parts" / "sds-default"
    assert {"metrics.json", "report.md", "part.json", "row-clean.png", "row-cloaked.png"} <= {f.name for f in part.iterdir()}
    assert len(list(part.glob("side-by-side-*.png"))) == 1
    assert not (tmp_path / "report" / "parts" / "glaze-low" / "row-cloaked.png").exists(), "rows at ±8 only"

    # The next session: the stage folders are gone, the committed parts carry the work, and so do the committed
    # case results of a part whose report was not written (here glaze-low's).
    import shutil

    shutil.rmtree(tmp_path / "work")
    for kept in (tmp_path / "report" / "parts" / "glaze-low").glob("*.*"):
        kept.unlink()
    messages.clear()
    again = run_benchmark(config, tmp_path / "work", tmp_path / "report", log=messages.append)
    assert not any("running" in m for m in messages) and sum("[part] reused" in m for m in messages) == 4
    assert sum("[part] written from its kept cases" in m for m in messages) == 1
    assert again["protections"] == json.loads(json.dumps(metrics["protections"]))
    assert (tmp_path / "report" / "parts" / "glaze-low" / "side-by-side-artist02-seed0.png").is_file()
    assert (tmp_path / "report" / "grid.png").is_file()

    # Spread over sessions: a report from the kept parts alone names what is still missing and runs nothing.
    messages.clear()
    more = replace(config, benchmark=replace(config.benchmark, protections=("glaze", "sds", "photoguard", "advdm")))
    partial = run_benchmark(more, tmp_path / "work", tmp_path / "report", log=messages.append, kept_parts_only=True)
    assert not any("running" in m for m in messages)
    assert set(partial["protections"]) == {"glaze", "sds", "photoguard"}
    assert partial["missing"] == ["advdm at ±8", "the best 1 besides glaze (ranked at ±8 once every protection is in) at ±4"]
    assert "**Not measured yet** (2): advdm at ±8;" in (tmp_path / "report" / "report.md").read_text()
    assert benchmark_headline(partial).endswith("Not measured yet: advdm at ±8; the best 1 besides glaze (ranked at ±8 "
                                                "once every protection is in) at ±4.")
    with pytest.raises(ValueError, match="no kept part"):
        run_benchmark(more, tmp_path / "work", tmp_path / "elsewhere", log=messages.append, kept_parts_only=True)

    # A changed setting (here the mimic's steps) is not stood in for by a kept part.
    from sfumato.evaluation.parts import part_is_kept

    kept = _single(config, "sds", "default")
    assert part_is_kept(kept, part) and not part_is_kept(replace(kept, lora=replace(kept.lora, steps=4)), part)


class _Waves:
    """Stands in for CaseWorkers: records each wave of parts a comparison submits, builds nothing."""

    def __init__(self):
        self.parts, self.cases = [], []

    def submit(self, parts):
        self.parts.append([part.name for _, part in parts])
        self.cases.append([single.cases for single, _ in parts])
        return [[] for _ in parts]


def test_kept_parts_needs_a_benchmark(capsys):
    from sfumato.cli import main

    assert main(["evaluate", "--config", "mini-quick", "--kept-parts", "--quiet"]) == 2
    assert "--kept-parts reports a benchmark's kept parts" in capsys.readouterr().err


def test_a_kept_part_ignores_the_art_judge_settings_it_never_used(tmp_path):
    from sfumato.evaluation.parts import _is_current

    (tmp_path / "metrics.json").write_text("{}")
    kept = {"config": {"art": None, "art_judge": {"held_out": 8}, "lora": {"steps": 1200}}, "model": "m", "judge": "j"}
    (tmp_path / "part.json").write_text(json.dumps(kept))
    later = {**kept, "config": {**kept["config"], "art_judge": {"held_out": 8, "negative_styles": 26}}}
    assert _is_current(tmp_path, later), "a built-in victim's part never trained an art judge"
    assert not _is_current(tmp_path, {**later, "config": {**later["config"], "lora": {"steps": 800}}})
    with_art = {**kept, "config": {**kept["config"], "art": "my-art"}}
    (tmp_path / "part.json").write_text(json.dumps(with_art))
    assert not _is_current(tmp_path, {**with_art, "config": {**with_art["config"], "art_judge": {"held_out": 4}}})


def test_a_kept_part_matches_a_key_with_a_setting_added_later_at_its_old_behaviour(tmp_path):
    from sfumato.evaluation.parts import _is_current

    (tmp_path / "metrics.json").write_text("{}")
    kept = {"config": {"art": None, "protect": {"protection": "glaze", "flips": False}}, "model": "m", "judge": "j"}
    (tmp_path / "part.json").write_text(json.dumps(kept))
    now = {**kept, "config": {**kept["config"], "protect": {"protection": "glaze", "flips": False, "robust": False}}}
    assert _is_current(tmp_path, now), "robust = False computes what the kept part computed"
    robust = {**now, "config": {**now["config"], "protect": {**now["config"]["protect"], "robust": True}}}
    assert not _is_current(tmp_path, robust)


def test_countermeasure_matrix_cleans_each_column_once_and_reports_best(tiny_pipeline_dir, victim_corpus, tmp_path,
                                                                         monkeypatch):
    import sfumato.evaluation.matrix
    import sfumato.evaluation.matrix_report
    from sfumato.evaluation.config import MatrixSettings
    from sfumato.evaluation.matrix import run_matrix

    config = _tiny_config(tiny_pipeline_dir, cases=((2, 0),), corpus=str(victim_corpus),
                          matrix=MatrixSettings(protections=("glaze",), robust=(True,),
                                                countermeasures=("none", "diffpure:0.5")))
    messages, waves = [], _Waves()
    for module in (sfumato.evaluation.matrix, sfumato.evaluation.matrix_report):  # the tiny mimic learns nothing:
        monkeypatch.setattr(module, "ATTACK_WORKS", 0.0)  # let it count
    metrics = run_matrix(config, tmp_path / "work", tmp_path / "report", log=messages.append, workers=waves)
    assert waves.parts == [["clean--none"], ["glaze+robust--none", "clean--diffpure0.5"], ["glaze+robust--diffpure0.5"]], \
        "the first column's cells (they bound the verdict) come before the other columns' cells"
    assert waves.cases[1][0] == waves.cases[2][0] == ((2, 0),), "the cells, on the cases where their column's clean mimic worked"
    assert sum("[countermeasure-clean] running" in m for m in messages) == 1, "one clean side per column"
    assert sum("[finetune-clean] running" in m for m in messages) == 2, "the plain clean side and the cleaned one"
    assert sum("[protect] running" in m for m in messages) == 1, "the cloaks are made once, whatever the cleaning"
    case = tmp_path / "work" / "artist02-seed0"
    for folder in ("protect-robust", "countermeasure-clean-cm-diffpure0p5", "countermeasure-robust-cm-diffpure0p5",
                   "finetune-cloaked-robust-cm-diffpure0p5", "finetune-clean-cm-diffpure0p5", "finetune-clean"):
        assert (case / folder / "manifest.json").is_file(), folder
    art, _ = image_set(case / "art")
    cleaned, record = image_set(case / "countermeasure-clean-cm-diffpure0p5")  # the mimic cleans the originals too
    assert record["countermeasure"] == "diffpure:0.5" and (cleaned - art).abs().mean() > 0.01
    assert metrics["rows"] == ["glaze+robust"] and metrics["columns"] == ["none", "diffpure:0.5"]
    cell = metrics["matrix"]["glaze+robust"]["diffpure:0.5"]
    assert set(cell) >= {"protection_success", "cases_where_attack_worked", "per_case", "psnr_db", "mimicry_drop"}
    column = metrics["clean"]["diffpure:0.5"]
    assert cell["mimicry_drop"] == pytest.approx(cell["protection_success"] - column["no_cloak_protection_success"]), \
        "the drop is measured against the same column's clean mimic, case by case"
    assert "| no cloak |" in (tmp_path / "report" / "report.md").read_text()
    assert metrics["cpus"] and sum(metrics["cpus"].values()) == 4, "each part's case runs, by CPU model"
    from sfumato.evaluation.matrix_report import matrix_figures

    clean_none = json.loads((tmp_path / "report" / "parts" / "clean--none" / "metrics.json").read_text())
    partial = matrix_figures(config, {"none": clean_none}, {})
    assert all("best" not in row for row in partial["matrix"].values()), "best only once every column is in"
    assert 0 <= metrics["clean"]["diffpure:0.5"]["mimicry_success"] <= 1
    best = metrics["matrix"]["glaze+robust"]["best"]
    assert set(best["chosen"].values()) <= {"none", "diffpure:0.5"}
    assert best["cases_where_attack_worked"] == metrics["clean"]["none"]["cases_where_attack_worked"]
    assert "verdict" in metrics and (tmp_path / "report" / "matrix.png").is_file()
    assert "| glaze+robust |" in (tmp_path / "report" / "report.md").read_text()
    assert f"- Command (it resumes from the kept parts and case results): `{metrics['command']}`." in \
        (tmp_path / "report" / "report.md").read_text() and "--config" in metrics["command"]
    # A later run with only the kept parts reuses every cell.
    messages.clear()
    again = run_matrix(config, tmp_path / "work", tmp_path / "report", log=messages.append, kept_parts_only=True)
    assert sum("[part] reused" in m for m in messages) == 4 and again["matrix"] == metrics["matrix"]
    assert {p.name for p in (tmp_path / "report" / "parts").iterdir()} == {
        "clean--none", "clean--diffpure0.5", "glaze+robust--none", "glaze+robust--diffpure0.5"}
    # On a new machine (no stage folders) a cell builds its protected side alone: it reads its column's clean
    # side from the kept clean-only part, and its figures are the ones building that side again gave.
    import shutil

    from sfumato.evaluation.matrix import _cell
    from sfumato.evaluation.parts import kept_clean_entries

    shutil.rmtree(tmp_path / "report" / "parts" / "glaze+robust--diffpure0.5")
    messages.clear()
    rebuilt = run_matrix(config, tmp_path / "new-machine", tmp_path / "report", log=messages.append)
    built = [m.split("]")[0] + "]" for m in messages if " running" in m]
    assert "[finetune-cloaked]" in built and "[countermeasure]" in built
    assert not {"[finetune-clean]", "[generate-base]", "[countermeasure-clean]", "[generate-clean]"} & set(built)
    assert rebuilt["matrix"] == metrics["matrix"] and rebuilt["clean"] == metrics["clean"]
    cell_config = replace(_cell(config, "glaze", True, "diffpure:0.5"),
                          clean_from=str(tmp_path / "report" / "parts" / "clean--diffpure0.5"))
    assert set(kept_clean_entries(cell_config)) == {"artist02-seed0"}
    assert kept_clean_entries(replace(cell_config, lora=replace(cell_config.lora, steps=99))) == {}, \
        "a clean side kept under other settings does not stand in"
    assert kept_clean_entries(replace(cell_config, protect=replace(cell_config.protect, countermeasure="none"))) == {}
    with pytest.raises(ValueError, match="clean_from"):
        replace(cell_config, clean_only=True)
    import sfumato.evaluation.parts
    from sfumato.evaluation.contract import hardware

    with monkeypatch.context() as patch:
        patch.setattr(sfumato.evaluation.parts, "hardware", lambda: {**hardware(), "cpu": "another CPU model"})
        assert kept_clean_entries(cell_config) == {}, "another CPU model's clean mimic is not this machine's"
    # Another comparison that holds the same evaluations (as the protections benchmark holds the plain cells
    # against none) stands in for them: nothing is built again, even without the stages.
    messages.clear()
    other = replace(config, name="other", matrix=replace(config.matrix, reuse=(str(tmp_path / "report"),)))
    adopted = run_matrix(other, tmp_path / "gone", tmp_path / "other", log=messages.append, workers=_Waves())
    assert sum("written from the equal part" in m for m in messages) == 4 and not any("running" in m for m in messages)
    assert adopted["matrix"] == metrics["matrix"] and not (tmp_path / "gone").exists()

    # Where a column's clean mimic fails in every case, its cells are not run: there is nothing to protect.
    messages.clear()
    for module in (sfumato.evaluation.matrix, sfumato.evaluation.matrix_report):
        monkeypatch.setattr(module, "ATTACK_WORKS", 1.01)
    waves = _Waves()
    ruined = run_matrix(config, tmp_path / "work", tmp_path / "ruined", log=messages.append, workers=waves)
    assert waves.parts[1] == ["clean--diffpure0.5"] and waves.parts[2] == [], "no cell to build"
    assert not any("[protect]" in m or "[finetune-cloaked" in m for m in messages), "no cell ran"
    assert ruined["matrix"]["glaze+robust"]["diffpure:0.5"]["cases_where_attack_worked"] == 0
    assert "no clean mimic to stop" in (tmp_path / "ruined" / "report.md").read_text()
    assert "No column's clean mimic worked" in ruined["verdict"]


def test_matrix_verdict_is_settled_by_the_lowest_cells_before_the_matrix_is_whole():
    from sfumato.evaluation.matrix_report import _verdict

    def figures(cells, columns=("none", "jpeg:75", "diffpure:0.2"), clean=(0.86, 0.80, 0.40)):
        rows = ["glaze", "glaze+robust", "mist+robust"]
        matrix = {row: {cm: {"protection_success": value} for cm, value in cells.get(row, {}).items()} for row in rows}
        return {"columns": list(columns), "rows": rows, "matrix": matrix,
                "clean": {cm: {"mimicry_success": v} for cm, v in zip(columns, clean)}}

    assert "Not every cell" in _verdict(figures({"glaze+robust": {"none": 0.3}})), "mist+robust unmeasured: unknown"
    early = _verdict(figures({"glaze+robust": {"none": 0.3}, "mist+robust": {"none": 0.2}}))
    assert "**not reached**, before the matrix is whole" in early and "glaze+robust, has 30.0 % at its lowest, over none)" in early
    assert "diffpure:0.2" in early, "a countermeasure that ruins the clean mimic is named apart"
    high = figures({"glaze+robust": {"none": 0.95}, "mist+robust": {"none": 0.2}})
    assert "Not every cell" in _verdict(high), "a row still above the bar may keep it"
    whole = figures({"glaze+robust": {"none": 0.95, "jpeg:75": 0.9}, "mist+robust": {"none": 0.2, "jpeg:75": 0.1}})
    assert "glaze+robust, keeps at least 90.0 %" in _verdict(whole) and "is reached" in _verdict(whole)
    whole["matrix"]["glaze+robust"]["jpeg:75"]["protection_success"] = 0.5
    assert "is **not reached**." in _verdict(whole) and "before the matrix" not in _verdict(whole)


def test_matrix_runs_the_verdicts_columns_before_those_that_ruin_the_clean_mimic():
    from sfumato.evaluation.matrix import _fair_first

    def clean(*shares):
        return {"cases": [{"scores": {"mimicry_success": {"clean": share}}} for share in shares]}

    cleans = {"upscale:0.1": clean(0.9, 0.2), "jpeg:75": clean(0.9, 0.8), "impress": clean(0.7, 0.6)}
    order = _fair_first(["upscale:0.1", "diffpure:0.2", "jpeg:75", "impress"], cleans)
    assert order == ["jpeg:75", "impress", "upscale:0.1", "diffpure:0.2"], \
        "mean clean mimic >= 60 % first, in the config's order; a ruinous or not yet known column after"


def test_standard_error_over_cases():
    from sfumato.evaluation.metrics import standard_error

    assert standard_error([0.5]) is None
    assert standard_error([0.2, 0.4]) == pytest.approx(0.1)  # sd 0.1414 / √2
    assert standard_error([0.3, 0.3, 0.3]) == 0


def test_seed_spread_pools_each_victims_seeds_and_needs_a_repeat():
    from sfumato.evaluation.summary import seed_spread

    def case(artist, seed, clean):
        return {"artist": artist, "seed": seed, "scores": {"mimicry_success": {"base": 0.0, "clean": clean}}}

    assert seed_spread([case("a", 0, 0.9), case("b", 0, 0.5)]) is None, "one seed per victim: no spread"
    spread = seed_spread([case("a", 0, 0.9), case("a", 1, 0.7), case("b", 0, 0.5), case("b", 1, 0.5),
                          case("c", 0, 0.8)])
    assert spread["victims"] == 2 and spread["mean_range"] == pytest.approx(0.1)
    assert spread["pooled_sd"] == pytest.approx((0.02 / 2) ** 0.5)  # squares 0.01 + 0.01 + 0 + 0 over 2 degrees


def test_a_protection_is_measured_against_no_cloak():
    """Protection success counts the clean mimic's own misses; the report sets it beside what no cloak gives and
    states each protection's paired mimicry drop (clean share minus cloaked share, case by case)."""
    from sfumato.evaluation.benchmark import _figures
    from sfumato.evaluation.benchmark_report import _markdown, benchmark_headline

    def case(name, clean, cloaked):
        return {"case": name, "stage_seconds": {"protect": 16.0},
                "scores": {"mimicry_success": {"clean": clean, "cloaked": cloaked}, "protection_success": 1 - cloaked,
                           "cloaked": {"judged": {}}}}

    visibility = {"psnr_db": 33.0, "ssim": 0.9, "perceptual_distance": 0.8, "linf_levels": 8}
    run = {"cases": [case("a", 0.8, 0.7), case("b", 1.0, 0.8), case("c", 0.5, 0.1)],
           "aggregate": {"visibility": visibility}}
    f = _figures(run, images=16, targeted=False)
    assert f["protection_success"] == pytest.approx(0.25), "over the cases whose clean mimic worked (a and b)"
    assert f["mimicry_drop"] == pytest.approx(0.15) and f["mimicry_drop_se"] == pytest.approx(0.05)
    metrics = {"name": "t", "cases": ["a", "b", "c"], "clean_mimicry": 0.766, "clean_mimicry_per_case": {},
               "attack_works_at": 0.6, "protections": {"glaze": {"intensities": {"8": f | {
                   "seconds_per_image": None, "peak_rss_mb": None, "judged_as_target": None}}}},
               "no_cloak_protection_success": 0.1, "no_cloak_protection_success_se": 0.1, "missing": [],
               "speed_measured_by": None, "hardware": {}, "verdict": "",
               "config": {"lora": {"rank": 4, "steps": 2, "learning_rate": 1e-3}, "images": 16,
                          "generate": {"images_per_prompt": 4, "steps": 2, "guidance": 7.0}}}
    assert "Without a cloak the same measure gives 10.0 %" in benchmark_headline(metrics)
    text = _markdown(metrics)
    assert "**Without a cloak** the same measure gives 10.0 % ± 10.0" in text and "| +15.0 ± 5.0 |" in text
    del metrics["no_cloak_protection_success"]
    assert "Without a cloak" not in benchmark_headline(metrics), "older reports lack it; no figure is made up"


def test_the_committed_benchmark_parts_match_the_shipped_config():
    """A setting added to the config must not retire the committed parts (each a CPU-hour or more): every part in
    evaluation/results/protections/parts still stands for its evaluation under the shipped mini-bench."""
    from sfumato.evaluation import load_config
    from sfumato.evaluation.benchmark import _single
    from sfumato.evaluation.parts import _is_current, _part_key

    config = load_config("mini-bench")
    parts = sorted((Path(__file__).parents[1] / "evaluation" / "results" / "protections" / "parts").glob("*/part.json"))
    assert parts, "no committed part"
    for record in parts:
        protect = json.loads(record.read_text())["config"]["protect"]
        single = _single(config, protect["protection"], protect["intensity"])
        single = replace(single, protect=replace(single.protect, budget_scale=protect.get("budget_scale", 1.0),
                                                 flips=protect.get("flips", False), robust=protect.get("robust", False)))
        assert _is_current(record.parent, _part_key(single)), record.parent.name


def test_the_benchmark_says_plainly_whether_any_protection_reaches_the_goal():
    from sfumato.evaluation.benchmark_report import goal_verdict

    def bench(**rows):
        return {"protections": {n: {"intensities": {"8": {"protection_success": s, "psnr_db": p}}}
                                for n, (s, p) in rows.items()}, "missing": []}

    none = goal_verdict(bench(glaze=(0.256, 32.0), advdm=(0.072, 33.9)) | {"missing": ["mist at ±8"]})
    assert none.startswith("No protection reaches the 90 % goal at ±8 levels so far") and "glaze at 25.6 %" in none
    assert goal_verdict(bench(mist=(0.93, 32.5), glaze=(0.2, 32))) == ("At ±8 levels mist (93.0 %, PSNR 32.5 dB) "
                                                                       "reaches the 90 % goal.")
    assert goal_verdict(bench(loud=(0.95, 30.1))).startswith("No protection reaches"), "too visible: PSNR < 32 dB"


def test_a_report_names_the_cases_it_ran():
    """A run on explicit cases names them, not the config's default victims and seeds, which it never ran."""
    from sfumato.evaluation.report import _who

    cfg = {"art": None, "victims": [2], "seeds": [0], "cases": [[7, 0], [11, 1]]}
    assert _who(cfg) == "cases: artist07-seed0, artist11-seed1"
    assert _who(cfg | {"cases": None}) == "artists: artist02; seeds [0]"


def test_a_matrix_cell_stands_against_the_clean_mimic_it_was_paired_with(tmp_path):
    """A cell adopted from another comparison ran its clean mimic on another machine: its drop and its cases come
    from that clean mimic, not the column's, and the report marks it."""
    from sfumato.evaluation.config import MatrixSettings
    from sfumato.evaluation.matrix_report import matrix_figures, write_matrix_report

    def part(clean, cloaked, cpu):
        return {"cases": [{"case": name, "scores": {"mimicry_success": {"clean": c, "cloaked": k}}}
                          for name, c, k in zip(("a", "b"), clean, cloaked)],
                "hardware": {"cpu": cpu}, "aggregate": {"visibility": {"psnr_db": 32.0}}, "compute_seconds": 60.0}

    config = replace(EvaluationConfig(), matrix=MatrixSettings(protections=("glaze",), robust=(False, True),
                                                               countermeasures=("none",)))
    column = part((0.9, 0.5), (0.9, 0.5), "AMD")
    cells = {("glaze", "none"): part((0.7, 0.8), (0.6, 0.5), "Intel"),  # adopted: its own clean side
             ("glaze+robust", "none"): part((0.9, 0.5), (0.6, 0.4), "AMD")}  # built on the column's
    figures = matrix_figures(config, {"none": column}, cells)
    adopted, built = figures["matrix"]["glaze"]["none"], figures["matrix"]["glaze+robust"]["none"]
    assert adopted["mimicry_drop"] == pytest.approx(0.2) and adopted["cases_where_attack_worked"] == 2
    assert adopted["protection_success"] == pytest.approx(0.45)
    assert adopted["own_clean_side"] == {"mimicry_success": pytest.approx(0.75), "hardware": "Intel"}
    assert built["mimicry_drop"] == pytest.approx(0.3) and built["cases_where_attack_worked"] == 1
    assert "own_clean_side" not in built
    write_matrix_report(config, {"none": column}, cells, tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "| glaze | 45.0 % (+20.0) † |" in text and "| glaze+robust | 40.0 % (+30.0) |" in text
    assert "glaze against none (Intel, clean mimic 75.0 %)" in text
