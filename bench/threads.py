"""Update time at one torch thread and at N, measured in one run.

    python bench/threads.py [--threads 2] [--algos algd-vesde,sac-lag] [--sizes paper] [--compile]

``algd bench --threads N`` measures one thread count per process, so comparing two counts means
comparing two runs of a shared machine that moves between them. Here every case is timed at both
counts in interleaved rounds (``torch.set_num_threads`` switched before each block), together with
the matmul peak at each count, so the ratios are same-run ratios. Eager cases time one agent at
both counts. Compiled cases (``--compile``) need one agent per count, compiled while that count is
set: inductor's C++ kernels fix their OpenMP thread count when they are generated (and its cache
keys on it), while the GEMMs inside the graph follow the count at call time. Two agents built
alike can differ by a few per cent (``bench/README.md``), so read compiled ratios within ~4 %.
"""

from __future__ import annotations

import argparse
from typing import Any, Callable

import torch

from algd.bench import (
    add_bench_options,
    interleaved_median_times,
    parse_ab_options,
    peak_backends,
    peak_matmul,
    prepare_update,
)
from algd.train.cpu_runtime import flush_denormals


def at_threads(n: int, fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` run with ``n`` torch threads."""
    def run() -> Any:
        torch.set_num_threads(n)
        return fn()
    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_bench_options(p, algos="algd-vesde,sac-lag", sizes="paper", threads=2, repeats=5)
    p.add_argument("--compile", action="store_true",
                   help="also time compiled updates (one agent compiled per thread count)")
    args, algos, sizes = parse_ab_options(p)
    if args.threads < 2:
        p.error(f"--threads is the count compared with one thread: give 2 or more, "
                f"not {args.threads}")
    counts = (1, args.threads)
    modes = ("none", "default") if args.compile else ("none",)
    device = torch.device("cpu")
    fns: dict[str, Callable[[], Any]] = {}
    flops: dict[str, int] = {}
    with flush_denormals(True):
        for backend in peak_backends(device):
            fn, flops[f"peak[{backend}]"] = peak_matmul(device, backend=backend)
            for n in counts:
                fns[f"peak[{backend}]/{n}"] = at_threads(n, fn)
        for size in sizes:
            for algo in algos or []:
                for mode in modes:
                    key = f"{algo}@{size}/{mode}"
                    agents = counts if mode != "none" else counts[:1]
                    for n in agents:
                        print(f"{key}: build and warm up at {n} thread(s) ...", flush=True)
                        torch.set_num_threads(n)
                        case = prepare_update(algo, size, device, mode)
                        flops[key] = case.flops
                        targets = (n,) if mode != "none" else counts  # eager: one agent, both
                        for m in targets:
                            fns[f"{key}/{m}"] = at_threads(m, case.run)
        times = interleaved_median_times(fns, device, repeats=args.repeats)
    torch.set_num_threads(counts[0])

    n = args.threads
    peak = {m: max(flops[k] / times[f"{k}/{m}"] for k in flops if k.startswith("peak["))
            for m in counts}
    print(f"\ntorch {torch.__version__}; same run, interleaved rounds; efficiency against the "
          "peak at the same thread count")
    print(f"{'':30s} {'1 thread ms':>12s} {f'{n} threads ms':>13s} {'speed-up':>9s} "
          f"{'eff. 1':>7s} {f'eff. {n}':>7s}")
    for key in dict.fromkeys(k.rsplit("/", 1)[0] for k in fns):
        a, b = times[f"{key}/1"], times[f"{key}/{n}"]
        eff = [flops[key] / t / peak[m] for t, m in ((a, 1), (b, n))]
        print(f"{key:30s} {a * 1e3:12.2f} {b * 1e3:13.2f} {a / b:8.2f}x "
              f"{eff[0]:7.1%} {eff[1]:7.1%}")
    print(f"(peak: the faster GEMM of {', '.join(peak_backends(device))} on a 2048² product; "
          f"GFLOP/s {peak[1] / 1e9:.1f} at 1 thread, {peak[n] / 1e9:.1f} at {n})")


if __name__ == "__main__":
    main()
