"""Diffusion machinery: noise schedules, reverse chains, the policy and the MC score target."""

from algd.diffusion.policy import DiffusionPolicy
from algd.diffusion.samplers import Chain, ddpm_reverse, ve_reverse
from algd.diffusion.schedules import DDPMSchedule, VESchedule, ddpm_schedule, ve_schedule
from algd.diffusion.score_target import mc_score_target

__all__ = [
    "Chain",
    "DDPMSchedule",
    "DiffusionPolicy",
    "VESchedule",
    "ddpm_reverse",
    "ddpm_schedule",
    "mc_score_target",
    "ve_reverse",
    "ve_schedule",
]
