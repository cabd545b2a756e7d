"""Loading a finished (or interrupted) run back: config, task, agent and its weights.

    run = load_run("runs/PointDetour/algd-vesde/seed0-…", device="cpu")
    actions = run.agent.act_np(obs, deterministic=True)

Checkpoints are plain ``torch.save`` dictionaries of tensors, numbers and strings (loaded with
``weights_only=True``); a run trained on a GPU loads on a CPU.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from algd.algos.base import Agent, EnvInfo
from algd.algos.registry import AlgoSpec, get_algo
from algd.config import ConfigError, TrainConfig, config_from_dict, import_modules
from algd.envs.core import ConstrainedVecEnv
from algd.envs.registry import TaskSpec, get_task
from algd.train.run_lock import in_use
from algd.train.seeding import resolve_device

CHECKPOINT_FORMAT = 1
CHECKPOINT_NAME = "checkpoint.pt"
#: the best evaluation within the limit (``TrainConfig.keep_best``): agent weights only
BEST_NAME = "best.pt"
#: what ``--checkpoint`` of ``algd eval`` / ``algd video`` chooses between
CHECKPOINT_FILES = {"last": CHECKPOINT_NAME, "best": BEST_NAME}


class CheckpointError(ConfigError):
    """A run directory or checkpoint cannot be used; the message says why and what to do."""


def env_info_for(env: ConstrainedVecEnv, task: TaskSpec, threshold: float) -> EnvInfo:
    """The facts an agent needs about ``env`` (spaces) and ``task`` (threshold, masking)."""
    space = env.single_action_space
    return EnvInfo(
        obs_dim=env.obs_dim, act_dim=env.act_dim,
        action_low=np.asarray(space.low, dtype=np.float32),
        action_high=np.asarray(space.high, dtype=np.float32),
        cost_threshold=threshold, cost_mask_terminal=task.cost_mask_terminal,
    )


@dataclass
class LoadedRun:
    """A run loaded back by :func:`load_run`: its configs, task, limit and the agent with the
    checkpoint's weights (in eval mode)."""

    run_dir: Path
    config: dict[str, Any] = field(repr=False)  #: the resolved config.json
    train_cfg: TrainConfig
    algo_cfg: Any
    algo: AlgoSpec
    task: TaskSpec
    agent: Agent
    cost_limit: float
    threshold: float
    env_steps: int  #: environment steps at which the checkpoint was written
    checkpoint: dict[str, Any] = field(repr=False)  #: the raw checkpoint (replay buffer, RNGs, …)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (plus a newline) to ``path`` through a temporary file and a rename, so a
    crash mid-write leaves the previous file intact, never a torn one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text + "\n")
    tmp.replace(path)


def registered_parts(run_dir: Path, train_cfg: TrainConfig) -> tuple[AlgoSpec, TaskSpec]:
    """The algorithm and task a run was trained with, after importing its ``imports``; a name
    this process does not know is a one-line :class:`CheckpointError` that says what to do."""
    import_modules(train_cfg.imports)
    try:
        return get_algo(train_cfg.algo), get_task(train_cfg.env)
    except KeyError as exc:
        what = str(exc.args[0]).split(". ")[0].removeprefix("unknown ")  # task 'Corridor'
        article = "an" if what[:1] in "aeiou" else "a"
        raise CheckpointError(
            f"{run_dir} was trained with {article} {what}, which is not "
            "registered in this process: if it is your own, import the module that registers it "
            "first (`algd eval|video|landscape|modality --imports MODULE`; runs trained with "
            "--imports MODULE do this themselves)"
        ) from None


def checkpoint_file(which: str) -> str:
    """The file of ``which`` checkpoint: ``last`` (the end of training) or ``best``, also
    accepted as their file names (``checkpoint.pt``, ``best.pt``)."""
    if which in CHECKPOINT_FILES.values():
        return which
    if which not in CHECKPOINT_FILES:
        raise ConfigError(f"the checkpoint must be one of {', '.join(CHECKPOINT_FILES)} (files "
                          f"{', '.join(CHECKPOINT_FILES.values())}), got {which!r}")
    return CHECKPOINT_FILES[which]


def atomic_torch_save(state: dict[str, Any], path: Path) -> None:
    """``torch.save`` through a temporary file and a rename: a crash never leaves a torn file
    where the previous good one was."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def read_config(run_dir: Path) -> dict[str, Any]:
    """The run's ``config.json`` (``train``, ``algo``, ``task`` sections); a path that is not a
    run directory is a :class:`CheckpointError` that says what to pass."""
    path = Path(run_dir) / "config.json"
    if Path(run_dir).is_file():  # `--resume RUN/checkpoint.pt`, say
        raise CheckpointError(f"{run_dir} is a file, not a run directory; pass the directory "
                              f"that holds it ({Path(run_dir).parent})")
    if not path.exists():
        raise CheckpointError(f"{run_dir} is not a run directory (no config.json)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc.msg}); the run cannot be loaded") \
            from None


def _trained_without_checkpoints(run_dir: Path) -> bool:
    try:
        return read_config(run_dir)["train"]["checkpoint"] is False
    except (CheckpointError, KeyError, TypeError):
        return False


def stopped_before_first_checkpoint(run_dir: Path) -> bool:
    """``run_dir`` holds a run (with checkpoints on) that ended before it wrote its first
    checkpoint or its summary (killed during the step-0 evaluation, say): nothing can resume it."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").exists() or (run_dir / CHECKPOINT_NAME).exists():
        return False
    if (run_dir / "summary.json").exists():
        return False
    try:
        return read_config(run_dir)["train"].get("checkpoint", True) is not False
    except (CheckpointError, KeyError, TypeError, AttributeError):
        return False


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint file, turning every failure into a one-line :class:`CheckpointError`.

    Tensors come back on the CPU whatever device wrote them: ``load_state_dict`` of modules,
    optimisers and the replay buffer copies them to the training device, so a GPU never holds a
    second copy of the replay buffer, and RNG states (which must be CPU tensors) load as they are.
    """
    path = Path(path)
    if not path.exists():
        if _trained_without_checkpoints(path.parent):
            raise CheckpointError(
                f"no checkpoint at {path}: the run was trained with --checkpoint false, so it "
                "can be neither loaded nor resumed; train it again with checkpoints on"
            )
        if path.name == CHECKPOINT_NAME and stopped_before_first_checkpoint(path.parent):
            if in_use(path.parent):
                raise CheckpointError(
                    f"no checkpoint at {path} yet: the run is still in progress (another algd "
                    "process) and has not reached its first checkpoint")
            raise CheckpointError(
                f"no checkpoint at {path}: the run stopped before its first checkpoint, so there "
                f"is nothing to resume or load; run the same `algd train ... --out {path.parent}` "
                "command again to start it afresh"
            )
        raise CheckpointError(f"no checkpoint at {path}; train (or resume) the run first")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, corrupt or foreign file
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated ({type(exc).__name__}); "
            "delete it and resume from an earlier copy, or retrain"
        ) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"checkpoint {path} has format {state.get('format') if isinstance(state, dict) else '?'}"
            f", this algd reads format {CHECKPOINT_FORMAT}"
        )
    return state


def load_run(
    run_dir: Path | str, device: str = "cpu", checkpoint: str = CHECKPOINT_NAME
) -> LoadedRun:
    """Rebuild the agent of a run directory and load its checkpoint's weights.

    ``checkpoint``: the file to load, :data:`CHECKPOINT_NAME` (the last state) or
    :data:`BEST_NAME` (the best evaluation within the cost limit), or ``"last"`` / ``"best"``.
    """
    run_dir = Path(run_dir)
    if not (run_dir / checkpoint).is_file():  # a name other than a file of the run's
        checkpoint = checkpoint_file(checkpoint)
    config = read_config(run_dir)
    if checkpoint == BEST_NAME and not (run_dir / BEST_NAME).exists():
        why = ("it was trained with --keep-best false"
               if config.get("train", {}).get("keep_best") is False
               else "none of its evaluations met the cost limit (or it predates best.pt)")
        raise CheckpointError(f"{run_dir} has no {BEST_NAME}: {why}; use its last checkpoint")
    try:
        train_cfg = config_from_dict(TrainConfig, config["train"])
        spec, task = registered_parts(run_dir, train_cfg)
        algo_cfg = config_from_dict(spec.config_cls, config["algo"])
        cost_limit = float(config["task"]["cost_limit"])
        threshold = float(config["task"]["critic_threshold"])
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f"{run_dir}/config.json is incomplete or from another version "
                              f"({exc})") from None
    dev = resolve_device(device)
    state = read_checkpoint(run_dir / checkpoint)
    if state.get("algo") != train_cfg.algo:
        raise CheckpointError(f"checkpoint holds {state.get('algo')!r}, config says "
                              f"{train_cfg.algo!r}")
    env = task.make(1)
    agent = spec.agent_cls(env_info_for(env, task, threshold), algo_cfg, dev)
    env.close()
    try:
        agent.load_state_dict(state["agent"])
    except (RuntimeError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(f"checkpoint {run_dir / checkpoint} does not fit the configured "
                              f"agent ({first})") from None
    agent.eval()
    return LoadedRun(run_dir, config, train_cfg, algo_cfg, spec, task, agent, cost_limit,
                     threshold, int(state.get("env_steps", 0)), state)
