"""Running a sweep's trials on Ray: scheduling, retries, a live summary and ``sweep.json``.

    connect (--address) or start a local Ray → skip trials that are done → submit the others as
    Ray tasks (CPUs/GPUs per trial) → while any runs: collect results, retry failures from their
    checkpoint, refresh the progress bar and sweep.json → shut the local Ray down

Each trial is one Ray task running :func:`algd.sweep.trial.run_trial` in a fresh worker process
(``max_calls=1``: nothing leaks from one trial into the next). Ray's own task retries are off;
the sweep retries a failed trial itself so that it can report the error and resume from the
checkpoint. A small status actor (no CPU) collects each trial's pid, host and progress.

On a cluster the sweep directory must be on a filesystem every node mounts at the same path
(as for any Ray job that writes files); a trial that cannot see it fails with that message.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from algd.config import ConfigError, config_to_dict
from algd.sweep.spec import (
    LOG_NAME,
    MANIFEST,
    SweepConfig,
    Trial,
    expand_trials,
    trial_state,
)
from algd.sweep.trial import last_env_steps, run_trial

MANIFEST_FORMAT = 1
POLL_S = 0.5  #: seconds between looks at finished trials and the status board
INTERRUPT_GRACE_S = 60.0  #: how long Ctrl-C waits for running trials to write a checkpoint


class SweepInterrupted(Exception):
    """The sweep was stopped with Ctrl-C; running trials were asked to checkpoint."""


def import_ray() -> Any:
    """Import Ray, or explain in one line how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError("algd sweep runs its trials on Ray, which is not installed: "
                          "pip install 'algd[ray]' (or pip install ray)") from None
    return ray


@dataclass
class TrialRecord:
    """A trial's line in sweep.json (and in the summary the command prints)."""

    id: str
    algo: str
    env: str
    seed: int
    grid: dict[str, Any]
    steps: int  #: environment steps the trial runs to
    status: str = "pending"  #: pending, running, done, failed or interrupted
    attempts: int = 0  #: attempts made by this sweep command
    env_steps: int = 0  #: progress (last metrics row)
    errors: list[str] = field(default_factory=list)  #: one line per failed attempt
    pid: int | None = None
    node: str | None = None
    previously_done: bool = False  #: finished before this command started (not run again)
    final_return: float | None = None
    final_cost: float | None = None
    cost_limit: float | None = None
    constraint_satisfied: bool | None = None
    wall_s: float | None = None

    def finish(self, summary: dict[str, Any]) -> None:
        self.status = "done"
        self.env_steps = int(summary.get("env_steps", self.steps))
        for key in ("final_return", "final_cost", "cost_limit", "constraint_satisfied", "wall_s"):
            setattr(self, key, summary.get(key))


@dataclass
class SweepResult:
    """What :func:`run_sweep` returns: the sweep directory, one record per trial, the wall time."""

    out: Path
    trials: list[TrialRecord]
    wall_s: float

    @property
    def ok(self) -> bool:
        return all(r.status == "done" for r in self.trials)

    def counts(self) -> dict[str, int]:
        """Trials by outcome (``done``, ``failed``, ...)."""
        return _counts(self.trials)


def run_sweep(sweep: SweepConfig, *, command: str | None = None,
              stream: TextIO | None = None) -> SweepResult:
    """Run every unfinished trial of ``sweep`` on Ray and return their records.

    Uses the Ray instance this process is already connected to, else connects to
    ``sweep.address``, else starts a local one (and shuts it down afterwards). Progress and
    events go to ``stream`` (stderr). Raises :class:`ConfigError` before anything runs when the
    sweep or a trial directory is unusable, and :class:`SweepInterrupted` on Ctrl-C.
    """
    stream = stream or sys.stderr
    start = time.perf_counter()
    out = Path(sweep.out or "").resolve()
    sweep = dataclasses.replace(sweep, out=str(out))
    trials = expand_trials(sweep)
    states = {t.id: trial_state(t, out) for t in trials}  # refuses foreign/mismatched dirs early
    records = {t.id: _record(t, out, states[t.id]) for t in trials}
    todo = [t for t in trials if states[t.id] != "done"]
    manifest = _Manifest(out, sweep, command)
    done_before = len(trials) - len(todo)
    print(f"algd sweep: {len(trials)} trials in {out}"
          + (f" ({done_before} already done)" if done_before else ""), file=stream, flush=True)
    if not todo:
        out.mkdir(parents=True, exist_ok=True)
        manifest.write(records.values(), finished=True)
        return SweepResult(out, list(records.values()), time.perf_counter() - start)

    ray = import_ray()
    connected_here, where = _connect(ray, sweep, stream)
    try:
        cpus, gpus = _resources(ray, sweep)
        todo = [_place(t, gpus) for t in todo]
        manifest.ray = {"where": where, "version": ray.__version__,
                        "cpus_per_trial": cpus, "gpus_per_trial": gpus,
                        "torch_threads": (None if "torch_threads" in sweep.grid
                                          else sweep.torch_threads)}
        out.mkdir(parents=True, exist_ok=True)  # only now: bad input above writes nothing
        manifest.write(records.values())
        _describe(ray, sweep, where, cpus, gpus, len(todo), stream)
        _Loop(ray, sweep, out, records, manifest, cpus, gpus, stream).run(todo)
    finally:
        if connected_here:
            ray.shutdown()
    return SweepResult(out, list(records.values()), time.perf_counter() - start)


# -- Ray ----------------------------------------------------------------------------------------
def _connect(ray: Any, sweep: SweepConfig, stream: TextIO) -> tuple[bool, str]:
    """Connect to the cluster at ``sweep.address`` or start a local Ray. Returns whether this
    call connected (else the process's existing Ray is used and left running) and where."""
    if ray.is_initialized():
        return False, "this process's Ray"
    if sweep.address:
        if sweep.num_cpus is not None:
            raise ConfigError("--num-cpus sizes the local Ray instance; with --address the "
                              "cluster's own resources are used")
        _check_reachable(sweep.address)
        try:
            ray.init(address=sweep.address, log_to_driver=False, logging_level=logging.WARNING)
        except Exception as exc:  # Ray raises several kinds; all mean "not connected"
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ConfigError(
                f"cannot connect to the Ray cluster at {sweep.address} ({first}); if the cluster "
                "uses token authentication, set RAY_AUTH_MODE=token and give this machine its "
                "token (~/.ray/auth_token or RAY_AUTH_TOKEN)") from None
        return True, f"the Ray cluster at {sweep.address}"
    print("algd sweep: starting a local Ray instance...", file=stream, flush=True)
    try:
        ray.init(address="local", num_cpus=sweep.num_cpus, include_dashboard=False,
                 log_to_driver=False, logging_level=logging.ERROR)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"could not start a local Ray instance ({first}); Ray's logs are "
                          "under /tmp/ray/session_latest/logs") from None
    return True, "local Ray"


def _check_reachable(address: str) -> None:
    """Fail fast on a HOST:PORT where nothing listens (Ray itself keeps retrying for minutes)."""
    if address == "auto" or "://" in address:
        return
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"--address {address!r}: write HOST:PORT of the cluster's head (e.g. "
                          "10.0.0.5:6379), auto, or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as exc:
        raise ConfigError(f"nothing answers at {address} ({exc.strerror or exc}); start the "
                          "cluster with `ray start --head` or check the address") from None


def _resources(ray: Any, sweep: SweepConfig) -> tuple[float, float]:
    """CPUs and GPUs per trial, checked against the cluster (a trial that fits on no node would
    wait forever)."""
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    node_cpus = max((n.get("CPU", 0.0) for n in nodes), default=0.0)
    node_gpus = max((n.get("GPU", 0.0) for n in nodes), default=0.0)
    total = ray.cluster_resources()
    cpus = float(sweep.cpus_per_trial)
    if cpus > node_cpus:
        raise ConfigError(f"each trial asks for {cpus:g} CPUs but the largest Ray node has "
                          f"{node_cpus:g}; lower --cpus-per-trial")
    gpus = sweep.gpus_per_trial
    if gpus is None:
        gpus = default_gpu_share(total.get("CPU", 0.0), total.get("GPU", 0.0), cpus)
    if gpus > node_gpus:
        raise ConfigError(f"each trial asks for {gpus:g} GPUs but the largest Ray node has "
                          f"{node_gpus:g}; lower --gpus-per-trial")
    return cpus, float(gpus)


def default_gpu_share(cpus: float, gpus: float, cpus_per_trial: float) -> float:
    """GPUs per trial when the user names none: the cluster's GPUs shared evenly among the
    trials its CPUs run at once (at most one GPU each, rounded down to Ray's 1e-4 precision)."""
    if gpus <= 0:
        return 0.0
    at_once = max(1, math.floor(cpus / cpus_per_trial))
    return min(1.0, math.floor(gpus / at_once * 1e4) / 1e4)


def _place(trial: Trial, gpus: float) -> Trial:
    """Without a GPU share a trial trains on the CPU (``auto`` would grab an unreserved GPU)."""
    device = trial.train.device
    if gpus == 0 and device.startswith("cuda"):
        raise ConfigError(f"trial {trial.id} asks for device {device} but no GPU is reserved for "
                          "it; pass --gpus-per-trial (e.g. 0.25)")
    if gpus == 0 and device == "auto":
        trial = dataclasses.replace(trial, train=dataclasses.replace(trial.train, device="cpu"))
    return trial


def _describe(ray: Any, sweep: SweepConfig, where: str, cpus: float, gpus: float, n: int,
              stream: TextIO) -> None:
    total = ray.cluster_resources()
    at_once = math.floor(total.get("CPU", 0.0) / cpus)
    if gpus:
        at_once = min(at_once, math.floor(total.get("GPU", 0.0) / gpus))
    gpu_text = f" + {gpus:g} GPU" if gpus else ", no GPU"
    n_threads = sweep.torch_threads
    threads = ("the grid's torch threads" if "torch_threads" in sweep.grid else
               "torch's default threads" if n_threads is None else f"{n_threads} torch thread(s)")
    print(f"algd sweep: running {n} on {where} ({total.get('CPU', 0):g} CPUs, "
          f"{total.get('GPU', 0):g} GPUs): {cpus:g} CPU{gpu_text} and {threads} per trial, up "
          f"to {at_once} at a time", file=stream, flush=True)
    if "torch_threads" not in sweep.grid and n_threads is not None and n_threads > cpus:
        print(f"note: {n_threads} torch threads per trial on {cpus:g} reserved CPU(s): trials "
              f"running at once will compete for cores; pass --cpus-per-trial {n_threads} to "
              "reserve one per thread", file=stream, flush=True)


class _Board:
    """Ray actor: the latest report of every trial (pid, host, status, env_steps)."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}

    def update(self, trial_id: str, attempt: int, **fields: Any) -> None:
        record = self.records.get(trial_id)
        if record is None or attempt > record["attempt"]:
            record = self.records[trial_id] = {"attempt": attempt}
        elif attempt < record["attempt"]:
            return  # a late report from an earlier attempt
        record.update(fields)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return self.records


class _Loop:
    """Submits trials, collects results, retries failures, keeps the display and sweep.json
    current."""

    def __init__(self, ray: Any, sweep: SweepConfig, out: Path, records: dict[str, TrialRecord],
                 manifest: "_Manifest", cpus: float, gpus: float, stream: TextIO) -> None:
        self.ray, self.sweep, self.out, self.records, self.manifest = ray, sweep, out, records, \
            manifest
        self.stream = stream
        self.remote = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=0, max_calls=1)(
            run_trial)
        self.board = ray.remote(num_cpus=0)(_Board).remote()
        self.inflight: dict[Any, Trial] = {}
        self.display = _Display(list(records.values()), sweep.progress, stream)

    def run(self, todo: list[Trial]) -> None:
        handlers = _stop_on_signals()
        try:
            for trial in todo:
                self._submit(trial)
            self._refresh(force=True)
            while self.inflight:
                ready, _ = self.ray.wait(list(self.inflight), num_returns=len(self.inflight),
                                         timeout=POLL_S)
                changed = False
                for ref in ready:
                    self._collect(ref, self.inflight.pop(ref))
                    changed = True
                changed |= self._poll_board()
                self._refresh(force=changed)
        except KeyboardInterrupt:
            self._interrupt()
            raise SweepInterrupted(
                f"interrupted; running trials were asked to checkpoint. Run the same command "
                f"again to continue: finished trials are skipped, the others resume "
                f"({self.out / MANIFEST})") from None
        finally:
            for signum, handler in handlers.items():
                signal.signal(signum, handler)
            self.display.close()
            self.manifest.write(self.records.values(), finished=True)

    def _submit(self, trial: Trial) -> None:
        rec = self.records[trial.id]
        rec.attempts += 1
        rec.status, rec.pid = "pending", None
        ref = self.remote.remote(trial, str(self.out), rec.attempts, self.board)
        self.inflight[ref] = trial

    def _collect(self, ref: Any, trial: Trial) -> None:
        rec = self.records[trial.id]
        try:
            result = self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:
            result = {"status": "failed", "error": _ray_error(self.ray, exc), "retryable": True}
        if result["status"] == "done":
            rec.finish(result["summary"])
            self.display.event(f"done    {trial.id}: {_result_text(rec)}")
            return
        rec.errors.append(result["error"])
        log = self.out / trial.id / LOG_NAME
        if result.get("retryable") and rec.attempts <= self.sweep.retries:
            again = ("from its last checkpoint" if (self.out / trial.id / "checkpoint.pt").exists()
                     else "from scratch")
            self.display.event(f"failed  {trial.id} (attempt {rec.attempts} of "
                               f"{self.sweep.retries + 1}): {result['error']}; running it "
                               f"again {again}")
            self._submit(trial)
        else:
            rec.status = result["status"]
            self.display.event(f"FAILED  {trial.id} after {rec.attempts} attempt(s): "
                               f"{result['error']} (log: {log})")

    def _poll_board(self) -> bool:
        try:
            reports = self.ray.get(self.board.snapshot.remote(), timeout=30)
        except (self.ray.exceptions.RayError, TimeoutError):
            return False  # the board is only for display; results come from the tasks
        changed = False
        for trial_id, report in reports.items():
            rec = self.records[trial_id]
            if report["attempt"] != rec.attempts or rec.status not in ("pending", "running"):
                continue
            if rec.status == "pending" and report.get("status") == "running":
                rec.status, rec.pid, rec.node = "running", report.get("pid"), report.get("node")
                changed = True
            rec.env_steps = int(report.get("env_steps", rec.env_steps))
        return changed

    def _refresh(self, force: bool) -> None:
        self.display.refresh(self.records.values())
        self.manifest.write(self.records.values(), force=force)

    def _interrupt(self) -> None:
        self.display.event(f"interrupted: asking {len(self.inflight)} trial(s) to checkpoint "
                           f"and stop (up to {INTERRUPT_GRACE_S:.0f} s)...")
        for ref in self.inflight:
            self.ray.cancel(ref)
        ready, _ = self.ray.wait(list(self.inflight), num_returns=len(self.inflight),
                                 timeout=INTERRUPT_GRACE_S)
        for ref in list(self.inflight):
            rec = self.records[self.inflight.pop(ref).id]
            rec.status = "interrupted"
            if ref in ready:
                try:
                    result = self.ray.get(ref)
                except self.ray.exceptions.RayError:
                    continue
                if result["status"] == "done":
                    rec.finish(result["summary"])


def _stop_on_signals() -> dict[int, Any]:
    """Make SIGINT and SIGTERM (a scheduler stopping the job) stop the sweep gracefully, as
    Ctrl-C does. Returns the previous handlers (none off the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous: dict[int, Any] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, stop)
    return previous


def _ray_error(ray: Any, exc: BaseException) -> str:
    if isinstance(exc, ray.exceptions.WorkerCrashedError):
        return ("WorkerCrashedError: the trial's worker process died (killed, out of memory, or "
                "its node went away)")
    text = [line for line in str(exc).strip().splitlines() if line.strip()]
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


# -- records, display, manifest ------------------------------------------------------------------
def _record(trial: Trial, out: Path, state: str) -> TrialRecord:
    rec = TrialRecord(trial.id, trial.algo, trial.env, trial.seed, dict(trial.grid),
                      trial.train.steps)
    if state == "done":
        rec.finish(json.loads((out / trial.id / "summary.json").read_text()))
        rec.previously_done = True
    elif state == "resume":
        rec.env_steps = last_env_steps(out / trial.id / "metrics.csv")
    return rec


def _counts(records: Any) -> dict[str, int]:
    counts = dict.fromkeys(("pending", "running", "done", "failed", "interrupted"), 0)
    for r in records:
        counts[r.status] += 1
    return counts


def _result_text(rec: TrialRecord) -> str:
    from algd.analysis.plots import format_duration

    ok = "satisfied" if rec.constraint_satisfied else "VIOLATED"
    return (f"return {rec.final_return:.2f}, cost {rec.final_cost:.2f} (limit "
            f"{rec.cost_limit:g}: {ok}), {format_duration(rec.wall_s or 0.0)}")


class _Display:
    """A progress bar over all trials' environment steps, with the trial counts beside it;
    events (a trial done, failed, retried) are printed above it."""

    def __init__(self, records: list[TrialRecord], enabled: bool, stream: TextIO) -> None:
        self.stream = stream
        self.total = len(records)
        self._shown: tuple[int, str] | None = None
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            # the steps of a resumed sweep's finished and checkpointed trials are the bar's
            # start, not progress: counted as progress, they showed millions of steps/s and
            # an ETA of seconds
            done = sum(min(r.env_steps, r.steps) for r in records)
            self.bar = tqdm(total=sum(r.steps for r in records), initial=done, desc="sweep",
                            unit="step", file=stream, dynamic_ncols=True, smoothing=0.05,
                            mininterval=0.5)

    def event(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def refresh(self, records: Any) -> None:
        if self.bar is None:
            return
        records = list(records)
        c = _counts(records)
        n = sum(min(r.env_steps, r.steps) for r in records)
        failed = f" · {c['failed']} failed" if c["failed"] else ""
        text = (f"{c['done']}/{self.total} done · {c['running']} running · "
                f"{c['pending']} pending{failed}")
        if (n, text) != self._shown:  # redraw only on change (keeps non-terminal logs short)
            self._shown = (n, text)
            self.bar.n = n
            self.bar.set_postfix_str(text, refresh=False)
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _Manifest:
    """OUT/sweep.json: the command, the sweep, Ray's resources and every trial's record,
    rewritten atomically when something changes (at most every couple of seconds otherwise)."""

    def __init__(self, out: Path, sweep: SweepConfig, command: str | None) -> None:
        self.path = out / MANIFEST
        self.sweep, self.command = sweep, command
        self.started = datetime.now().isoformat(timespec="seconds")
        self.ray: dict[str, Any] = {}
        self._last_write = -math.inf

    def write(self, records: Any, *, force: bool = True, finished: bool = False) -> None:
        if not force and time.monotonic() - self._last_write < 2.0:
            return
        from algd import __version__
        from algd.train.checkpoint import atomic_write_text

        records = list(records)
        data = {
            "format": MANIFEST_FORMAT,
            "algd_version": __version__,
            "command": self.command,
            "started": self.started,
            "updated": datetime.now().isoformat(timespec="seconds"),
            "finished": finished,
            "sweep": config_to_dict(self.sweep),
            "ray": self.ray,
            "counts": _counts(records),
            "trials": [dataclasses.asdict(r) for r in records],
        }
        atomic_write_text(self.path, json.dumps(data, indent=2, default=_json_default))
        self._last_write = time.monotonic()


def _json_default(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    raise TypeError(f"cannot write {type(value).__name__} to sweep.json")


def format_table(records: list[TrialRecord]) -> str:
    """The per-trial summary printed at the end of a sweep."""
    from algd.analysis.plots import format_duration

    width = max([len(r.id) for r in records] + [5])
    lines = [f"{'trial':{width}s}  {'status':11s} {'tries':>5s} {'steps':>8s} "
             f"{'return':>8s} {'cost':>7s} {'wall':>8s}"]
    for r in records:
        tries = "-" if r.previously_done else str(r.attempts)
        ret = f"{r.final_return:8.2f}" if r.final_return is not None else f"{'':8s}"
        cost = f"{r.final_cost:7.2f}" if r.final_cost is not None else f"{'':7s}"
        wall = format_duration(r.wall_s) if r.wall_s is not None else ""
        lines.append(f"{r.id:{width}s}  {r.status:11s} {tries:>5s} {r.env_steps:8d} "
                     f"{ret} {cost} {wall:>8s}")
    return "\n".join(lines)
