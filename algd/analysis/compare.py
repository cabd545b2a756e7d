"""Learning curves of many runs: mean over seeds with a bootstrap band, grouped by task and setting.

One row of panels per task: evaluation return, evaluation cost (with the cost limit) and the
cumulative cost paid while training (with the budget it would reach if every training episode
spent exactly its limit). Each line is one group (see :mod:`algd.analysis.runs`): the mean over
its seeds, the shaded band the 95 % percentile-bootstrap interval of that mean, thin lines the
individual seeds. Nothing is smoothed unless ``smooth`` asks for a trailing moving average.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from algd.analysis.plots import _mpl
from algd.analysis.runs import AlignedCurves, RunGroup, align
from algd.analysis.stats import bootstrap_band

PANELS = (
    ("eval_return", "evaluation return", "episode return"),
    ("eval_cost", "evaluation cost", "episode cost"),
    ("cum_train_cost", "cumulative training cost", "cost summed over training steps"),
)


def moving_average(y: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average along the last axis; the first points average what exists."""
    if window <= 1:
        return y
    c = np.cumsum(np.pad(y, [(0, 0)] * (y.ndim - 1) + [(1, 0)]), axis=-1)
    idx = np.arange(y.shape[-1])
    lo = np.maximum(idx + 1 - window, 0)
    return (c[..., idx + 1] - c[..., lo]) / (idx + 1 - lo)


def plot_comparison(
    groups: Sequence[RunGroup],
    out: Path | str,
    *,
    smooth: int = 0,
    show_seeds: bool = True,
    reps: int = 2_000,
    seed: int = 0,
) -> list[Path]:
    """Draw the comparison figure; writes ``out`` (PNG) and the same name with ``.svg``.

    Args:
        groups: run groups (from :func:`algd.analysis.runs.group_runs`).
        out: the PNG path.
        smooth: trailing moving-average window in evaluations (0 = raw data).
        show_seeds: also draw every seed as a thin line.
        reps, seed: bootstrap resamples and generator seed of the bands.

    Returns the written paths (PNG, SVG).
    """
    plt = _mpl()
    tasks = sorted({g.task for g in groups})
    labels = sorted({g.label for g in groups})
    colours = {lab: plt.cm.tab10(i % 10) for i, lab in enumerate(labels)}
    fig, axes = plt.subplots(len(tasks), 3, figsize=(15, 4.0 * len(tasks)), squeeze=False)
    notes: set[str] = set()
    rng = np.random.default_rng(seed)
    for row, task in enumerate(tasks):
        task_groups = [g for g in groups if g.task == task]
        for col, (column, title, ylabel) in enumerate(PANELS):
            ax = axes[row, col]
            for g in task_groups:
                cur = align(g.runs, column)
                if cur.steps.size == 0:
                    continue
                if cur.interpolated:
                    notes.add("interpolated")
                if cur.truncated:
                    notes.add("truncated")
                _draw_group(ax, g, cur, colours[g.label], smooth, show_seeds, reps, rng,
                            label=col == 0)
            if column == "eval_cost":
                kind = "discounted episode cost" if task_groups[0].budget == "discounted" \
                    else "episode cost"
                ylabel = kind
                for limit in sorted({g.cost_limit for g in task_groups}):
                    ax.axhline(limit, color="k", ls="--", lw=1, label=f"cost limit {limit:g}")
                ax.legend(fontsize=8, loc="best")
            if column == "cum_train_cost":
                _draw_budget_allowance(ax, task_groups)
            ax.set(title=f"{task}: {title}", xlabel="environment steps", ylabel=ylabel)
            ax.grid(alpha=0.25)
        axes[row, 0].legend(fontsize=8, loc="best")
    sub = "mean over seeds; band: 95% bootstrap CI of the mean"
    if show_seeds:
        sub += "; thin lines: individual seeds"
    if smooth > 1:
        sub += f"; trailing moving average over {smooth} evaluations"
    if "interpolated" in notes:
        sub += "; 'interpolated': seeds evaluated at different steps, linearly interpolated onto " \
            "the union of their steps"
    if "truncated" in notes:
        sub += " (cut at the shortest run)"
    fig.suptitle(f"Learning curves ({sub})", fontsize=10)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    png = out if out.suffix.lower() == ".png" else out.with_suffix(".png")
    svg = png.with_suffix(".svg")
    fig.savefig(png, dpi=110)
    fig.savefig(svg)
    plt.close(fig)
    return [png, svg]


def _draw_group(ax, g: RunGroup, cur: AlignedCurves, colour, smooth: int, show_seeds: bool,
                reps: int, rng: np.random.Generator, label: bool) -> None:
    values = moving_average(cur.values, smooth)
    centre, low, high = bootstrap_band(values, reps=reps, rng=rng)
    n = values.shape[0]
    if show_seeds and n > 1:
        for v in values:
            ax.plot(cur.steps, v, color=colour, lw=0.6, alpha=0.3)
    note = ", interpolated" if cur.interpolated else ""
    text = f"{g.label} ({n} seed{'s' if n != 1 else ''}{note})"
    ax.plot(cur.steps, centre, color=colour, lw=1.8, marker="o" if cur.steps.size <= 30 else None,
            ms=3, label=text if label else None)
    if n > 1:
        ax.fill_between(cur.steps, low, high, color=colour, alpha=0.2, lw=0)


def _draw_budget_allowance(ax, task_groups: Sequence[RunGroup]) -> None:
    """Cumulative cost if every training episode spent exactly its limit (episode budgets)."""
    g = task_groups[0]
    T = g.runs[0].episode_length
    if g.budget != "episode" or T <= 0:
        return
    x_max = max(float(r.env_steps.max()) for grp in task_groups for r in grp.runs)
    for limit in sorted({grp.cost_limit for grp in task_groups}):
        ax.plot([0, x_max], [0, limit * x_max / T], color="k", ls="--", lw=1,
                label=f"limit {limit:g} × episodes ({T} steps each)")
    ax.legend(fontsize=8, loc="upper left")
