#!/usr/bin/env bash
# Device check: the CUDA tests, the benchmark (eager, CUDA graphs, compiled) and short training
# runs on a GPU machine, each result kept in OUT_DIR.
# Usage (repository root, on the GPU machine):  PY=python3 bash bench/gpu_check.sh [OUT_DIR]
# Needs a Python with a CUDA build of torch and algd's dependencies: `pip install -e ".[dev]"`
# after installing the CUDA torch of your choice, or PYTHONPATH=. where those are present.
# Each step has its own time limit (T_* seconds; 0 skips the step), so one slow step cannot eat
# the others' time.
set -uo pipefail
OUT="${1:-${OUT:-bench/results}}"
PY="${PY:-python3}"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
mkdir -p "$OUT"
$PY -c "import torch; assert torch.cuda.is_available(), 'no CUDA device visible'; \
print(torch.__version__, torch.cuda.get_device_name(0))" || exit 1
step() { local limit=$1; shift; [ "$limit" -gt 0 ] && timeout "$limit" "$@"; }

# the CUDA tests (skipped on CPU machines), the fast-path and agent math tests
step "${T_TESTS:-240}" $PY -m pytest -q -p no:cacheprovider tests/test_device.py \
    tests/test_cuda_graph.py tests/test_fast_path.py tests/test_algd_agent.py 2>&1 \
    | tee "$OUT/gpu_tests.log"
# every algorithm, built-in and paper sizes, eager and CUDA graphs; action latency; end to end
step "${T_BENCH:-300}" $PY -m algd bench --device cuda --cuda-graph --json "$OUT/bench_gpu.json" \
    2>&1 | tee "$OUT/bench_gpu.txt"
# short real training runs of the default configuration: eager, then CUDA graphs
RUN="$(mktemp -d)"
step "${T_TRAIN:-200}" $PY -m algd train --device cuda --steps 3000 --progress false \
    --out "$RUN/eager" 2>&1 | tee "$OUT/gpu_train.txt"
step "${T_TRAIN:-200}" $PY -m algd train --device cuda --cuda-graph true --steps 3000 \
    --progress false --out "$RUN/graph" 2>&1 | tee "$OUT/gpu_train_graph.txt"
cp "$RUN/graph/metrics.csv" "$OUT/gpu_metrics_graph.csv" 2>/dev/null || true
# torch.compile of the critics at paper sizes (default and CUDA-graph modes)
step "${T_COMPILE:-400}" $PY -m algd bench --device cuda --algos algd-vesde,sac-lag --sizes paper \
    --compile --compile-mode default,reduce-overhead --no-end-to-end \
    --json "$OUT/bench_gpu_compiled.json" 2>&1 | tee "$OUT/bench_gpu_compiled.txt"
exit 0
