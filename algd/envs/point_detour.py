"""PointDetour: the built-in safe navigation task (numpy, natively vectorised).

A point robot starts near ``(-1, 0)`` and must reach the goal at ``(1, 0)``. A circular hazard of
radius 0.5 sits at the origin, exactly on the straight path. Every step spent inside the hazard
costs 1. So:

* the unconstrained optimum drives straight through the hazard (shortest path: ~20 steps, about
  10 of them inside, cost ≈ 10 per episode);
* the constrained optimum (budget 2 per episode) detours around it, and the two detours, above
  and below, are mirror images with equal value: from the symmetric start the optimal policy is
  *bimodal*. A unimodal Gaussian policy must pick one side or straddle the hazard; a diffusion
  policy can represent both.

Dynamics: the action ``a ∈ [-1, 1]²`` is a velocity command; the displacement is
``max_speed · a / max(1, ‖a‖)`` (speed is bounded by a disc, so diagonal moves are not faster).
Positions are clipped to the arena ``[-1.5, 1.5]²``.

Reward: ``(d_{t-1} − d_t) / max_speed`` (progress towards the goal, ≤ 1 per step) plus a bonus of 1
for every step that ends within ``goal_radius`` of the goal. Episodes last ``horizon`` = 50 steps
and end by truncation only (no terminal states). The straight path scores ≈ 50, a safe detour
≈ 47, a random policy ≈ 0.

Observation (5 numbers): position ``(x, y)``, goal minus position, and the signed distance from
the hazard's edge (negative inside).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from algd.envs.core import ConstrainedVecEnv, EpisodeTracker, VecStep


@dataclass(frozen=True)
class PointDetourParams:
    """Geometry and timing of the PointDetour task (all lengths in arena units)."""

    start: tuple[float, float] = (-1.0, 0.0)
    start_noise: float = 0.1  #: start is uniform in a square of this half-width around ``start``
    goal: tuple[float, float] = (1.0, 0.0)
    goal_radius: float = 0.1
    hazard_center: tuple[float, float] = (0.0, 0.0)
    hazard_radius: float = 0.5
    max_speed: float = 0.1
    arena: float = 1.5  #: half-width of the square arena
    horizon: int = 50
    goal_bonus: float = 1.0


OBS_DIM = 5
ACT_DIM = 2


class PointDetourVec(ConstrainedVecEnv):
    """``num_envs`` PointDetour episodes stepped at once with numpy array operations."""

    def __init__(
        self,
        num_envs: int = 1,
        params: PointDetourParams | None = None,
        cost_discount: float | None = None,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.num_envs = num_envs
        self.params = p = params or PointDetourParams()
        high = np.full(OBS_DIM, np.inf, dtype=np.float32)
        self.single_observation_space = gym.spaces.Box(-high, high, dtype=np.float32)
        self.single_action_space = gym.spaces.Box(-1.0, 1.0, shape=(ACT_DIM,), dtype=np.float32)
        self._start = np.asarray(p.start, dtype=np.float64)
        self._goal = np.asarray(p.goal, dtype=np.float64)
        self._hazard = np.asarray(p.hazard_center, dtype=np.float64)
        self._pos = np.zeros((num_envs, 2), dtype=np.float64)
        self._t = np.zeros(num_envs, dtype=np.int64)
        self._rng = np.random.default_rng()
        self._tracker = EpisodeTracker(num_envs, cost_discount)

    # -- helpers -----------------------------------------------------------------------------
    def _sample_starts(self, n: int) -> np.ndarray:
        noise = self._rng.uniform(-1.0, 1.0, size=(n, 2)) * self.params.start_noise
        return self._start + noise

    def _observe(self, pos: np.ndarray) -> np.ndarray:
        obs = np.empty((pos.shape[0], OBS_DIM), dtype=np.float32)
        obs[:, 0:2] = pos
        obs[:, 2:4] = self._goal - pos
        obs[:, 4] = np.linalg.norm(pos - self._hazard, axis=1) - self.params.hazard_radius
        return obs

    def observe(self, pos: np.ndarray) -> np.ndarray:
        """The observations [N, 5] of a robot at positions ``pos`` [N, 2] (for analysis tools)."""
        return self._observe(np.asarray(pos, dtype=np.float64).reshape(-1, 2))

    def in_hazard(self, pos: np.ndarray) -> np.ndarray:
        """Boolean mask of positions strictly inside the hazard."""
        return np.linalg.norm(pos - self._hazard, axis=-1) < self.params.hazard_radius

    # -- API ---------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> np.ndarray:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._pos[:] = self._sample_starts(self.num_envs)
        self._t[:] = 0
        self._tracker.reset()
        return self._observe(self._pos)

    def step(self, actions: np.ndarray) -> VecStep:
        p = self.params
        a = np.clip(np.asarray(actions, dtype=np.float64).reshape(self.num_envs, ACT_DIM), -1.0, 1.0)
        norm = np.maximum(1.0, np.linalg.norm(a, axis=1, keepdims=True))
        d_prev = np.linalg.norm(self._goal - self._pos, axis=1)
        pos = np.clip(self._pos + p.max_speed * a / norm, -p.arena, p.arena)
        d_new = np.linalg.norm(self._goal - pos, axis=1)
        reward = (d_prev - d_new) / p.max_speed + p.goal_bonus * (d_new < p.goal_radius)
        cost = self.in_hazard(pos).astype(np.float32)
        self._t += 1
        truncated = self._t >= p.horizon
        terminated = np.zeros(self.num_envs, dtype=bool)
        final_obs = self._observe(pos)
        self._pos = pos
        if truncated.any():
            self._pos[truncated] = self._sample_starts(int(truncated.sum()))
            self._t[truncated] = 0
        obs = self._observe(self._pos) if truncated.any() else final_obs.copy()
        reward = reward.astype(np.float32)
        ep_ret, ep_cost, ep_len = self._tracker.update(reward, cost, truncated)
        return VecStep(obs, reward, cost, terminated, truncated, final_obs, ep_ret, ep_cost, ep_len)

    # -- state (for exact resume) -------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "pos": self._pos.copy(),
            "t": self._t.copy(),
            "rng": self._rng.bit_generator.state,
            "tracker": self._tracker.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._pos[:] = state["pos"]
        self._t[:] = state["t"]
        self._rng.bit_generator.state = state["rng"]
        self._tracker.load_state_dict(state["tracker"])


class PointDetourEnv(gym.Env):
    """Single-environment Gymnasium view of PointDetour (``info["cost"]`` per step).

    Registered with Gymnasium as ``algd/PointDetour-v0``.
    """

    metadata = {"render_modes": []}

    def __init__(self, params: PointDetourParams | None = None) -> None:
        self._vec = PointDetourVec(1, params)
        self.observation_space = self._vec.single_observation_space
        self.action_space = self._vec.single_action_space

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        return self._vec.reset(seed)[0], {}

    def step(self, action):
        out = self._vec.step(np.asarray(action)[None])
        return (
            out.final_obs[0],
            float(out.reward[0]),
            bool(out.terminated[0]),
            bool(out.truncated[0]),
            {"cost": float(out.cost[0])},
        )


def draw_point_detour(ax: Any, params: PointDetourParams) -> None:
    """Draw the arena, the hazard, the start region and the goal on a matplotlib Axes."""
    import matplotlib.patches as patches

    p = params
    ax.add_patch(patches.Circle(p.hazard_center, p.hazard_radius, color="tab:red", alpha=0.25,
                                label="hazard"))
    ax.add_patch(patches.Circle(p.goal, p.goal_radius, color="tab:green", alpha=0.5, label="goal"))
    n = p.start_noise
    ax.add_patch(patches.Rectangle((p.start[0] - n, p.start[1] - n), 2 * n, 2 * n, fill=False,
                                   ls="--", color="gray", label="start"))
    ax.set_xlim(-p.arena, p.arena)
    ax.set_ylim(-p.arena, p.arena)
    ax.legend(loc="lower right", fontsize=7)
