"""The critic bank: twin reward critic and cost-critic ensemble as one batched network.

Members ``0..R-1`` are reward critics Q_1..Q_R (``R = 2``, the twin of spec §3.1: ReLU, Xavier
init); members ``R..R+E-1`` are the cost ensemble Qc_1..Qc_E (spec §3.2: SiLU, truncated-normal
init). One forward pass returns all ``R + E`` estimates for a batch of state-action pairs; the
Adam optimiser over the stacked weights is element-wise, so one optimiser over the bank updates
each member exactly as separate optimisers with the same learning rate would.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, NamedTuple

import torch
from torch import Tensor, nn

from algd.nets.ensemble import Activation, EnsembleMLP, Init, MemberGroup


class CriticValues(NamedTuple):
    """Outputs of :class:`CriticBank` for a batch of B pairs."""

    reward: Tensor  #: [R, B] reward-critic estimates Q_i(s, a)
    cost: Tensor  #: [E, B] cost-ensemble estimates Qc_e(s, a)


class CriticBank(nn.Module):
    """``R`` reward critics and ``E`` cost critics over ``concat(s, a)``, evaluated together.

    Args:
        obs_dim, act_dim: input sizes.
        hidden: hidden widths shared by every member (reference: two layers of 256).
        reward_members: R, number of reward critics (2 = clipped double Q).
        cost_members: E, size of the cost ensemble (0 = no cost critic).
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: tuple[int, ...] = (256, 256),
        reward_members: int = 2,
        cost_members: int = 4,
        reward_activation: Activation = "relu",
        cost_activation: Activation = "silu",
        reward_init: Init = "xavier_uniform",
        cost_init: Init = "trunc_normal",
    ) -> None:
        super().__init__()
        groups = [MemberGroup(reward_members, reward_activation, reward_init)]
        if cost_members > 0:
            groups.append(MemberGroup(cost_members, cost_activation, cost_init))
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.reward_members, self.cost_members = reward_members, cost_members
        self.net = EnsembleMLP(obs_dim + act_dim, 1, hidden, groups)

    def forward(self, obs: Tensor, act: Tensor, frozen: bool = False) -> CriticValues:
        """Evaluate every member on the pairs ``(obs[b], act[b])``; leading dims are flattened.

        ``frozen=True``: the critics as a fixed function, differentiable in ``obs`` and ``act``
        only (actor losses, score targets; :meth:`EnsembleMLP.forward`). Same values.
        """
        lead = obs.shape[:-1]
        q = self.net(self._pairs(obs, act), frozen).squeeze(-1)  # [R+E, B]
        q = q.reshape(q.shape[0], *lead)
        return CriticValues(q[: self.reward_members], q[self.reward_members :])

    def cost(self, obs: Tensor, act: Tensor, frozen: bool = False) -> Tensor:
        """The cost ensemble alone, ``[E, *lead]`` (the reward critics are not evaluated)."""
        if self.cost_members == 0:
            raise ValueError("this critic bank has no cost critics")
        lead = obs.shape[:-1]
        qc = self.net.group_forward(self._pairs(obs, act), 1, frozen).squeeze(-1)
        return qc.reshape(qc.shape[0], *lead)

    def at_states(self, obs: Tensor) -> CriticsAtStates:
        """The critics at the fixed states ``obs`` [S, obs_dim], as a fixed function of the action
        (weights and states constants): see :class:`CriticsAtStates`."""
        return CriticsAtStates(self, obs)

    @staticmethod
    def _pairs(obs: Tensor, act: Tensor) -> Tensor:
        return torch.cat([obs, act], dim=-1).reshape(-1, obs.shape[-1] + act.shape[-1])


#: :class:`CriticsAtStates` splits the first layer for states wider than this. Below, the state
#: half is a thin product bound by memory traffic, which computing it once does not shorten:
#: ``bench/split_first_layer.py`` on a 2-core EPYC (Zen 4), ALGD-VESDE at paper sizes, eager:
#: 0.99× at 17-wide states, 1.01× at 26 and 32, 1.04× at 40, 1.08× at 60, 1.12× at 100; both
#: variants at 17 0.93-1.06× (eager and compiled: no difference), at 60 1.07-1.12×
#: (``bench/results/cpu_epyc_zen4_split_first_layer*.txt``)
SPLIT_MIN_OBS = 32

_split_first_layer: bool | None = None


@contextmanager
def split_first_layer(enabled: bool | None) -> Iterator[None]:
    """Force :class:`CriticsAtStates`' split first layer on (``True``) or off (``False``) inside
    the block; ``None`` restores the default, split for states wider than :data:`SPLIT_MIN_OBS`.
    Off, it evaluates the bank on the concatenated ``[s; a]`` as
    ``CriticBank.forward(..., frozen=True)`` does. For same-run A/B measurements
    (``bench/split_first_layer.py``) and tests; both give the same values and gradients."""
    global _split_first_layer
    previous, _split_first_layer = _split_first_layer, enabled
    try:
        yield
    finally:
        _split_first_layer = previous


class CriticsAtStates:
    """A :class:`CriticBank` at fixed states, as a function of the action only.

    The first layer of every member is split, ``W₁ᵀ[s; a] + b₁ = (W₁ˢᵀ s + b₁) + W₁ᵃᵀ a``, and the
    state half is computed once here, for all the actions later evaluated at these states. ALGD's
    policy step evaluates the critics at each batch state ``1 + N`` times (the chain's action for
    the energy loss J and the N Monte-Carlo samples of the score target φ*, spec §2.5-2.6): the
    first layer's products shrink from ``(1 + N)·B`` rows of ``obs_dim + act_dim`` features to
    ``B`` rows of ``obs_dim`` once plus ``(1 + N)·B`` rows of ``act_dim``, and its input gradient
    to the ``act_dim`` columns (the states are constants). The ``[B, obs_dim]`` products are what
    wide observations make expensive: Safety-Gymnasium's navigation tasks have 60 (Point) and 72
    (Car) features (measured up to 100: ``bench/split_first_layer.py``).

    States at most :data:`SPLIT_MIN_OBS` wide are evaluated on the concatenated input (the split
    does not pay there). Either way the values equal :meth:`CriticBank.forward` with
    ``frozen=True`` to float rounding (tested), the states are constants (detached) and gradients
    flow to the action only. The state half is computed when this object is made, the rest of
    the weights are read at each call: make it after the critics' optimiser step and use it
    before the next.
    """

    bank: CriticBank
    obs: Tensor  #: [S, obs_dim], detached
    states: int  #: S
    offsets: tuple[Tensor, ...] | None  #: per member group ``[size, S, H1]``; None: not split

    def __init__(self, bank: CriticBank, obs: Tensor) -> None:
        if obs.dim() != 2 or obs.shape[-1] != bank.obs_dim:
            raise ValueError(f"obs must be [S, {bank.obs_dim}], got shape {tuple(obs.shape)}")
        self.bank, self.obs, self.states = bank, obs.detach(), obs.shape[0]
        split = (obs.shape[-1] > SPLIT_MIN_OBS if _split_first_layer is None
                 else _split_first_layer)
        self.offsets = bank.net.first_layer_offsets(self.obs) if split else None

    def __call__(self, act: Tensor) -> CriticValues:
        """Every member at ``act`` [..., S, act_dim] (row ``s`` of the last batch dim taken at
        state ``s``): ``CriticValues`` with shapes ``[R, ..., S]`` and ``[E, ..., S]``."""
        rows = self._rows(act)
        if self.offsets is None:
            return self.bank(self.obs.expand(*act.shape[:-1], self.obs.shape[-1]), act, True)
        q = self.bank.net(rows, offsets=self.offsets).squeeze(-1)
        q = q.reshape(q.shape[0], *act.shape[:-1])
        return CriticValues(q[: self.bank.reward_members], q[self.bank.reward_members :])

    def cost(self, act: Tensor) -> Tensor:
        """The cost ensemble alone at ``act`` [..., S, act_dim]: ``[E, ..., S]``."""
        if self.bank.cost_members == 0:
            raise ValueError("this critic bank has no cost critics")
        rows = self._rows(act)
        if self.offsets is None:
            return self.bank.cost(self.obs.expand(*act.shape[:-1], self.obs.shape[-1]), act, True)
        qc = self.bank.net.group_forward(rows, 1, offsets=self.offsets[1]).squeeze(-1)
        return qc.reshape(qc.shape[0], *act.shape[:-1])

    def _rows(self, act: Tensor) -> Tensor:
        """``act`` [..., S, act_dim] as ``[k·S, act_dim]`` rows (row ``k'·S + s`` at state s)."""
        if act.dim() < 2 or act.shape[-2:] != (self.states, self.bank.act_dim):
            raise ValueError(f"actions {tuple(act.shape)} do not end in [{self.states}, "
                             f"{self.bank.act_dim}] (one row per state these critics were built "
                             "at, then the action)")
        return act.reshape(-1, act.shape[-1])
