"""Update time with the critics' first layer split at fixed states against the concatenated input.

    python bench/split_first_layer.py [--algos algd-vesde,algd-ddpm] [--sizes paper]
                                      [--obs-dims 17,60] [--threads 1] [--compile]

ALGD's policy step evaluates the critics at every batch state 1 + N times (the chain's action
and the N Monte-Carlo samples). ``algd.nets.critics.CriticsAtStates`` computes the state half of
the critics' first layer once per state and adds the action half per action; the baseline
(``split_first_layer(False)``) evaluates the concatenated ``[s; a]`` every time. Each agent's
update is timed in interleaved rounds with the path switched between rounds, at each
observation size (17: HalfCheetah, the size ``algd bench`` uses; 60: Safety-Gymnasium's Point
tasks); before timing, the bank's action gradients are compared on both paths (eager; the
compiled critics' agreement with eager ones is tested in ``tests/test_nets.py``).
``--compile`` also times ``torch.compile``d updates, one agent per path, in the same rounds.
"""

from __future__ import annotations

import argparse
from functools import partial
from typing import Any, Callable

import torch

from algd.bench import (
    ACT_DIM,
    add_ab_variants,
    add_bench_options,
    gradient_difference,
    interleaved_median_times,
    parse_ab_options,
    prepare_update,
)
from algd.nets.critics import CriticBank, split_first_layer
from algd.train.cpu_runtime import flush_denormals

NAMES = ("concat", "split")  #: the variants: split_first_layer off, on


def difference(critic: CriticBank, states: int, samples: int) -> float:
    """Largest relative difference of the bank's action gradient between the two paths (eager),
    at ``samples`` actions per state."""
    obs = torch.randn(states, critic.obs_dim)
    act = torch.rand(samples, states, ACT_DIM).mul_(2).sub_(1)
    return gradient_difference(split_first_layer, lambda a: critic.at_states(obs)(a), act)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_bench_options(p, algos="algd-vesde,algd-ddpm", sizes="paper", threads=1, repeats=7)
    p.add_argument("--obs-dims", default="17,60", help="observation sizes (default: 17,60)")
    p.add_argument("--compile", action="store_true", help="also time compiled updates")
    args, algos, sizes = parse_ab_options(p)
    try:
        obs_dims = [int(d) for d in args.obs_dims.split(",")]
        if min(obs_dims) < 1:
            raise ValueError
    except ValueError:
        p.error(f"--obs-dims takes sizes like 17,60, not {args.obs_dims!r}")
    device = torch.device("cpu")
    with flush_denormals(True):
        fns: dict[str, Callable[[], Any]] = {}
        checks: dict[str, float] = {}
        for obs_dim in obs_dims:
            for size in sizes:
                for algo in algos or []:
                    key = f"{algo}@{size} obs={obs_dim}"
                    print(f"{key}: build and warm up ...", flush=True)
                    case = prepare_update(algo, size, device, obs_dim=obs_dim)
                    checks[key] = difference(case.agent.critic, 256, 4)
                    add_ab_variants(fns, key, split_first_layer, NAMES, run=case.run)
                    if not args.compile:
                        continue
                    print(f"{key}, compiled: build, warm up and compile twice ...", flush=True)
                    checks[f"{key} compiled"] = float("nan")  # compiled agents: not checked here
                    add_ab_variants(  # one agent per path, traced with the path on or off
                        fns, f"{key} compiled", split_first_layer, NAMES,
                        build=partial(prepare_update, algo, size, device,
                                      compile_mode="default", obs_dim=obs_dim))
        times = interleaved_median_times(fns, device, repeats=args.repeats)
    print(f"\n{args.threads} thread(s), torch {torch.__version__}")
    print(f"{'':38s} {'concat ms':>10s} {'split ms':>9s} {'speed-up':>9s} {'max rel Δ∇a':>12s}")
    for key, diff in checks.items():
        a, b = times[f"{key}/concat"], times[f"{key}/split"]
        shown = "-" if diff != diff else f"{diff:.1e}"  # NaN: not measured
        print(f"{key:38s} {a * 1e3:10.2f} {b * 1e3:9.2f} {a / b:8.3f}x {shown:>12s}")


if __name__ == "__main__":
    main()
