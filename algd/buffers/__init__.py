"""Transition storage shared by every off-policy algorithm."""

from algd.buffers.replay import Batch, ReplayBuffer

__all__ = ["Batch", "ReplayBuffer"]
