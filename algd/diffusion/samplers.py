"""Reverse (denoising) chains of the two diffusion variants, independent of any network.

Each sampler runs the K reverse steps ``t = K−1 … 0`` on a latent ``x`` and returns the final action
``squash(x)``. The model enters only through callables, so the same code drives the trained policy
(:mod:`algd.diffusion.policy`) and the closed-form tests (exact Gaussian scores).

* VE-SDE (spec §2.3, the corrected release): ``x ← x + Δ_t φ(squash(x), t)``, then
  ``x ← x + sqrt(Δ_t) z`` for t > 0 — Euler–Maruyama on the reverse VE SDE when φ is the score.
* DDPM (spec §2.2): ``x̂0 = (x − sqrt(1−ᾱ_t) ε)/sqrt(ᾱ_t)``, ``μ = c1_t x̂0 + c2_t x``, plus the guidance
  ``w_g φ/‖φ‖`` of the score head; ``x ← μ + σ_t z`` for t > 0.

``noise=False`` gives the deterministic chain used for evaluation (no noise at any step; the
reference's DDPM still injected noise there, spec §9.5 — fixed here).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch
from torch import Tensor

from algd.diffusion.schedules import EPS, DDPMSchedule, VESchedule

ScoreFn = Callable[[Tensor, int], Tensor]  #: φ(action, t) → [B, A]
DDPMModelFn = Callable[[Tensor, Tensor, int], tuple[Tensor, Tensor]]  #: (x, a, t) → (ε, φ)
Squash = Callable[[Tensor], Tensor]


def identity(x: Tensor) -> Tensor:
    return x


class Chain(NamedTuple):
    """Output of a reverse chain."""

    action: Tensor  #: [B, A] the final action squash(x) after step 0
    inputs: Tensor | None  #: [K, B, A] action entering step t (index t), when recorded

    def step_points(self, where: str) -> Tensor:
        """Action-space points per step index, [K, B, A].

        ``"input"``: the action entering step t — where φθ(·, t) is queried while sampling.
        ``"output"``: the action after step t (the reference's choice, spec §9.4); for t = 0 this
        is the final action.
        """
        if self.inputs is None:
            raise ValueError("the chain was run without record=True")
        if where == "input":
            return self.inputs
        if where == "output":
            return torch.cat([self.action.unsqueeze(0), self.inputs[:-1]], 0)
        raise ValueError(f"where must be 'input' or 'output', got {where!r}")


def ve_reverse(
    score_fn: ScoreFn,
    x: Tensor,
    schedule: VESchedule,
    *,
    noise: bool = True,
    squash: Squash = identity,
    record: bool = False,
) -> Chain:
    """Run the VE-SDE reverse chain from latent ``x`` (spec §2.3)."""
    inputs: list[Tensor] = []
    for t in reversed(range(schedule.steps)):
        a = squash(x)
        if record:
            inputs.append(a)
        x = torch.add(x, score_fn(a, t), alpha=schedule.delta_f[t])  # x + Δ_t φ
        if noise and t > 0:
            x = torch.add(x, torch.randn_like(x), alpha=schedule.sqrt_delta_f[t])  # + sqrt(Δ_t) z
    return Chain(squash(x), torch.stack(inputs[::-1]) if record else None)


def ddpm_reverse(
    model_fn: DDPMModelFn,
    x: Tensor,
    schedule: DDPMSchedule,
    *,
    guidance_scale: float = 0.05,
    guidance_normalize: bool = True,
    noise: bool = True,
    squash: Squash = identity,
    record: bool = False,
) -> Chain:
    """Run the guided DDPM reverse chain from latent ``x`` (spec §2.2).

    ``model_fn(x, a, t)`` returns the noise prediction ε at the latent and the score φ at the
    action ``a = squash(x)``.
    """
    inputs: list[Tensor] = []
    for t in reversed(range(schedule.steps)):
        a = squash(x)
        if record:
            inputs.append(a)
        eps, phi = model_fn(x, a, t)
        # μ = c1 x̂0 + c2 x with x̂0 = (x − sqrt(1−ᾱ_t) ε)/sqrt(ᾱ_t), as one fused step (the
        # coefficients folded in float64 by the schedule): fewer ops per step is lower latency
        mu = torch.add(x * schedule.mean_x_f[t], eps, alpha=-schedule.mean_eps_f[t])
        if guidance_scale != 0.0:  # + w_g φ/‖φ‖ (or + w_g φ)
            mu = (torch.addcdiv(mu, phi, phi.norm(dim=-1, keepdim=True) + EPS,
                                value=guidance_scale)
                  if guidance_normalize else torch.add(mu, phi, alpha=guidance_scale))
        if noise and t > 0:  # + σ_t z
            mu = torch.add(mu, torch.randn_like(mu), alpha=schedule.posterior_std_f[t])
        x = mu
    return Chain(squash(x), torch.stack(inputs[::-1]) if record else None)
