"""Evaluation episodes on a separate environment (spec §6.4, done cleanly)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from algd.algos.base import Agent
from algd.envs.core import ConstrainedVecEnv

MAX_EVAL_ENVS = 16  #: most evaluation environments stepped together
#: an evaluation episode longer than this many times its task's episode length is an error
STUCK_FACTOR = 10


def eval_env_count(episodes: int, max_envs: int = MAX_EVAL_ENVS) -> int:
    """Environments for an evaluation of ``episodes`` episodes: as few rounds as ``max_envs``
    allows, split evenly, so the last round wastes as little as possible (20 episodes run as two
    rounds of 10, not 16 + 16 of which 12 are thrown away)."""
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    rounds = math.ceil(episodes / max_envs)
    return math.ceil(episodes / rounds)


@dataclass
class EvalResult:
    """What :func:`evaluate` measured: one entry per episode, in the order they ended."""

    returns: np.ndarray  #: [episodes] undiscounted episode returns
    costs: np.ndarray  #: [episodes] episode costs (discounted if the env is configured so)
    lengths: np.ndarray  #: [episodes]
    trajectories: list[np.ndarray] = field(default_factory=list)  #: observations per episode

    def summary(self, prefix: str = "eval_") -> dict[str, float]:
        """Mean and standard deviation of the returns and costs, and the mean length, as
        ``{prefix}return``, ``{prefix}return_std``, ... (the evaluation columns of metrics.csv)."""
        return {
            f"{prefix}return": float(self.returns.mean()),
            f"{prefix}return_std": float(self.returns.std()),
            f"{prefix}cost": float(self.costs.mean()),
            f"{prefix}cost_std": float(self.costs.std()),
            f"{prefix}length": float(self.lengths.mean()),
        }


def evaluate(
    agent: Agent,
    env: ConstrainedVecEnv,
    episodes: int,
    *,
    deterministic: bool = True,
    seed: int | None = None,
    record: bool = False,
    on_episode: Callable[[], None] | None = None,
    max_episode_steps: int | None = None,
) -> EvalResult:
    """Run ``episodes`` complete episodes and return their returns, costs and lengths.

    The environment's ``N`` sub-environments each contribute their *first* episode per round
    (rounds of N episodes until enough are collected), so short episodes are not over-sampled.
    With the same ``seed``, every evaluation sees the same start states. ``on_episode`` is
    called once per episode kept (a progress bar's ``update``). ``max_episode_steps``: the
    task's episode length T; an episode still running after ``STUCK_FACTOR · T`` steps raises
    a ``ValueError`` (an environment that never ends its episodes), where it would hang.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    stuck = None if max_episode_steps is None else STUCK_FACTOR * max_episode_steps
    n = env.num_envs
    returns: list[float] = []
    costs: list[float] = []
    lengths: list[int] = []
    trajectories: list[np.ndarray] = []
    rnd = 0
    while len(returns) < episodes:
        obs = env.reset(seed=None if seed is None else seed + rnd * n)
        active = np.ones(n, dtype=bool)
        paths: list[list[np.ndarray]] = [[o] for o in obs] if record else []
        steps = 0
        while active.any():
            steps += 1
            if stuck is not None and steps > stuck:
                raise ValueError(
                    f"an evaluation episode has run {stuck} steps, {STUCK_FACTOR}× the task's "
                    f"max_episode_steps ({max_episode_steps}), without ending: the environment "
                    "must end its episodes (terminated or truncated; TaskSpec.from_gym adds a "
                    "time limit of max_episode_steps, a task's own make_vec must end them)")
            step = env.step(agent.act_np(obs, deterministic))
            if record:
                for i in np.flatnonzero(active):
                    paths[i].append(step.final_obs[i])
            for i in np.flatnonzero(active & step.done):
                returns.append(float(step.episode_return[i]))
                costs.append(float(step.episode_cost[i]))
                lengths.append(int(step.episode_length[i]))
                if record:
                    trajectories.append(np.stack(paths[i]))
                if on_episode is not None and len(returns) <= episodes:
                    on_episode()
                active[i] = False
            obs = step.obs
        rnd += 1
    k = episodes
    return EvalResult(np.array(returns[:k]), np.array(costs[:k]), np.array(lengths[:k]),
                      trajectories[:k])
