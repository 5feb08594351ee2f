#!/usr/bin/env bash
# The checks that need a CUDA GPU, in one run: the `gpu` tests (every protection, the robust and
# half-precision cloaks, the countermeasures, poisoning and the harness on device="cuda"), then
# the cost per image on the GPU, with the same cases as the CPU tables in the README.
#
#   bash scripts/gpu_check.sh [OUT [STEP...]]   # OUT defaults to $OUT, else build/gpu-check
#
# STEP: tests, protections, robust, sizes, sd-vae (default: all, in that order); PROTECTIONS,
# ROBUST_PROTECTIONS, SD_SIZES and SD_QUALITIES narrow the benchmarks (each case takes ~20 s there).
#
# Wheels for packages the machine lacks may sit in .whl/ (installed with --no-deps into /tmp/site).
# Each step has its own time limit, so one slow step cannot hide the others' results; everything
# ends up in OUT/gpu-check.tgz and OUT/console.log.
set -u
out=${1:-${OUT:-build/gpu-check}}
steps=" ${*:2} "
[ "$steps" = "  " ] && steps=" tests protections robust sizes sd-vae "
want() { [[ "$steps" == *" $1 "* ]]; }
work=$(mktemp -d)
mkdir -p "$out"
export HF_HUB_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False PYTHONUNBUFFERED=1 PYTHONPATH=src
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site:src
fi

{
    nvidia-smi -L
    python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
    want tests && timeout 100 python3 -m pytest -m gpu tests/test_cuda.py -q -p no:cacheprovider --durations=8 -o junit_family=xunit1 \
        --junitxml="$work/pytest.xml" 2>&1 | tee "$work/pytest.log"

    bench() { timeout "$1" python3 benchmarks/bench_cloak.py --device cuda "${@:2}"; }
    want protections && bench 170 --model mini --sizes 128x128 --qualities default \
        --protections ${PROTECTIONS:-glaze photoguard untargeted advdm mist sds ace aspl udp style-dm} --out "$work/protections-mini-h200"
    want robust && bench 60 --model mini --sizes 128x128 --qualities default --protections ${ROBUST_PROTECTIONS:-glaze mist sds} --robust \
        --out "$work/robust-mini-h200"
    want sizes && bench 60 --model mini --sizes 512x512 1024x1024 4000x3000 --qualities default --out "$work/mini-h200"
    want sd-vae && bench 90 --random-vae sd --sizes ${SD_SIZES:-512x512 1024x1024} --qualities ${SD_QUALITIES:-preview default} --out "$work/sd-vae-h200"
} 2>&1 | tee "$work/console.log"

rm -rf "$work"/*/random-vae-*
tar -czf "$out/gpu-check.tgz" -C "$work" .
cp "$work/console.log" "$out/console.log"
