"""Energies that guide the diffusion policy, and the conservative cost estimate (spec §2.4, §3.3).

With ``g = Q̄c − h`` (the constraint value of a state-action pair under the conservative cost
estimate Q̄c and the critic threshold h):

* plain Lagrangian (the "direct usage" ablation, LGD):  ``L = −Q + λ g``
* augmented Lagrangian (ALGD):  ``L_A = −Q + (1/(2ρ)) ( [λ + ρ g]₊² − λ² )``

Piecewise: where ``λ + ρ g > 0`` (active), ``L_A = −Q + λ g + (ρ/2) g²`` and
``∇L_A = −∇Q + (λ + ρ g) ∇Q̄c``; elsewhere (comfortably feasible) ``L_A = −Q − λ²/(2ρ)``. At a KKT
point (``g ≤ 0, λ ≥ 0, λ g = 0``) both energies and their gradients coincide (spec §8, T4).
Lower energy = better action; the policy targets ``π(a|s) ∝ exp(−E(s, a)/β)``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

EnergyKind = Literal["augmented", "lagrangian"]


def ucb_cost(qc: Tensor, k: float = 1.0) -> Tensor:
    """Conservative cost estimate ``Q̄c = mean_e Qc_e + k · std_e Qc_e`` over the ensemble dim 0.

    The standard deviation is the unbiased (E − 1) sample std; with one member it is 0 (spec §3.3).
    """
    mean = qc.mean(0)
    if qc.shape[0] < 2 or k == 0.0:
        return mean
    return mean + k * qc.std(0, unbiased=True)


def lagrangian_energy(q: Tensor, qc: Tensor, lam: Tensor | float, threshold: float) -> Tensor:
    """Plain Lagrangian energy ``L = −Q + λ (Q̄c − h)``."""
    return -q + lam * (qc - threshold)


def augmented_lagrangian_energy(
    q: Tensor, qc: Tensor, lam: Tensor | float, threshold: float, rho: float
) -> Tensor:
    """Augmented-Lagrangian energy ``L_A = −Q + ([λ + ρ(Q̄c − h)]₊² − λ²) / (2ρ)`` (spec §2.4)."""
    active = torch.clamp(lam + rho * (qc - threshold), min=0.0)
    return -q + (active.square() - lam * lam) / (2.0 * rho)


def energy(
    kind: EnergyKind, q: Tensor, qc: Tensor, lam: Tensor | float, threshold: float, rho: float
) -> Tensor:
    """Dispatch on ``kind``: ``"augmented"`` (ALGD) or ``"lagrangian"`` (LGD)."""
    if kind == "augmented":
        return augmented_lagrangian_energy(q, qc, lam, threshold, rho)
    if kind == "lagrangian":
        return lagrangian_energy(q, qc, lam, threshold)
    raise ValueError(f"unknown energy {kind!r}; use 'augmented' or 'lagrangian'")
