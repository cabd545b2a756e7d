"""Whole-update CUDA graphs: replay an agent's gradient update instead of launching its kernels.

At the built-in and the paper's sizes one update is hundreds of small kernels (critic bank, K-step
chain, Monte-Carlo score target, three optimisers), so on a GPU the update is bound by the host
launching them, not by arithmetic: `algd bench --device cuda` measured 14-22 ms per ALGD update
at paper sizes on an H200, 0.3% of its matmul peak. A CUDA graph records those launches once and
replays them with one call: 2.2 ms (bench/results/h200_bench.txt).

What makes an update capturable, and holds for every agent here (issue 7):

* no host synchronisation inside it (no ``.item()``, no data-dependent Python branches); the only
  Python branch is periodic (Polyak averaging every ``target_update_every`` updates), so one graph
  is captured per phase of that period (:attr:`Agent.update_period`);
* optimiser state on the device: every Adam is switched to ``capturable=True`` (fused Adam already
  keeps its step counter on the device);
* random numbers from the default CUDA generator, which PyTorch offsets per replay (graph-safe RNG),
  so each replay draws fresh noise for the chain and the score target.

The first ``warmup`` updates run eagerly on a side stream (as PyTorch requires before capture, so
optimiser state and library workspaces exist); each capture is followed by a replay, so every call
performs exactly one real update. The batch is copied into static input tensors; the returned
diagnostics live in the graph's static outputs, valid until the next call (the trainer copies them
at once). Parameters are updated in place, so acting and evaluation outside the graph see them.
Loading a state dict replaces optimiser-state tensors: build a new :class:`GraphedUpdate` after it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from algd.algos.base import Agent
from algd.buffers.replay import Batch


def make_optimizers_capturable(agent: Agent) -> None:
    """Switch every Adam of ``agent`` (its ``optimizers`` and any submodule's ``optimizer``, e.g.
    the log-λ and entropy-temperature rules) to device-side step counters."""
    optimizers = list(agent.optimizers.values())
    optimizers += [opt for m in agent.modules()
                   if isinstance(opt := getattr(m, "optimizer", None), torch.optim.Optimizer)]
    for opt in optimizers:
        for group in opt.param_groups:
            if "capturable" in group:  # fused Adam too: capture checks the flag
                group["capturable"] = True
        for param, state in opt.state.items():
            step = state.get("step")
            if isinstance(step, Tensor) and step.device != param.device:
                state["step"] = step.to(param.device, torch.float32)


class GraphedUpdate:
    """Calls ``agent.update(batch)`` through CUDA graphs, one per phase of ``agent.update_period``.

    Args:
        agent: an agent on a CUDA device whose ``update`` is capturable (see the module docstring).
        warmup: eager updates (on a side stream) before the first capture; at least 1.
    """

    def __init__(self, agent: Agent, warmup: int = 3) -> None:
        if agent.device.type != "cuda":
            raise ValueError(f"CUDA graphs need a CUDA device, the agent is on {agent.device}")
        self.agent = agent
        self.warmup = max(1, warmup)
        self.period = max(1, int(agent.update_period))
        self._eager_calls = 0
        self._graphs: dict[int, torch.cuda.CUDAGraph] = {}
        self._outputs: dict[int, dict[str, Tensor]] = {}
        self._static: Batch | None = None
        # a private torch type, named only in this annotation (never evaluated at run time)
        self._pool: torch.cuda._POOL_HANDLE | None = None
        make_optimizers_capturable(agent)

    @property
    def captured(self) -> int:
        """Number of graphs captured so far (``period`` once warm)."""
        return len(self._graphs)

    def __call__(self, batch: Batch) -> dict[str, Tensor]:
        if self._eager_calls < self.warmup:
            return self._eager(batch)
        self._copy_in(batch)
        phase = self.agent.num_updates % self.period
        if phase not in self._graphs:
            self._capture(phase)
        self._graphs[phase].replay()
        self.agent.num_updates += 1
        return self._outputs[phase]

    # -- internals ----------------------------------------------------------------------------
    def _eager(self, batch: Batch) -> dict[str, Tensor]:
        stream = torch.cuda.Stream(self.agent.device)
        stream.wait_stream(torch.cuda.current_stream(self.agent.device))
        with torch.cuda.stream(stream):
            out = self.agent.update(batch)
        torch.cuda.current_stream(self.agent.device).wait_stream(stream)
        self._eager_calls += 1
        return out

    def _copy_in(self, batch: Batch) -> None:
        if self._static is None:
            self._static = Batch(*(t.detach().clone() for t in batch))
            return
        for dst, src in zip(self._static, batch):
            if dst.shape != src.shape:
                raise ValueError(f"a graphed update needs a fixed batch shape: captured "
                                 f"{tuple(dst.shape)}, got {tuple(src.shape)}")
            dst.copy_(src, non_blocking=True)

    def _capture(self, phase: int) -> None:
        """Record one update of ``phase`` (capture runs no kernels; the caller replays it)."""
        assert self._static is not None
        graph = torch.cuda.CUDAGraph()
        torch.cuda.synchronize(self.agent.device)
        try:
            with torch.cuda.graph(graph, pool=self._pool):
                out = self.agent.update(self._static)
        except RuntimeError as exc:
            raise RuntimeError(
                f"capturing the {type(self.agent).__name__} update as a CUDA graph failed "
                f"({str(exc).strip().splitlines()[0]}); train without it (--cuda-graph false)"
            ) from exc
        self.agent.num_updates -= 1  # capture ran the Python, not the update
        self._pool = graph.pool()
        self._graphs[phase] = graph
        self._outputs[phase] = out
