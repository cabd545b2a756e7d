"""The diffusion policy's network: one trunk, a noise head εθ and a score head φθ (spec §2.1).

``concat[s, x, emb(t)] → Linear(H) → ReLU → … (3 layers) → {eps_head, score_head}``, with a learned
time-embedding table ``Embedding(K, 16)``, Xavier-uniform weights and zero biases.

The first layer is affine in the concatenation, so ``W [s; x; e] = W_s s + W_x x + W_e e``: a
reverse chain computes ``W_s s`` once per state and ``W_e e_t`` once per step index instead of once
per denoising step, and their sum ``base_t = W_s s + b + W_e e_t`` once per chain for all K
steps; each step's first layer is then one fused ``base_t + W_x x`` (``addmm``) — same numbers up
to float rounding, a fraction of the first-layer work and of the per-step op count, which is what
the latency of one action draw is made of.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class DiffusionPolicyNet(nn.Module):
    """φθ(s, a, t) and εθ(s, x, t) sharing one trunk.

    Args:
        obs_dim, act_dim: sizes of the state and of the action/latent.
        steps: K, number of reverse steps (size of the time-embedding table).
        hidden: trunk width H (reference: 128).
        layers: number of trunk layers (reference: 3).
        time_dim: width of the learned time embedding (reference: 16).
    """

    def __init__(
        self, obs_dim: int, act_dim: int, steps: int, hidden: int = 128, layers: int = 3,
        time_dim: int = 16,
    ) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError("the trunk needs at least one layer")
        self.obs_dim, self.act_dim, self.steps = obs_dim, act_dim, steps
        self.time_emb = nn.Embedding(steps, time_dim)  # N(0, 1) init, as the reference
        self.inp = nn.Linear(obs_dim + act_dim + time_dim, hidden)
        self.hidden = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(layers - 1))
        self.eps_head = nn.Linear(hidden, act_dim)
        self.score_head = nn.Linear(hidden, act_dim)
        for lin in [self.inp, *self.hidden, self.eps_head, self.score_head]:
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    # -- first layer, split by input block ----------------------------------------------------
    def obs_features(self, obs: Tensor) -> Tensor:
        """``W_s s + b`` for a batch of states: [B, H]."""
        return F.linear(obs, self.inp.weight[:, : self.obs_dim], self.inp.bias)

    def time_features(self) -> Tensor:
        """``W_e emb(t)`` for every step index: [K, H]."""
        return self.time_emb.weight @ self.inp.weight[:, self.obs_dim + self.act_dim :].T

    def action_weight_t(self) -> Tensor:
        """``W_xᵀ``, the first layer's action/latent block as ``[A, H]`` (a view)."""
        return self.inp.weight[:, self.obs_dim : self.obs_dim + self.act_dim].T

    def trunk(self, base: Tensor, x: Tensor, w_x_t: Tensor | None = None) -> Tensor:
        """Trunk features at the action/latent ``x`` [..., B, A], given the rest of the first layer,
        ``base = W_s s + b + W_e emb(t)`` (broadcastable to [..., B, H]), and optionally ``W_xᵀ``
        (:meth:`action_weight_t`, precomputed once per chain). The first layer is then one
        fused ``base + x W_xᵀ`` (a reverse chain's step costs per-op overhead, not FLOPs)."""
        w_x_t = self.action_weight_t() if w_x_t is None else w_x_t
        h = F.relu(torch.addmm(base, x, w_x_t) if x.dim() == 2 else base + x @ w_x_t)
        for lin in self.hidden:
            h = F.relu(lin(h))
        return h

    # -- convenience entry points (one call, no precomputation) -------------------------------
    def _t_feat(self, t: int | Tensor) -> Tensor:
        return self.time_features()[t]

    def score(self, obs: Tensor, action: Tensor, t: int | Tensor) -> Tensor:
        """φθ(s, a, t): the learned score of the energy-based policy at action ``a``."""
        return self.score_head(self.trunk(self.obs_features(obs) + self._t_feat(t), action))

    def eps(self, obs: Tensor, latent: Tensor, t: int | Tensor) -> Tensor:
        """εθ(s, x, t): the noise prediction of the DDPM variant at latent ``x``."""
        return self.eps_head(self.trunk(self.obs_features(obs) + self._t_feat(t), latent))
