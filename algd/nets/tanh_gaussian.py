"""The tanh-squashed Gaussian actor of SAC and its exact log-density.

``u ~ N(μθ(s), diag σθ(s)²)`` and ``a = tanh(u) ⊙ scale + bias`` maps the Gaussian into the action
box. By the change of variables (the map is invertible and acts per dimension),

    log π(a|s) = Σ_i [ log N(u_i; μ_i, σ_i) − log scale_i − log(1 − tanh² u_i) ],

and ``log(1 − tanh² u) = 2 (log 2 − u − softplus(−2u))`` is evaluated in this exact, stable form
(the SAC/CAL reference adds 1e-6 inside the log instead, which biases the density where
``|tanh u| → 1``). The network is the reference's (spec §7.1): an MLP with ReLU hidden layers whose
output holds the mean and the log standard deviation, the latter clamped to [−20, 2].
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from algd.nets.ensemble import MLP

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def tanh_gaussian_log_prob(u: Tensor, mean: Tensor, log_std: Tensor, scale: Tensor) -> Tensor:
    """``log π(a)`` of ``a = tanh(u) ⊙ scale + bias`` with ``u ~ N(mean, exp(log_std)²)``.

    Args:
        u: the pre-squash sample [..., A].
        mean, log_std: parameters of the Gaussian [..., A].
        scale: half-widths of the action box [A] (the bias does not change the density).

    Returns:
        the log-density of the action, summed over the action dimension: [...].
    """
    z = (u - mean) * torch.exp(-log_std)
    gaussian = -0.5 * z.square() - log_std - _HALF_LOG_2PI
    log_det = 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u)) + torch.log(scale)
    return (gaussian - log_det).sum(-1)


class ActorSample(NamedTuple):
    """An action of the tanh-Gaussian actor and its log-probability."""

    action: Tensor  #: [B, A] in the action box
    log_prob: Tensor  #: [B] log π(action|s) (zeros for the deterministic action)


class TanhGaussianActor(nn.Module):
    """π(a|s): a tanh-squashed diagonal Gaussian over a box action space.

    Args:
        obs_dim, act_dim: state and action sizes.
        action_low, action_high: bounds of the action box.
        hidden: hidden widths of the MLP (reference: 256, 256).
    """

    # registered buffers (they follow the module's device and dtype)
    action_scale: Tensor
    action_bias: Tensor

    def __init__(
        self, obs_dim: int, act_dim: int, action_low: Tensor, action_high: Tensor,
        hidden: Sequence[int] = (256, 256),
    ) -> None:
        super().__init__()
        self.act_dim = act_dim
        self.net = MLP(obs_dim, 2 * act_dim, hidden)  # [mean, log σ] heads on one trunk
        low = torch.as_tensor(action_low, dtype=torch.float32)
        high = torch.as_tensor(action_high, dtype=torch.float32)
        self.register_buffer("action_scale", (high - low) / 2.0)
        self.register_buffer("action_bias", (high + low) / 2.0)

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and clamped log standard deviation of the pre-squash Gaussian: ([B, A], [B, A])."""
        mean, log_std = self.net(obs).chunk(2, dim=-1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def squash(self, u: Tensor) -> Tensor:
        """Pre-squash sample → action: ``tanh(u) ⊙ scale + bias``."""
        return torch.tanh(u) * self.action_scale + self.action_bias

    def sample(self, obs: Tensor, deterministic: bool = False) -> ActorSample:
        """A reparameterised action and its log-density (deterministic: ``tanh(μ)``, as SAC
        evaluates)."""
        mean, log_std = self(obs)
        if deterministic:
            return ActorSample(self.squash(mean), mean.new_zeros(mean.shape[:-1]))
        u = mean + log_std.exp() * torch.randn_like(mean)  # rsample: gradient flows to μ and σ
        return ActorSample(self.squash(u), tanh_gaussian_log_prob(u, mean, log_std,
                                                                  self.action_scale))
