"""Compiled update time with the whole gradient step as one graph against the ways it splits, in
one run.

    python bench/compiled_step.py [--algos algd-vesde,sac-lag] [--sizes paper] [--threads 1]

``algd train --compile`` on a CPU compiles each agent's ``gradient_step`` (critics, actor or
policy, multipliers, and their Adam steps) as one graph (``Agent.compile_modules``). Four ways of
compiling the same update are timed in interleaved rounds, each against eager mode:

* ``modules``: only the critic modules compiled (``module.compile()``), everything else eager;
* ``split``: the gradient step compiled, its optimiser steps as ``torch.optim`` runs them
  (``traced_adam(False)``): ``Optimizer.step`` breaks the graph on both sides and the fused Adam
  runs eagerly in between, so the step runs as several graphs;
* ``one graph, py``: the optimiser steps traced too (:func:`algd.nets.optim.adam_step`), inductor's
  Python wrapper calling the kernels (``cpp_wrapper(False)``);
* ``one graph``: the default, the same with inductor's C++ wrapper.

Every variant computes the same update to float rounding (``tests/test_fast_path.py`` checks the
default against eager mode). The first compilation of a variant takes 10-60 s on 2 cores.
"""

from __future__ import annotations

import argparse
from typing import Any, Callable

import torch

from algd.algos.base import cpp_wrapper
from algd.bench import add_bench_options, interleaved_median_times, parse_ab_options, prepare_update, switched
from algd.nets.optim import traced_adam
from algd.train.cpu_runtime import flush_denormals

VARIANTS = ("eager", "modules", "split", "one graph, py", "one graph")


def prepare_variant(algo: str, size: str, variant: str) -> Callable[[], Any]:
    """One agent's update, warmed up and compiled the way ``variant`` names."""
    device = torch.device("cpu")
    if variant in ("eager", "modules"):
        case = prepare_update(algo, size, device)
        if variant == "modules":
            for module in case.agent.compile_targets():
                module.compile()
            for _ in range(3):  # compilation
                case.run()
        return case.run
    traced, cpp = variant != "split", variant == "one graph"
    with traced_adam(traced), cpp_wrapper(cpp):  # compiled during prepare_update's warm-up
        case = prepare_update(algo, size, device, compile_mode="default")
    run = switched(traced_adam, traced, case.run)  # traced with the switch as it is here
    run()
    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_bench_options(p, algos="algd-vesde,sac-lag", sizes="paper", threads=1, repeats=7)
    args, algos, sizes = parse_ab_options(p)
    with flush_denormals(True):
        fns: dict[str, Callable[[], Any]] = {}
        keys = []
        for size in sizes:
            for algo in algos or []:
                keys.append(f"{algo}@{size}")
                for variant in VARIANTS:
                    print(f"{algo} at {size} sizes, {variant}: build, warm up and compile ...",
                          flush=True)
                    fns[f"{algo}@{size}/{variant}"] = prepare_variant(algo, size, variant)
        times = interleaved_median_times(fns, torch.device("cpu"), repeats=args.repeats)
    print(f"\n{args.threads} thread(s), torch {torch.__version__}; ms per update "
          "(speed-up over eager)")
    print(f"{'':24s}" + "".join(f"{v:>20s}" for v in VARIANTS))
    for key in keys:
        eager = times[f"{key}/eager"]
        cells = [f"{times[f'{key}/{v}'] * 1e3:10.2f} ({eager / times[f'{key}/{v}']:4.2f}x)"
                 for v in VARIANTS]
        print(f"{key:24s}" + "".join(f"{c:>20s}" for c in cells))
    for key in keys:
        split, one = times[f"{key}/split"], times[f"{key}/one graph"]
        py = times[f"{key}/one graph, py"]
        print(f"{key}: one graph {split / one:.3f}x the split step, C++ wrapper {py / one:.3f}x "
              "the Python wrapper")


if __name__ == "__main__":
    main()
