#!/usr/bin/env bash
# Device check: run the benchmark and the CUDA-relevant tests on a GPU machine and keep the JSON.
# Usage (from the repository root, on the GPU machine):  bash bench/gpu_check.sh [OUT_DIR]
# Installs nothing beyond the repo's own requirements; expects a CUDA build of torch >= 2.2.
set -euo pipefail
OUT="${1:-${OUT:-bench/results}}"
mkdir -p "$OUT"
python3 -m venv /tmp/algd-gpu-venv
/tmp/algd-gpu-venv/bin/pip install -q -e ".[dev]"
PY=/tmp/algd-gpu-venv/bin/python
$PY -c "import torch; assert torch.cuda.is_available(), 'no CUDA device visible'; print(torch.cuda.get_device_name(0))"
# the CUDA tests (skipped on CPU machines) and the math tests
$PY -m pytest -q tests/test_device.py tests/test_fast_path.py tests/test_algd_agent.py | tee "$OUT/gpu_tests.log"
$PY -m algd bench --device cuda --compile --json "$OUT/bench_gpu.json" | tee "$OUT/bench_gpu.txt"
# a short real training run on the GPU
$PY -m algd train --device cuda --steps 3000 --progress false --out "$OUT/gpu_run" | tee "$OUT/gpu_train.txt"
