"""Running one trial where Ray placed it: a fresh run, a resume, or nothing if it is done.

:func:`run_trial` is an ordinary function (Ray calls it in a worker process; tests and users may
call it directly). It decides from the run directory what to do (:func:`trial_state`), sends
the trial's stdout and stderr to ``trial.log`` in that directory, and reports progress to the
sweep's status board while the run trains. It returns a small dict instead of raising, so the
driver gets every failure as one line (the traceback is in the log).
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import threading
import traceback
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

from algd.config import ConfigError
from algd.sweep.spec import LOG_NAME, MANIFEST, Trial, import_modules, trial_state

REPORT_EVERY_S = 1.0  #: seconds between progress reports to the board


def run_trial(trial: Trial, out: str, attempt: int = 1, board: Any = None) -> dict[str, Any]:
    """Run ``trial`` in ``out/trial.id`` to ``trial.train.steps`` environment steps.

    Returns ``{"status": "done", "summary": {...}, "action": ...}`` or ``{"status": "failed" |
    "interrupted", "error": one line, "retryable": bool}``. ``board`` is the sweep's status actor
    (or None).
    """
    from algd.train.loop import RESUMABLE_OVERRIDES, Trainer, TrainingInterrupted, resume_run

    run_dir = trial.run_dir(out)
    if not (Path(out) / MANIFEST).exists():
        return _failure(f"the sweep directory {out} is not visible on {socket.gethostname()}; on "
                        "a cluster it must be on a filesystem that every node mounts at the "
                        "same path", retryable=False)
    run_dir.mkdir(parents=True, exist_ok=True)
    with _output_to(run_dir / LOG_NAME), _Reporter(board, trial.id, attempt, run_dir):
        try:
            import_modules(trial.imports)  # the user's own tasks and algorithms
            action = trial_state(trial, out)
            print(f"=== algd sweep: attempt {attempt} on {socket.gethostname()} "
                  f"(pid {os.getpid()}) at {datetime.now():%Y-%m-%d %H:%M:%S}: "
                  f"{_ACTIONS[action]} ===", flush=True)
            if action == "done":
                return {"status": "done", "summary": _summary(run_dir), "action": action}
            if action == "resume":
                result = resume_run(run_dir, {k: getattr(trial.train, k)
                                              for k in RESUMABLE_OVERRIDES})
            else:
                if action == "restart":
                    _clear(run_dir, keep=LOG_NAME)
                result = Trainer(trial.train, trial.algo_cfg).run(run_dir, keep=(LOG_NAME,))
            print(f"=== algd sweep: finished at environment step {result.summary['env_steps']} "
                  "===", flush=True)
            return {"status": "done", "summary": result.summary, "action": action}
        except TrainingInterrupted as exc:
            print(f"=== algd sweep: {exc} ===", flush=True)
            return {"status": "interrupted", "error": str(exc), "retryable": True}
        except Exception as exc:
            traceback.print_exc()
            sys.stderr.flush()
            # a configuration or checkpoint problem does not go away by running it again
            return _failure(_one_line(exc), retryable=not isinstance(exc, ConfigError))


_ACTIONS = {
    "new": "starting",
    "done": "already finished, nothing to do",
    "resume": "resuming from its checkpoint",
    "restart": "no checkpoint was written before it stopped: starting again from scratch",
}


def _failure(error: str, retryable: bool) -> dict[str, Any]:
    return {"status": "failed", "error": error, "retryable": retryable}


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _summary(run_dir: Path) -> dict[str, Any]:
    import json

    return json.loads((run_dir / "summary.json").read_text())


def _clear(run_dir: Path, keep: str) -> None:
    """Remove a killed run's partial files so it can start cleanly (its log stays)."""
    for p in run_dir.iterdir():
        if p.name == keep:
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


@contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """Send stdout and stderr to ``path`` (appended) and restore them afterwards: Python's
    ``sys.stdout``/``sys.stderr`` and file descriptors 1 and 2 (C-level output, child
    processes), which need not be the same (e.g. under pytest's capture)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "a", buffering=1) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            with redirect_stdout(log), redirect_stderr(log):
                yield
        finally:
            log.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


class _Reporter:
    """Tells the board that the trial runs (pid, host) and, every second, how far it got (the
    last ``env_steps`` in metrics.csv), from a daemon thread."""

    def __init__(self, board: Any, trial_id: str, attempt: int, run_dir: Path) -> None:
        self.board, self.trial_id, self.attempt, self.run_dir = board, trial_id, attempt, run_dir
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> "_Reporter":
        if self.board is not None:
            self.board.update.remote(self.trial_id, self.attempt, status="running",
                                     pid=os.getpid(), node=socket.gethostname(),
                                     env_steps=last_env_steps(self.run_dir / "metrics.csv"))
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _loop(self) -> None:
        last = None
        while not self._stop.wait(REPORT_EVERY_S):
            steps = last_env_steps(self.run_dir / "metrics.csv")
            if steps != last:
                self.board.update.remote(self.trial_id, self.attempt, env_steps=steps)
                last = steps


def last_env_steps(metrics: Path) -> int:
    """``env_steps`` of the last complete row of a metrics.csv (0 when there is none), read from
    the file's tail only."""
    try:
        with open(metrics, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return 0
    for line in reversed(lines[1:] if len(lines) > 1 else []):
        head = line.split(",", 1)[0]
        if head.isdigit():
            return int(head)
    return 0
