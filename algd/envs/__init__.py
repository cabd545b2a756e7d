"""Constrained environments: the interface, the built-in task and the task registry."""

import gymnasium as gym

from algd.envs.core import ConstrainedVecEnv, EpisodeTracker, GymVecEnv, RecordEpisodeCost, VecStep
from algd.envs.point_detour import PointDetourEnv, PointDetourParams, PointDetourVec
from algd.envs.registry import TaskSpec, get_task, list_tasks, register_task

if "algd/PointDetour-v0" not in gym.registry:
    gym.register(
        id="algd/PointDetour-v0",
        entry_point="algd.envs.point_detour:PointDetourEnv",
        max_episode_steps=None,
    )

__all__ = [
    "ConstrainedVecEnv",
    "EpisodeTracker",
    "GymVecEnv",
    "PointDetourEnv",
    "PointDetourParams",
    "PointDetourVec",
    "RecordEpisodeCost",
    "TaskSpec",
    "VecStep",
    "get_task",
    "list_tasks",
    "register_task",
]
