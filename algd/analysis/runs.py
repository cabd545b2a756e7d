"""Finding run directories, reading them, grouping them by (task, algorithm) and aligning curves.

A *run directory* holds ``config.json`` and ``metrics.csv`` (see README, "The run directory").
Arguments may be run directories, globs (``runs/*/algd-*/seed*``) or any directory above runs
(a sweep directory): it is searched recursively.

Runs are grouped by task and by *setting*: the algorithm plus every configuration value that
differs between runs of that algorithm on that task, except values that do not change what is
learned (seed, output path, device, logging, run length and evaluation schedule; see
:data:`NOT_A_SETTING`). So seeds of one setting form one group, and ``--rho 1`` and ``--rho 4``
runs of ``algd-vesde`` form two groups, labelled ``algd-vesde (rho=1)`` and ``algd-vesde (rho=4)``.
"""

from __future__ import annotations

import glob
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from algd.config import RESUMABLE_OVERRIDES, ConfigError, TrainConfig
from algd.train.logger import read_metrics

#: TrainConfig fields that never split runs into different groups: what a resumed run may change
#: (length, device, threads, compilation, logging) and what only decides which files are kept
NOT_A_SETTING = frozenset(RESUMABLE_OVERRIDES) | {
    "seed", "out", "checkpoint", "tensorboard", "keep_best", "eval_every", "eval_episodes",
    "imports",
}


@dataclass
class RunRecord:
    """One run directory, read: its resolved config, its metrics columns and its summary."""

    path: Path
    config: dict[str, Any]
    metrics: dict[str, np.ndarray]
    summary: dict[str, Any] | None
    label: str = ""  #: the group label, set by :func:`group_runs`

    @property
    def algo(self) -> str:
        return str(self.config["train"]["algo"])

    @property
    def task(self) -> str:
        return str(self.config["task"]["name"])

    @property
    def seed(self) -> int:
        return int(self.config["train"]["seed"])

    @property
    def cost_limit(self) -> float:
        return float(self.config["task"]["cost_limit"])

    @property
    def budget(self) -> str:
        """"episode" (plain episode cost) or "discounted"."""
        return str(self.config["task"].get("budget", "episode"))

    @property
    def warmup_steps(self) -> int:
        """Environment steps before the first update."""
        return int(self.config["train"].get("warmup_steps", TrainConfig.warmup_steps))

    @property
    def episode_length(self) -> int:
        return int(self.config["task"].get("max_episode_steps", 0))

    @property
    def env_steps(self) -> np.ndarray:
        return self.metrics["env_steps"]

    def setting(self) -> dict[str, Any]:
        """Config values that define what this run learns (algorithm, training, cost limit)."""
        train = {k: v for k, v in self.config["train"].items() if k not in NOT_A_SETTING}
        values = {**train, **self.config.get("algo", {})}
        values["cost_limit"] = self.cost_limit  # the resolved limit (task default or override)
        return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


@dataclass
class RunGroup:
    """Seeds of one setting on one task."""

    task: str
    label: str
    runs: list[RunRecord] = field(default_factory=list)

    @property
    def cost_limit(self) -> float:
        return self.runs[0].cost_limit

    @property
    def budget(self) -> str:
        return self.runs[0].budget

    @property
    def seeds(self) -> list[int]:
        return [r.seed for r in self.runs]


def _warn(msg: str) -> None:
    print(f"algd: warning: {msg}", file=sys.stderr)


def _is_run_dir(path: Path) -> bool:
    return (path / "config.json").is_file() and (path / "metrics.csv").is_file()


def find_run_dirs(paths: Sequence[str | Path] | str | Path) -> list[Path]:
    """Expand run directories, globs and directories containing runs into run directories
    (``paths``: one of them or a list)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if not paths:
        raise ConfigError("give at least one run directory (or a glob, or a directory of runs)")
    found: list[Path] = []
    for arg in map(str, paths):
        candidates = ([Path(arg)] if Path(arg).exists()
                      else [Path(p) for p in sorted(glob.glob(arg))])
        if not candidates:
            raise ConfigError(f"{arg}: no such file or directory (and no glob match)")
        hits: list[Path] = []
        for c in candidates:
            if not c.is_dir():
                continue
            if _is_run_dir(c):
                hits.append(c)
            else:
                hits.extend(sorted(p.parent for p in c.rglob("config.json")
                                   if _is_run_dir(p.parent)))
        if not hits:
            raise ConfigError(f"{arg}: no run directories found (a run holds config.json and "
                              "metrics.csv)")
        found.extend(hits)
    unique: dict[Path, Path] = {}
    for p in found:
        unique.setdefault(p.resolve(), p)
    return list(unique.values())


def read_run(path: Path | str) -> RunRecord | None:
    """Read a run directory; ``None`` (with a warning) when it has no evaluation row yet."""
    path = Path(path)
    try:
        config = json.loads((path / "config.json").read_text())
        config["train"]["algo"], config["task"]["name"]  # noqa: B018 - required keys
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}/config.json is unreadable or incomplete ({exc})") from None
    cols = read_metrics(path / "metrics.csv")
    if not cols or not cols.get("env_steps"):
        _warn(f"skipping {path}: metrics.csv has no evaluation rows yet")
        return None
    metrics = {k: np.asarray(v, dtype=float) for k, v in cols.items()}
    summary_path = path / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else None
    return RunRecord(path, config, metrics, summary)


def load_runs(paths: Sequence[str | Path] | str | Path) -> list[RunRecord]:
    """Find and read every run under ``paths`` (see :func:`find_run_dirs`)."""
    runs = [r for r in (read_run(p) for p in find_run_dirs(paths)) if r is not None]
    if not runs:
        raise ConfigError("none of the runs has an evaluation row yet")
    return runs


def _fmt_value(v: Any) -> str:
    if isinstance(v, tuple):
        return ",".join(map(str, v))
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def group_runs(runs: Iterable[RunRecord]) -> list[RunGroup]:
    """Group runs by task and setting; labels name the settings that differ (see module doc)."""
    by_algo: dict[tuple[str, str], list[RunRecord]] = {}
    for r in runs:
        by_algo.setdefault((r.task, r.algo), []).append(r)
    groups: list[RunGroup] = []
    for (task, algo), members in sorted(by_algo.items()):
        settings = [m.setting() for m in members]
        keys = sorted({k for s in settings for k in s})
        varying = [k for k in keys if len({repr(s.get(k)) for s in settings}) > 1]
        sub: dict[str, RunGroup] = {}
        for m, s in zip(members, settings):
            extra = ", ".join(f"{k}={_fmt_value(s.get(k))}" for k in varying)
            label = f"{algo} ({extra})" if extra else algo
            m.label = label
            sub.setdefault(label, RunGroup(task, label)).runs.append(m)
        for g in sub.values():
            g.runs.sort(key=lambda r: (r.seed, str(r.path)))
            seeds = g.seeds
            if len(set(seeds)) < len(seeds):
                _warn(f"{task} / {g.label}: several runs share a seed ({sorted(seeds)}); "
                      "they are counted as separate runs")
            groups.append(g)
    return groups


@dataclass
class AlignedCurves:
    """One metric of a group's runs on a common env-step grid."""

    steps: np.ndarray  #: [points]
    values: np.ndarray  #: [runs, points]
    interpolated: bool  #: False when every run was evaluated at exactly these steps
    truncated: bool  #: True when some run went further than the shortest one


def align(runs: Sequence[RunRecord], column: str) -> AlignedCurves:
    """Put ``column`` of every run on one env-step grid.

    When all runs were evaluated at the same steps, that grid is used as is (no interpolation).
    Otherwise the grid is the union of all evaluation steps inside the range every run covers
    (from the latest first evaluation to the earliest last one), and each run is linearly
    interpolated onto it; nothing is extrapolated, so longer runs are cut at the shortest run's
    end. Rows where the column is empty (NaN) are skipped before interpolating.
    """
    curves = []
    for r in runs:
        if column not in r.metrics:
            raise ConfigError(f"{r.path}/metrics.csv has no column {column!r}")
        x, y = r.env_steps, r.metrics[column]
        ok = np.isfinite(y) & np.isfinite(x)
        curves.append((x[ok], y[ok]))
    if any(len(x) == 0 for x, _ in curves):
        return AlignedCurves(np.zeros(0), np.zeros((len(runs), 0)), False, False)
    first = curves[0][0]
    if all(len(x) == len(first) and np.array_equal(x, first) for x, _ in curves):
        return AlignedCurves(first.copy(), np.stack([y for _, y in curves]), False, False)
    start = max(x[0] for x, _ in curves)
    end = min(x[-1] for x, _ in curves)
    truncated = any(x[-1] > end for x, _ in curves)
    grid = np.unique(np.concatenate([x for x, _ in curves]))
    grid = grid[(grid >= start) & (grid <= end)]
    values = np.stack([np.interp(grid, x, y) for x, y in curves])
    return AlignedCurves(grid, values, True, truncated)


def final_value(run: RunRecord, column: str, last: int = 1) -> float:
    """Mean of ``column`` over the run's last ``last`` evaluation rows (empty cells skipped)."""
    if last < 1:
        raise ConfigError(f"--last must be >= 1, got {last}")
    if column not in run.metrics:
        raise ConfigError(f"{run.path}/metrics.csv has no column {column!r}")
    y = run.metrics[column][-last:]
    y = y[np.isfinite(y)]
    return float(y.mean()) if y.size else float("nan")
