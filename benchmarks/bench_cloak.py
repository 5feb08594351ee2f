"""Seconds per image and peak memory of `sfumato cloak`, per protection, input size and quality preset.

Each case runs in a fresh subprocess so that its peak memory (resident set size on
the CPU, ``torch.cuda.max_memory_allocated`` on a GPU) is its own; on a GPU an untimed
two-step cloak runs first, so that CUDA's start-up stays off the clock. Results go to a
JSON file and a Markdown table; nothing is asserted.

    python benchmarks/bench_cloak.py --model path/or/hub-id --out bench-out/cpu
    python benchmarks/bench_cloak.py --random-vae mini-like --out bench-out/cpu   # timing only
    python benchmarks/bench_cloak.py --model mini --protections glaze sds advdm --qualities default --out bench-out/p
    python benchmarks/bench_cloak.py --model mini --sizes 128x128 --qualities default --robust --out bench-out/r

``--random-vae`` builds an AutoencoderKL with random weights in a given
architecture (speed does not depend on the weights): ``mini-like`` (8x
downsampling, widths 32/64/128/128, ~3 M parameters; the planned size of
sfumato-mini's autoencoder), ``mini`` (the shipped sfumato-mini's layout: beside
the trained weights, it shows what training did to how far a cloak reaches) or
``sd`` (Stable Diffusion 1.5's VAE layout, 84 M).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

SIZES = {"128x128": (128, 128), "256x256": (256, 256), "512x512": (512, 512), "1024x1024": (1024, 1024), "4000x3000": (3000, 4000)}
QUALITIES = ["preview", "faster", "default", "slower"]
RANDOM_VAES = {
    "mini-like": dict(block_out_channels=(32, 64, 128, 128), layers_per_block=1, norm_num_groups=16, sample_size=128),
    "sd": dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, norm_num_groups=32, sample_size=512),
    # the shipped sfumato-mini's own layout: beside the trained weights, what training did to the encoder's reach
    "mini": dict(block_out_channels=(16, 32, 64, 64), layers_per_block=1, norm_num_groups=4, latent_channels=8,
                 sample_size=128),
}


def build_random_vae(kind: str, folder: Path) -> Path:
    """Save an AutoencoderKL with seeded random weights in the named architecture."""
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(0)  # a script, not library code: seeds the random weights
    layout = dict(in_channels=3, out_channels=3, latent_channels=4,
                  down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
    vae = AutoencoderKL(**(layout | RANDOM_VAES[kind]))
    vae.save_pretrained(folder)
    return folder


def run_case(model: str, size: str, quality: str, device: str, intensity: str, protection: str = "glaze",
             robust: bool = False) -> dict:
    """One measurement, in this process (called in a subprocess by main)."""
    from dataclasses import replace

    import torch

    from sfumato.api import Cloaker
    from sfumato.config import resolve_config
    from sfumato.losses import needs_denoiser
    from sfumato.targets import BuiltinStyle

    height, width = SIZES[size]
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(3, height // 8, width // 8, generator=generator)
    image = torch.nn.functional.interpolate(image[None], size=(height, width), mode="bicubic")[0].clamp(0, 1)
    cloaker = Cloaker(model, device=device)
    config = resolve_config(intensity, quality, protection=protection, robust=robust)
    cloaker.encoder, cloaker.perceptual  # load before the clock starts
    if needs_denoiser(protection):
        cloaker.denoiser
    if device.startswith("cuda"):  # a short untimed cloak first: CUDA's kernel loads and autotuning stay off the clock
        cloaker.cloak([image], replace(config, steps=2), target=BuiltinStyle(7), seed=0)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    [result], _ = cloaker.cloak([image], config, target=BuiltinStyle(7), seed=0)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "protection": protection + ("+robust" if robust else ""),
        "robust": robust,
        "size": size,
        "quality": quality,
        "steps": config.steps,
        "working_size": result.report["working_size"],
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(peak_rss_mb),
        "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20) if device.startswith("cuda") else None,
        "perceptual_metric": result.report["perceptual_metric"],
        "target_distance_ratio": round(result.report["encoder_to_target_after"] / result.report["encoder_to_target_before"], 3),
    }


def hardware(device: str) -> dict:
    import torch

    info = {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "cpu": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads()}
    try:
        info["cpu"] = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
        info["cpu_cores"] = len([l for l in open("/proc/cpuinfo") if l.startswith("processor")])
    except (OSError, StopIteration):
        pass
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="a diffusers folder or hub id whose VAE is benchmarked")
    source.add_argument("--random-vae", choices=sorted(RANDOM_VAES), help="a random-weight VAE of this layout")
    parser.add_argument("--out", required=True, help="folder for results.json and results.md")
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--qualities", nargs="+", default=QUALITIES, choices=QUALITIES)
    parser.add_argument("--intensity", default="default")
    parser.add_argument("--protections", nargs="+", default=["glaze"], help="protection names (default: glaze)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--robust", action="store_true", help="robust cloaks (CloakConfig.robust)")
    parser.add_argument("--case", nargs=3, metavar=("SIZE", "QUALITY", "PROTECTION"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = args.model or str(out / f"random-vae-{args.random_vae}")
    if args.case:
        size, quality, protection = args.case
        print(json.dumps(run_case(model, size, quality, args.device, args.intensity, protection, args.robust)))
        return
    if args.random_vae and not (Path(model) / "config.json").exists():
        build_random_vae(args.random_vae, Path(model))

    rows, failed = [], []
    for protection in args.protections:
        for size in args.sizes:
            for quality in args.qualities:
                cmd = [sys.executable, __file__, "--out", str(out), "--case", size, quality, protection,
                       "--device", args.device, "--intensity", args.intensity] + (["--robust"] if args.robust else [])
                cmd += ["--model", model] if args.model else ["--random-vae", args.random_vae]
                done = subprocess.run(cmd, capture_output=True, text=True)
                if done.returncode:  # say why, and keep the other cases' rows
                    print(f"case {size} {quality} {protection} failed:\n{done.stderr[-3000:]}", file=sys.stderr, flush=True)
                    failed.append({"protection": protection, "size": size, "quality": quality,
                                   "error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""})
                    continue
                rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
                print(rows[-1], flush=True)
    result = {"model": args.model or f"random AutoencoderKL, layout '{args.random_vae}'", "device": args.device,
              "intensity": args.intensity, "hardware": hardware(args.device), "results": rows, "failed": failed}
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"Model: {result['model']}; device: {args.device}; hardware: {result['hardware']}", "",
             "| protection | size | quality | steps | working size | seconds | peak RSS (MB) | peak GPU (MB) | "
             "target-distance ratio |",
             "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['protection']} | {r['size']} | {r['quality']} | {r['steps']} | {r['working_size'][0]}x{r['working_size'][1]} | "
              f"{r['seconds']} | {r['peak_rss_mb']} | {r['peak_gpu_mb'] or '-'} | {r['target_distance_ratio']} |" for r in rows]
    lines += [f"\nFailed: {f['protection']} {f['size']} {f['quality']}: {f['error']}" for f in failed]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
