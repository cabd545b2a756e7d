"""Final-performance tables over seeds: one Markdown table (and CSV rows) per task.

Definitions (also printed under every table):

* **final** value of a run = the mean of its last ``last`` evaluations in ``metrics.csv``
  (default 1: the last evaluation, the number ``summary.json`` and ``algd train`` report). Each
  evaluation is itself the mean over ``eval_episodes`` episodes.
* **IQM [95% CI]** = interquartile mean over the seeds' final values with a 95 % percentile
  stratified-bootstrap interval (:mod:`algd.analysis.stats`; the stratum is the task, so within
  a table it is the bootstrap over seeds). With one seed there is no interval.
* **within limit** = seeds whose final cost is at most the cost limit.
* **constraint** = ``holds`` when the whole cost interval (or, with one seed, the value) is at or
  below the limit, ``violated`` when it is entirely above, ``unclear`` when the interval
  straddles the limit.
* **training cost** = cumulative cost incurred by the behaviour policy over all training steps
  (``cum_train_cost`` in the last row), IQM [95% CI] over seeds; ``budget`` is what it would be if
  every training episode had spent exactly its limit (episode budgets only), over the shortest
  run's steps.
* **env steps** = the length of the runs (a range when they differ; each run's final value is
  taken at its own end).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from algd.analysis.runs import RunGroup, final_value
from algd.analysis.stats import Estimate, bootstrap_ci


@dataclass
class ReportRow:
    """One (task, setting) line of the report; every number is over the group's seeds."""

    task: str
    algorithm: str
    seeds: int
    env_steps: int  #: environment steps of the shortest run
    env_steps_max: int  #: environment steps of the longest run
    cost_limit: float
    budget: str
    return_iqm: float
    return_low: float
    return_high: float
    cost_iqm: float
    cost_low: float
    cost_high: float
    within_limit: int
    constraint: str  #: holds | violated | unclear
    train_cost_iqm: float
    train_cost_low: float
    train_cost_high: float
    train_cost_budget: float  #: limit × training episodes (NaN for discounted budgets)
    violations_iqm: float  #: training episodes over the limit (NaN for runs without the column)
    violations_low: float
    violations_high: float
    seed_list: str
    train_episodes: float = math.nan  #: training episodes per seed (mean over seeds)


def constraint_verdict(cost: Estimate, limit: float) -> str:
    """holds / violated / unclear from the cost estimate's interval (or value with one seed)."""
    low, high = (cost.low, cost.high) if cost.has_interval else (cost.value, cost.value)
    if high <= limit:
        return "holds"
    if low > limit:
        return "violated"
    return "unclear"


def report_warnings(groups: Sequence[RunGroup], *, last: int = 1) -> list[str]:
    """What a reader of the report should know about its inputs: runs with fewer evaluations
    than ``last`` (their final value averages all they have), and runs of one task that end at
    different environment steps (each run's final value is taken at its own end)."""
    notes = []
    runs = [r for g in groups for r in g.runs]
    counts = [int(np.isfinite(r.metrics["eval_return"]).sum()) for r in runs]
    short = [c for c in counts if c < last]
    if short:
        notes.append(f"--last {last}: {len(short)} of {len(runs)} runs have fewer evaluations "
                     f"(fewest: {min(short)}, counting the untrained policy's at step 0); their "
                     "final values average every evaluation they have")
    for task in sorted({g.task for g in groups}):
        ends = {int(r.env_steps[-1]) for g in groups if g.task == task for r in g.runs}
        if len(ends) > 1:
            notes.append(f"{task}: the runs end at different steps ({min(ends):,}-{max(ends):,}); "
                         "each run's final value is taken at its own end")
    return notes


def build_report(
    groups: Sequence[RunGroup], *, last: int = 1, reps: int = 50_000, seed: int = 0
) -> list[ReportRow]:
    """Compute one :class:`ReportRow` per group (sorted by task, then algorithm label)."""
    rows = []
    rng = np.random.default_rng(seed)
    for g in sorted(groups, key=lambda g: (g.task, g.label)):
        ret = np.array([final_value(r, "eval_return", last) for r in g.runs])
        cost = np.array([final_value(r, "eval_cost", last) for r in g.runs])
        train_cost = np.array([float(r.metrics["cum_train_cost"][-1]) for r in g.runs])
        r_est = bootstrap_ci(ret, reps=reps, rng=rng)
        c_est = bootstrap_ci(cost, reps=reps, rng=rng)
        t_est = bootstrap_ci(train_cost, reps=reps, rng=rng)
        counts = [r.metrics.get("train_violations") for r in g.runs]
        present = [c for c in counts if c is not None and len(c)]
        if len(present) == len(counts):
            v_est = bootstrap_ci(np.array([float(c[-1]) for c in present]), reps=reps, rng=rng)
            violations = (v_est.value, v_est.low, v_est.high)
        else:  # runs written before the column existed
            violations = (math.nan, math.nan, math.nan)
        episodes = float(np.mean([np.nansum(r.metrics["train_episodes"]) for r in g.runs])) \
            if all("train_episodes" in r.metrics for r in g.runs) else math.nan
        steps = min(int(r.env_steps[-1]) for r in g.runs)
        steps_max = max(int(r.env_steps[-1]) for r in g.runs)
        T = g.runs[0].episode_length
        allowance = g.cost_limit * steps / T if g.budget == "episode" and T > 0 else math.nan
        rows.append(ReportRow(
            task=g.task, algorithm=g.label, seeds=len(g.runs), env_steps=steps,
            env_steps_max=steps_max,
            cost_limit=g.cost_limit, budget=g.budget,
            return_iqm=r_est.value, return_low=r_est.low, return_high=r_est.high,
            cost_iqm=c_est.value, cost_low=c_est.low, cost_high=c_est.high,
            within_limit=int(np.sum(cost <= g.cost_limit)),
            constraint=constraint_verdict(c_est, g.cost_limit),
            train_cost_iqm=t_est.value, train_cost_low=t_est.low, train_cost_high=t_est.high,
            train_cost_budget=allowance,
            violations_iqm=violations[0], violations_low=violations[1],
            violations_high=violations[2],
            seed_list=" ".join(str(s) for s in g.seeds), train_episodes=episodes,
        ))
    return rows


def _steps(r: ReportRow) -> str:
    return str(r.env_steps) if r.env_steps == r.env_steps_max else \
        f"{r.env_steps}–{r.env_steps_max}"


def _num(x: float, digits: int = 2) -> str:
    return "–" if not math.isfinite(x) else f"{x:.{digits}f}"


def _ci(value: float, low: float, high: float, digits: int = 2) -> str:
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"{_num(value, digits)} (1 seed)"
    return f"{_num(value, digits)} [{_num(low, digits)}, {_num(high, digits)}]"


def _of(total: float) -> str:
    return "" if not math.isfinite(total) else f" of {total:.0f}"


def to_markdown(rows: Sequence[ReportRow], *, last: int = 1) -> str:
    """One Markdown table per task, with the definitions of its columns under it."""
    out = io.StringIO()
    final = "last evaluation" if last == 1 else f"mean of the last {last} evaluations"
    for task in sorted({r.task for r in rows}):
        task_rows = [r for r in rows if r.task == task]
        limits = sorted({r.cost_limit for r in task_rows})
        kinds = {r.budget for r in task_rows}
        kind = "discounted episode cost" if kinds == {"discounted"} else "cost per episode"
        out.write(f"## {task}: cost limit {', '.join(f'{x:g}' for x in limits)} ({kind})\n\n")
        out.write("| algorithm | seeds | env steps | final return | final cost | within limit "
                  "| constraint | training cost | training-cost budget "
                  "| violating training episodes |\n")
        out.write("|---|---:|---:|---|---|---:|---|---|---:|---|\n")
        for r in task_rows:
            out.write(
                f"| {r.algorithm} | {r.seeds} | {_steps(r)} "
                f"| {_ci(r.return_iqm, r.return_low, r.return_high)} "
                f"| {_ci(r.cost_iqm, r.cost_low, r.cost_high)} "
                f"| {r.within_limit}/{r.seeds} | {r.constraint} "
                f"| {_ci(r.train_cost_iqm, r.train_cost_low, r.train_cost_high, 1)} "
                f"| {_num(r.train_cost_budget, 0)} "
                f"| {_ci(r.violations_iqm, r.violations_low, r.violations_high, 1)}"
                f"{_of(r.train_episodes)} |\n"
            )
        out.write(
            f"\nFinal = {final} of each seed (each evaluation averages its episodes). "
            "Values are the interquartile mean over seeds [95% stratified-bootstrap CI; with "
            "fewer than 5 seeds it is little more than the seeds' range]. "
            "*constraint*: holds if the cost CI lies at or below the limit, violated if above, "
            "unclear if it straddles it. *training cost*: cost paid by the behaviour policy over "
            "all training steps; *training-cost budget*: the same if every training episode had "
            "spent exactly its limit; *violating training episodes*: training episodes whose "
            "cost exceeded the limit, of all training episodes (mean per seed).\n\n"
        )
    return out.getvalue()


def write_csv(rows: Sequence[ReportRow], path: Path | str) -> Path:
    """Write every field of every row (machine-readable companion of the Markdown)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(ReportRow.__dataclass_fields__)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=names)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v)
                        for k, v in asdict(r).items()})
    return path
