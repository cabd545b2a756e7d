"""The constrained-environment interface every part of algd speaks.

A *constrained* environment is a Gymnasium environment whose ``step`` reports the per-step safety
cost in ``info["cost"]`` (Safety-Gymnasium's 6-tuple ``(obs, r, c, term, trunc, info)`` is adapted
to this form by its adapter). Training always runs on a *vectorised* view, :class:`ConstrainedVecEnv`,
whose ``step`` returns a :class:`VecStep` with rewards and costs as arrays, resets finished
sub-environments in the same call (the true next observation is kept in ``final_obs``) and reports
the return, cost and length of every episode that ended, so the loop never has to track them.

Two implementations exist: :class:`GymVecEnv` steps a list of ordinary Gymnasium environments in
sequence; the built-in task (:mod:`algd.envs.point_detour`) is vectorised natively in numpy.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np

from algd.envs.snapshot import EnvStateError, can_snapshot, env_snapshot, load_env_snapshot


@dataclass
class VecStep:
    """The result of one step of a vectorised constrained environment (``N`` sub-environments).

    Arrays are indexed by sub-environment. ``obs`` is what the agent sees next: for a
    sub-environment whose episode just ended it is already the first observation of the next
    episode, and the observation that the transition really led to is in ``final_obs``.
    """

    obs: np.ndarray  #: [N, S] next observations (after auto-reset)
    reward: np.ndarray  #: [N] float32
    cost: np.ndarray  #: [N] float32, the per-step safety cost
    terminated: np.ndarray  #: [N] bool, true terminal state (no bootstrapping)
    truncated: np.ndarray  #: [N] bool, time limit (bootstrapping is correct)
    final_obs: np.ndarray  #: [N, S] the true next observations (== obs unless done)
    episode_return: np.ndarray  #: [N] return of the episode that ended (NaN where none ended)
    episode_cost: np.ndarray  #: [N] cost of the episode that ended (discounted if configured)
    episode_length: np.ndarray  #: [N] int, length of the episode that ended (0 where none ended)
    #: [N] bool or None: transitions the critics treat as terminal although the episode may go
    #: on (a task protocol's choice, e.g. goal reached; see ``TaskSpec.terminal_info_key``);
    #: None means ``terminated``
    critic_terminal: np.ndarray | None = None

    @property
    def done(self) -> np.ndarray:
        return self.terminated | self.truncated


class EpisodeTracker:
    """Accumulates per-sub-environment episode return, cost and length.

    ``cost_discount`` makes the reported episode cost the discounted sum ``Σ_t γ^t c_t`` (the
    ALGD/CAL MuJoCo protocol, spec §6.4); ``None`` reports the plain sum (Safety-Gym protocol).
    """

    def __init__(self, num_envs: int, cost_discount: float | None = None) -> None:
        self.cost_discount = cost_discount
        self._ret = np.zeros(num_envs, dtype=np.float64)
        self._cost = np.zeros(num_envs, dtype=np.float64)
        self._len = np.zeros(num_envs, dtype=np.int64)

    def reset(self) -> None:
        self._ret[:] = 0.0
        self._cost[:] = 0.0
        self._len[:] = 0

    def update(
        self, reward: np.ndarray, cost: np.ndarray, done: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Add one step; return (return, cost, length) of finished episodes, NaN/0 elsewhere."""
        discount = 1.0 if self.cost_discount is None else self.cost_discount ** self._len
        self._ret += reward
        self._cost += discount * cost
        self._len += 1
        ep_ret = np.where(done, self._ret, np.nan)
        ep_cost = np.where(done, self._cost, np.nan)
        ep_len = np.where(done, self._len, 0)
        self._ret[done] = 0.0
        self._cost[done] = 0.0
        self._len[done] = 0
        return ep_ret, ep_cost, ep_len

    def state_dict(self) -> dict[str, Any]:
        return {"ret": self._ret.copy(), "cost": self._cost.copy(), "len": self._len.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._ret[:] = state["ret"]
        self._cost[:] = state["cost"]
        self._len[:] = state["len"]


class ConstrainedVecEnv(ABC):
    """``N`` copies of a constrained task stepped together, with auto-reset and episode stats."""

    num_envs: int
    #: any space with a shape (observations are flattened to ``obs_dim`` numbers); a Box in
    #: algd's own tasks
    single_observation_space: gym.Space[Any]
    single_action_space: gym.spaces.Box

    @abstractmethod
    def reset(self, seed: int | None = None) -> np.ndarray:
        """Reset every sub-environment; ``seed`` seeds sub-environment ``i`` with ``seed + i``."""

    @abstractmethod
    def step(self, actions: np.ndarray) -> VecStep:
        """Step every sub-environment with ``actions`` of shape [N, A] (clipped to the box)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release simulator resources."""

    @property
    def obs_dim(self) -> int:
        shape = self.single_observation_space.shape
        if shape is None:  # e.g. a Dict space: no flat vector of observations
            raise TypeError("algd needs observations of a fixed shape, not "
                            f"{self.single_observation_space}")
        return int(np.prod(shape))

    @property
    def act_dim(self) -> int:
        return int(np.prod(self.single_action_space.shape))


class ReplayDivergedError(EnvStateError):
    """Replaying a saved episode did not reproduce its observation (the environment is not
    deterministic under its seed), so its state cannot be restored."""


class GymVecEnv(ConstrainedVecEnv):
    """Steps a list of Gymnasium environments that report ``info["cost"]`` (sequentially).

    Missing ``info["cost"]`` is an error: a constrained task must say what its cost is.
    With ``terminal_info_key``, steps whose ``info[key]`` is true are also reported in
    ``VecStep.critic_terminal`` (the episode itself continues).

    Every episode starts from an explicit seed: ``reset(seed)`` gives sub-environment ``i`` the
    seed ``seed + i``, and the automatic resets draw theirs from a generator seeded with ``seed``.
    An episode in progress is therefore fully determined by its seed and its actions, which the
    environment records, so :meth:`state_dict` can always describe it: as an exact simulator
    snapshot where :mod:`algd.envs.snapshot` knows the environment (MuJoCo), else as the seed and
    the actions so far, which :meth:`load_state_dict` replays (Safety-Gymnasium; anything
    deterministic under its seed). A replay is checked against the saved observation.
    """

    #: episodes longer than this are not recorded (and cannot be replayed on resume)
    MAX_REPLAY_STEPS = 100_000

    def __init__(
        self,
        env_fns: Sequence[Callable[[], gym.Env]],
        cost_discount: float | None = None,
        terminal_info_key: str | None = None,
    ) -> None:
        if len(env_fns) == 0:
            raise ValueError("GymVecEnv needs at least one environment factory")
        self.envs = [fn() for fn in env_fns]
        self.num_envs = len(self.envs)
        self.single_observation_space = self.envs[0].observation_space
        action_space = self.envs[0].action_space
        if not isinstance(action_space, gym.spaces.Box):
            raise TypeError("algd needs a continuous (Box) action space")
        self.single_action_space = action_space
        self._low = self.single_action_space.low
        self._high = self.single_action_space.high
        self._tracker = EpisodeTracker(self.num_envs, cost_discount)
        self._obs_size = self.obs_dim  # checked on every observation (_flat)
        self._obs = np.zeros((self.num_envs, self._obs_size), dtype=np.float32)
        self._terminal_key = terminal_info_key
        self._seed_rng = np.random.default_rng()
        self._episode_seed = np.zeros(self.num_envs, dtype=np.int64)
        #: sub-environments saved as snapshots; the others record their episode's actions
        self._snapshot = [can_snapshot(env) for env in self.envs]
        self._actions: list[list[np.ndarray] | None] = [[] for _ in self.envs]

    def _start_episode(self, i: int, seed: int) -> np.ndarray:
        obs, _ = self.envs[i].reset(seed=seed)
        self._episode_seed[i] = seed
        self._actions[i] = []
        return self._flat(i, obs, "reset()")

    def _flat(self, i: int, obs: Any, where: str) -> np.ndarray:
        """``obs`` as a flat float32 vector, checked against the observation space's size."""
        flat = np.asarray(obs, dtype=np.float32).reshape(-1)
        if flat.shape[0] != self._obs_size:
            raise ValueError(
                f"{self.envs[i]}.{where} returned an observation of shape {np.shape(obs)}, but "
                f"its observation_space is {self.single_observation_space} ({self._obs_size} "
                "numbers); make the two agree")
        return flat

    def reset(self, seed: int | None = None) -> np.ndarray:
        self._seed_rng = np.random.default_rng(seed)
        for i in range(self.num_envs):
            first = int(self._seed_rng.integers(2**31)) if seed is None else seed + i
            self._obs[i] = self._start_episode(i, first)
        self._tracker.reset()
        return self._obs.copy()

    def step(self, actions: np.ndarray) -> VecStep:
        n = self.num_envs
        actions = np.clip(np.asarray(actions, dtype=np.float64), self._low, self._high)
        reward = np.zeros(n, dtype=np.float32)
        cost = np.zeros(n, dtype=np.float32)
        term = np.zeros(n, dtype=bool)
        trunc = np.zeros(n, dtype=bool)
        final_obs = np.zeros((n, self.obs_dim), dtype=np.float32)
        key = self._terminal_key
        critic_terminal = np.zeros(n, dtype=bool) if key else None
        for i, env in enumerate(self.envs):
            obs, r, te, tr, info = env.step(actions[i])
            if "cost" not in info:
                keys = ", ".join(map(repr, info)) or "none"
                raise KeyError(
                    f"{env} did not report info['cost'] (its info keys: {keys}); wrap it so that "
                    "each step reports its cost"
                )
            reward[i], cost[i], term[i], trunc[i] = r, info["cost"], te, tr
            if critic_terminal is not None and key:  # (critic_terminal exists iff key is set)
                critic_terminal[i] = te or bool(info.get(key, False))
            final_obs[i] = self._flat(i, obs, "step()")
            if te or tr:
                self._obs[i] = self._start_episode(i, int(self._seed_rng.integers(2**31)))
            else:
                self._obs[i] = final_obs[i]
                record = self._actions[i]
                if record is not None and not self._snapshot[i]:
                    record.append(actions[i].copy())
                    if len(record) > self.MAX_REPLAY_STEPS:
                        self._actions[i] = None
        done = term | trunc
        ep_ret, ep_cost, ep_len = self._tracker.update(reward, cost, done)
        return VecStep(self._obs.copy(), reward, cost, term, trunc, final_obs, ep_ret, ep_cost,
                       ep_len, critic_terminal)

    def state_dict(self) -> dict[str, Any] | None:
        """The episodes in progress (a snapshot or seed + actions per sub-environment), the
        pending observations, the episode statistics and the seed generator; ``None`` only if
        an episode grew past :attr:`MAX_REPLAY_STEPS` without a snapshot."""
        envs: list[dict[str, Any]] = []
        for i, env in enumerate(self.envs):
            if self._snapshot[i]:
                envs.append({"snapshot": env_snapshot(env)})
            elif self._actions[i] is not None:
                record = self._actions[i]
                actions = np.stack(record) if record else np.zeros((0, self.act_dim))
                envs.append({"seed": int(self._episode_seed[i]), "actions": actions})
            else:
                return None
        return {"envs": envs, "obs": self._obs.copy(), "tracker": self._tracker.state_dict(),
                "seed_rng": self._seed_rng.bit_generator.state,
                "episode_seed": self._episode_seed.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`. Raises :class:`~algd.envs.snapshot.EnvStateError` when
        it does not fit: a snapshot of another simulator version or model, or a replayed episode
        that does not end at the saved observation (:class:`ReplayDivergedError`)."""
        if len(state["envs"]) != self.num_envs:
            raise ValueError(f"the state holds {len(state['envs'])} environments, this vector "
                             f"{self.num_envs}")
        saved_obs = np.asarray(state["obs"], dtype=np.float32)
        for i, (env, saved) in enumerate(zip(self.envs, state["envs"])):
            if "snapshot" in saved:
                load_env_snapshot(env, saved["snapshot"])
                continue
            obs = self._start_episode(i, int(saved["seed"]))
            for action in np.asarray(saved["actions"], dtype=np.float64):
                obs, *_ = env.step(action)
                self._actions[i].append(action)  # type: ignore[union-attr]
            obs = np.asarray(obs, dtype=np.float32).reshape(-1)
            if not np.array_equal(obs, saved_obs[i]):
                raise ReplayDivergedError(
                    f"replaying the {len(saved['actions'])} steps of sub-environment {i}'s "
                    "episode from its seed did not reproduce the saved observation"
                )
        self._obs[:] = saved_obs
        self._episode_seed[:] = state["episode_seed"]
        self._seed_rng.bit_generator.state = state["seed_rng"]
        self._tracker.load_state_dict(state["tracker"])

    def close(self) -> None:
        for env in self.envs:
            env.close()


class RecordEpisodeCost(gym.Wrapper):
    """Single-environment wrapper: at the end of an episode ``info["episode"]`` holds
    ``{"r": return, "c": cost, "l": length}`` (cost discounted if ``cost_discount`` is set)."""

    def __init__(self, env: gym.Env, cost_discount: float | None = None) -> None:
        super().__init__(env)
        self._tracker = EpisodeTracker(1, cost_discount)

    def reset(self, **kwargs: Any):  # type: ignore[override]
        self._tracker.reset()
        return self.env.reset(**kwargs)

    def step(self, action: Any):  # type: ignore[override]
        obs, reward, terminated, truncated, info = self.env.step(action)
        done = np.array([terminated or truncated])
        r, c, n = self._tracker.update(np.array([reward]), np.array([info.get("cost", 0.0)]), done)
        if done[0]:
            info = dict(info)
            info["episode"] = {"r": float(r[0]), "c": float(c[0]), "l": int(n[0])}
        return obs, reward, terminated, truncated, info
