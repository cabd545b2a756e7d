"""The off-policy training loop shared by every algorithm.

    reset envs → repeat: act (warm-up or policy) → step → store → maybe update (utd per step)
                 → every ``eval_every`` steps: evaluate on a separate env, log one metrics row
                   (and keep the agent in best.pt if it is the best evaluation within the limit)
                 → every ``checkpoint_every`` steps: write a full checkpoint (atomically)
    → final checkpoint, summary.json, learning-curve plot

Per-update diagnostics stay on the device and are averaged when a row is logged, so the update
path never waits for the host; a device-side finiteness flag is read every ``FINITE_CHECK_EVERY``
updates.

A checkpoint holds everything the loop needs to continue exactly: agent (networks, targets,
optimisers, λ), replay buffer, the training environment's state when it can be saved (the
built-in task saves its arrays; Gymnasium tasks a simulator snapshot or the episode's seed and
actions, see :class:`algd.envs.core.GymVecEnv`), every RNG, the counters, the metrics position
and the best evaluation so far (with its agent, so a resume puts best.pt back).
``Trainer.resume(run_dir)`` continues an interrupted run; on CPU the result is bit-identical to
an uninterrupted run when the environment state is saved.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import os
import random
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from algd.algos.base import Agent, NonFiniteObservation, check_finite_observation
from algd.algos.registry import AlgoSpec, get_algo
from algd.buffers.replay import Batch, ReplayBuffer
from algd.config import (
    RESUMABLE_OVERRIDES,
    ConfigError,
    TrainConfig,
    config_from_dict,
    config_to_dict,
    import_modules,
    imported_by,
    typed_copy,
)
from algd.envs.core import VecStep
from algd.envs.registry import TaskSpec, get_task
from algd.envs.snapshot import EnvStateError
from algd.lagrangian.threshold import critic_threshold
from algd.nets import gemm
from algd.train.auto_compile import (
    CompileFailed,
    error_line,
    resolve_compile,
    update_or_restore,
)
from algd.train.checkpoint import (
    BEST_NAME,
    CHECKPOINT_FORMAT,
    CHECKPOINT_NAME,
    CheckpointError,
    atomic_torch_save,
    atomic_write_text,
    env_info_for,
    read_checkpoint,
    read_config,
    registered_parts,
    stopped_before_first_checkpoint,
)
from algd.train.cpu_runtime import flush_denormals, tune_glibc_malloc
from algd.train.cuda_graph import GraphedUpdate
from algd.train.evaluate import EvalResult, eval_env_count, evaluate
from algd.train.logger import CORE_COLUMNS, MetricsLogger, read_metrics
from algd.train.run_lock import LOCK_NAME, refuse_if_in_use, run_lock
from algd.train.seeding import SeedStreams, resolve_device

FINITE_CHECK_EVERY = 50  #: updates between reads of the device-side finiteness flag


class TrainingInterrupted(Exception):
    """SIGINT/SIGTERM arrived; a checkpoint was written. ``str()`` says how to resume."""

    def __init__(self, signum: int, run_dir: Path, env_steps: int, saved: bool = True) -> None:
        self.signum, self.run_dir, self.env_steps = signum, run_dir, env_steps
        name = signal.Signals(signum).name
        tail = (f"checkpoint saved. Resume with: algd train --resume {run_dir}" if saved else
                "checkpoints are disabled (--checkpoint false), so the run cannot be resumed")
        super().__init__(f"{name} received at environment step {env_steps}; {tail}")


class NonFiniteError(RuntimeError):
    """A loss, critic value, action or observation became NaN/inf; the last good checkpoint is
    kept."""


@dataclass
class RunResult:
    """What :meth:`Trainer.run`, :func:`train` and :func:`resume_run` return."""

    run_dir: Path
    summary: dict[str, Any]  #: also in run_dir/summary.json
    final_eval: EvalResult
    agent: Agent  #: the trained agent, ready to ``act_np`` (also reloadable by ``load_run``)


def check_diagnostics(agent: Agent, diag: Any) -> None:
    """TypeError unless ``diag``, what ``agent.update`` returned, is a dict of one-element
    tensors named exactly as ``agent.diagnostics`` declares (the metrics.csv columns)."""
    name = type(agent).__name__
    if not isinstance(diag, dict):
        raise TypeError(f"{name}.update must return a dict of scalar tensors, got "
                        f"{type(diag).__name__}")
    for k, v in diag.items():
        if not isinstance(v, Tensor) or v.numel() != 1:
            what = type(v).__name__ if not isinstance(v, Tensor) else f"shape {tuple(v.shape)}"
            raise TypeError(f"{name}.update returned {k!r} as {what}: diagnostics must be "
                            "detached one-element tensors on the device (return loss.detach(), "
                            "not loss.item() or a float)")
    missing = [k for k in agent.diagnostics if k not in diag]
    extra = [k for k in diag if k not in agent.diagnostics]
    if missing or extra:
        raise TypeError(
            f"{name}.update's diagnostics do not match {name}.diagnostics, the metrics.csv "
            f"columns: " + "; ".join(
                [f"declared but not returned: {', '.join(missing)}"] * bool(missing)
                + [f"returned but not declared: {', '.join(extra)}"] * bool(extra)))


def registering_modules(algo: str, env: str, imports: Sequence[str]) -> tuple[str, ...]:
    """``imports`` plus the modules outside algd that registered ``algo`` and ``env``, where a
    fresh process can import them (not a script's ``__main__``) and ``imports`` does not
    already cover them."""
    from algd.algos.registry import algo_origin
    from algd.envs.registry import task_origin

    out = list(imports)
    for origin in (algo_origin(algo), task_origin(env)):
        if origin not in ("__main__", "?") and not imported_by(origin, out):
            out.append(origin)
    return tuple(out)


def default_run_dir(cfg: TrainConfig) -> Path:
    """``runs/ENV/ALGO/seedN-YYYYMMDD-HHMMSS``, where a run goes without ``--out``."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / cfg.env / cfg.algo / f"seed{cfg.seed}-{stamp}"


class Trainer:
    """Owns everything a run needs: envs, agent, replay, counters, logger.

    Args:
        cfg: the training configuration (validated here).
        algo_cfg: the algorithm's configuration (validated here).
    """

    def __init__(self, cfg: TrainConfig, algo_cfg: Any) -> None:
        cfg, algo_cfg = typed_copy(cfg), typed_copy(algo_cfg)  # Python callers: typed values
        import_modules(cfg.imports)  # the user's own tasks and algorithms
        self.algo: AlgoSpec = get_algo(cfg.algo)
        if not isinstance(algo_cfg, self.algo.config_cls):
            raise ConfigError(
                f"{cfg.algo} is configured by a {self.algo.config_cls.__name__}, not a "
                f"{type(algo_cfg).__name__}; build it with make_configs({cfg.algo!r}, ...) or "
                f"get_algo({cfg.algo!r}).make_config(...)")
        cfg.validate()
        algo_cfg.validate()
        gemm.requested_backend()  # a mistyped ALGD_GEMM stops here, before a run directory exists
        self.cfg, self.algo_cfg = cfg, algo_cfg
        self.task: TaskSpec = get_task(cfg.env)
        # a task or algorithm registered by the user's own module, imported before training:
        # recorded, so that evaluating or resuming the run imports it too
        cfg.imports = registering_modules(cfg.algo, cfg.env, cfg.imports)
        self._threads_before = torch.get_num_threads()  # put back when run()/resume() return
        if cfg.torch_threads is not None:
            torch.set_num_threads(cfg.torch_threads)
        self.device = resolve_device(cfg.device)
        if self.device.type == "cpu":
            tune_glibc_malloc()  # freed activations stay in the heap (algd.train.cpu_runtime)
        self.seeds = SeedStreams.from_seed(cfg.seed)
        self.seeds.seed_globals()

        gamma, cost_gamma = algo_cfg.gamma, algo_cfg.cost_gamma  # registry.REQUIRED_FIELDS
        self.cost_limit = self.task.cost_limit if cfg.cost_limit is None else cfg.cost_limit
        self.threshold = critic_threshold(self.cost_limit, self.task.budget,
                                          self.task.max_episode_steps, cost_gamma)
        self.env = self.task.make(cfg.num_envs, gamma)
        self.eval_env = self.task.make(eval_env_count(cfg.eval_episodes), gamma)
        self.env_info = env_info_for(self.env, self.task, self.threshold)
        self.agent: Agent = self.algo.agent_cls(self.env_info, algo_cfg, self.device)
        #: the torch.compile mode in use (``--compile auto`` resolved) and why
        self.compile_mode, self._compile_reason = resolve_compile(cfg, self.device)
        if self.compile_mode != "none":
            self.agent.compile_modules(self.compile_mode)
        # CUDA graphs: decided once; built at the first update, after any resume has loaded the
        # optimiser state
        self._use_graphs = (cfg.cuda_graph and self.device.type == "cuda"
                            and self.compile_mode == "none")
        # on a CPU the gradient step compiles at its first call after the first update: the
        # progress bar says so while it does (tens of seconds)
        self._step_compiles = (self.compile_mode != "none" and self.device.type == "cpu"
                               and type(self.agent).gradient_step is not Agent.gradient_step)
        self._compile_pending = self._step_compiles
        #: updates run through update_or_restore until compiled code has run once (the step's,
        #: where it compiles), so that a failing torch.compile costs nothing but a note
        self._compile_unproven = self.compile_mode != "none"
        self._graphed: GraphedUpdate | None = None
        self.buffer = ReplayBuffer(cfg.buffer_size, self.env.obs_dim, self.env.act_dim,
                                   self.device, seed=self.seeds.buffer)
        self._action_rng = np.random.default_rng(self.seeds.env + 1)
        # counters and running statistics (all of it is checkpointed)
        self.env_steps = 0
        self.cum_train_cost = 0.0
        self.train_violations = 0  # training episodes whose cost exceeded the limit
        self._update_credit = 0.0
        self._next_eval = cfg.eval_every
        self._next_checkpoint = cfg.checkpoint_every or math.inf
        self._episodes: list[tuple[float, float]] = []  # (return, cost) since the last row
        self._recent: list[tuple[float, float]] = []  # last few episodes, for the progress bar
        self._diag_sum: dict[str, Tensor] = {}
        self._diag_checked = False
        self._diag_count = 0
        self._finite = torch.ones((), dtype=torch.bool, device=self.device)
        self._checked_updates = 0
        self._wall_offset = 0.0  # wall time spent before a resume
        # set by _open_logger: the clock and counters at the last logged row
        self._last_row_time: float
        self._last_row_steps: int
        self._last_row_updates: int
        self._obs: np.ndarray | None = None
        self._stop_signal: int | None = None
        self._saved_at = -1  #: env_steps of the last checkpoint written (no second save there)
        self._finishing = False  #: the steps are done; _finish writes the final files
        self.rows: list[dict[str, Any]] = []
        # the best evaluation within the limit so far: env_steps, return, cost and a CPU copy of
        # the agent's state (what best.pt holds; the checkpoint carries it for exact resume)
        self._best: dict[str, Any] | None = None

    # -- the run --------------------------------------------------------------------------------
    def run(self, run_dir: Path | str | None = None, *, keep: Sequence[str] = ()) -> RunResult:
        """Start a fresh run in ``run_dir`` (or ``cfg.out``, or a new directory under runs/).

        ``keep`` names files the caller already placed in ``run_dir`` (e.g. a log it is writing
        to); any other content means the directory holds another run, which is refused.
        """
        with self._session():
            return self._run(run_dir, keep)

    def _run(self, run_dir: Path | str | None, keep: Sequence[str]) -> RunResult:
        self.run_dir = Path(run_dir or self.cfg.out or default_run_dir(self.cfg))
        # first: an environment that cannot start (a user's task with the wrong observation
        # size, say) stops the run before anything is written
        self._obs = self.env.reset(seed=self.seeds.env)
        _prepare_run_dir(self.run_dir, keep,
                         restart=(self.cfg, self.algo_cfg) if self.cfg.checkpoint else None)
        with run_lock(self.run_dir):  # one process per run directory
            return self._begin()

    def _begin(self) -> RunResult:
        cfg = self.cfg
        # updates are owed at utd per environment step after the warm-up (see _train)
        if cfg.utd == 0 or cfg.steps <= cfg.warmup_steps:
            why = ("--utd 0" if cfg.utd == 0 else
                   f"--steps {cfg.steps} <= --warmup-steps {cfg.warmup_steps}")
        elif cfg.utd * (cfg.steps - cfg.warmup_steps) < 1:
            why = (f"--utd {cfg.utd:g} over the {cfg.steps - cfg.warmup_steps} steps after "
                   "--warmup-steps owes less than one update")
        else:
            why = ""
        if why:
            print(f"note: {why}: this run only collects data and makes no gradient update",
                  file=sys.stderr)
        self._write_config()
        self._open_logger()
        self._say_compile()
        if self.cfg.progress:  # before the bar exists; tens of seconds on the navigation tasks
            n = self.cfg.eval_episodes
            print(f"evaluating the untrained policy ({n} episode{'s' * (n != 1)}) ...",
                  file=sys.stderr, flush=True)
        self._track_best(self._log_row(self._evaluate()))  # the untrained policy, at step 0
        return self._loop()

    def resume(self, run_dir: Path | str, steps_requested: bool = False) -> RunResult:
        """Continue the run in ``run_dir`` from its checkpoint (see :func:`resume_run`).

        ``steps_requested``: the caller changed ``steps`` (to extend the run); a value the
        checkpoint has already passed is then an error instead of a silent no-op.
        """
        with self._session():
            return self._resume(run_dir, steps_requested)

    @contextlib.contextmanager
    def _session(self) -> Iterator[None]:
        """Around a whole run or resume: SIGINT/SIGTERM are caught from the start (a Ctrl-C
        during the step-0 evaluation, long on the navigation tasks, still ends with a checkpoint
        that --resume continues), and the caller's torch thread count is given back at the end."""
        handlers = self._install_signal_handlers()
        try:
            yield
        finally:
            self._restore_signal_handlers(handlers)
            torch.set_num_threads(self._threads_before)

    def _resume(self, run_dir: Path | str, steps_requested: bool) -> RunResult:
        self.run_dir = Path(run_dir)
        if not (self.run_dir / CHECKPOINT_NAME).exists():
            read_checkpoint(self.run_dir / CHECKPOINT_NAME)  # raises its one-line explanation
        with run_lock(self.run_dir):  # one process per run directory
            return self._resume_locked(steps_requested)

    def _resume_locked(self, steps_requested: bool) -> RunResult:
        state = read_checkpoint(self.run_dir / CHECKPOINT_NAME)
        with self._saved_gemm_backend(state.get("config", {}).get("gemm")):
            return self._resume_state(state, steps_requested)

    @contextlib.contextmanager
    def _saved_gemm_backend(self, saved: str | None) -> Iterator[None]:
        """Resume on the CPU GEMM the run was trained with: the choice is measured per process
        (:mod:`algd.nets.gemm`), the two backends agree only up to summation order, and a
        resumed run should compute what the uninterrupted one would have. ``ALGD_GEMM`` set by
        the user still wins; the process's own choice is put back after."""
        if (self.device.type == "cpu" and saved in ("torch", "onednn")
                and gemm.requested_backend() == "auto"
                and (saved == "torch" or gemm.onednn_available())):
            with gemm.use_gemm_backend(saved):
                yield
        else:
            yield

    def _resume_state(self, state: dict[str, Any], steps_requested: bool) -> RunResult:
        done = int(state["trainer"]["env_steps"])
        if steps_requested and done > self.cfg.steps:  # refused before anything is restored
            raise ConfigError(
                f"the run in {self.run_dir} is already at {done} environment steps; "
                f"--steps {self.cfg.steps} would not extend it (nothing was written)"
            )
        self._restore(state)
        self._open_logger(keep_rows=state["trainer"]["rows_logged"])
        # the next row's rates cover the work since the last row, part of it before the stop
        self._last_row_time -= float(state["trainer"].get("since_last_row_s", 0.0))
        self.rows = _rows_as_dicts(self.run_dir / "metrics.csv")
        edge = state["trainer"].get("edge_rows") or []
        if edge and self.rows:
            self.rows[0], self.rows[-1] = dict(edge[0]), dict(edge[-1])
        if self.cfg.progress:
            print(f"resuming {self.run_dir} at environment step {done} of {self.cfg.steps}"
                  if done < self.cfg.steps else
                  f"{self.run_dir} is complete at {done} environment steps: writing its summary "
                  "again (pass --steps N to extend it)", file=sys.stderr, flush=True)
        if self.env_steps >= self.cfg.steps:  # nothing left to do: just finish the files
            self.logger.close()
            return self._finish()
        self._say_compile()
        return self._loop()

    def _say_compile(self) -> None:
        """What ``--compile auto`` decided, where it is news: a run with a progress bar compiles
        (a pause of ~30 s at the second update). Short runs, which stay eager, say nothing; a
        fallback to eager says so where it happens (:meth:`_first_compiled_update`)."""
        if self.cfg.compile == "auto" and self.compile_mode != "none" and self.cfg.progress:
            print(f"note: {self._compile_reason}", file=sys.stderr, flush=True)

    def _loop(self) -> RunResult:
        with flush_denormals(self.device.type == "cpu"):  # ~5 % on a CPU update; restored after
            return self._steps()

    def _steps(self) -> RunResult:
        cfg = self.cfg
        bar = _progress_bar(cfg.steps, f"{cfg.algo} on {cfg.env}", enabled=cfg.progress,
                            initial=self.env_steps)
        assert self._obs is not None  # run() and resume() reset the environments first
        try:
            while self.env_steps < cfg.steps:
                # checked before each step, so a signal during the step-0 evaluation (or the
                # restore) stops here too, with a checkpoint at the current step
                if self._stop_signal is not None:
                    if cfg.checkpoint and self._saved_at != self.env_steps:
                        self.save_checkpoint()
                    raise TrainingInterrupted(self._stop_signal, self.run_dir, self.env_steps,
                                              saved=cfg.checkpoint)
                self._obs = self._collect(self._obs)
                bar.update(self.env.num_envs)
                if self.env_steps > cfg.warmup_steps:
                    compiling = self._compile_pending and self.agent.step_compiled
                    if compiling:
                        bar.set_postfix_str("compiling the update (once, up to ~30 s) ...")
                        self._compile_pending = False
                    self._train()
                    if compiling:  # the pause is no training speed: keep it out of the ETA
                        _drop_pause_from_rate(bar)
                if self.env_steps >= self._next_eval or self.env_steps >= cfg.steps:
                    bar.set_postfix_str(f"evaluating ({cfg.eval_episodes} episodes) ...")
                    row = self._log_row(self._evaluate())
                    self._track_best(row)
                    self._next_eval += cfg.eval_every
                    bar.set_postfix_str(_postfix(row), refresh=False)
                elif self._recent and self.env_steps % (50 * self.env.num_envs) == 0:
                    bar.set_postfix_str(_postfix_recent(self._recent), refresh=False)
                if self.env_steps >= self._next_checkpoint and self.env_steps < cfg.steps:
                    self._next_checkpoint += cfg.checkpoint_every
                    if cfg.checkpoint:
                        self.save_checkpoint()
        finally:
            bar.close()
            self.logger.close()
        return self._finish()

    def _finish(self) -> RunResult:
        self._finishing = True
        if self.cfg.checkpoint:
            self.save_checkpoint()
        final_eval = self._last_eval if hasattr(self, "_last_eval") else self._evaluate()
        plot = self._plot() if self.cfg.plot else None
        summary = self._write_summary(final_eval, plot)
        return RunResult(self.run_dir, summary, final_eval, self.agent)

    # -- pieces ---------------------------------------------------------------------------------
    def _collect(self, obs: np.ndarray) -> np.ndarray:
        """One vectorised environment step; stores the transitions."""
        if self.env_steps < self.cfg.warmup_steps and self.cfg.warmup_policy == "uniform":
            space = self.env.single_action_space
            actions = self._action_rng.uniform(space.low, space.high,
                                               size=(self.env.num_envs, self.env.act_dim))
        else:
            try:
                actions = self.agent.act_np(obs, deterministic=False)
            except NonFiniteObservation as exc:
                raise self._non_finite_observation("training", exc) from None
            if not np.isfinite(actions).all():
                self._check_finite()  # name the root cause (a loss or critic) if there is one
                raise self._non_finite("the policy's actions")
        step = self.env.step(actions)
        try:  # act_np checks what the policy sees; these reach the replay unseen (~2 µs)
            check_finite_observation(step.final_obs)
            check_finite_observation(step.obs)
        except NonFiniteObservation as exc:
            raise self._non_finite_observation("training", exc,
                                               self.env_steps + self.env.num_envs) from None
        self.buffer.add(obs, actions, step.reward, step.cost, step.final_obs,
                        self._stored_terminal(step))
        self.env_steps += self.env.num_envs
        self.cum_train_cost += float(step.cost.sum())
        for i in np.flatnonzero(step.done):
            ep = (float(step.episode_return[i]), float(step.episode_cost[i]))
            self.train_violations += int(ep[1] > self.cost_limit)
            self._episodes.append(ep)
            self._recent = (self._recent + [ep])[-10:]
        return step.obs

    def _stored_terminal(self, step: VecStep) -> np.ndarray:
        """The terminal flag the critics learn from, by the task's protocol (spec §1.5)."""
        terminal = step.terminated if step.critic_terminal is None else step.critic_terminal
        if self.task.truncation_terminal:
            terminal = terminal | step.truncated
        return terminal

    def _train(self) -> None:
        """Run the updates owed to the data collected so far (utd per environment step)."""
        if len(self.buffer) < self.cfg.batch_size:
            return
        self._update_credit += self.cfg.utd * self.env.num_envs
        while self._update_credit >= 1.0:
            self._update_credit -= 1.0
            diag = self._update(self.buffer.sample(self.cfg.batch_size))
            if not self._diag_checked:  # an algorithm's own update: its contract, once
                check_diagnostics(self.agent, diag)
                self._diag_checked = True
            values = torch.stack(list(diag.values()))
            self._finite &= torch.isfinite(values).all()  # stays on the device
            for k, v in zip(diag, values):
                if k in self._diag_sum:
                    self._diag_sum[k].add_(v)
                else:
                    self._diag_sum[k] = v.clone()
            self._diag_count += 1
        if self.agent.num_updates - self._checked_updates >= FINITE_CHECK_EVERY:
            self._check_finite()

    def _update(self, batch: Batch) -> dict[str, Tensor]:
        """One gradient update: eager, compiled, or replayed as CUDA graphs (``cuda_graph`` on a
        GPU)."""
        if self._compile_unproven:
            return self._first_compiled_update(batch)
        if not self._use_graphs:
            return self.agent.update(batch)
        if self._graphed is None:
            self._graphed = GraphedUpdate(self.agent)
        return self._graphed(batch)

    def _first_compiled_update(self, batch: Batch) -> dict[str, Tensor]:
        """An update made before compiled code has run once: where ``torch.compile`` fails in it,
        ``--compile auto`` trains eagerly from this update on (the agent is as it was before the
        failed attempt) and an explicit mode stops with :class:`CompileFailed`."""
        step_was_compiled = self.agent.step_compiled
        diag, error = update_or_restore(self.agent, batch)
        if error is None:
            assert diag is not None
            self._compile_unproven = self._step_compiles and not step_was_compiled
            return diag
        mode, self._compile_unproven, self._compile_pending = self.compile_mode, False, False
        if self.cfg.compile != "auto":
            raise CompileFailed(
                f"--compile {mode}: torch.compile could not build the update ({error_line(error)})"
                ". Train with --compile none, or with --compile auto, which trains eagerly where "
                "compiling fails") from error
        self.agent.decompile()
        self.compile_mode = "none"
        self._compile_reason = (f"--compile auto: torch.compile could not build the update "
                                f"({error_line(error)}); training eagerly")
        _note(self._compile_reason)
        self._write_config()  # config.json records the mode the run uses
        return self.agent.update(batch)

    def _check_finite(self) -> None:
        """Read the finiteness flag (one host sync) and stop the run if anything went NaN/inf."""
        self._checked_updates = self.agent.num_updates
        if bool(self._finite):
            return
        bad = [k for k, v in self._diag_sum.items() if not torch.isfinite(v)]
        raise self._non_finite(", ".join(bad) or "a loss or critic value")

    def _kept_checkpoint(self) -> str:
        ck = self.run_dir / CHECKPOINT_NAME
        return (f"the last good checkpoint ({ck}) is kept" if ck.exists()
                else "no checkpoint was written before it")

    def _non_finite(self, what: str) -> NonFiniteError:
        return NonFiniteError(
            f"{what} became non-finite by environment step {self.env_steps} "
            f"(update {self.agent.num_updates}); {self._kept_checkpoint()}. Lower the learning "
            "rates, check the task's rewards/costs, or resume from the checkpoint with another "
            "seed."
        )

    def _non_finite_observation(self, env: str, exc: NonFiniteObservation,
                                steps: int | None = None) -> NonFiniteError:
        return NonFiniteError(
            f"the {env} environment returned an observation holding NaN or infinity by "
            f"environment step {self.env_steps if steps is None else steps} ({exc.where}); "
            f"{self._kept_checkpoint()}. "
            f"The task {self.cfg.env!r} produced it: check its observations (a diverging "
            "simulation, a division by zero in a wrapper)."
        )

    def _evaluate(self) -> EvalResult:
        try:
            self._last_eval = evaluate(
                self.agent, self.eval_env, self.cfg.eval_episodes,
                deterministic=self.cfg.eval_deterministic, seed=self.seeds.eval_env,
                max_episode_steps=self.task.max_episode_steps,
            )
        except NonFiniteObservation as exc:
            raise self._non_finite_observation("evaluation", exc) from None
        return self._last_eval

    def _log_row(self, ev: EvalResult) -> dict[str, Any]:
        self._check_finite()
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
            "train_violations": self.train_violations,
            "lambda": float(self.agent.lagrange_multiplier),
            "updates_per_s": (updates - self._last_row_updates) / dt,
            "env_steps_per_s": (self.env_steps - self._last_row_steps) / dt,
            "wall_s": self._wall_offset + now - self._start,
        }
        if self._diag_count:
            means = torch.stack([self._diag_sum[k] for k in self._diag_sum]) / self._diag_count
            row.update(zip(self._diag_sum, means.tolist()))
        self._diag_sum, self._diag_count, self._episodes = {}, 0, []
        self._last_row_time, self._last_row_steps, self._last_row_updates = now, self.env_steps, updates
        self.logger.log(row)
        self.rows.append(row)
        return row

    def _track_best(self, row: dict[str, Any]) -> None:
        """Keep the agent of the highest-return evaluation whose mean cost met the limit (ties go
        to the later one) in ``best.pt``. The choice is made on the evaluation episodes, so its
        numbers are optimistic: ``algd eval RUN --checkpoint best`` re-measures it on fresh ones."""
        if not self.cfg.keep_best or not row["eval_cost"] <= self.cost_limit:
            return
        if self._best is not None and row["eval_return"] < self._best["return"]:
            return
        self._best = {
            "env_steps": self.env_steps, "return": float(row["eval_return"]),
            "cost": float(row["eval_cost"]), "agent": _cpu_copy(self.agent.state_dict()),
        }
        self._write_best()

    def _write_best(self) -> None:
        """Write ``best.pt`` atomically: a checkpoint file that :func:`load_run` reads (agent
        weights only; it cannot be resumed)."""
        assert self._best is not None
        best = {k: v for k, v in self._best.items() if k != "agent"}
        state = {"format": CHECKPOINT_FORMAT, "algo": self.cfg.algo,
                 "config": self.resolved_config(), "env_steps": self._best["env_steps"],
                 "agent": self._best["agent"], "best": best}
        atomic_torch_save(state, self.run_dir / BEST_NAME)

    def _open_logger(self, keep_rows: int | None = None) -> None:
        path = self.run_dir / "metrics.csv"
        if keep_rows is not None:
            _truncate_csv(path, keep_rows)
        columns = list(CORE_COLUMNS) + list(self.agent.diagnostics)
        tb_dir = self.run_dir / "tb" if self.cfg.tensorboard else None
        self.logger = MetricsLogger(path, columns, tb_dir)
        self._start = time.perf_counter()
        self._last_row_time = self._start
        if keep_rows is None:
            self._last_row_steps, self._last_row_updates = 0, 0

    # -- signals --------------------------------------------------------------------------------
    def _install_signal_handlers(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}  # signals can only be handled on the main thread

        def handler(signum: int, frame: Any) -> None:
            if self._stop_signal is not None:  # a second signal: stop at once
                raise KeyboardInterrupt
            self._stop_signal = signum
            # said at once (the step or evaluation under way may take a while), and with
            # os.write: print() here could re-enter a stderr write the signal interrupted
            name = signal.Signals(signum).name
            saving = " and saving a checkpoint" if self.cfg.checkpoint else ""
            what = ("the run is finishing (final checkpoint, evaluation and plot)"
                    if self._finishing else
                    f"stopping after the current step or evaluation{saving}")
            os.write(2, f"\nalgd: {name} received; {what} (a second one stops at once, without "
                        "saving)\n".encode())

        previous: dict[int, Any] = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
        return previous

    @staticmethod
    def _restore_signal_handlers(previous: dict[int, Any]) -> None:
        for sig, h in previous.items():
            signal.signal(sig, h)

    # -- checkpoints ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this run exactly (see the module docstring)."""
        env_state = self.env.state_dict() if hasattr(self.env, "state_dict") else None
        trainer = {
            "env_steps": self.env_steps,
            "cum_train_cost": self.cum_train_cost,
            "train_violations": self.train_violations,
            "update_credit": self._update_credit,
            "next_eval": self._next_eval,
            "next_checkpoint": self._next_checkpoint,
            "episodes": self._episodes,
            "recent": self._recent,
            "diag_sum": self._diag_sum,
            "diag_count": self._diag_count,
            "checked_updates": self._checked_updates,
            "rows_logged": len(self.rows),
            # the summary's first and last rows at full precision (metrics.csv keeps 6 digits)
            "edge_rows": [self.rows[0], self.rows[-1]] if self.rows else [],
            "last_row_steps": self._last_row_steps,
            "last_row_updates": self._last_row_updates,
            "wall_s": self._wall_offset + time.perf_counter() - self._start,
            "since_last_row_s": time.perf_counter() - self._last_row_time,
            "best": self._best,
            "obs": _to_tensors(self._obs),
            "env": _to_tensors(env_state),
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "python": _to_tensors(random.getstate()),
                "action": _to_tensors(self._action_rng.bit_generator.state),
            },
        }
        return {
            "format": CHECKPOINT_FORMAT,
            "algo": self.cfg.algo,
            "config": self.resolved_config(),
            "env_steps": self.env_steps,
            "agent": self.agent.state_dict(),
            "buffer": self.buffer.state_dict(),
            "trainer": trainer,
        }

    def save_checkpoint(self, path: Path | None = None) -> Path:
        """Write the checkpoint atomically (temp file + rename): a crash never corrupts the last
        good one. Refuses to save a state that went non-finite."""
        self._check_finite()
        path = Path(path or self.run_dir / CHECKPOINT_NAME)
        atomic_torch_save(self.state_dict(), path)
        self._saved_at = self.env_steps
        return path

    def _restore(self, state: dict[str, Any]) -> None:
        saved = state.get("config", {})
        mine = self.resolved_config()
        for part in ("algo", "task"):
            if saved.get(part) != mine[part]:
                raise CheckpointError(
                    f"the checkpoint in {self.run_dir} was written with a different {part} "
                    "configuration; resume with the run's own config.json"
                )
        if state.get("algo") != self.cfg.algo:
            raise CheckpointError(f"checkpoint holds {state.get('algo')!r}, not {self.cfg.algo!r}")
        try:
            self.agent.load_state_dict(state["agent"])
            self.buffer.load_state_dict(state["buffer"])
            t = state["trainer"]
        except (KeyError, RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(f"checkpoint in {self.run_dir} cannot be restored ({first})") \
                from None
        self.env_steps = int(t["env_steps"])
        self.cum_train_cost = float(t["cum_train_cost"])
        self.train_violations = int(t.get("train_violations", 0))
        self._update_credit = float(t["update_credit"])
        self._next_eval = t["next_eval"]
        saved_every = saved.get("train", {}).get("checkpoint_every")
        self._next_checkpoint = (t["next_checkpoint"] if saved_every == self.cfg.checkpoint_every
                                 else self.env_steps + (self.cfg.checkpoint_every or math.inf))
        self._episodes = [tuple(e) for e in t["episodes"]]
        self._recent = [tuple(e) for e in t["recent"]]
        self._diag_sum = {k: v.to(self.device) for k, v in t["diag_sum"].items()}
        self._diag_count = int(t["diag_count"])
        self._checked_updates = int(t["checked_updates"])
        self._last_row_steps = int(t["last_row_steps"])
        self._last_row_updates = int(t["last_row_updates"])
        self._wall_offset = float(t["wall_s"])
        self._restore_best(t.get("best"))
        # the environments first: replaying an episode may draw from the global generators,
        # which must then be put back to where the run left them
        self._restore_env(t)
        rng = t["rng"]
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        random.setstate(_from_tensors(rng["python"], tuple_types=True))
        self._action_rng.bit_generator.state = _from_tensors(rng["action"])

    def _restore_best(self, best: dict[str, Any] | None) -> None:
        """Put ``best.pt`` back to what it was at the checkpoint: a run killed after the
        checkpoint may have written a later one, which the resumed run will reach again."""
        self._best = best
        if best is not None and self.cfg.keep_best:
            self._write_best()
        elif (self.run_dir / BEST_NAME).exists():
            (self.run_dir / BEST_NAME).unlink()

    def _restore_env(self, t: dict[str, Any]) -> None:
        """The episodes in progress (see :class:`algd.envs.core.GymVecEnv`), or fresh ones with a
        note when they cannot be restored."""
        env_state = _from_tensors(t["env"])
        why = "its checkpoint holds no environment state"
        if env_state is not None and hasattr(self.env, "load_state_dict"):
            try:
                self.env.load_state_dict(env_state)
                self._obs = np.asarray(_from_tensors(t["obs"]), dtype=np.float32)
                return
            except EnvStateError as exc:
                why = str(exc)
        print(f"note: {self.task.name}: {why}; the episodes in progress at step "
              f"{self.env_steps} restart", file=sys.stderr)
        self._obs = self.env.reset(seed=self.seeds.env + self.env_steps)

    # -- files ----------------------------------------------------------------------------------
    def resolved_config(self) -> dict[str, Any]:
        """What ``config.json`` records: the training and algorithm configs as run (``--compile
        auto`` resolved) and the task's budget, limit and critic threshold."""
        return {
            "train": config_to_dict(self.cfg),
            "algo": config_to_dict(self.algo_cfg),
            "task": {
                "name": self.task.name, "cost_limit": self.cost_limit,
                "budget": self.task.budget, "max_episode_steps": self.task.max_episode_steps,
                "critic_threshold": self.threshold,
                "cost_mask_terminal": self.task.cost_mask_terminal,
                "truncation_terminal": self.task.truncation_terminal,
                "terminal_info_key": self.task.terminal_info_key,
                "protocol": self.task.protocol,
            },
            "device": str(self.device),
            "compile": self.compile_mode,  # what --compile (auto included) came to
            # the CPU GEMM the critics' products ran on (measured per process, algd.nets.gemm)
            "gemm": gemm.gemm_backend() if self.device.type == "cpu" else "torch",
            "torch_version": str(torch.__version__),
        }

    def _write_config(self) -> None:
        atomic_write_text(self.run_dir / "config.json",
                           json.dumps(self.resolved_config(), indent=2))

    def _plot(self) -> Path:
        from algd.analysis.plots import plot_run

        trajectories = costs = None
        if self.task.position is not None:  # 2-D task: show where the final policy goes
            paths = evaluate(self.agent, self.eval_env, 32, deterministic=False,
                             seed=self.seeds.eval_env + 1, record=True,
                             max_episode_steps=self.task.max_episode_steps)
            trajectories, costs = paths.trajectories, paths.costs.tolist()
        return plot_run(
            self.run_dir, self.cost_limit, title=f"{self.cfg.algo} on {self.cfg.env} "
            f"(seed {self.cfg.seed})", trajectories=trajectories, costs=costs,
            draw_arena=self.task.draw_arena, position=self.task.position,
            discounted_cost=self.task.budget == "discounted", eval_episodes=self.cfg.eval_episodes,
            threshold=self.threshold, warmup_steps=self.cfg.warmup_steps,
        )

    def _write_summary(self, ev: EvalResult, plot: Path | None = None) -> dict[str, Any]:
        first, last = self.rows[0], self.rows[-1]
        summary: dict[str, Any] = {
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
            "constraint": constraint_verdict(ev.costs, self.cost_limit),
            "episodes_over_limit": float(np.mean(ev.costs > self.cost_limit)),
            "initial_return": first["eval_return"],
            "initial_cost": first["eval_cost"],
            "cum_train_cost": self.cum_train_cost,
            "train_violations": self.train_violations,
            "final_lambda": last["lambda"],
            "run_dir": str(self.run_dir),
            "checkpoint": str(self.run_dir / CHECKPOINT_NAME) if self.cfg.checkpoint else None,
            "plot": str(plot) if plot else None,
        }
        if self.cfg.keep_best:
            summary["best"] = None if self._best is None else {
                **{k: v for k, v in self._best.items() if k != "agent"},
                "path": str(self.run_dir / BEST_NAME),
            }
        atomic_write_text(self.run_dir / "summary.json", json.dumps(summary, indent=2))
        return summary


# -- resume ------------------------------------------------------------------------------------


def resume_run(run_dir: Path | str, overrides: dict[str, Any] | None = None) -> RunResult:
    """Continue the run in ``run_dir`` from its last checkpoint.

    Only the fields in :data:`RESUMABLE_OVERRIDES` may be changed (e.g. ``steps`` to extend a
    run); anything else raises :class:`ConfigError`, because it would not be the same run.
    """
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    overrides = dict(overrides or {})
    bad = sorted(set(overrides) - set(RESUMABLE_OVERRIDES))
    if bad:
        raise ConfigError(
            f"--resume continues the run with its own config; only "
            f"{', '.join(RESUMABLE_OVERRIDES)} may be changed, not {', '.join(bad)}"
        )
    try:
        train_values = {**config["train"], **overrides, "out": str(run_dir)}
        train_cfg = config_from_dict(TrainConfig, train_values)
        spec, _ = registered_parts(run_dir, train_cfg)
        algo_cfg = config_from_dict(spec.config_cls, config["algo"])
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f"{run_dir}/config.json is incomplete ({exc})") from None
    trainer = Trainer(train_cfg, algo_cfg)
    result = trainer.resume(run_dir, steps_requested=overrides.get("steps") is not None)
    if overrides.get("steps") is not None:  # keep config.json truthful about the run's length
        trainer._write_config()
    return result


# -- helpers ------------------------------------------------------------------------------------
def constraint_verdict(costs: np.ndarray, limit: float) -> str:
    """``satisfied`` (mean cost ≤ limit), ``at the limit`` (above, but within two standard errors
    of the mean: not distinguishable from the limit with these episodes) or ``violated``."""
    mean = float(np.mean(costs))
    if mean <= limit:
        return "satisfied"
    se = float(np.std(costs, ddof=1) / np.sqrt(len(costs))) if len(costs) > 1 else 0.0
    return "at the limit" if mean - 2.0 * se <= limit else "violated"


#: what a run writes before its first checkpoint (config.json last: removed last, so a restart
#: cut short stays restartable), with the temporary files of an atomic write cut short
_RUN_START_FILES = ("tb", "metrics.csv", BEST_NAME, BEST_NAME + ".tmp", CHECKPOINT_NAME + ".tmp",
                    "config.json.tmp", "config.json")


def config_difference(saved: dict[str, Any], train_cfg: TrainConfig,
                      algo_cfg: Any) -> tuple[str, Any, Any] | None:
    """The first field (name, saved value, new value) in which the run config ``saved`` (a
    config.json) differs from ``train_cfg``/``algo_cfg``; None when they describe the same run.
    Fields a resume may change (:data:`RESUMABLE_OVERRIDES`) and ``out`` do not count."""
    ignore = set(RESUMABLE_OVERRIDES) | {"out"}
    mine = {"train": config_to_dict(train_cfg), "algo": config_to_dict(algo_cfg)}
    for part in ("train", "algo"):
        stored = saved.get(part, {})
        for key, value in mine[part].items():
            if key not in ignore and key in stored and stored[key] != value:
                return key, stored[key], value
    return None


def _prepare_run_dir(path: Path, keep: Sequence[str] = (),
                     restart: tuple[TrainConfig, Any] | None = None) -> None:
    """Create ``path`` for a new run; refuse one that holds anything but ``keep``.

    ``restart`` (the new run's configs): a run in ``path`` with the same configuration that
    stopped before its first checkpoint (nothing could resume it; its files are only
    :data:`_RUN_START_FILES`) and that no process still runs is removed and started again, so
    repeating the command works instead of being refused.
    """
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out {path} is a file, not a directory; choose a new --out")
    ours = {*keep, LOCK_NAME}
    if (restart is not None and path.is_dir() and stopped_before_first_checkpoint(path)
            and all(p.name in (*_RUN_START_FILES, *ours) for p in path.iterdir())):
        refuse_if_in_use(path)  # still running, only not yet at its first checkpoint
        diff = config_difference(read_config(path), *restart)
        if diff is not None:
            key, saved, new = diff
            raise ConfigError(
                f"run directory {path} holds a run with {key}={saved!r} that stopped before its "
                f"first checkpoint; this command asks for {key}={new!r}: choose a new --out, or "
                f"delete {path} to reuse it (nothing was written)"
            )
        print(f"note: {path} holds a run that stopped before its first checkpoint (nothing to "
              "resume); starting it again", file=sys.stderr)
        for name in _RUN_START_FILES:
            target = path / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    if path.exists() and any(p.name not in ours for p in path.iterdir()):
        what = "another run" if (path / "config.json").exists() else "files"
        raise ConfigError(
            f"run directory {path} already holds {what}; choose a new --out, or continue it "
            f"with `algd train --resume {path}` (nothing was written)"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the run directory {path} ({exc.strerror}); "
                          "choose another --out") from None


def _truncate_csv(path: Path, rows: int) -> None:
    """Keep the header and the first ``rows`` data rows (rows written after the checkpoint will
    be produced again by the resumed run)."""
    if not path.exists():
        raise CheckpointError(f"{path} is missing; the run cannot be resumed")
    lines = path.read_text().splitlines(keepends=True)
    if len(lines) < rows + 1:
        raise CheckpointError(f"{path} has fewer rows than its checkpoint recorded ({rows})")
    atomic_write_text(path, "".join(lines[: rows + 1]).rstrip("\n"))


def _rows_as_dicts(path: Path) -> list[dict[str, Any]]:
    cols = read_metrics(path)
    n = len(next(iter(cols.values()), []))
    return [{k: v[i] for k, v in cols.items()} for i in range(n)]


def _to_tensors(x: Any) -> Any:
    """numpy arrays → tensors, recursively (checkpoints load with weights_only=True)."""
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x.copy())
    if isinstance(x, dict):
        return {k: _to_tensors(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_to_tensors(v) for v in x]
    return x


def _cpu_copy(x: Any) -> Any:
    """A detached CPU copy of every tensor in a (nested) state dict."""
    if isinstance(x, Tensor):
        return x.detach().to("cpu", copy=True)
    if isinstance(x, dict):
        out = type(x)((k, _cpu_copy(v)) for k, v in x.items())
        if hasattr(x, "_metadata"):  # a module's state dict: keep its version records
            out._metadata = copy.deepcopy(x._metadata)  # type: ignore[attr-defined]
        return out
    if isinstance(x, (list, tuple)):
        return type(x)(_cpu_copy(v) for v in x)
    return copy.deepcopy(x)


def _from_tensors(x: Any, tuple_types: bool = False) -> Any:
    if isinstance(x, Tensor):
        return x.numpy()
    if isinstance(x, dict):
        return {k: _from_tensors(v, tuple_types) for k, v in x.items()}
    if isinstance(x, list):
        items = [_from_tensors(v, tuple_types) for v in x]
        return tuple(items) if tuple_types else items
    return x


def _postfix(row: dict[str, Any]) -> str:
    return f"eval R {row['eval_return']:.1f} C {row['eval_cost']:.2f} λ {row['lambda']:.3g}"


def _postfix_recent(recent: list[tuple[float, float]]) -> str:
    r = np.mean([e[0] for e in recent])
    c = np.mean([e[1] for e in recent])
    return f"train R {r:.1f} C {c:.2f}"


def _drop_pause_from_rate(bar: Any) -> None:
    """Start the bar's next rate interval now, so that a one-off pause (compiling the update)
    since its last print does not enter its smoothed speed and ETA; the elapsed time keeps it."""
    if isinstance(bar, _NoBar) or getattr(bar, "disable", False):
        return
    bar.last_print_t, bar.last_print_n = bar._time(), bar.n


class _NoBar:
    def update(self, n: int) -> None: ...
    def set_postfix_str(self, s: str, refresh: bool = True) -> None: ...
    def close(self) -> None: ...


def _note(text: str) -> None:
    """``note: text`` on stderr, above the progress bar if one is showing."""
    from tqdm.auto import tqdm

    tqdm.write(f"note: {text}", file=sys.stderr)


def _progress_bar(total: int, desc: str, enabled: bool, initial: int = 0) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True, smoothing=0.05,
                initial=initial)


def make_configs(algo: str | None = None, preset: str | None = None,
                 **fields: Any) -> tuple[TrainConfig, Any]:
    """(TrainConfig, algorithm config) as ``algd train`` builds them: the algorithm's defaults ←
    the preset ← ``fields`` (any training or algorithm field, typed as on the command line).

        cfg, algo_cfg = make_configs("cal", "paper", steps=20_000, seed=1)
        result = Trainer(cfg, algo_cfg).run()

    A preset's fields that this algorithm lacks are skipped (``paper`` sizes both the diffusion
    policy and the SAC actor), and what defines the algorithm stays its registry entry's.
    """
    from algd.algos.registry import algo_field_names
    from algd.config import load_preset

    import_modules(config_from_dict(TrainConfig, {"imports": fields.get("imports", ())}).imports)
    preset_values = dict(load_preset(preset).values) if preset else {}
    name = algo or preset_values.get("algo") or TrainConfig.algo
    spec = get_algo(name)  # an unknown name: UnknownNameError, a ConfigError
    train_names = {f.name for f in dataclasses.fields(TrainConfig)}
    algo_names = {f.name for f in dataclasses.fields(spec.config_cls)}
    unknown = set(preset_values) - train_names - algo_field_names()
    if unknown:
        raise ConfigError(f"preset {preset} sets field(s) no algorithm has: {sorted(unknown)}")
    unknown = set(fields) - train_names - algo_names - {"algo"}
    if unknown:
        raise ConfigError(f"unknown field(s) for {name}: {', '.join(sorted(unknown))} (neither "
                          f"a training option nor one of {name}'s; `algd train --algo {name} "
                          "--help` lists them)")
    # a preset's fields of other algorithms do not apply to this one
    preset_values = {k: v for k, v in preset_values.items() if k in train_names | algo_names}
    merged = {**preset_values, **fields, "algo": name}
    train_cfg = config_from_dict(TrainConfig, {k: v for k, v in merged.items() if k in train_names})
    algo_cfg = spec.make_config({k: v for k, v in merged.items() if k in algo_names})
    train_cfg.validate()
    algo_cfg.validate()
    return train_cfg, algo_cfg


def train(cfg: TrainConfig, algo_overrides: dict[str, Any] | None = None) -> RunResult:
    """Train ``cfg.algo`` on ``cfg.env``; ``algo_overrides`` set algorithm config fields (the
    algorithm's defaults ← ``algo_overrides``; :func:`make_configs` adds presets)."""
    import_modules(typed_copy(cfg).imports)  # cfg.algo may be registered by one of them
    spec = get_algo(cfg.algo)
    train_names = {f.name for f in dataclasses.fields(TrainConfig)}
    misplaced = sorted(set(algo_overrides or {}) & train_names
                       - {f.name for f in dataclasses.fields(spec.config_cls)})
    if misplaced:
        raise ConfigError(f"{', '.join(misplaced)}: training option(s), not {cfg.algo}'s; set "
                          f"them on the TrainConfig (TrainConfig({misplaced[0]}=...))")
    algo_cfg = spec.make_config(algo_overrides)
    return Trainer(cfg, algo_cfg).run()
