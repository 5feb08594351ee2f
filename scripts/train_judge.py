"""Train sfumato's style judge on the corpus and write its weights and figures.

    pip install -e .
    python scripts/train_judge.py --corpus build/corpus --out src/sfumato/weights

1. Builds (or reuses) the corpus's ``judge`` and ``eval`` splits: the bundled
   photographs' judge and eval quadrants, rendered in all 26 styles.
2. Extracts the judge's EfficientNet-Lite0 features.
3. Fits the linear head on ``judge`` (deterministic L-BFGS) and measures top-1
   accuracy on ``eval``: content the head never saw.
4. Writes ``style-judge.safetensors`` and ``style-judge.json`` (settings, accuracy
   overall and per style, time, hardware).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from sfumato.corpus import CorpusConfig, build_corpus, load_images, read_manifest
from sfumato.judge import StyleJudge, fit_linear_head, save_judge_head


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="build/corpus")
    parser.add_argument("--out", default="src/sfumato/weights")
    parser.add_argument("--crops-per-split", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--weight-decay", type=float, default=1e-3)
    args = parser.parse_args()
    started = time.perf_counter()

    config = CorpusConfig(crops_per_split=args.crops_per_split, seed=args.seed, splits=("judge", "eval"))
    build_corpus(args.corpus, config, progress=lambda d, t: print(f"\rrendering {d}/{t}", end="") if d % 200 == 0 or d == t else None)
    print()
    corpus_seconds = time.perf_counter() - started

    judge = StyleJudge()
    train_rows, eval_rows = read_manifest(args.corpus, "judge"), read_manifest(args.corpus, "eval")
    train_x = judge.features(load_images(train_rows).float() / 255)
    eval_x = judge.features(load_images(eval_rows).float() / 255)
    train_y = torch.tensor([r["style"] for r in train_rows])
    eval_y = torch.tensor([r["style"] for r in eval_rows])
    fit_linear_head(judge, train_x, train_y, weight_decay=args.weight_decay)

    with torch.no_grad():
        train_pred = judge.logits_from_features(train_x).argmax(-1)
        eval_pred = judge.logits_from_features(eval_x).argmax(-1)
    per_style = {f"style-{s}": float((eval_pred[eval_y == s] == s).float().mean()) for s in range(26)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_judge_head(judge, out / "style-judge.safetensors")
    report = {
        "corpus": json.loads((Path(args.corpus) / "corpus.json").read_text()),
        "train_images": len(train_rows), "eval_images": len(eval_rows),
        "train_accuracy": float((train_pred == train_y).float().mean()),
        "eval_accuracy": float((eval_pred == eval_y).float().mean()),
        "eval_accuracy_per_style": per_style,
        "weight_decay": args.weight_decay,
        "seconds_corpus": round(corpus_seconds, 1),
        "seconds_total": round(time.perf_counter() - started, 1),
        "hardware": {"platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                     "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())},
    }
    (out / "style-judge.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"judge: train accuracy {report['train_accuracy']:.4f}, eval accuracy {report['eval_accuracy']:.4f} "
          f"on {len(eval_rows)} held-out images; min per style {min(per_style.values()):.3f}")


if __name__ == "__main__":
    main()
