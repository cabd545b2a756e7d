"""Optimiser helpers shared by every agent and multiplier rule."""

from __future__ import annotations

import copy
from typing import Any

import torch


def adam(params: Any, lr: float) -> torch.optim.Adam:
    """Adam as the reference uses it, fused where the build supports it (same numbers, faster)."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError):  # pragma: no cover - fused unsupported on this device
        return torch.optim.Adam(params, lr=lr)


def load_optimizer_state(opt: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """``opt.load_state_dict(state)`` without aliasing, fitted to where the parameters live.

    A state saved from a CUDA-graphed run carries ``capturable=True`` (device-side step counters,
    see ``algd/train/cuda_graph.py``); loaded next to CPU parameters (evaluating or resuming a GPU
    run on a CPU) that flag is switched off again, since capturable Adam refuses CPU tensors.
    """
    opt.load_state_dict(copy.deepcopy(state))  # deep copy: no aliasing of the source's moments
    for group in opt.param_groups:
        params = group["params"]
        if group.get("capturable") and params and params[0].device.type == "cpu":
            group["capturable"] = False
            for p in params:
                step = opt.state.get(p, {}).get("step")
                if isinstance(step, torch.Tensor):
                    opt.state[p]["step"] = step.cpu()
