"""Plots of a single run: learning curves and (for 2-D tasks) the paths the policy takes."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from algd.train.logger import read_metrics


def format_steps(ax: Any) -> None:
    """Label an environment-step x axis compactly (``2.5k``, ``1M``): full numbers run into each
    other on a narrow panel."""
    from matplotlib.ticker import FuncFormatter

    def fmt(x: float, _pos: Any) -> str:
        for scale, suffix in ((1e6, "M"), (1e3, "k")):
            if abs(x) >= scale:
                return f"{x / scale:g}{suffix}"
        return f"{x:g}"

    ax.xaxis.set_major_formatter(FuncFormatter(fmt))


#: shade of the warm-up span on learning curves
WARMUP_COLOUR = "0.9"


def shade_warmup(ax: Any, steps: float, label: bool = False) -> None:
    """Shade ``[0, steps]`` on a learning-curve axis: the warm-up, when the replay buffer fills
    (with the untrained policy's or uniform actions, ``--warmup-policy``) and nothing is updated
    (5000 steps in the paper presets, which the paper's x-axes leave out, spec §6.1: its curves
    start where the shading ends). Nothing for ``steps <= 0``."""
    if steps > 0:
        ax.axvspan(0, steps, color=WARMUP_COLOUR, lw=0, zorder=0,
                   label="warm-up (no updates)" if label else None)


def new_figure(nrows: int, ncols: int, figsize: tuple[float, float]) -> tuple[Any, Any]:
    """A Figure with an ``nrows × ncols`` array of axes (always 2-D).

    The figure belongs to no pyplot window: drawing one never switches the user's matplotlib
    backend (a notebook's inline display keeps working), nothing needs closing, and a notebook
    shows a returned figure as usual.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, squeeze=False)


#: one colour per series in every panel: evaluation, training episodes, λ, its driver Q̄c
EVAL_COLOUR, TRAIN_COLOUR, LAMBDA_COLOUR, QC_COLOUR = "tab:blue", "0.45", "tab:purple", "tab:brown"
#: final-policy paths: within / over the cost limit (a colour-blind-safe pair, neither the
#: hazard's red)
WITHIN_COLOUR, OVER_COLOUR = "tab:blue", "tab:orange"


def plot_run(
    run_dir: Path | str,
    cost_limit: float | None = None,
    *,
    out: Path | str | None = None,
    **kwargs: Any,
) -> Path:
    """Draw :func:`run_figure` to ``out`` (default ``run_dir/curves.png``; ``.svg`` also works)
    and return the path."""
    fig = run_figure(run_dir, cost_limit, **kwargs)
    path = Path(out) if out else Path(run_dir) / "curves.png"
    save_figure(fig, path, dpi=110)
    return path


def run_figure(
    run_dir: Path | str,
    cost_limit: float | None = None,
    *,
    title: str = "",
    trajectories: Sequence[np.ndarray] | None = None,
    costs: Sequence[float] | None = None,
    draw_arena: Callable | None = None,
    position: Callable[[np.ndarray], np.ndarray] | None = None,
    discounted_cost: bool = False,
    eval_episodes: int | None = None,
    threshold: float | None = None,
    warmup_steps: int | None = None,
) -> Any:
    """Learning curves of one run (return, cost with its limit, λ) and optionally policy paths,
    as a matplotlib Figure (for a notebook; :func:`plot_run` saves it).

    ``run_figure(run_dir)`` alone reads the limit, h, the budget kind, the evaluation size and a
    title from the run's ``config.json``.

    Args:
        run_dir: directory holding ``metrics.csv``.
        cost_limit: drawn as a dashed line on the cost panel (default: the run's limit).
        trajectories: observation sequences of episodes to draw on a top-down map.
        costs: the episode cost of each trajectory (paths over the limit get their own colour).
        draw_arena, position: draw the task layout on an Axes / map observations to (x, y).
        discounted_cost: the task's budget is on the discounted episode cost (labels say so).
        eval_episodes: episodes per evaluation (named in the band's legend entry).
        threshold: h, the critic-level threshold; with it the λ panel also shows the replay
            cost estimate Q̄c that drives λ (spec §4.1: λ grows while Q̄c > h).
        warmup_steps: the warm-up (environment steps before the first update), shaded on the
            curves (default: the run's, when its config is read).
    """
    run_dir = Path(run_dir)
    if cost_limit is None:  # everything from the run's own config
        from algd.train.checkpoint import read_config

        config = read_config(run_dir)
        task, train = config.get("task", {}), config.get("train", {})
        cost_limit = float(task["cost_limit"])
        threshold = task.get("critic_threshold") if threshold is None else threshold
        eval_episodes = train.get("eval_episodes") if eval_episodes is None else eval_episodes
        discounted_cost = discounted_cost or task.get("budget") == "discounted"
        warmup_steps = train.get("warmup_steps") if warmup_steps is None else warmup_steps
        title = title or f"{train.get('algo')} on {task.get('name')} (seed {train.get('seed')})"
    m = read_metrics(run_dir / "metrics.csv")
    steps = np.asarray(m["env_steps"])
    show_paths = trajectories is not None and position is not None
    ncols = 4 if show_paths else 3
    fig, grid = new_figure(1, ncols, figsize=(4.2 * ncols + (1.4 if show_paths else 0.0), 3.6))
    axes = grid[0]
    spread = "±1 s.d. over " + (f"{eval_episodes} episodes" if eval_episodes else "episodes")
    cost_name = "discounted episode cost" if discounted_cost else "episode cost"

    for ax in axes[:3]:
        shade_warmup(ax, warmup_steps or 0, label=ax is axes[0])
    ax = axes[0]
    ax.plot(steps, m["eval_return"], "o-", ms=3, color=EVAL_COLOUR, label="evaluation (mean)")
    _band(ax, steps, m["eval_return"], m.get("eval_return_std"), EVAL_COLOUR, spread)
    ax.plot(steps, m["train_return"], "--", color=TRAIN_COLOUR, label="training episodes")
    ax.set(title="Episode return", xlabel="environment steps", ylabel="return")
    format_steps(ax)
    ax.legend(fontsize=8)

    ax = axes[1]
    ax.plot(steps, m["eval_cost"], "o-", ms=3, color=EVAL_COLOUR, label="evaluation (mean)")
    _band(ax, steps, m["eval_cost"], m.get("eval_cost_std"), EVAL_COLOUR, spread, floor=0.0)
    ax.plot(steps, m["train_cost"], "--", color=TRAIN_COLOUR, label="training episodes")
    ax.axhline(cost_limit, color="k", ls="--", lw=1, label=f"limit {cost_limit:g}")
    ax.set(title=cost_name.capitalize(), xlabel="environment steps", ylabel="cost")
    format_steps(ax)
    ax.legend(fontsize=8)

    ax = axes[2]
    ax.plot(steps, m["lambda"], color=LAMBDA_COLOUR, label="λ")
    ax.set(title="Lagrange multiplier λ", xlabel="environment steps", ylabel="λ")
    format_steps(ax)
    if np.nanmin(m["lambda"]) > 0 and np.nanmax(m["lambda"]) / np.nanmin(m["lambda"]) > 20:
        ax.set_yscale("log")
    qc = np.asarray(m.get("qc_ucb", []), dtype=float)
    if threshold is not None and qc.size and not np.all(np.isnan(qc)):
        twin = ax.twinx()
        twin.plot(steps, qc, ".:", ms=4, color=QC_COLOUR, label="Q̄c on replay actions (drives λ)")
        twin.axhline(threshold, color=QC_COLOUR, ls="--", lw=0.8, label=f"h = {threshold:.3g}")
        twin.set_ylabel("critic cost estimate", color=QC_COLOUR)
        twin.tick_params(axis="y", colors=QC_COLOUR)
        handles = ax.get_legend_handles_labels()
        twin_handles = twin.get_legend_handles_labels()
        _shadow_twin_lines(ax, twin)  # so that "best" keeps the legend off Q̄c and h too
        ax.legend(handles[0] + twin_handles[0], handles[1] + twin_handles[1], fontsize=7,
                  loc="best")

    if show_paths:
        ax = axes[3]
        if draw_arena is not None:
            draw_arena(ax)
        counts = {True: 0, False: 0}
        for i, traj in enumerate(trajectories or []):
            xy = position(np.asarray(traj))  # type: ignore[misc]
            over = costs is not None and costs[i] > cost_limit
            counts[over] += 1
            ax.plot(xy[:, 0], xy[:, 1], "-", lw=1, alpha=0.6, zorder=0.9,  # under the markers
                    color=OVER_COLOUR if over else WITHIN_COLOUR)
        n = len(trajectories or [])
        for over, colour, what in ((False, WITHIN_COLOUR, "within"), (True, OVER_COLOUR, "over")):
            if costs is not None and counts[over]:
                ax.plot([], [], "-", color=colour, label=f"{what} the limit ({counts[over]}/{n})")
        # beside the map, not on it: a corner of the arena is where paths pass
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7, borderaxespad=0.0)
        ax.set(title=f"Final policy: {n} sampled episodes", xlabel="x", ylabel="y",
               aspect="equal")

    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _shadow_twin_lines(ax: Any, twin: Any) -> None:
    """Copy the lines of ``twin`` (a ``twinx`` of ``ax``) into ``ax``'s coordinates, invisible.

    A legend placed by ``loc="best"`` avoids only its own axes' lines; the copies make it avoid
    the twin's as well. The limits of both axes are fixed first, so the copies move nothing.
    """
    ax.set_xlim(ax.get_xlim())
    ax.set_ylim(ax.get_ylim())
    twin.set_ylim(twin.get_ylim())
    for line in twin.get_lines():  # each line's own transform (axhline: x in axes fractions)
        to_ax = line.get_transform() + ax.transData.inverted()
        xy = to_ax.transform(np.asarray(line.get_xydata(), dtype=float))
        ax.plot(xy[:, 0], xy[:, 1], alpha=0.0, label="_nolegend_")


def save_figure(fig: Any, path: Path, dpi: int = 110) -> None:
    """Save ``fig`` in the format of ``path``'s suffix; an SVG keeps its text as text (editable,
    searchable) instead of glyph outlines."""
    import matplotlib

    with matplotlib.rc_context({"svg.fonttype": "none"}):
        fig.savefig(path, dpi=dpi)


def save_png_and_svg(fig: Any, out: Path | str, dpi: int) -> list[Path]:
    """Save ``fig`` as ``out`` (a PNG; another suffix is replaced) and the same name with
    ``.svg``, creating the directory; returns both paths."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    png = out if out.suffix.lower() == ".png" else out.with_suffix(".png")
    svg = png.with_suffix(".svg")
    save_figure(fig, png, dpi=dpi)
    save_figure(fig, svg)
    return [png, svg]


def _band(ax: Any, x: np.ndarray, mean: Any, std: Any, color: str, label: str,
          floor: float | None = None) -> None:
    """Shade mean ± std (clipped at ``floor`` for quantities that cannot go below it)."""
    if std is None:
        return
    mean, std = np.asarray(mean, dtype=float), np.asarray(std, dtype=float)
    if np.all(np.isnan(std)):
        return
    low = mean - std if floor is None else np.maximum(mean - std, floor)
    ax.fill_between(x, low, mean + std, alpha=0.15, color=color, lw=0, label=label)


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"
