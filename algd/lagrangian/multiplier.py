"""Lagrange-multiplier updates (dual ascent), shared by every constrained algorithm.

* :class:`LogMultiplier` — the rule the ALGD reference uses (identical to CAL, spec §4.1):
  λ = exp(ℓ); one Adam step on ℓ with loss ``λ · (h − mean_b Q̄c(s_b, a_b))`` on replay actions.
  dℓ ∝ λ (mean Q̄c − h): λ grows while the estimated cost exceeds h and decays geometrically
  otherwise; λ > 0 by construction.
* :class:`ProjectedMultiplier` — plain projected gradient ascent ``λ ← [λ + η (mean Q̄c − h)]₊``,
  the textbook dual step (the classical augmented-Lagrangian update is the case η = ρ; spec §4.4).

Both keep their state on the device and never read it back to the host inside an update. A new
rule subclasses :class:`Multiplier`; an agent builds its rule in ``build_multiplier`` (see
``algd/algos/sac_lag.py``), which a subclass overrides to plug the new rule in.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Literal

import torch
from torch import Tensor, nn

from algd.nets.optim import adam_step, load_optimizer_state, set_grads

MultiplierRule = Literal["log-adam", "projected"]


class Multiplier(nn.Module, ABC):
    """A Lagrange-multiplier rule: what the constrained agents need from one.

    Its state must live in parameters, buffers or ``get_extra_state`` (so checkpoints and exact
    resume carry it), on the agent's device, and ``update`` must not read it back to the host
    (CUDA graphs replay the update).
    """

    @property
    @abstractmethod
    def value(self) -> Tensor:
        """Current λ ≥ 0 (detached 0-dim tensor): the constant the policy step uses."""

    @abstractmethod
    def update(self, cost_estimate: Tensor, threshold: float) -> Tensor:
        """One dual step from the batch-mean conservative cost ``cost_estimate`` (0-dim) against
        the threshold h; returns a 0-dim diagnostic (the rule's loss)."""


class LogMultiplier(Multiplier):
    """λ = exp(ℓ) updated by Adam on ℓ (spec §4.1)."""

    def __init__(self, init: float = 0.6931, lr: float = 3e-4) -> None:
        super().__init__()
        if init <= 0:
            raise ValueError(f"the initial multiplier must be > 0 for the log rule, got {init}")
        self.log_lam = nn.Parameter(torch.tensor(math.log(init)))
        self.optimizer = torch.optim.Adam([self.log_lam], lr=lr)

    # the optimiser's moments travel with the module's state_dict (exact resume)
    def get_extra_state(self) -> dict:
        return self.optimizer.state_dict()

    def set_extra_state(self, state: dict) -> None:
        load_optimizer_state(self.optimizer, state)

    @property
    def value(self) -> Tensor:
        """Current λ (detached 0-dim tensor)."""
        return self.log_lam.detach().exp()

    def update(self, cost_estimate: Tensor, threshold: float) -> Tensor:
        """One dual step from the batch-mean conservative cost ``cost_estimate`` (0-dim)."""
        lam = self.log_lam.exp()
        loss = lam * (threshold - cost_estimate.detach())
        diag = loss.detach()
        set_grads([self.log_lam], torch.autograd.grad(loss, [self.log_lam]))  # traceable
        adam_step(self.optimizer)
        return diag


class ProjectedMultiplier(Multiplier):
    """λ ← max(0, λ + η (Q̄c − h)) (spec §4.4)."""

    lam: Tensor  #: registered buffer (saved with the state_dict)

    def __init__(self, init: float = 0.0, lr: float = 1e-3) -> None:
        super().__init__()
        if init < 0:
            raise ValueError(f"the initial multiplier must be >= 0, got {init}")
        self.lr = lr
        self.register_buffer("lam", torch.tensor(float(init)))

    @property
    def value(self) -> Tensor:
        return self.lam.detach()

    @torch.no_grad()
    def update(self, cost_estimate: Tensor, threshold: float) -> Tensor:
        violation = cost_estimate.detach() - threshold
        self.lam.add_(self.lr * violation).clamp_(min=0.0)
        return -self.lam * violation


def make_multiplier(rule: MultiplierRule, init: float, lr: float) -> Multiplier:
    """The built-in rule named ``rule`` (``--multiplier``)."""
    if rule == "log-adam":
        return LogMultiplier(init, lr)
    if rule == "projected":
        return ProjectedMultiplier(init, lr)
    raise ValueError(f"unknown multiplier rule {rule!r}; use 'log-adam' or 'projected'")
