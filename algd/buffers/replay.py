"""Replay buffer: preallocated tensors, FIFO, uniform sampling (spec §3.4).

Storage lives on the training device, so sampling a batch is one index operation per field with
no host-device copy; insertion copies a vector step's worth of transitions in one slice per field.
"""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor


class Batch(NamedTuple):
    """A minibatch of transitions (B rows)."""

    obs: Tensor  #: [B, S]
    act: Tensor  #: [B, A]
    reward: Tensor  #: [B]
    cost: Tensor  #: [B]
    next_obs: Tensor  #: [B, S]
    terminated: Tensor  #: [B] float, 1.0 where s' is terminal


class ReplayBuffer:
    """FIFO transition storage of fixed ``capacity``.

    Args:
        capacity: maximum number of transitions kept.
        obs_dim, act_dim: sizes of a single observation and action.
        device: where storage (and sampled batches) live.
        seed: seed of the buffer's own sampling generator.
    """

    def __init__(
        self, capacity: int, obs_dim: int, act_dim: int, device: torch.device | str = "cpu",
        seed: int = 0,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"buffer capacity must be >= 1, got {capacity}")
        self.capacity, self.device = capacity, torch.device(device)
        f32: dict[str, Any] = dict(dtype=torch.float32, device=self.device)
        self.obs = torch.zeros(capacity, obs_dim, **f32)
        self.act = torch.zeros(capacity, act_dim, **f32)
        self.reward = torch.zeros(capacity, **f32)
        self.cost = torch.zeros(capacity, **f32)
        self.next_obs = torch.zeros(capacity, obs_dim, **f32)
        self.terminated = torch.zeros(capacity, **f32)
        self.ptr = 0
        self.size = 0
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)

    def __len__(self) -> int:
        return self.size

    def _fields(self) -> tuple[Tensor, ...]:
        return (self.obs, self.act, self.reward, self.cost, self.next_obs, self.terminated)

    def add(
        self,
        obs: np.ndarray,
        act: np.ndarray,
        reward: np.ndarray,
        cost: np.ndarray,
        next_obs: np.ndarray,
        terminated: np.ndarray,
    ) -> None:
        """Append N transitions (arrays with leading dimension N)."""
        values = (obs, act, reward, cost, next_obs, terminated)
        n = len(reward)
        if n > self.capacity:
            raise ValueError(f"cannot add {n} transitions to a buffer of capacity {self.capacity}")
        first = min(n, self.capacity - self.ptr)
        for store, value in zip(self._fields(), values):
            t = torch.as_tensor(np.asarray(value, dtype=np.float32))
            store[self.ptr : self.ptr + first].copy_(t[:first], non_blocking=True)
            if first < n:
                store[: n - first].copy_(t[first:], non_blocking=True)
        self.ptr = (self.ptr + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int) -> Batch:
        """Draw ``batch_size`` transitions uniformly (with replacement) from what is stored."""
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        idx = torch.randint(self.size, (batch_size,), device=self.device, generator=self.generator)
        return Batch(*(f[idx] for f in self._fields()))

    # -- exact resume ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The stored transitions (the filled part only), the write position and the sampler's
        generator state: what a checkpoint saves."""
        n = self.size
        return {
            "ptr": self.ptr,
            "size": n,
            "capacity": self.capacity,
            "fields": [_compact(f[:n]) for f in self._fields()],
            "generator": self.generator.get_state(),
            "generator_device": self.device.type,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` into a buffer of the same capacity (ValueError else)."""
        if state["capacity"] != self.capacity:
            raise ValueError(
                f"checkpoint buffer capacity {state['capacity']} != configured {self.capacity}"
            )
        n = state["size"]
        for store, saved in zip(self._fields(), state["fields"]):
            store[:n].copy_(saved.to(self.device))
        self.ptr, self.size = state["ptr"], n
        saved = state["generator"].cpu()  # generator states are CPU byte tensors
        if state.get("generator_device", self.device.type) == self.device.type:
            self.generator.set_state(saved)  # same kind of device: the stream continues exactly
        else:
            # CPU and CUDA generator states are not interchangeable (a run moved between them):
            # continue from a seed derived from the saved state, so the move is reproducible
            digest = hashlib.sha256(saved.numpy().tobytes()).digest()
            self.generator.manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def _compact(rows: Tensor) -> Tensor:
    """``rows`` on the CPU in storage of their own: ``torch.save`` writes a view's whole storage,
    so the first rows of a mostly empty 1M-row buffer would otherwise cost the full capacity."""
    if rows.device.type != "cpu":
        return rows.cpu()  # a fresh, compact copy
    return rows if rows.untyped_storage().nbytes() == rows.nbytes else rows.clone()
