"""What every algorithm offers the training loop: act, update, report λ, save and load."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch
from torch import Tensor, nn

from algd.buffers.replay import Batch
from algd.nets.optim import adam, load_optimizer_state

__all__ = ["Agent", "EnvInfo", "NonFiniteObservation", "adam", "check_finite_observation",
           "cpp_wrapper", "polyak_update"]

_cpp_wrapper = True


@contextmanager
def cpp_wrapper(enabled: bool) -> Iterator[None]:
    """Whether a gradient step compiled inside the block (:meth:`Agent.compile_step_when_ready`)
    gets inductor's C++ wrapper (on by default): the code that calls the graph's ~150 kernels and
    GEMMs is compiled C++ instead of Python, at the price of a longer first compilation. For
    same-run A/B measurements (``bench/compiled_step.py``)."""
    global _cpp_wrapper
    previous, _cpp_wrapper = _cpp_wrapper, enabled
    try:
        yield
    finally:
        _cpp_wrapper = previous


class NonFiniteObservation(ValueError):
    """:meth:`Agent.act_np` was given an observation holding NaN or infinity at ``where``."""

    def __init__(self, where: str) -> None:
        self.where = where
        super().__init__(f"act_np: the observation holds NaN or infinity ({where}); check the "
                         "environment (or the preprocessing) that produced it")


def check_finite_observation(obs: np.ndarray) -> None:
    """Raise :class:`NonFiniteObservation` (naming the first bad row and entry) when ``obs`` —
    one observation ``[S]`` or a batch ``[n, S]`` — holds NaN or infinity."""
    if np.isfinite(obs).all():
        return
    bad = np.argwhere(~np.isfinite(obs.reshape(-1, obs.shape[-1])))[0]
    raise NonFiniteObservation(f"entry {bad[1]}" if obs.ndim == 1 else
                               f"row {bad[0]}, entry {bad[1]}")


@dataclass(frozen=True)
class EnvInfo:
    """The facts about the task an agent is built for."""

    obs_dim: int
    act_dim: int
    action_low: np.ndarray
    action_high: np.ndarray
    cost_threshold: float  #: h, the critic-level constraint threshold (spec §1.4)
    cost_mask_terminal: bool = True  #: False: the cost critic bootstraps through terminals


class Agent(nn.Module, ABC):
    """An off-policy constrained agent.

    Subclasses build their networks in ``__init__``, register their optimisers in
    ``self.optimizers`` (saved with the agent's ``state_dict``) and implement ``act`` and
    ``update``. ``update`` returns *device tensors* (never Python numbers), so the loop decides
    when to synchronise with the device. An ``update`` made of :meth:`gradient_step` and a
    periodic branch (target networks) gets, on a CPU, the gradient step compiled as one graph by
    :meth:`compile_modules`.
    """

    #: names of the scalars ``update`` returns, in the order of the metrics.csv columns; every
    #: subclass sets it (the training loop reads it)
    diagnostics: tuple[str, ...]

    def __init__(self, env: EnvInfo, device: torch.device) -> None:
        super().__init__()
        self.env_info = env
        self.device = device
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.num_updates = 0
        self._step_compile_mode: str | None = None  #: set by compile_modules on a CPU

    @abstractmethod
    def act(self, obs: Tensor, deterministic: bool = False) -> Tensor:
        """Actions [B, A] for observations [B, S], or [A] for one observation [S] (no gradient).

        Implementations pass ``obs`` through :meth:`observation_batch` first.
        """

    def _check_obs_shape(self, shape: tuple[int, ...], caller: str) -> None:
        """ValueError unless ``shape`` is one observation ``(S,)`` or a batch ``(n, S)``."""
        if len(shape) not in (1, 2) or shape[-1] != self.env_info.obs_dim:
            raise ValueError(
                f"{caller} expects one observation of shape ({self.env_info.obs_dim},) or a batch "
                f"of shape (n, {self.env_info.obs_dim}), got shape {tuple(shape)}"
            )

    def observation_batch(self, obs: Tensor) -> tuple[Tensor, bool]:
        """``obs`` as a float32 batch ``[B, S]`` on the agent's device, and whether it was one
        observation ``[S]`` (``act`` then returns one action ``[A]``).

        Raises:
            TypeError: ``obs`` is not a tensor (numpy observations go to :meth:`act_np`).
            ValueError: ``obs`` does not end in the task's observation size ``S``.
        """
        if not isinstance(obs, Tensor):
            raise TypeError(f"act takes a torch.Tensor, got {type(obs).__name__}; for numpy "
                            "observations use act_np(obs)")
        self._check_obs_shape(tuple(obs.shape), "act")
        obs = obs.to(self.device, torch.float32)  # no copy when it already is
        return (obs.unsqueeze(0), True) if obs.dim() == 1 else (obs, False)

    @abstractmethod
    def update(self, batch: Batch) -> dict[str, Tensor]:
        """One gradient update on ``batch``; returns detached scalar diagnostics.

        An implementation built on :meth:`gradient_step` calls :meth:`compile_step_when_ready`
        at its end."""

    def gradient_step(self, batch: Batch) -> dict[str, Tensor]:
        """Every optimiser step of one update, in order, without the update's periodic branch
        (target networks) or its counter: the part :meth:`compile_modules` compiles as one graph.

        Written for ``torch.compile`` to trace whole: gradients by ``torch.autograd.grad`` and
        optimiser steps by :func:`algd.nets.optim.adam_step` (``backward()`` and
        ``Optimizer.step()`` would split the graph), nothing read back to the host."""
        raise NotImplementedError(f"{type(self).__name__} does not split its update into a "
                                  "gradient step")

    @property
    @abstractmethod
    def lagrange_multiplier(self) -> Tensor:
        """Current λ (0-dim tensor; 0 for unconstrained agents)."""

    @property
    def update_period(self) -> int:
        """Updates after which ``update`` repeats the same computation: its only Python branches
        are periodic (e.g. Polyak averaging every few updates). One CUDA graph is captured per
        phase of this period (``algd/train/cuda_graph.py``)."""
        return 1

    def compile_targets(self) -> list[nn.Module]:
        """Modules worth ``torch.compile``-ing (called through ``forward``). Default: none."""
        return []

    def compile_modules(self, mode: str = "default") -> None:
        """Compile :meth:`compile_targets` in place (state_dict keys are unchanged) and, on a CPU,
        the whole :meth:`gradient_step` (critics, actor, multipliers and their Adam steps) as one
        graph, where eager mode's per-op overhead and the optimisers' graph breaks cost most.

        The gradient step is compiled once every optimiser has state, i.e. after the first update
        (:meth:`compile_step_when_ready`): compiled before it, or first called under a
        ``TorchDispatchMode``, it ran no faster than eager (torch 2.13). ``torch.autograd.grad``
        is traced with dynamo's ``trace_autograd_ops``; inductor draws random numbers as eager
        mode does (``fallback_random``), so compiled and eager updates agree within float
        tolerance, and calls the graph's kernels from a C++ wrapper (:func:`cpp_wrapper`). Shapes
        are static (one graph per batch size) and the recompile limit is raised so that several
        agents in one process (``algd bench``) each get their own graphs; these two are
        process-wide dynamo settings, made only here. CUDA devices replay the whole update as
        CUDA graphs instead (``algd/train/cuda_graph.py``): there only the modules are compiled.
        """
        for module in self.compile_targets():
            module.compile(mode=mode)
        if self.device.type == "cpu" and type(self).gradient_step is not Agent.gradient_step:
            self._step_compile_mode = mode
            self.compile_step_when_ready()

    def decompile(self) -> None:
        """Undo :meth:`compile_modules`: the modules and the gradient step run eagerly again
        (what ``--compile auto`` falls back to where compiling the update fails)."""
        for module in self.compile_targets():
            # nn.Module.compile keeps the compiled call here; None is its eager default
            module._compiled_call_impl = None
        self.__dict__.pop("gradient_step", None)  # the compiled step shadows the method
        self._step_compile_mode = None

    @property
    def step_compiled(self) -> bool:
        """Whether :meth:`gradient_step` is compiled (from the update after the first on)."""
        return "gradient_step" in self.__dict__

    def compile_step_when_ready(self) -> None:
        """Compile :meth:`gradient_step` now if :meth:`compile_modules` asked for it and an
        update has run (its optimisers have state); :meth:`update` calls this at its end."""
        if self._step_compile_mode is None or self.num_updates == 0:
            return
        import torch._dynamo

        if hasattr(torch._dynamo.config, "trace_autograd_ops"):
            torch._dynamo.config.trace_autograd_ops = True
        for limit in ("recompile_limit", "cache_size_limit"):
            if hasattr(torch._dynamo.config, limit):
                setattr(torch._dynamo.config, limit, max(64, getattr(torch._dynamo.config, limit)))
        # Adam.step's profiler label cannot be traced; dynamo drops it and says so once per
        # process, a warning about torch internals that tells the user nothing
        logging.getLogger("torch._dynamo.variables.ctx_manager").addFilter(_drop_profiler_note)
        self.gradient_step = torch.compile(  # type: ignore[method-assign]
            self.gradient_step, options=cpu_step_options(self._step_compile_mode),
            dynamic=False)
        self._step_compile_mode = None

    def act_np(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """``act`` for numpy observations: one observation ``[S]`` gives one action ``[A]``, a
        batch ``[B, S]`` gives ``[B, A]``.

        Raises:
            TypeError: ``deterministic`` is not a bool.
            ValueError: ``obs`` does not have the task's observation size ``S``.
            NonFiniteObservation: ``obs`` holds NaN or infinity (a policy would map it to NaN
                actions without a word).
        """
        if not isinstance(deterministic, (bool, np.bool_)):  # "yes", 0.0: a caller's slip
            raise TypeError(f"act_np: deterministic must be True or False, got "
                            f"{deterministic!r}")
        obs = np.asarray(obs, dtype=np.float32)
        single = obs.ndim == 1
        self._check_obs_shape(obs.shape, "act_np")
        check_finite_observation(obs)
        with torch.inference_mode():
            obs_t = torch.as_tensor(obs.reshape(-1, obs.shape[-1]), device=self.device)
            actions = self.act(obs_t, deterministic).cpu().numpy()
        return actions[0] if single else actions

    # optimiser moments and the update counter travel with state_dict()
    def get_extra_state(self) -> dict[str, Any]:
        return {
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "num_updates": self.num_updates,
        }

    def set_extra_state(self, state: dict[str, Any]) -> None:
        for k, o in self.optimizers.items():
            load_optimizer_state(o, state["optimizers"][k])
        self.num_updates = int(state["num_updates"])


def cpu_step_options(mode: str) -> dict[str, Any]:
    """Inductor's options for a gradient step compiled on a CPU in ``torch.compile`` mode
    ``mode``: the mode's own, with random numbers drawn as in eager mode (``fallback_random``)
    and the C++ wrapper (:func:`cpp_wrapper`); without CUDA graphs (``reduce-overhead``,
    ``max-autotune``), which a CPU has no use for; and with ``max-autotune`` choosing among ATen's
    GEMMs only: inductor's C++ GEMM template was 1.4-2.7x slower than MKL on every critic product
    it was tried on, and fails to compile the one-graph step (torch 2.13)."""
    import torch._inductor

    options = {**torch._inductor.list_mode_options(mode), "fallback_random": True,
               "cpp_wrapper": _cpp_wrapper}
    options.pop("triton.cudagraphs", None)
    if options.get("max_autotune"):
        options["max_autotune_gemm_backends"] = "ATEN"
    return options


def _drop_profiler_note(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Profiler record function")


def polyak_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """θ' ← (1 − τ) θ' + τ θ for every parameter, in one fused call."""
    with torch.no_grad():
        t_params: list[Tensor] = list(target.parameters())
        o_params: list[Tensor] = list(online.parameters())
        torch._foreach_lerp_(t_params, o_params, tau)
