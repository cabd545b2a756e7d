"""Energies, multiplier updates and budget conversion: the Lagrangian side of safe RL."""

from algd.lagrangian.energy import (
    EnergyKind,
    augmented_lagrangian_energy,
    energy,
    lagrangian_energy,
    ucb_cost,
)
from algd.lagrangian.multiplier import (
    LogMultiplier,
    Multiplier,
    ProjectedMultiplier,
    make_multiplier,
)
from algd.lagrangian.rectification import al_cost_weight
from algd.lagrangian.threshold import critic_threshold, episode_budget_to_threshold

__all__ = [
    "EnergyKind",
    "LogMultiplier",
    "Multiplier",
    "ProjectedMultiplier",
    "al_cost_weight",
    "augmented_lagrangian_energy",
    "critic_threshold",
    "energy",
    "episode_budget_to_threshold",
    "lagrangian_energy",
    "make_multiplier",
    "ucb_cost",
]
