"""``--compile auto``: compile the update where it pays, train eagerly elsewhere.

On a CPU, :meth:`algd.algos.base.Agent.compile_modules` compiles each update's whole gradient step
as one graph: ~1.5x faster updates at the paper's sizes and ~3x at the built-in task's
(``bench/compiled_step.py``), for ~30 s of compilation at the second update (~5 s once
inductor's on-disk cache holds the graph). That pays back after a few thousand updates; ``auto``
compiles when a run owes at least :data:`AUTO_COMPILE_MIN_UPDATES`, so the paper presets compile
and a short run (the README's demo owes 7,000) starts training at once. On CUDA devices ``auto``
leaves the update to CUDA graphs (``--cuda-graph``, ~6x on an H200), which compiling would switch
off. Inductor needs a working C++ compiler on a CPU: ``auto`` first compiles a one-line function
and trains eagerly, with a note, where that fails.
"""

from __future__ import annotations

import math
from typing import Any

import torch

#: fewest gradient updates a run must owe for ``--compile auto`` to compile on a CPU: ~30 s of
#: compilation against ~7 ms saved per built-in-size update and ~15 ms per paper-size one
#: (Xeon, one thread), i.e. paid back ~3-10 times over
AUTO_COMPILE_MIN_UPDATES = 20_000

_probe_result: tuple[bool, str] | None = None


def planned_updates(cfg: Any) -> int:
    """Gradient updates a run of ``cfg`` (a :class:`algd.config.TrainConfig`) owes in all:
    ``utd`` per environment step after the warm-up."""
    return math.floor(max(cfg.steps - cfg.warmup_steps, 0) * cfg.utd)


def inductor_compiles() -> tuple[bool, str]:
    """Whether ``torch.compile`` (inductor) can build a CPU kernel in this process, and if not,
    why (the first line of its error). Tried once per process, on a one-line function: ~4 s on
    a busy 2-core machine with inductor's disk cache warm, ~16 s cold (inductor's start-up and a
    C++ build), next to the ~30 s that compiling the update then takes."""
    global _probe_result
    if _probe_result is None:
        try:
            probe = torch.compile(lambda x: x * 2.0 + 1.0, dynamic=False)
            ok = bool(torch.equal(probe(torch.zeros(4)), torch.ones(4)))
            _probe_result = (ok, "" if ok else "a compiled test function gave a wrong value")
        except Exception as exc:  # noqa: BLE001 - any failure means: do not compile
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            _probe_result = (False, f"{type(exc).__name__}: {first}")
    return _probe_result


def resolve_compile(cfg: Any, device: torch.device) -> tuple[str, str]:
    """The ``torch.compile`` mode a run uses and a one-line reason: ``cfg.compile`` itself unless
    it is ``auto``, which becomes ``default`` on a CPU for a run of at least
    :data:`AUTO_COMPILE_MIN_UPDATES` updates where inductor compiles, and ``none`` otherwise."""
    if cfg.compile != "auto":
        return cfg.compile, f"--compile {cfg.compile}"
    if device.type != "cpu":
        return "none", f"--compile auto on {device.type}: the update replays as CUDA graphs instead"
    updates = planned_updates(cfg)
    if updates < AUTO_COMPILE_MIN_UPDATES:
        return "none", (f"--compile auto: {updates:,} updates are too few to pay for ~30 s of "
                        f"compilation (it starts at {AUTO_COMPILE_MIN_UPDATES:,})")
    ok, why = inductor_compiles()
    if not ok:
        return "none", f"--compile auto: torch.compile does not work here ({why}); training eagerly"
    return "default", (f"--compile auto: {updates:,} updates planned, so the update is compiled "
                       "(~30 s at the second update, ~5 s once cached; --compile none to skip)")
