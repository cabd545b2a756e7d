"""The diffusion policy: the network of spec §2.1 driven by a VE-SDE or DDPM reverse chain.

``sample(obs)`` draws actions (stochastic: random start and injected noise; deterministic: zero
start, no noise). ``sample(obs, record=True)`` also returns the action at every step, which the
score-matching loss needs (spec §2.5–2.6). Actions live in the environment's box through
``a = tanh(x) ⊙ scale + bias``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from algd.diffusion.samplers import Chain, ddpm_reverse, ve_reverse
from algd.diffusion.schedules import DDPMSchedule, VESchedule, ddpm_schedule, ve_schedule
from algd.nets.diffusion_net import DiffusionPolicyNet

Variant = Literal["vesde", "ddpm"]


class DiffusionPolicy(nn.Module):
    """A K-step diffusion policy over a box action space.

    Args:
        obs_dim, act_dim: state and action sizes.
        action_low, action_high: bounds of the action box.
        variant: ``"vesde"`` or ``"ddpm"``.
        steps: K.
        hidden, layers, time_dim: network sizes (spec §2.1).
        sigma_min, sigma_max: VE schedule (spec §2.3).
        beta_min, beta_max: DDPM schedule (spec §2.2).
        guidance_scale, guidance_normalize: DDPM guidance by the score head (spec §2.2 step 3).
    """

    # registered buffers (they follow the module's device and dtype)
    mc_sigma_table: Tensor
    action_scale: Tensor
    action_bias: Tensor

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        action_low: Tensor,
        action_high: Tensor,
        variant: Variant = "vesde",
        steps: int = 5,
        hidden: int = 128,
        layers: int = 3,
        time_dim: int = 16,
        sigma_min: float = 0.01,
        sigma_max: float = 1.0,
        beta_min: float = 1e-4,
        beta_max: float = 0.02,
        guidance_scale: float = 0.05,
        guidance_normalize: bool = True,
    ) -> None:
        super().__init__()
        if variant not in ("vesde", "ddpm"):
            raise ValueError(f"variant must be 'vesde' or 'ddpm', got {variant!r}")
        self.variant: Variant = variant
        self.act_dim = act_dim
        self.net = DiffusionPolicyNet(obs_dim, act_dim, steps, hidden, layers, time_dim)
        self.schedule: VESchedule | DDPMSchedule = (
            ve_schedule(steps, sigma_min, sigma_max)
            if variant == "vesde"
            else ddpm_schedule(steps, beta_min, beta_max)
        )
        self.register_buffer("mc_sigma_table", self.schedule.mc_sigma.clone())
        low = torch.as_tensor(action_low, dtype=torch.float32)
        high = torch.as_tensor(action_high, dtype=torch.float32)
        self.register_buffer("action_scale", (high - low) / 2.0)
        self.register_buffer("action_bias", (high + low) / 2.0)
        self.guidance_scale = guidance_scale
        self.guidance_normalize = guidance_normalize
        # start of the stochastic chain: N(0, σ_max² I) (VE, spec §2.3; σ_max as configured, not
        # the schedule's top level, which is σ_min when K = 1) or N(0, I) (DDPM)
        self.start_std = float(sigma_max) if variant == "vesde" else 1.0

    @property
    def steps(self) -> int:
        return self.schedule.steps

    def squash(self, x: Tensor) -> Tensor:
        """Latent → action: ``tanh(x) ⊙ scale + bias``."""
        return torch.addcmul(self.action_bias, torch.tanh(x), self.action_scale)

    def mc_sigma(self, tau: Tensor) -> Tensor:
        """Noise level σ̃_τ of the score target for per-sample step indices ``tau`` → [B, 1]."""
        return self.mc_sigma_table[tau].unsqueeze(-1)

    def sample(self, obs: Tensor, deterministic: bool = False, record: bool = False) -> Chain:
        """Draw one action per state in ``obs`` [B, S] (differentiable in the parameters)."""
        net = self.net
        batch = obs.shape[0]
        if deterministic:
            x = obs.new_zeros(batch, self.act_dim)
        else:
            x = self.start_std * torch.randn(batch, self.act_dim, device=obs.device, dtype=obs.dtype)
        t_feat, w_x_t = net.time_features(), net.action_weight_t()
        if self.variant == "vesde":
            base = net.obs_features(obs) + t_feat.unsqueeze(1)  # [K, B, H]: all steps at once

            def score_fn(a: Tensor, t: int) -> Tensor:
                return net.score_head(net.trunk(base[t], a, w_x_t))

            assert isinstance(self.schedule, VESchedule)
            return ve_reverse(
                score_fn, x, self.schedule, noise=not deterministic, squash=self.squash,
                record=record,
            )

        # DDPM: ε at the latent and φ at the action in one trunk pass over 2B rows
        base2 = net.obs_features(obs).repeat(2, 1) + t_feat.unsqueeze(1)  # [K, 2B, H]

        def model_fn(x_t: Tensor, a: Tensor, t: int) -> tuple[Tensor, Tensor]:
            h = net.trunk(base2[t], torch.cat([x_t, a], 0), w_x_t)
            return net.eps_head(h[:batch]), net.score_head(h[batch:])

        assert isinstance(self.schedule, DDPMSchedule)
        return ddpm_reverse(
            model_fn, x, self.schedule, guidance_scale=self.guidance_scale,
            guidance_normalize=self.guidance_normalize, noise=not deterministic,
            squash=self.squash, record=record,
        )

    def score(self, obs: Tensor, action: Tensor, tau: Tensor) -> Tensor:
        """φθ(s, a, τ) with per-sample step indices ``tau`` [B]."""
        return self.net.score(obs, action, tau)
