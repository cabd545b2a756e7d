"""The critic bank: twin reward critic and cost-critic ensemble as one batched network.

Members ``0..R-1`` are reward critics Q_1..Q_R (``R = 2``, the twin of spec §3.1: ReLU, Xavier
init); members ``R..R+E-1`` are the cost ensemble Qc_1..Qc_E (spec §3.2: SiLU, truncated-normal
init). One forward pass returns all ``R + E`` estimates for a batch of state-action pairs; the
Adam optimiser over the stacked weights is element-wise, so one optimiser over the bank updates
each member exactly as separate optimisers with the same learning rate would.
"""

from __future__ import annotations

from typing import NamedTuple

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

    @staticmethod
    def _pairs(obs: Tensor, act: Tensor) -> Tensor:
        return torch.cat([obs, act], dim=-1).reshape(-1, obs.shape[-1] + act.shape[-1])
