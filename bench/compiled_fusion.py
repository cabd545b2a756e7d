"""Compiled update time with the critics' layers in fusable forms against ``baddbmm``, in one run.

    python bench/compiled_fusion.py [--algos algd-vesde,sac-lag] [--sizes paper] [--threads 1]

Under ``torch.compile`` (``algd train --compile``) a critic layer's ``x @ W + b`` is written as
``bmm(x, W) + b`` and a 1-wide output layer as ``(x * w).sum(-1) + b``: inductor folds the bias
into the loop that applies the activation (and, in the score target, its derivative), and the
1-wide layer into the loop that makes its input, where ``baddbmm(b, x, W)`` first copies the
broadcast bias into the ``[M, N·B, H]`` output for the GEMM to read back and the 1-wide product is
a separate GEMM call that reads the activations again; a frozen SiLU group (the cost critics in
the actor energy and the score target) takes its value and derivative from one sigmoid instead of
``silu`` and ``silu_backward`` computing it twice. The baseline compiles the same agent with
``compiled_fusion(False)``. Each compiled update is timed in interleaved rounds; before timing,
the compiled critic bank's values and action gradients at the score target's size (N·B rows) are
compared with eager mode's for both variants.
"""

from __future__ import annotations

import argparse
from functools import partial
from typing import Any, Callable

import torch

from algd.bench import (
    ACT_DIM,
    OBS_DIM,
    add_bench_options,
    interleaved_median_times,
    parse_ab_options,
    prepare_update,
    switched,
)
from algd.nets.ensemble import compiled_fusion
from algd.train.cpu_runtime import flush_denormals


def compiled_difference(critic: Any, enabled: bool, rows: int) -> float:
    """Largest relative difference, compiled against eager, of the bank's values and action
    gradient (weights frozen, as the actor loss and the score target take them)."""
    obs = torch.randn(rows, OBS_DIM)
    act = torch.rand(rows, ACT_DIM).mul_(2).sub_(1)

    def values_and_grad(o: torch.Tensor, a: torch.Tensor,
                        bank: Callable[..., Any]) -> tuple[torch.Tensor, torch.Tensor]:
        a = a.detach().requires_grad_(True)
        q, qc = bank(o, a, frozen=True)
        out = torch.cat([q.flatten(), qc.flatten()])
        weights = torch.linspace(-1, 1, out.numel())
        return out.detach(), torch.autograd.grad((out * weights).sum(), a)[0]

    # the agent's bank was compiled in place (Module.compile): its forward, called directly, is
    # the eager reference
    eager = values_and_grad(obs, act, partial(type(critic).forward, critic))
    with compiled_fusion(enabled):
        compiled = torch.compile(values_and_grad, dynamic=False)(obs, act, critic)
    return max(((c - e).abs().max() / e.abs().max()).item() for c, e in zip(compiled, eager))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_bench_options(p, algos="algd-vesde,algd-ddpm,sac-lag", sizes="paper", threads=1, repeats=7)
    args, algos, sizes = parse_ab_options(p)
    device = torch.device("cpu")
    variants = ((False, "baddbmm"), (True, "fused"))
    with flush_denormals(True):
        fns: dict[str, Callable[[], Any]] = {}
        checks: dict[str, list[float]] = {}
        for size in sizes:
            for algo in algos or []:
                key = f"{algo}@{size}"
                print(f"{key}, compiled: build, warm up and compile twice ...", flush=True)
                for enabled, name in variants:
                    with compiled_fusion(enabled):  # traced with the fusable forms on or off
                        case = prepare_update(algo, size, device, compile_mode="default")
                    checks.setdefault(key, []).append(
                        compiled_difference(case.agent.critic, enabled, 1024))
                    run = switched(compiled_fusion, enabled, case.run)
                    run()
                    fns[f"{key}/{name}"] = run
        times = interleaved_median_times(fns, device, repeats=args.repeats)
    print(f"\n{args.threads} thread(s), torch {torch.__version__}, compiled updates")
    print(f"{'':24s} {'baddbmm ms':>11s} {'fused ms':>9s} {'speed-up':>9s} "
          f"{'max rel Δ (baddbmm, fused)':>27s}")
    for key, diffs in checks.items():
        a, b = times[f"{key}/baddbmm"], times[f"{key}/fused"]
        print(f"{key:24s} {a * 1e3:11.2f} {b * 1e3:9.2f} {a / b:8.3f}x "
              f"{diffs[0]:14.1e} {diffs[1]:14.1e}")


if __name__ == "__main__":
    main()
