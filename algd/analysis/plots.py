"""Plots of a single run: learning curves and (for 2-D tasks) the paths the policy takes."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from algd.train.logger import read_metrics


def _mpl():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_run(
    run_dir: Path | str,
    cost_limit: float,
    *,
    title: str = "",
    trajectories: Sequence[np.ndarray] | None = None,
    costs: Sequence[float] | None = None,
    draw_arena: Callable | None = None,
    position: Callable[[np.ndarray], np.ndarray] | None = None,
    out: Path | str | None = None,
) -> Path:
    """Learning curves of one run (return, cost with its limit, λ) and optionally policy paths.

    Args:
        run_dir: directory holding ``metrics.csv``.
        cost_limit: drawn as a dashed line on the cost panel.
        trajectories: observation sequences of episodes to draw on a top-down map.
        costs: the episode cost of each trajectory (colours unsafe paths).
        draw_arena, position: draw the task layout on an Axes / map observations to (x, y).
        out: image path (default ``run_dir/curves.png``).
    """
    plt = _mpl()
    run_dir = Path(run_dir)
    m = read_metrics(run_dir / "metrics.csv")
    steps = np.asarray(m["env_steps"])
    show_paths = trajectories is not None and position is not None
    ncols = 4 if show_paths else 3
    fig, axes = plt.subplots(1, ncols, figsize=(4.2 * ncols, 3.6))

    ax = axes[0]
    ax.plot(steps, m["eval_return"], "o-", ms=3, label="evaluation")
    _band(ax, steps, m["eval_return"], m.get("eval_return_std"))
    ax.plot(steps, m["train_return"], "--", alpha=0.7, label="training episodes")
    ax.set(title="Episode return", xlabel="environment steps", ylabel="return")
    ax.legend(fontsize=8)

    ax = axes[1]
    ax.plot(steps, m["eval_cost"], "o-", ms=3, color="tab:red", label="evaluation")
    _band(ax, steps, m["eval_cost"], m.get("eval_cost_std"), color="tab:red")
    ax.plot(steps, m["train_cost"], "--", color="tab:orange", alpha=0.8, label="training episodes")
    ax.axhline(cost_limit, color="k", ls=":", label=f"limit {cost_limit:g}")
    ax.set(title="Episode cost", xlabel="environment steps", ylabel="cost")
    ax.legend(fontsize=8)

    ax = axes[2]
    ax.plot(steps, m["lambda"], color="tab:purple")
    ax.set(title="Lagrange multiplier λ", xlabel="environment steps", ylabel="λ")
    if np.nanmin(m["lambda"]) > 0 and np.nanmax(m["lambda"]) / np.nanmin(m["lambda"]) > 20:
        ax.set_yscale("log")

    if show_paths:
        ax = axes[3]
        if draw_arena is not None:
            draw_arena(ax)
        for i, traj in enumerate(trajectories or []):
            xy = position(np.asarray(traj))  # type: ignore[misc]
            unsafe = costs is not None and costs[i] > 0
            ax.plot(xy[:, 0], xy[:, 1], "-", lw=1, alpha=0.6,
                    color="tab:red" if unsafe else "tab:blue")
        ax.set(title="Final policy: sampled paths", xlabel="x", ylabel="y", aspect="equal")

    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(out) if out else run_dir / "curves.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _band(ax, x, mean, std, color=None) -> None:
    if std is None:
        return
    mean, std = np.asarray(mean, dtype=float), np.asarray(std, dtype=float)
    if np.all(np.isnan(std)):
        return
    ax.fill_between(x, mean - std, mean + std, alpha=0.15, color=color, lw=0)


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"
