"""Optimiser helpers shared by every agent and multiplier rule."""

from __future__ import annotations

import copy
import inspect
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import torch
from torch.optim.adam import adam as _functional_adam


def adam(params: Any, lr: float) -> torch.optim.Adam:
    """Adam as the reference uses it, fused where the build supports it (same numbers, faster)."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError):  # pragma: no cover - fused unsupported on this device
        return torch.optim.Adam(params, lr=lr)


#: whether this torch's functional Adam takes ``decoupled_weight_decay`` (2.6 on; AdamW's flag)
_DECOUPLED = "decoupled_weight_decay" in inspect.signature(_functional_adam).parameters


_traced_adam = True


@contextmanager
def traced_adam(enabled: bool) -> Iterator[None]:
    """Switch :func:`adam_step`'s traced form on or off inside the block (on by default; off, it
    calls ``optimizer.step()`` under ``torch.compile`` too, which splits a compiled gradient step
    at every optimiser step, as torch.optim does). For same-run A/B measurements
    (``bench/compiled_step.py``); ``torch.compile`` guards on the switch."""
    global _traced_adam
    previous, _traced_adam = _traced_adam, enabled
    try:
        yield
    finally:
        _traced_adam = previous


def adam_step(optimizer: torch.optim.Optimizer) -> None:
    """``optimizer.step()``, written so that ``torch.compile`` traces it into the caller's graph.

    ``Optimizer.step`` breaks a compiled graph on both sides (torch.optim's ``_use_grad``), and a
    fused Adam is never traced, so a compiled update calling it runs as several graphs with the
    optimiser eager in between. Under ``torch.compile`` an :class:`torch.optim.Adam` whose state
    exists (it has stepped once) is stepped instead by torch's functional Adam
    (``torch.optim.adam.adam`` in its single-tensor form, what ``Adam.step`` runs when neither
    foreach nor fused is asked for) on the same state tensors: the same update (Kingma & Ba,
    Algorithm 1) to float rounding, which inductor fuses with the rest of the graph. Everything
    else (eager mode, another optimiser, a first step) is ``optimizer.step()``.
    """
    if not (_traced_adam and torch.compiler.is_compiling()
            and type(optimizer) is torch.optim.Adam):
        optimizer.step()
        return
    groups = [(group, [p for p in group["params"] if p.grad is not None])
              for group in optimizer.param_groups]
    if any("step" not in optimizer.state[p] for _, params in groups for p in params):
        optimizer.step()  # the first step initialises the state lazily
        return
    with torch.no_grad():  # as Adam.step: the in-place updates are not recorded
        for group, params in groups:
            states = [optimizer.state[p] for p in params]
            extra = {"decoupled_weight_decay": group.get("decoupled_weight_decay", False)}
            _functional_adam(
                params, [p.grad for p in params], [s["exp_avg"] for s in states],
                [s["exp_avg_sq"] for s in states],
                [s["max_exp_avg_sq"] for s in states] if group["amsgrad"] else [],
                [s["step"] for s in states], foreach=False, capturable=group["capturable"],
                differentiable=False, fused=False, amsgrad=group["amsgrad"],
                beta1=group["betas"][0], beta2=group["betas"][1], lr=group["lr"],
                weight_decay=group["weight_decay"], eps=group["eps"], maximize=group["maximize"],
                **(extra if _DECOUPLED else {}),
            )


def set_grads(params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor | None]) -> None:
    """``p.grad = g`` for each pair: what ``zero_grad(set_to_none=True)`` then ``backward()``
    leave, from gradients taken with ``torch.autograd.grad`` (which ``torch.compile`` traces;
    ``backward()`` it does not)."""
    for p, g in zip(params, grads):
        p.grad = g


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
