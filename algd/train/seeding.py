"""One master seed, split into independent streams (envs, eval envs, torch, replay sampling)."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class SeedStreams:
    """Independent seeds derived from one master seed with ``numpy.random.SeedSequence``."""

    env: int
    eval_env: int
    torch: int
    buffer: int
    python: int

    @classmethod
    def from_seed(cls, seed: int) -> "SeedStreams":
        if seed < 0:
            raise ValueError(f"the seed must be >= 0, got {seed}")
        words = np.random.SeedSequence(seed).generate_state(5, dtype=np.uint32)
        return cls(*(int(w) for w in words))

    def seed_globals(self) -> None:
        """Seed torch's and Python's global generators (network init and sampling noise)."""
        torch.manual_seed(self.torch)
        random.seed(self.python)


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cpu``, ``cuda`` and ``cuda:N`` are checked
    against this machine and returned. Other device types (``mps``, ``xpu``, ``meta``, ...) are
    refused: the training loop, CUDA graphs and the tests cover only these two."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cpu":
        if device.index not in (None, 0):
            raise ValueError(f"device {name!r}: the CPU takes no index; use --device cpu")
        return torch.device("cpu")
    if device.type != "cuda":
        raise ValueError(f"device {name!r} is not supported; use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available; use --device cpu")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA "
                         f"device(s), cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    return device
