"""The off-policy training loop shared by every algorithm.

    reset envs → repeat: act (warm-up or policy) → step → store → maybe update (utd per step)
                 → every ``eval_every`` steps: evaluate on a separate env, log one metrics row
    → final checkpoint, summary.json, learning-curve plot

Per-update diagnostics stay on the device and are averaged when a row is logged, so the update
path never waits for the host.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from algd.algos.base import Agent
from algd.algos.registry import AlgoSpec, get_algo
from algd.config import ConfigError, TrainConfig, config_to_dict
from algd.envs.registry import TaskSpec, get_task
from algd.lagrangian.threshold import critic_threshold
from algd.buffers.replay import ReplayBuffer
from algd.train.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_NAME, env_info_for
from algd.train.evaluate import EvalResult, evaluate
from algd.train.logger import CORE_COLUMNS, MetricsLogger
from algd.train.seeding import SeedStreams, resolve_device

DIAGNOSTICS = ("critic_loss", "cost_critic_loss", "actor_loss", "score_loss", "q", "qc_ucb",
               "violation", "alpha", "entropy", "cost_weight")


@dataclass
class RunResult:
    run_dir: Path
    summary: dict[str, Any]
    final_eval: EvalResult


def default_run_dir(cfg: TrainConfig) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / cfg.env / cfg.algo / f"seed{cfg.seed}-{stamp}"


class Trainer:
    """Owns everything a run needs: envs, agent, replay, counters, logger.

    Args:
        cfg: the training configuration (validated here).
        algo_cfg: the algorithm's configuration (validated here).
    """

    def __init__(self, cfg: TrainConfig, algo_cfg: Any) -> None:
        cfg.validate()
        algo_cfg.validate()
        self.cfg, self.algo_cfg = cfg, algo_cfg
        self.algo: AlgoSpec = get_algo(cfg.algo)
        self.task: TaskSpec = get_task(cfg.env)
        if cfg.torch_threads is not None:
            torch.set_num_threads(cfg.torch_threads)
        self.device = resolve_device(cfg.device)
        self.seeds = SeedStreams.from_seed(cfg.seed)
        self.seeds.seed_globals()

        gamma = getattr(algo_cfg, "gamma", 0.99)
        cost_gamma = getattr(algo_cfg, "cost_gamma", gamma)
        self.cost_limit = self.task.cost_limit if cfg.cost_limit is None else cfg.cost_limit
        self.threshold = critic_threshold(self.cost_limit, self.task.budget,
                                          self.task.max_episode_steps, cost_gamma)
        self.env = self.task.make(cfg.num_envs, gamma)
        self.eval_env = self.task.make(min(cfg.eval_episodes, 16), gamma)
        self.env_info = env_info_for(self.env, self.task, self.threshold)
        self.agent: Agent = self.algo.agent_cls(self.env_info, algo_cfg, self.device)
        self.buffer = ReplayBuffer(cfg.buffer_size, self.env.obs_dim, self.env.act_dim,
                                   self.device, seed=self.seeds.buffer)
        self._action_rng = np.random.default_rng(self.seeds.env + 1)
        # counters and running statistics
        self.env_steps = 0
        self.cum_train_cost = 0.0
        self._update_credit = 0.0
        self._episodes: list[tuple[float, float]] = []  # (return, cost) since the last row
        self._recent: list[tuple[float, float]] = []  # last few episodes, for the progress bar
        self._diag_sum: dict[str, Tensor] = {}
        self._diag_count = 0
        self.rows: list[dict[str, Any]] = []

    # -- the run --------------------------------------------------------------------------------
    def run(self, run_dir: Path | None = None) -> RunResult:
        cfg = self.cfg
        self.run_dir = Path(run_dir or cfg.out or default_run_dir(cfg))
        _prepare_run_dir(self.run_dir)
        self._write_config()
        columns = list(CORE_COLUMNS) + list(DIAGNOSTICS)
        tb_dir = self.run_dir / "tb" if cfg.tensorboard else None
        self.logger = MetricsLogger(self.run_dir / "metrics.csv", columns, tb_dir)
        self._start = time.perf_counter()
        self._last_row_time, self._last_row_steps, self._last_row_updates = self._start, 0, 0

        bar = _progress_bar(cfg.steps, f"{cfg.algo} on {cfg.env}", enabled=cfg.progress)
        obs = self.env.reset(seed=self.seeds.env)
        self._log_row(self._evaluate())  # the untrained policy, at step 0
        next_eval = cfg.eval_every
        try:
            while self.env_steps < cfg.steps:
                obs = self._collect(obs)
                bar.update(self.env.num_envs)
                if self.env_steps > cfg.warmup_steps:
                    self._train()
                if self.env_steps >= next_eval or self.env_steps >= cfg.steps:
                    row = self._log_row(self._evaluate())
                    next_eval += cfg.eval_every
                    bar.set_postfix_str(_postfix(row), refresh=False)
                elif self._recent and self.env_steps % (50 * self.env.num_envs) == 0:
                    bar.set_postfix_str(_postfix_recent(self._recent), refresh=False)
        finally:
            bar.close()
            self.logger.close()
        final_eval = self._last_eval
        if cfg.checkpoint:
            self.save_checkpoint(self.run_dir / CHECKPOINT_NAME)
        plot = self._plot() if cfg.plot else None
        summary = self._write_summary(final_eval, plot)
        return RunResult(self.run_dir, summary, final_eval)

    # -- pieces ---------------------------------------------------------------------------------
    def _collect(self, obs: np.ndarray) -> np.ndarray:
        """One vectorised environment step; stores the transitions."""
        if self.env_steps < self.cfg.warmup_steps and self.cfg.warmup_policy == "uniform":
            space = self.env.single_action_space
            actions = self._action_rng.uniform(space.low, space.high,
                                               size=(self.env.num_envs, self.env.act_dim))
        else:
            actions = self.agent.act_np(obs, deterministic=False)
        step = self.env.step(actions)
        self.buffer.add(obs, actions, step.reward, step.cost, step.final_obs, step.terminated)
        self.env_steps += self.env.num_envs
        self.cum_train_cost += float(step.cost.sum())
        for i in np.flatnonzero(step.done):
            ep = (float(step.episode_return[i]), float(step.episode_cost[i]))
            self._episodes.append(ep)
            self._recent = (self._recent + [ep])[-10:]
        return step.obs

    def _train(self) -> None:
        """Run the updates owed to the data collected so far (utd per environment step)."""
        if len(self.buffer) < self.cfg.batch_size:
            return
        self._update_credit += self.cfg.utd * self.env.num_envs
        while self._update_credit >= 1.0:
            self._update_credit -= 1.0
            diag = self.agent.update(self.buffer.sample(self.cfg.batch_size))
            for k, v in diag.items():
                if k in self._diag_sum:
                    self._diag_sum[k].add_(v)
                else:
                    self._diag_sum[k] = v.clone()
            self._diag_count += 1

    def _evaluate(self) -> EvalResult:
        self._last_eval = evaluate(
            self.agent, self.eval_env, self.cfg.eval_episodes,
            deterministic=self.cfg.eval_deterministic, seed=self.seeds.eval_env,
        )
        return self._last_eval

    def _log_row(self, ev: EvalResult) -> dict[str, Any]:
        now = time.perf_counter()
        dt = max(now - self._last_row_time, 1e-9)
        updates = self.agent.num_updates
        eps = self._episodes
        row: dict[str, Any] = {
            "env_steps": self.env_steps,
            "updates": updates,
            **ev.summary(),
            "train_return": float(np.mean([e[0] for e in eps])) if eps else math.nan,
            "train_cost": float(np.mean([e[1] for e in eps])) if eps else math.nan,
            "train_episodes": len(eps),
            "cum_train_cost": self.cum_train_cost,
            "lambda": float(self.agent.lagrange_multiplier),
            "updates_per_s": (updates - self._last_row_updates) / dt,
            "env_steps_per_s": (self.env_steps - self._last_row_steps) / dt,
            "wall_s": now - self._start,
        }
        if self._diag_count:
            means = torch.stack([self._diag_sum[k] for k in self._diag_sum]) / self._diag_count
            row.update(zip(self._diag_sum, means.tolist()))
        self._diag_sum, self._diag_count, self._episodes = {}, 0, []
        self._last_row_time, self._last_row_steps, self._last_row_updates = now, self.env_steps, updates
        self.logger.log(row)
        self.rows.append(row)
        return row

    # -- files ----------------------------------------------------------------------------------
    def resolved_config(self) -> dict[str, Any]:
        return {
            "train": config_to_dict(self.cfg),
            "algo": config_to_dict(self.algo_cfg),
            "task": {
                "name": self.task.name, "cost_limit": self.cost_limit,
                "budget": self.task.budget, "max_episode_steps": self.task.max_episode_steps,
                "critic_threshold": self.threshold,
                "cost_mask_terminal": self.task.cost_mask_terminal,
            },
            "device": str(self.device),
            "torch_version": str(torch.__version__),
        }

    def _write_config(self) -> None:
        _atomic_write_text(self.run_dir / "config.json",
                           json.dumps(self.resolved_config(), indent=2))

    def _plot(self) -> Path:
        from algd.analysis.plots import plot_run

        trajectories = costs = None
        if self.task.position is not None:  # 2-D task: show where the final policy goes
            paths = evaluate(self.agent, self.eval_env, 32, deterministic=False,
                             seed=self.seeds.eval_env + 1, record=True)
            trajectories, costs = paths.trajectories, paths.costs.tolist()
        return plot_run(
            self.run_dir, self.cost_limit, title=f"{self.cfg.algo} on {self.cfg.env} "
            f"(seed {self.cfg.seed})", trajectories=trajectories, costs=costs,
            draw_arena=self.task.draw_arena, position=self.task.position,
        )

    def _write_summary(self, ev: EvalResult, plot: Path | None = None) -> dict[str, Any]:
        first, last = self.rows[0], self.rows[-1]
        summary = {
            "algo": self.cfg.algo,
            "env": self.cfg.env,
            "seed": self.cfg.seed,
            "env_steps": self.env_steps,
            "updates": self.agent.num_updates,
            "wall_s": last["wall_s"],
            "final_return": last["eval_return"],
            "final_return_std": last["eval_return_std"],
            "final_cost": last["eval_cost"],
            "final_cost_std": last["eval_cost_std"],
            "eval_episodes": int(len(ev.returns)),
            "cost_limit": self.cost_limit,
            "cost_budget_kind": self.task.budget,
            "constraint_satisfied": bool(last["eval_cost"] <= self.cost_limit),
            "episodes_over_limit": float(np.mean(ev.costs > self.cost_limit)),
            "initial_return": first["eval_return"],
            "initial_cost": first["eval_cost"],
            "cum_train_cost": self.cum_train_cost,
            "final_lambda": last["lambda"],
            "run_dir": str(self.run_dir),
            "checkpoint": str(self.run_dir / CHECKPOINT_NAME) if self.cfg.checkpoint else None,
            "plot": str(plot) if plot else None,
        }
        _atomic_write_text(self.run_dir / "summary.json", json.dumps(summary, indent=2))
        return summary

    def save_checkpoint(self, path: Path) -> None:
        """Write the agent (networks, targets, optimisers, λ) with the run's config and counters."""
        state = {
            "format": CHECKPOINT_FORMAT,
            "algo": self.cfg.algo,
            "config": self.resolved_config(),
            "env_steps": self.env_steps,
            "agent": self.agent.state_dict(),
        }
        tmp = path.with_suffix(path.suffix + ".tmp")
        torch.save(state, tmp)
        tmp.replace(path)


# -- helpers ------------------------------------------------------------------------------------
def _prepare_run_dir(path: Path) -> None:
    if path.exists() and any(path.iterdir()):
        raise ConfigError(
            f"run directory {path} already holds files; choose a new --out (nothing was written)"
        )
    path.mkdir(parents=True, exist_ok=True)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text + "\n")
    tmp.replace(path)


def _postfix(row: dict[str, Any]) -> str:
    return f"eval R {row['eval_return']:.1f} C {row['eval_cost']:.2f} λ {row['lambda']:.3g}"


def _postfix_recent(recent: list[tuple[float, float]]) -> str:
    r = np.mean([e[0] for e in recent])
    c = np.mean([e[1] for e in recent])
    return f"train R {r:.1f} C {c:.2f}"


class _NoBar:
    def update(self, n: int) -> None: ...
    def set_postfix_str(self, s: str, refresh: bool = True) -> None: ...
    def close(self) -> None: ...


def _progress_bar(total: int, desc: str, enabled: bool) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True, smoothing=0.05)


def train(cfg: TrainConfig, algo_overrides: dict[str, Any] | None = None) -> RunResult:
    """Train ``cfg.algo`` on ``cfg.env``; ``algo_overrides`` set algorithm config fields."""
    algo_cfg = get_algo(cfg.algo).make_config(algo_overrides)
    return Trainer(cfg, algo_cfg).run()
