"""Learning curves of many runs: mean over seeds with a bootstrap band, grouped by task and setting.

One row of panels per task: evaluation return, evaluation cost (with the cost limit) and the
cumulative cost paid while training (with the budget it would reach if every training episode
spent exactly its limit). Each line is one group (see :mod:`algd.analysis.runs`): the mean over
its seeds, the shaded band the 95 % percentile-bootstrap interval of that mean (from
:data:`CI_MIN_SEEDS` seeds; with fewer, where a bootstrap interval is little more than the range
of the seeds, the band is that range and the caption says so), thin lines the individual seeds.
Every algorithm keeps its colour whatever else is plotted (:data:`ALGO_COLOURS`); settings of one
algorithm differ by line style. Nothing is smoothed unless ``smooth`` asks for a trailing moving
average, and never the cumulative training cost (an average of a running sum is not one).
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from algd.analysis.plots import format_steps, new_figure, save_png_and_svg, shade_warmup
from algd.analysis.runs import AlignedCurves, RunGroup, align
from algd.analysis.stats import bootstrap_band

#: a fixed colour per registered algorithm, so that one algorithm looks the same in every figure;
#: the two variants of one method get separate hues (ALGD's blue and cyan were hard to tell apart)
ALGO_COLOURS = {
    "algd-vesde": "tab:blue", "algd-ddpm": "tab:purple", "lgd-vesde": "tab:orange",
    "lgd-ddpm": "tab:brown", "sac-lag": "tab:red", "sac-auglag": "tab:pink", "cal": "tab:green",
}
#: colours for algorithms outside the table (user-registered), in order of appearance
_OTHER_COLOURS = ("tab:cyan", "tab:olive", "tab:gray", "black")
#: line styles of the settings of one algorithm (``--rho 1`` and ``--rho 4`` runs)
_STYLES = ("-", "--", "-.", ":")
#: fewest seeds for which the band is a bootstrap confidence interval (fewer: the seeds' range)
CI_MIN_SEEDS = 5
#: metrics that are running sums: never smoothed
CUMULATIVE = frozenset({"cum_train_cost"})

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


def plot_comparison(groups: Sequence[RunGroup], out: Path | str, **kwargs: Any) -> list[Path]:
    """Draw :func:`comparison_figure` to ``out`` (PNG) and the same name with ``.svg``; returns
    both paths."""
    return save_png_and_svg(comparison_figure(groups, **kwargs), out, dpi=110)


def comparison_figure(
    groups: Sequence[RunGroup],
    *,
    smooth: int = 0,
    show_seeds: bool = True,
    reps: int = 2_000,
    seed: int = 0,
) -> Any:
    """Learning curves of run groups, one row per task (return, cost, cumulative training cost),
    as a matplotlib Figure.

    Args:
        groups: run groups (from :func:`algd.analysis.runs.group_runs`).
        smooth: trailing moving-average window in evaluations (0 = raw data).
        show_seeds: also draw every seed as a thin line.
        reps, seed: bootstrap resamples and generator seed of the bands.
    """
    tasks = sorted({g.task for g in groups})
    styles = group_styles(groups)
    fig, axes = new_figure(len(tasks), 3, figsize=(15, 4.0 * len(tasks)))
    notes: set[str] = set()
    rng = np.random.default_rng(seed)
    for row, task in enumerate(tasks):
        task_groups = [g for g in groups if g.task == task]
        warmup = max(r.warmup_steps for g in task_groups for r in g.runs)
        for col, (column, title, ylabel) in enumerate(PANELS):
            ax = axes[row, col]
            shade_warmup(ax, warmup)
            for g in task_groups:
                cur = align(g.runs, column)
                if cur.steps.size == 0:
                    continue
                if cur.interpolated:
                    notes.add("interpolated")
                if cur.truncated:
                    notes.add("truncated")
                _draw_group(ax, g, cur, column, styles[g.label], smooth, show_seeds, reps, rng,
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
            format_steps(ax)
            ax.grid(alpha=0.25)
    seeds = {len(g.runs) for g in groups}
    if min(seeds) >= CI_MIN_SEEDS:
        sub = "mean over seeds; band: 95% bootstrap CI of the mean"
    elif max(seeds) < CI_MIN_SEEDS:
        sub = f"mean over seeds; band: range of the seeds (fewer than {CI_MIN_SEEDS})"
    else:
        sub = (f"mean over seeds; band: 95% bootstrap CI of the mean from {CI_MIN_SEEDS} seeds, "
               "range of the seeds below")
    if show_seeds:
        sub += "; thin lines: individual seeds"
    warmups = {r.warmup_steps for g in groups for r in g.runs}
    if max(warmups) > 0:
        sub += "; grey: the warm-up, before the first update" + (
            " (the longest of the runs')" if len(warmups) > 1 else "")
    if smooth > 1:
        sub += f"; trailing moving average over {smooth} evaluations (not the cumulative cost)"
    if "interpolated" in notes:
        sub += "; 'interpolated': seeds evaluated at different steps, linearly interpolated onto " \
            "the union of their steps"
    if "truncated" in notes:
        sub += " (cut at the shortest run)"
    # wrapped to the figure's width (≈ 13 characters per inch at 10 pt), never cut off
    fig.suptitle(textwrap.fill(f"Learning curves ({sub})", width=13 * 15), fontsize=10)
    # the groups' legend under the panels, where long setting labels cover no data
    handles, labels = [], []
    for ax in axes[:, 0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    ncol = 3 if max((len(lab) for lab in labels), default=0) <= 45 else 2
    legend_rows = -(-len(labels) // ncol)
    height = fig.get_figheight()
    # long handles: settings of one algorithm share a colour and differ by line style, which a
    # short handle (with its marker) does not show
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=8, frameon=False,
               handlelength=4.5)
    fig.tight_layout(rect=(0, (0.22 * legend_rows + 0.1) / height, 1, 1))
    return fig


def group_styles(groups: Sequence[RunGroup]) -> dict[str, tuple[str, str]]:
    """(colour, line style) of every group label: the colour from the algorithm, the style from
    the group's rank among that algorithm's settings."""
    by_algo: dict[str, list[str]] = {}
    for g in sorted(groups, key=lambda g: g.label):
        labels = by_algo.setdefault(g.runs[0].algo, [])
        if g.label not in labels:
            labels.append(g.label)
    others = iter(_OTHER_COLOURS * (1 + len(by_algo) // len(_OTHER_COLOURS)))
    styles = {}
    for algo, labels in by_algo.items():
        colour = ALGO_COLOURS.get(algo) or next(others)
        for i, label in enumerate(labels):
            styles[label] = (colour, _STYLES[i % len(_STYLES)])
    return styles


def group_band(cur: AlignedCurves, column: str, smooth: int = 0, *, reps: int = 2_000,
               rng: np.random.Generator | int | None = 0,
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What a group's line shows: ``(per-seed values, mean, band low, band high)`` of ``column``
    (smoothed unless it is :data:`CUMULATIVE`; the band as the module docstring says)."""
    values = moving_average(cur.values, 0 if column in CUMULATIVE else smooth)
    if values.shape[0] >= CI_MIN_SEEDS:
        centre, low, high = bootstrap_band(values, reps=reps, rng=rng)
    else:
        centre, low, high = values.mean(0), values.min(0), values.max(0)
    return values, centre, low, high


def _draw_group(ax, g: RunGroup, cur: AlignedCurves, column: str, style: tuple[str, str],
                smooth: int, show_seeds: bool, reps: int, rng: np.random.Generator,
                label: bool) -> None:
    colour, ls = style
    values, centre, low, high = group_band(cur, column, smooth, reps=reps, rng=rng)
    n = values.shape[0]
    if show_seeds and n > 1:
        for v in values:
            ax.plot(cur.steps, v, color=colour, ls=ls, lw=0.8, alpha=0.45)
    note = ", interpolated" if cur.interpolated else ""
    text = f"{g.label} ({n} seed{'s' if n != 1 else ''}{note})"
    ax.plot(cur.steps, centre, color=colour, ls=ls, lw=1.8,
            marker="o" if cur.steps.size <= 30 else None, ms=3, label=text if label else None)
    if n > 1:
        ax.fill_between(cur.steps, low, high, color=colour, alpha=0.15, lw=0)


def _draw_budget_allowance(ax, task_groups: Sequence[RunGroup]) -> None:
    """Cumulative cost if every training episode spent exactly its limit (episode budgets)."""
    g = task_groups[0]
    T = g.runs[0].episode_length
    if g.budget != "episode" or T <= 0:
        return
    # as far as the curves go: each group's curve stops at its shortest run
    x_max = max(min(float(r.env_steps.max()) for r in grp.runs) for grp in task_groups)
    for limit in sorted({grp.cost_limit for grp in task_groups}):
        ax.plot([0, x_max], [0, limit * x_max / T], color="k", ls="--", lw=1,
                label=f"limit {limit:g} × episodes ({T} steps each)")
    ax.legend(fontsize=8, loc="upper left")
