"""``--compile auto``: compile the update where it pays, train eagerly elsewhere.

On a CPU, :meth:`algd.algos.base.Agent.compile_modules` compiles each update's whole gradient step
as one graph: ~1.5x faster updates at the paper's sizes and ~3x at the built-in task's
(``bench/compiled_step.py``), for ~30 s of compilation at the second update (~5 s once
inductor's on-disk cache holds the graph). That pays back after a few thousand updates; ``auto``
compiles when a run owes at least :data:`AUTO_COMPILE_MIN_UPDATES`, so the paper presets compile
and a short run (the README's demo owes 7,000) starts training at once. On CUDA devices ``auto``
leaves the update to CUDA graphs (``--cuda-graph``, ~6x on an H200), which compiling would switch
off.

Compiling can fail where the update first runs compiled: inductor needs a working C++ compiler on
a CPU, and a kernel of the update's graph may not build. The training loop runs the first
compiled updates through :func:`update_or_restore`, which puts the agent and torch's random
state back as they were when ``torch.compile`` raises; ``auto`` then trains eagerly from that
very update on, with a note, and an explicit ``--compile MODE`` stops with
:class:`CompileFailed`, which says what to pass instead.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch

#: fewest gradient updates a run must owe for ``--compile auto`` to compile on a CPU: ~30 s of
#: compilation against ~7 ms saved per built-in-size update and ~15 ms per paper-size one
#: (Xeon, one thread), i.e. paid back ~3-10 times over
AUTO_COMPILE_MIN_UPDATES = 20_000


class CompileFailed(RuntimeError):
    """``torch.compile`` could not build the update of a run that asked for it by name."""


def planned_updates(cfg: Any) -> int:
    """Gradient updates a run of ``cfg`` (a :class:`algd.config.TrainConfig`) owes in all:
    ``utd`` per environment step after the warm-up."""
    return math.floor(max(cfg.steps - cfg.warmup_steps, 0) * cfg.utd)


def resolve_compile(cfg: Any, device: torch.device) -> tuple[str, str]:
    """The ``torch.compile`` mode a run starts with and a one-line reason: ``cfg.compile`` itself
    unless it is ``auto``, which becomes ``default`` on a CPU for a run of at least
    :data:`AUTO_COMPILE_MIN_UPDATES` updates, and ``none`` otherwise. (Where compiling then
    fails, ``auto`` falls back to ``none`` at that update: see the module's text.)"""
    if cfg.compile != "auto":
        return cfg.compile, f"--compile {cfg.compile}"
    if device.type != "cpu":
        return "none", f"--compile auto on {device.type}: the update replays as CUDA graphs instead"
    updates = planned_updates(cfg)
    if updates < AUTO_COMPILE_MIN_UPDATES:
        return "none", (f"--compile auto: {updates:,} updates are too few to pay for ~30 s of "
                        f"compilation (it starts at {AUTO_COMPILE_MIN_UPDATES:,})")
    return "default", (f"--compile auto: {updates:,} updates planned, so the update is compiled "
                       "(~30 s at the second update, ~5 s once cached; --compile none to skip)")


def compile_errors() -> tuple[type[BaseException], ...]:
    """The exceptions of ``torch.compile`` failing to build code: dynamo's (inductor's errors
    arrive wrapped in them) and the C++ build's, should one arrive unwrapped."""
    import torch._dynamo.exc
    import torch._inductor.exc

    return (torch._dynamo.exc.TorchDynamoException, torch._inductor.exc.InvalidCxxCompiler,
            torch._inductor.exc.CppCompileError)


def error_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (at most 200 characters): what a note quotes."""
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def update_or_restore(agent: Any, batch: Any) -> tuple[dict[str, torch.Tensor] | None,
                                                       BaseException | None]:
    """``agent.update(batch)`` and ``None``; or, where ``torch.compile`` raises inside it,
    ``None`` and the error, with the agent (parameters, optimiser moments, update counter) and
    torch's random generators put back as they were before the call, so that the update can be
    run again eagerly and give what an eager run gives.

    The agent's state is copied at every call: meant for a run's first compiled updates only.
    """
    state = copy.deepcopy(agent.state_dict())
    cpu_rng = torch.get_rng_state()
    cuda = agent.device.type == "cuda"
    cuda_rng = torch.cuda.get_rng_state(agent.device) if cuda else None
    try:
        return agent.update(batch), None
    except compile_errors() as exc:
        agent.load_state_dict(state)
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state(cuda_rng, agent.device)
        return None, exc
