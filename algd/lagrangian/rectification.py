"""CAL's augmented-Lagrangian rectification of the actor's cost weight (Wu et al., ICLR 2024).

CAL ("Off-Policy Primal-Dual Safe RL", arXiv 2401.14758) keeps the ordinary Lagrangian actor loss
``… + w · Q̄c(s, a_π)`` but replaces the multiplier λ in it by

    w = λ − min(λ, c · mean_b(h − Q̄c(s_b, a_b)))          (a_b: replay actions of the batch)
      = max(0, λ + c · ĝ),   ĝ = mean_b Q̄c(s_b, a_b) − h,

which is ∂/∂Q̄c of the augmented-Lagrangian penalty ``([λ + c g]₊² − λ²) / (2c)`` (ALGD's L_A with
ρ = c, spec §2.4) evaluated at the batch-level constraint estimate ĝ. So while the constraint is
violated (ĝ > 0) the actor is pushed harder than λ alone would, and once it is comfortably
satisfied (c·ĝ ≤ −λ) the cost term is switched off; ``c = 0`` gives back plain λ (SAC-Lag).
This is the form of the CAL reference code (``rect = c·mean(h − Q̄c)``, clamped above at λ,
weight ``λ − rect``; spec §7.1). ``c`` is CAL's "convexity parameter".
"""

from __future__ import annotations

import torch
from torch import Tensor


def al_cost_weight(lam: Tensor, qc_buffer_mean: Tensor, threshold: float, c: float) -> Tensor:
    """The actor's cost weight ``λ − min(λ, c · (h − mean Q̄c(s, a_buffer)))`` (detached).

    Args:
        lam: the current multiplier λ (0-dim, ≥ 0).
        qc_buffer_mean: batch mean of the conservative cost estimate on replay actions (0-dim).
        threshold: h.
        c: the convexity parameter (0: no rectification, the weight is λ).
    """
    lam = lam.detach()
    rect = c * (threshold - qc_buffer_mean.detach())
    return lam - torch.minimum(rect, lam)
