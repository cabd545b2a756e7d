"""Noise schedules of the two diffusion variants (spec §2.2, §2.3).

Both are computed in float64 and stored as float32 tensors (for batched indexing by a per-sample
step index τ) and as Python floats (for the reverse loop, which indexes one step at a time and so
needs no tensor indexing, device transfer or allocation per step).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

EPS = 1e-8  #: the reference adds this to every denominator and inside every square root


@dataclass(frozen=True)
class VESchedule:
    """Variance-exploding schedule: ``σ_k = σ_min (σ_max/σ_min)^{k/(K-1)}`` (spec §2.3).

    ``delta[k] = σ_k² − σ_{k−1}²`` (σ_{−1} := 0, clamped ≥ 1e-8) is both the drift step size and
    the injected noise variance of reverse step k.
    """

    sigma: Tensor  #: [K] noise level σ_k
    delta: Tensor  #: [K] Δ_k
    sigma_f: tuple[float, ...]
    delta_f: tuple[float, ...]
    sqrt_delta_f: tuple[float, ...]

    @property
    def steps(self) -> int:
        return len(self.sigma_f)

    @property
    def sigma_max(self) -> float:
        return self.sigma_f[-1]

    @property
    def mc_sigma(self) -> Tensor:
        """Noise level σ̃_k of step k used by the Monte-Carlo score target: σ_k."""
        return self.sigma


def ve_schedule(steps: int, sigma_min: float = 0.01, sigma_max: float = 1.0) -> VESchedule:
    """Build the geometric VE schedule with ``steps`` = K levels from σ_min to σ_max."""
    if steps < 1:
        raise ValueError(f"the number of diffusion steps K must be >= 1, got {steps}")
    if not 0 < sigma_min <= sigma_max:
        raise ValueError(f"need 0 < sigma_min <= sigma_max, got {sigma_min}, {sigma_max}")
    u = torch.linspace(0.0, 1.0, steps, dtype=torch.float64)
    sigma = sigma_min * (sigma_max / sigma_min) ** u
    prev = torch.cat([torch.zeros(1, dtype=torch.float64), sigma[:-1]])
    delta = (sigma**2 - prev**2).clamp_min(EPS)
    return VESchedule(
        sigma=sigma.float(),
        delta=delta.float(),
        sigma_f=tuple(sigma.tolist()),
        delta_f=tuple(delta.tolist()),
        sqrt_delta_f=tuple(delta.sqrt().tolist()),
    )


@dataclass(frozen=True)
class DDPMSchedule:
    """Linear-β DDPM schedule and its posterior coefficients (spec §2.2).

    ``μ = c1_k x̂0 + c2_k x_k`` is the mean of q(x_{k−1} | x_k, x̂0) and ``posterior_std[k]`` its
    standard deviation (unused at k = 0, which outputs the mean).
    """

    beta: Tensor
    alpha_bar: Tensor
    mc_sigma: Tensor  #: [K] σ̃_k = sqrt(1 − ᾱ_k), the MC score-target noise level
    sqrt_alpha_bar_f: tuple[float, ...]
    sqrt_one_minus_alpha_bar_f: tuple[float, ...]
    c1_f: tuple[float, ...]
    c2_f: tuple[float, ...]
    posterior_std_f: tuple[float, ...]
    #: μ folded into ``mean_x_k x_k − mean_eps_k ε``: with x̂0 = (x_k − sqrt(1−ᾱ_k) ε)/sqrt(ᾱ_k),
    #: mean_x = c1/sqrt(ᾱ) + c2 and mean_eps = c1 sqrt(1−ᾱ)/sqrt(ᾱ) (float64, then rounded)
    mean_x_f: tuple[float, ...]
    mean_eps_f: tuple[float, ...]

    @property
    def steps(self) -> int:
        return len(self.c1_f)


def ddpm_schedule(steps: int, beta_min: float = 1e-4, beta_max: float = 0.02) -> DDPMSchedule:
    """Build the DDPM schedule ``β_k = linspace(β_min, β_max, K)`` with ᾱ_{−1} := 1."""
    if steps < 1:
        raise ValueError(f"the number of diffusion steps K must be >= 1, got {steps}")
    if not 0 < beta_min <= beta_max < 1:
        raise ValueError(f"need 0 < beta_min <= beta_max < 1, got {beta_min}, {beta_max}")
    beta = torch.linspace(beta_min, beta_max, steps, dtype=torch.float64)
    alpha = 1.0 - beta
    alpha_bar = torch.cumprod(alpha, 0)
    alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])
    denom = 1.0 - alpha_bar + EPS
    c1 = alpha_bar_prev.sqrt() * beta / denom
    c2 = alpha.sqrt() * (1.0 - alpha_bar_prev) / denom
    post_var = beta * (1.0 - alpha_bar_prev) / denom
    sqrt_ab, sqrt_1mab = (alpha_bar + EPS).sqrt(), (1.0 - alpha_bar).sqrt()
    return DDPMSchedule(
        beta=beta.float(),
        alpha_bar=alpha_bar.float(),
        mc_sigma=(1.0 - alpha_bar).sqrt().float(),
        sqrt_alpha_bar_f=tuple(sqrt_ab.tolist()),
        sqrt_one_minus_alpha_bar_f=tuple(sqrt_1mab.tolist()),
        c1_f=tuple(c1.tolist()),
        c2_f=tuple(c2.tolist()),
        posterior_std_f=tuple((post_var + EPS).sqrt().tolist()),
        mean_x_f=tuple((c1 / sqrt_ab + c2).tolist()),
        mean_eps_f=tuple((c1 * sqrt_1mab / sqrt_ab).tolist()),
    )
