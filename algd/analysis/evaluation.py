"""Evaluate a saved run: reload its checkpoint, run fresh episodes, write ``eval.json``.

    from algd.analysis.evaluation import evaluate_run
    report = evaluate_run("runs/PointDetour/algd-vesde/seed0-…", episodes=50, device="cpu")
    report["deterministic"]["return_mean"], report["stochastic"]["episodes_over_limit"]

Both samplers are evaluated on the same seeded start states: *stochastic* (random start and noise:
the policy the losses train and the agent acts with) and *deterministic* (zero start, no injected
noise). The top-level ``return_mean``/``cost_mean``/… keys repeat the numbers of the sampler the
run itself evaluated with during training (``eval_deterministic`` in its config; stochastic by
default), named in ``sampler``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from algd.config import ConfigError
from algd.train.checkpoint import LoadedRun, atomic_write_text, checkpoint_file, load_run
from algd.train.evaluate import EvalResult, eval_env_count, evaluate
from algd.train.seeding import SeedStreams

EVAL_FILE = "eval.json"
#: where ``algd eval --checkpoint best`` writes (eval.json keeps the last checkpoint's numbers)
EVAL_BEST_FILE = "eval_best.json"


def default_eval_seed(run_seed: int) -> int:
    """Seed of the start states used by ``algd eval``: fixed per run, but not the ones training
    evaluated on (those are ``SeedStreams.from_seed(seed).eval_env``), so the numbers are on
    held-out starts."""
    return SeedStreams.from_seed(run_seed).eval_env + 1_000_003


def _stats(res: EvalResult, limit: float) -> dict[str, Any]:
    return {
        "return_mean": float(res.returns.mean()),
        "return_std": float(res.returns.std()),
        "cost_mean": float(res.costs.mean()),
        "cost_std": float(res.costs.std()),
        "length_mean": float(res.lengths.mean()),
        "episodes_over_limit": float(np.mean(res.costs > limit)),
        "returns": [float(x) for x in res.returns],
        "costs": [float(x) for x in res.costs],
    }


def evaluate_loaded(
    run: LoadedRun,
    episodes: int,
    seed: int,
    modes: tuple[str, ...] = ("deterministic", "stochastic"),
    progress: bool = False,
) -> dict[str, dict[str, Any]]:
    """Run ``episodes`` episodes per sampling mode; returns per-mode statistics. ``progress``
    shows a bar over the episodes (on stderr)."""
    from tqdm.auto import tqdm

    env = run.task.make(eval_env_count(episodes), run.algo_cfg.gamma)  # as the training loop does
    bar = tqdm(total=episodes * len(modes), desc=f"evaluating {run.train_cfg.algo}",
               unit="episode", disable=not progress, dynamic_ncols=True)
    out = {}
    try:
        for mode in modes:
            bar.set_postfix_str(mode, refresh=False)
            torch.manual_seed(seed)  # the stochastic sampler's noise is reproducible too
            res = evaluate(run.agent, env, episodes, deterministic=mode == "deterministic",
                           seed=seed, on_episode=bar.update,
                           max_episode_steps=run.task.max_episode_steps)
            out[mode] = _stats(res, run.cost_limit)
    finally:
        bar.close()
        env.close()
    return out


def evaluate_run(
    run_dir: Path | str,
    episodes: int = 20,
    *,
    device: str = "cpu",
    seed: int | None = None,
    write: bool = True,
    checkpoint: str = "last",
    progress: bool = False,
) -> dict[str, Any]:
    """Evaluate a run directory's checkpoint and (by default) write ``eval.json`` into it.

    Args:
        run_dir: a run directory with ``config.json`` and ``checkpoint.pt``.
        episodes: episodes per sampling mode.
        device: where to run the agent (a GPU-trained run loads on ``cpu``).
        seed: start-state seed (default :func:`default_eval_seed` of the run's seed).
        write: write ``eval.json`` (``eval_best.json`` for the best checkpoint).
        checkpoint: ``last`` (``checkpoint.pt``) or ``best`` (``best.pt``: the best training
            evaluation within the cost limit, re-measured here on held-out start states); the
            file names work too.
        progress: show a progress bar over the episodes (``algd eval`` does).
    """
    if episodes < 1:
        raise ConfigError(f"--episodes must be >= 1, got {episodes}")
    file = checkpoint_file(checkpoint)  # refuses a name other than last / best
    run = load_run(run_dir, device, file)
    seed = default_eval_seed(run.train_cfg.seed) if seed is None else int(seed)
    modes = evaluate_loaded(run, episodes, seed, progress=progress)
    primary = "deterministic" if run.train_cfg.eval_deterministic else "stochastic"
    main = modes[primary]
    report: dict[str, Any] = {
        "run_dir": str(run.run_dir),
        "algo": run.train_cfg.algo,
        "env": run.task.name,
        "checkpoint": file,
        "checkpoint_env_steps": run.env_steps,
        "episodes": episodes,
        "seed": seed,
        "device": str(run.agent.device),
        "cost_limit": run.cost_limit,
        "cost_budget_kind": run.task.budget,
        "lambda": float(run.agent.lagrange_multiplier),
        "sampler": primary,
        **{k: v for k, v in main.items() if k not in ("returns", "costs")},
        "constraint_satisfied": bool(main["cost_mean"] <= run.cost_limit),
        **modes,
    }
    if write:
        path = Path(run_dir) / (EVAL_FILE if file == checkpoint_file("last") else EVAL_BEST_FILE)
        atomic_write_text(path, json.dumps(report, indent=2))
        report["path"] = str(path)
    return report


def format_eval(report: dict[str, Any]) -> str:
    """Human-readable summary of :func:`evaluate_run`'s result."""
    kind = "discounted cost" if report["cost_budget_kind"] == "discounted" else "cost"
    lines = [
        f"{report['algo']} on {report['env']} ({report.get('checkpoint', 'checkpoint.pt')} at "
        f"{report['checkpoint_env_steps']} env steps), {report['episodes']} episodes per "
        f"sampler, seed {report['seed']}, λ = {report['lambda']:.3g}",
        f"  {'sampler':14s} {'return':>17s} {kind:>17s}   episodes over the limit "
        f"{report['cost_limit']:g}",
    ]
    for mode in ("stochastic", "deterministic"):
        s = report[mode]
        ret = f"{s['return_mean']:.2f} ± {s['return_std']:.2f}"
        cost = f"{s['cost_mean']:.2f} ± {s['cost_std']:.2f}"
        mark = " (as in training)" if mode == report.get("sampler") else ""
        lines.append(f"  {mode:14s} {ret:>17s} {cost:>17s}   "
                     f"{100 * s['episodes_over_limit']:.0f}%{mark}")
    if "path" in report:
        lines.append(f"  written to {report['path']}")
    return "\n".join(lines)
