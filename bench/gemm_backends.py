"""Update time on each CPU GEMM backend (algd.nets.gemm), measured in one run.

    python bench/gemm_backends.py [--algos algd-vesde,sac-lag] [--sizes paper] [--threads 1]

For each algorithm one agent is built and warmed up; its update is then timed in interleaved
rounds with the ensembles' products on torch's GEMM (MKL) and on oneDNN, switched between
rounds, so a slow spell of a shared machine hits both alike. Prints milliseconds per update per
backend and the speed-up of oneDNN over torch's GEMM; the large square GEMM of ``algd bench``'s
peak is timed the same way.
"""

from __future__ import annotations

import argparse
from typing import Any, Callable

import torch

from algd.bench import (
    add_bench_options,
    interleaved_median_times,
    parse_ab_options,
    peak_matmul,
    prepare_update,
)
from algd.nets import gemm
from algd.train.cpu_runtime import flush_denormals


def on_backend(name: str, fn: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        with gemm.use_gemm_backend(name):
            return fn()
    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_bench_options(p, algos="algd-vesde,algd-ddpm,cal,sac-lag", sizes="paper", threads=1, repeats=5)
    args, algos, sizes = parse_ab_options(p)
    if not gemm.onednn_available():
        raise SystemExit("this torch build has no oneDNN: nothing to compare")
    device = torch.device("cpu")
    backends = ("torch", "onednn")
    with flush_denormals(True):
        fns: dict[str, Callable[[], Any]] = {}
        for name in backends:
            fn, flops = peak_matmul(device, backend=name)
            fns[f"peak/{name}"] = fn
        for size in sizes:
            for algo in algos or []:
                print(f"{algo} at {size} sizes: build and warm up ...", flush=True)
                case = prepare_update(algo, size, device)
                for name in backends:
                    run = on_backend(name, case.run)
                    run()  # warm-up on this backend
                    fns[f"{algo}@{size}/{name}"] = run
        times = interleaved_median_times(fns, device, repeats=args.repeats)
    print(f"\n{args.threads} thread(s), torch {torch.__version__}; auto choice here: "
          f"{gemm.gemm_backend()}")
    print(f"{'':28s} {'torch ms':>10s} {'oneDNN ms':>10s} {'speed-up':>9s}")
    for key in dict.fromkeys(k.rsplit("/", 1)[0] for k in fns):
        a, b = times[f"{key}/torch"], times[f"{key}/onednn"]
        print(f"{key:28s} {a * 1e3:10.2f} {b * 1e3:10.2f} {a / b:8.2f}x")
    print(f"(peak: a {2048}² product; GFLOP/s torch {flops / times['peak/torch'] / 1e9:.1f}, "
          f"oneDNN {flops / times['peak/onednn'] / 1e9:.1f})")


if __name__ == "__main__":
    main()
