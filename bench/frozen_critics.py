"""Update time with the frozen critics' own input gradient against autograd's, in one run.

    python bench/frozen_critics.py [--algos algd-vesde,sac-lag] [--sizes paper] [--threads 1]
                                   [--compile]

The actor losses and ALGD's Monte-Carlo score target take gradients through the critics with
their weights held fixed. ``algd.nets.ensemble._FrozenMLP`` computes that input gradient from the
output weights down and scales it by the upstream gradient at the end, so no ``[M, B, H]`` outer
product is written and read back, and each activation's derivative is one kernel. The baseline
records the same layers for autograd (``frozen_fast_path(False)``). Each agent's update is timed
in interleaved rounds with the path switched between rounds; before timing, the critic bank's
values and action gradients at the score target's size (N·B rows) are compared on both paths.
``--compile`` also times ``torch.compile``d updates (``algd train --compile``), one agent per path
(each compiled with its path on or off), in the same rounds.
"""

from __future__ import annotations

import argparse
from functools import partial
from typing import Any, Callable

import torch

from algd.bench import (
    ACT_DIM,
    OBS_DIM,
    add_ab_variants,
    add_bench_options,
    gradient_difference,
    interleaved_median_times,
    parse_ab_options,
    prepare_update,
)
from algd.nets.ensemble import frozen_fast_path
from algd.train.cpu_runtime import flush_denormals

NAMES = ("autograd", "frozen")  #: the variants: frozen_fast_path off, on


def frozen_gradient_difference(critic: Any, rows: int) -> float:
    """Largest relative difference of the bank's action gradient between the two paths."""
    obs = torch.randn(rows, OBS_DIM)
    act = torch.rand(rows, ACT_DIM).mul_(2).sub_(1)
    return gradient_difference(frozen_fast_path, lambda a: critic(obs, a, frozen=True), act)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_bench_options(p, algos="algd-vesde,algd-ddpm,sac-lag", sizes="paper", threads=1, repeats=7)
    p.add_argument("--compile", action="store_true", help="also time compiled updates")
    args, algos, sizes = parse_ab_options(p)
    device = torch.device("cpu")
    with flush_denormals(True):
        fns: dict[str, Callable[[], Any]] = {}
        checks: dict[str, float] = {}
        for size in sizes:
            for algo in algos or []:
                print(f"{algo} at {size} sizes: build and warm up ...", flush=True)
                case = prepare_update(algo, size, device)
                checks[f"{algo}@{size}"] = frozen_gradient_difference(case.agent.critic, 1024)
                add_ab_variants(fns, f"{algo}@{size}", frozen_fast_path, NAMES, run=case.run)
                if not args.compile:
                    continue
                print(f"{algo} at {size} sizes, compiled: build, warm up and compile twice ...",
                      flush=True)
                checks[f"{algo}@{size} compiled"] = checks[f"{algo}@{size}"]
                add_ab_variants(  # one agent per path, traced with the path on or off
                    fns, f"{algo}@{size} compiled", frozen_fast_path, NAMES,
                    build=partial(prepare_update, algo, size, device, compile_mode="default"))
        times = interleaved_median_times(fns, device, repeats=args.repeats)
    print(f"\n{args.threads} thread(s), torch {torch.__version__}")
    print(f"{'':31s} {'autograd ms':>12s} {'frozen ms':>10s} {'speed-up':>9s} {'max rel Δ∇a':>12s}")
    for key, diff in checks.items():
        a, b = times[f"{key}/autograd"], times[f"{key}/frozen"]
        print(f"{key:31s} {a * 1e3:12.2f} {b * 1e3:10.2f} {a / b:8.3f}x {diff:12.1e}")


if __name__ == "__main__":
    main()
