"""Run logging: ``metrics.csv`` (one row per evaluation) and optional TensorBoard."""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Any, Sequence

#: columns every run's metrics.csv starts with (other tools rely on these names)
CORE_COLUMNS = (
    "env_steps", "updates", "eval_return", "eval_return_std", "eval_cost", "eval_cost_std",
    "train_return", "train_cost", "train_episodes", "cum_train_cost", "train_violations", "lambda",
    "updates_per_s", "env_steps_per_s", "wall_s",
)


class MetricsLogger:
    """Appends rows to a CSV file; each row is written with a single ``write`` and flushed."""

    def __init__(self, path: Path, columns: Sequence[str], tensorboard_dir: Path | None = None):
        self.path = Path(path)
        self.columns = list(columns)
        new = not self.path.exists() or self.path.stat().st_size == 0
        self._file = open(self.path, "a", newline="")
        if new:
            self._write_line(self.columns)
        self._tb = None
        if tensorboard_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:  # pragma: no cover - optional dependency
                raise RuntimeError(
                    "TensorBoard logging needs the tensorboard package: pip install tensorboard"
                ) from exc
            self._tb = SummaryWriter(str(tensorboard_dir))

    def _write_line(self, values: Sequence[Any]) -> None:
        buf = io.StringIO()
        csv.writer(buf).writerow(values)
        self._file.write(buf.getvalue())
        self._file.flush()
        os.fsync(self._file.fileno())

    def log(self, row: dict[str, Any]) -> None:
        self._write_line([_fmt(row.get(c, "")) for c in self.columns])
        if self._tb is not None:
            step = int(row["env_steps"])
            for k, v in row.items():
                if k != "env_steps" and isinstance(v, (int, float)) and math.isfinite(v):
                    self._tb.add_scalar(k, v, step)

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return v


def read_metrics(path: Path | str) -> dict[str, list[float]]:
    """Read a metrics.csv into columns of floats (empty cells → NaN)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    cols: dict[str, list[float]] = {}
    for row in rows:
        for k, v in row.items():
            cols.setdefault(k, []).append(float(v) if v not in ("", None) else math.nan)
    return cols
