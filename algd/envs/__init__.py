"""Constrained environments: the interface, the built-in task and the task registry.

Importing this package registers every task: the built-in PointDetour, the MuJoCo velocity
tasks (:mod:`algd.envs.mujoco_velocity`) and the Safety-Gymnasium tasks
(:mod:`algd.envs.safety_gym`). The simulators themselves are imported only when an environment
is built, so the optional extras are needed only for the tasks that use them.
"""

from algd.envs.extras import quiet_plugin_notices

with quiet_plugin_notices():  # the first `import gymnasium` loads its plugins
    import gymnasium as gym

from algd.envs import mujoco_velocity, safety_gym  # noqa: E402,F401  (register their tasks)
from algd.envs.core import ConstrainedVecEnv, EpisodeTracker, GymVecEnv, RecordEpisodeCost, VecStep
from algd.envs.point_detour import PointDetourEnv, PointDetourParams, PointDetourVec
from algd.envs.registry import TaskSpec, get_task, list_tasks, register_resolver, register_task

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
    "register_resolver",
    "register_task",
]
