"""The Monte-Carlo score target of ALGD (spec §2.5; iDEM-style self-normalised estimator).

For the Boltzmann policy ``π_β(a|s) ∝ exp(−E(s, a)/β)`` smoothed by Gaussian noise of level σ, the
score at x is

    ∇_x log ∫ exp(−E(y)/β) N(y; x, σ²I) dy  =  E_{y ~ w}[ −∇E(y)/β ],   w(y) ∝ exp(−E(y)/β) N(y; x, σ²I),

estimated with N samples ``y_i = x + σ ε_i`` and self-normalised weights ``softmax_i(−E(y_i)/β)``:

    φ*(x) = −(1/β) Σ_i w_i ∇E(y_i).

The estimator is consistent as N → ∞ (bias O(1/N)); for a Gaussian energy it converges to the
closed form −(x − m)/(βs² + σ²) (tested).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

EnergyFn = Callable[[Tensor], Tensor]  #: actions [N, B, A] → energies [N, B]


def perturb(points: Tensor, sigma: Tensor | float, num_samples: int) -> Tensor:
    """``ã_i = x + σ ε_i``, ``ε_i ~ N(0, I)``: [N, B, A] samples around detached ``points``,
    returned as a leaf that requires grad (for ∇E(ã_i))."""
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    x = points.detach()
    noise = torch.randn((num_samples, *x.shape), device=x.device, dtype=x.dtype)
    return (x.unsqueeze(0) + sigma * noise).requires_grad_(True)


def self_normalised_score(energy: Tensor, grad: Tensor, temperature: float = 1.0) -> Tensor:
    """``φ* = −(1/β) Σ_i softmax_i(−E_i/β) ∇E_i`` from energies [N, B] and their gradients
    [N, B, A] at the perturbed samples (detached result)."""
    weights = torch.softmax(-energy.detach() / temperature, dim=0).unsqueeze(-1)
    return -(weights * grad.detach()).sum(0) / temperature


def mc_score_target(
    energy_fn: EnergyFn,
    points: Tensor,
    sigma: Tensor | float,
    num_samples: int,
    temperature: float = 1.0,
) -> Tensor:
    """Estimate the smoothed Boltzmann score at ``points`` [B, A] (detached result).

    Args:
        energy_fn: maps perturbed actions [N, B, A] to energies [N, B]; must be differentiable in
            its input (critic parameters may be anything: no parameter gradient is taken).
        points: where to estimate the score (detached internally).
        sigma: smoothing noise level, a float or a [B, 1] tensor (per-sample step levels).
        num_samples: N, Monte-Carlo samples per point.
        temperature: β of the Boltzmann density.
    """
    y = perturb(points, sigma, num_samples)
    with torch.enable_grad():
        energy = energy_fn(y)
        (grad,) = torch.autograd.grad(energy.sum(), y)
    return self_normalised_score(energy, grad, temperature)
