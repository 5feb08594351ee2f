"""The benchmark scripts run end to end in reduced form and write their files."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_cloak_reduced(tmp_path):
    out = tmp_path / "bench"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_cloak.py"), "--random-vae", "mini-like",
                    "--sizes", "256x256", "--qualities", "preview", "--out", str(out)], check=True, capture_output=True)
    result = json.loads((out / "results.json").read_text())
    [row] = result["results"]
    assert row["size"] == "256x256" and row["quality"] == "preview" and row["steps"] == 10
    assert row["seconds"] > 0 and row["peak_rss_mb"] > 0
    assert "cpu" in result["hardware"]
    assert "| 256x256 | preview |" in (out / "results.md").read_text()
