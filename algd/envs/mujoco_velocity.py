"""Velocity-constrained MuJoCo locomotion on Gymnasium's v4 environments (``algd[mujoco]``).

The robot is rewarded for running forward (Gymnasium's own reward, unchanged) and pays a safety
cost for its speed. Two protocols exist in the literature and their numbers are not comparable,
so each is a separately named task:

**ALGD/CAL protocol** (the paper's, spec §1.2–1.5, §6.3), names ``<Robot>Velocity``:

* per-step cost = the robot's speed: ``|v_x|`` (HalfCheetah, Hopper) or the planar speed
  ``sqrt(v_x² + v_y²)`` (Ant, Humanoid), with ``v`` read from the environment's
  ``info["x_velocity"]``/``info["y_velocity"]`` (a finite difference of the torso's, or for
  Humanoid the centre of mass's, position over one control step);
* the budget bounds the *discounted* episode cost ``Σ_t 0.99^t c_t`` (Ant 103.115, HalfCheetah
  151.989, Hopper 82.748, Humanoid 20.140), and the critic threshold is that budget itself;
* observations as in the reference: Ant's first 27 numbers (Gymnasium v4's default already),
  Humanoid's first 45 (``qpos[2:]`` and ``qvel``, without the contact and inertia terms);
* episodes end when the robot falls (terminal) or after 1000 steps. The reference (gym v3)
  reported the 1000-step time limit as ``done``, so **the time limit is stored as terminal for
  both critics** (``TaskSpec.truncation_terminal``; spec §1.5). Falls are terminal for the cost
  critic too (mask = 1 − done), which the spec flags as an incentive to fall (§9.13).

**Safety-Gymnasium protocol** (Safety-Gymnasium's ``Safety<Robot>Velocity-v1`` and OmniSafe's
benchmarks), names ``Safety<Robot>Velocity-v1``:

* per-step cost = ``1[v > threshold]`` with ``v`` the signed forward velocity ``v_x``
  (HalfCheetah, Hopper, Walker2d, Swimmer) or the planar speed (Ant, Humanoid) and the v1
  thresholds;
* the limit is 25 on the plain (undiscounted) cost of a 1000-step episode;
* full observations (Ant 27, Humanoid 376); time-limit truncation bootstraps (not terminal).

Safety-Gymnasium 1.0.0 builds these exact environments by subclassing the same Gymnasium v4
classes (same model, reward and velocity); algd implements them as a cost wrapper, so they need
only MuJoCo, not Safety-Gymnasium. Walker2d and Swimmer appear only in this protocol: the ALGD
and CAL papers give no budget for them.

Swimmer-v4's model file uses an attribute MuJoCo 3 rejects (``collision="predefined"``); algd
loads it with the same two edits Gymnasium made for its v5 model (drop the attribute, turn
contacts off in the default geom class, which is what "predefined" with no contact pairs
meant), so the dynamics are unchanged.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Literal

import gymnasium as gym
import numpy as np

from algd.envs.extras import require_extra
from algd.envs.registry import TaskSpec, register_task
from algd.envs.snapshot import register_snapshot_type

Measure = Literal["abs_x", "x", "planar"]

EPISODE_STEPS = 1000
SAFETY_GYM_LIMIT = 25.0


# -- wrappers ----------------------------------------------------------------------------------
def velocity_of(info: dict[str, Any], measure: Measure) -> float:
    """The velocity a cost is computed from: ``|v_x|``, ``v_x`` or ``sqrt(v_x² + v_y²)``."""
    vx = float(info["x_velocity"])
    if measure == "abs_x":
        return abs(vx)
    if measure == "x":
        return vx
    return float(np.hypot(vx, float(info["y_velocity"])))


@register_snapshot_type  # stateless: resumable mid-episode (algd.envs.snapshot)
class VelocityCost(gym.Wrapper):
    """Adds ``info["cost"]``: the speed itself (``threshold=None``) or ``1[speed > threshold]``.

    ``info["velocity"]`` keeps the measured speed, so logs can show it either way.
    """

    def __init__(self, env: gym.Env, measure: Measure, threshold: float | None = None) -> None:
        super().__init__(env)
        self.measure: Measure = measure
        self.threshold = threshold

    def step(self, action: Any):  # type: ignore[override]
        obs, reward, terminated, truncated, info = self.env.step(action)
        v = velocity_of(info, self.measure)
        info = dict(info)
        info["velocity"] = v
        info["cost"] = v if self.threshold is None else float(v > self.threshold)
        return obs, reward, terminated, truncated, info


@register_snapshot_type
class ObservationPrefix(gym.ObservationWrapper):
    """Keeps the first ``dims`` numbers of a flat Box observation (the MBPO/CAL cuts)."""

    def __init__(self, env: gym.Env, dims: int) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1 or space.shape[0] < dims:
            raise ValueError(f"cannot keep {dims} dims of observation space {space}")
        self.dims = dims
        # Box takes any numpy dtype; gymnasium 0.29 annotates dtype as a scalar type only
        self.observation_space = gym.spaces.Box(space.low[:dims], space.high[:dims],
                                                dtype=space.dtype)  # type: ignore[arg-type]

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return observation[: self.dims]


# -- MuJoCo 3 compatibility ---------------------------------------------------------------------
@contextmanager
def _without_settotalmass_notice() -> Iterator[None]:
    """Silence MuJoCo 3's deprecation notice for HalfCheetah-v4's ``settotalmass`` attribute
    (printed, and appended to ``MUJOCO_LOG.TXT`` in the working directory, at every model
    compilation); any other MuJoCo warning goes on to the previous handler or to Python's."""
    import mujoco

    previous = mujoco.get_mju_user_warning()

    def handler(message: str) -> None:
        if "settotalmass" in message:
            return
        if previous is not None:
            previous(message)
        else:
            warnings.warn(f"MuJoCo: {message}", RuntimeWarning, stacklevel=2)

    mujoco.set_mju_user_warning(handler)
    try:
        yield
    finally:
        mujoco.set_mju_user_warning(previous)


# -- Swimmer ----------------------------------------------------------------------------------
_SWIMMER_EDITS = (
    (' collision="predefined"', ""),
    ('<geom conaffinity="1" condim="1" contype="1"', '<geom conaffinity="0" condim="1" contype="0"'),
)


def swimmer_xml(path: str | Path) -> str:
    """Gymnasium 0.29's ``swimmer.xml`` with the two edits that make MuJoCo 3 load it."""
    text = Path(path).read_text()
    for old, new in _SWIMMER_EDITS:
        if old not in text:
            raise RuntimeError(f"{path} is not the Swimmer-v4 model algd knows how to fix "
                               f"(missing {old.strip()!r}); use Gymnasium 0.29.x")
        text = text.replace(old, new)
    return text


@lru_cache(maxsize=1)
def _swimmer_class() -> type:
    import mujoco
    from gymnasium.envs.mujoco.swimmer_v4 import SwimmerEnv

    class SwimmerV4(SwimmerEnv):
        """Gymnasium's Swimmer-v4 with its model loaded through :func:`swimmer_xml`."""

        def _initialize_simulation(self):  # same as MujocoEnv's, from the edited text
            model = mujoco.MjModel.from_xml_string(swimmer_xml(self.fullpath))
            model.vis.global_.offwidth = self.width
            model.vis.global_.offheight = self.height
            return model, mujoco.MjData(model)

    return register_snapshot_type(SwimmerV4)  # a MujocoEnv with no extra Python state


def make_swimmer_v4(**kwargs: Any) -> gym.Env:
    """Entry point of ``algd/Swimmer-v4`` (Swimmer-v4 that loads on MuJoCo 3)."""
    return _swimmer_class()(**kwargs)


if "algd/Swimmer-v4" not in gym.registry:
    gym.register(id="algd/Swimmer-v4", entry_point="algd.envs.mujoco_velocity:make_swimmer_v4",
                 max_episode_steps=EPISODE_STEPS, reward_threshold=360.0)


# -- the robots and their protocols ----------------------------------------------------------
@dataclass(frozen=True)
class Robot:
    """One locomotion robot and its constants under the two protocols."""

    name: str
    gym_id: str
    #: ALGD/CAL protocol: speed measure, discounted budget (spec §1.3), observation cut
    paper_measure: Measure | None
    paper_budget: float | None
    paper_obs_dims: int | None
    #: Safety-Gymnasium v1 protocol: velocity measure and threshold of the indicator cost
    sg_measure: Measure
    sg_threshold: float


ROBOTS: tuple[Robot, ...] = (
    Robot("HalfCheetah", "HalfCheetah-v4", "abs_x", 151.989, None, "x", 3.2096),
    Robot("Hopper", "Hopper-v4", "abs_x", 82.748, None, "x", 0.7402),
    Robot("Ant", "Ant-v4", "planar", 103.115, 27, "planar", 2.6222),
    Robot("Humanoid", "Humanoid-v4", "planar", 20.140, 45, "planar", 1.4149),
    Robot("Walker2d", "Walker2d-v4", None, None, None, "x", 2.3415),
    Robot("Swimmer", "algd/Swimmer-v4", None, None, None, "x", 0.2282),
)

_MEASURE_TEXT = {"abs_x": "|v_x|", "x": "v_x", "planar": "planar speed"}


def make_velocity_env(robot: Robot, protocol: Literal["paper", "safety-gymnasium"],
                      render_mode: str | None = None) -> gym.Env:
    """One environment of ``robot`` under ``protocol``, reporting ``info["cost"]``."""
    task = f"{robot.name}Velocity" if protocol == "paper" else f"Safety{robot.name}Velocity-v1"
    require_extra("mujoco", f"task {task}")
    with _without_settotalmass_notice():
        env = gym.make(robot.gym_id, render_mode=render_mode)
    if protocol == "paper":
        assert robot.paper_measure is not None
        env = VelocityCost(env, robot.paper_measure)
        if robot.paper_obs_dims is not None:
            env = ObservationPrefix(env, robot.paper_obs_dims)
    else:
        env = VelocityCost(env, robot.sg_measure, robot.sg_threshold)
    return env


def _register() -> None:
    for robot in ROBOTS:
        if robot.paper_measure is not None and robot.paper_budget is not None:
            cut = f", obs cut to {robot.paper_obs_dims}" if robot.paper_obs_dims else ""
            register_task(TaskSpec.from_gym(
                f"{robot.name}Velocity",
                lambda render_mode=None, r=robot: make_velocity_env(r, "paper", render_mode),
                cost_limit=robot.paper_budget,
                budget="discounted",
                max_episode_steps=EPISODE_STEPS,
                truncation_terminal=True,
                protocol="ALGD/CAL",
                extra="mujoco",
                description=f"{robot.gym_id}, cost {_MEASURE_TEXT[robot.paper_measure]} per step"
                f"{cut}; time limit terminal for the critics",
            ))
        register_task(TaskSpec.from_gym(
            f"Safety{robot.name}Velocity-v1",
            lambda render_mode=None, r=robot: make_velocity_env(r, "safety-gymnasium",
                                                                render_mode),
            cost_limit=SAFETY_GYM_LIMIT,
            budget="episode",
            max_episode_steps=EPISODE_STEPS,
            protocol="Safety-Gymnasium",
            extra="mujoco",
            description=f"{robot.gym_id.removeprefix('algd/')}, cost "
            f"1[{_MEASURE_TEXT[robot.sg_measure]} > {robot.sg_threshold}] (algd's own, "
            "same as Safety-Gymnasium's v1)",
        ))


_register()
