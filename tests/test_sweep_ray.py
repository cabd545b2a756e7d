"""Real sweeps on a local Ray (issue 8): every trial runs, a killed trial is retried from its
checkpoint and loses nothing, a trial that keeps dying is reported, and running the command
again does no finished work. One Ray instance (2 CPUs) and one sweep (2 algorithms × 2 seeds,
300 steps) are shared by the tests."""

import contextlib
import csv
import io
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

ray = pytest.importorskip("ray")

from algd.cli import main  # noqa: E402
from algd.sweep import expand_trials, run_trial, trial_state  # noqa: E402
from algd.sweep.cli import parse_sweep_args  # noqa: E402

TINY = ["--steps", "300", "--warmup-steps", "100", "--eval-every", "100", "--eval-episodes", "2",
        "--batch-size", "32", "--plot", "false", "--policy-hidden", "16", "--critic-hidden",
        "16,16"]
IDS = ["PointDetour/algd-vesde/seed0", "PointDetour/algd-ddpm/seed0",
       "PointDetour/algd-vesde/seed1", "PointDetour/algd-ddpm/seed1"]


def sweep_args(out):
    return ["--algos", "algd-vesde,algd-ddpm", "--seeds", "0,1", "--out", str(out), "--retries",
            "1", "--checkpoint-every", "100", "--num-cpus", "2", *TINY]


class Killer(threading.Thread):
    """Crashes trials the way a dying machine would: SIGKILL to the Ray worker process that
    runs them (pids from sweep.json). The first trial seen past its first checkpoint is killed
    once; the next one is killed on each of its two attempts."""

    def __init__(self, out: Path) -> None:
        super().__init__(daemon=True)
        self.out, self.stop = out, threading.Event()
        self.once: str | None = None
        self.always: str | None = None
        self.killed: list[tuple[str, int]] = []

    def run(self) -> None:
        while not self.stop.is_set():
            for rec in self._running():
                tid, key = rec["id"], (rec["id"], rec["attempts"])
                if key in self.killed or (self.out / tid / "summary.json").exists():
                    continue
                if not (self.out / tid / "checkpoint.pt").exists():
                    continue
                if self.once is None:
                    self.once = tid
                elif self.always is None and tid != self.once:
                    self.always = tid
                if (tid == self.once and rec["attempts"] == 1) or tid == self.always:
                    os.kill(rec["pid"], signal.SIGKILL)
                    self.killed.append(key)
            time.sleep(0.05)

    def _running(self) -> list[dict]:
        try:
            trials = json.loads((self.out / "sweep.json").read_text())["trials"]
        except (OSError, ValueError, KeyError):
            return []
        return [r for r in trials if r["status"] == "running" and r["pid"]]


def run_cli(*argv):
    """``algd ...`` in this process; (exit code, stdout, stderr)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(list(argv))
    return code, stdout.getvalue(), stderr.getvalue()


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray (2 CPUs) for the module; `algd sweep` in this process uses it."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def sweep(local_ray, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "s"
    killer = Killer(out)
    killer.start()
    code, stdout, stderr = run_cli("sweep", *sweep_args(out))
    killer.stop.set()
    killer.join()
    return SimpleNamespace(out=out, code=code, stdout=stdout, stderr=stderr, killer=killer,
                           manifest=json.loads((out / "sweep.json").read_text()))


def env_steps(run_dir: Path) -> list[int]:
    with open(run_dir / "metrics.csv") as f:
        return [int(row["env_steps"]) for row in csv.DictReader(f)]


def without_timing(run_dir: Path) -> list[dict]:
    with open(run_dir / "metrics.csv") as f:
        return [{k: v for k, v in row.items()
                 if k not in ("updates_per_s", "env_steps_per_s", "wall_s")}
                for row in csv.DictReader(f)]


def test_every_trial_is_an_ordinary_run_directory(sweep):
    k = sweep.killer
    assert k.once and k.always, f"the killer found no running trials to kill: {k.killed}"
    records = {r["id"]: r for r in sweep.manifest["trials"]}
    assert list(records) == IDS
    assert sweep.manifest["ray"]["cpus_per_trial"] == 1.0
    assert sweep.manifest["ray"]["gpus_per_trial"] == 0.0
    for tid in IDS:
        run_dir = sweep.out / tid
        assert (run_dir / "config.json").exists() and (run_dir / "trial.log").exists()
        config = json.loads((run_dir / "config.json").read_text())["train"]
        algo, seed = tid.split("/")[1], int(tid[-1])
        assert (config["algo"], config["seed"], config["steps"]) == (algo, seed, 300)
        assert config["torch_threads"] == 1 and config["device"] == "cpu"
        assert config["progress"] is False
        log = (run_dir / "trial.log").read_text()
        assert "attempt 1" in log and "step/s" not in log  # no progress bar in the log
        if tid == k.always:
            continue
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["env_steps"] == 300 and summary["algo"] == algo
        assert env_steps(run_dir) == [0, 100, 200, 300]
        assert (run_dir / "checkpoint.pt").exists()
        rec = records[tid]
        assert rec["status"] == "done" and rec["env_steps"] == 300
        assert rec["final_return"] == summary["final_return"]
    assert f"done    {IDS[0]}" in sweep.stderr or f"done    {IDS[1]}" in sweep.stderr
    assert "3 of 4 trials done, 1 not" in sweep.stdout


def test_a_killed_trial_is_retried_from_its_checkpoint(sweep):
    rec = next(r for r in sweep.manifest["trials"] if r["id"] == sweep.killer.once)
    assert rec["status"] == "done" and rec["attempts"] == 2
    assert len(rec["errors"]) == 1 and rec["errors"][0].startswith("WorkerCrashedError")
    assert (f"failed  {rec['id']} (attempt 1 of 2): WorkerCrashedError" in sweep.stderr)
    assert "running it again from its last checkpoint" in sweep.stderr
    run_dir = sweep.out / rec["id"]
    log = (run_dir / "trial.log").read_text()
    assert "attempt 2" in log and "resuming from its checkpoint" in log
    assert env_steps(run_dir) == [0, 100, 200, 300]  # each row once: nothing lost or repeated


def test_a_trial_that_keeps_dying_is_reported_failed(sweep):
    assert sweep.code == 1
    rec = next(r for r in sweep.manifest["trials"] if r["id"] == sweep.killer.always)
    assert rec["status"] == "failed" and rec["attempts"] == 2 and len(rec["errors"]) == 2
    assert f"FAILED  {rec['id']} after 2 attempt(s): WorkerCrashedError" in sweep.stderr
    assert any(line.startswith(rec["id"]) and " failed " in line
               for line in sweep.stdout.splitlines())
    assert not (sweep.out / rec["id"] / "summary.json").exists()


def test_running_the_command_again_only_resumes_what_is_unfinished(sweep):
    finished = [tid for tid in IDS if tid != sweep.killer.always]
    before = {p: (p.stat().st_mtime_ns, p.read_bytes())
              for tid in finished for p in (sweep.out / tid).iterdir()}
    code, _, err = run_cli("sweep", *sweep_args(sweep.out))
    assert code == 0, err
    assert "4 trials in" in err and "(3 already done)" in err and "running 1 on" in err
    after = {p: (p.stat().st_mtime_ns, p.read_bytes())
             for tid in finished for p in (sweep.out / tid).iterdir()}
    assert after == before  # finished trials were not touched
    manifest = json.loads((sweep.out / "sweep.json").read_text())
    assert manifest["counts"]["done"] == 4
    rec = next(r for r in manifest["trials"] if r["id"] == sweep.killer.always)
    assert rec["attempts"] == 1 and not rec["previously_done"]
    run_dir = sweep.out / rec["id"]
    headers = [line for line in (run_dir / "trial.log").read_text().splitlines()
               if line.startswith("=== algd sweep: attempt")]
    assert len(headers) == 3 and "resuming from its checkpoint" in headers[-1]
    assert env_steps(run_dir) == [0, 100, 200, 300]
    # once everything is done, the command submits nothing
    code, out, err = run_cli("sweep", *sweep_args(sweep.out))
    assert code == 0 and "(4 already done)" in err and "running" not in err
    assert "4 of 4 trials done" in out


@pytest.mark.slow
def test_a_local_ray_is_started_and_shut_down(tmp_path):
    """Without --address and outside a Ray program, the command starts its own Ray and leaves
    no Ray process behind (about 30 s: Ray's start-up)."""
    before = _ray_processes()
    out = tmp_path / "s"
    proc = subprocess.run([sys.executable, "-m", "algd", "sweep", "--out", str(out),
                           "--num-cpus", "1", *TINY, "--steps", "200"],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr
    assert "starting a local Ray instance" in proc.stderr and "Traceback" not in proc.stderr
    assert "1 of 1 trials done" in proc.stdout
    assert json.loads((out / "PointDetour/algd-vesde/seed0/summary.json").read_text())[
        "env_steps"] == 200
    deadline = time.time() + 30
    while _ray_processes() - before and time.time() < deadline:
        time.sleep(0.5)
    assert not _ray_processes() - before


def _ray_processes() -> set[int]:
    """pids of Ray's daemons (raylet, GCS) on this machine."""
    pids = set()
    for d in Path("/proc").iterdir():
        try:
            cmd = (d / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if d.name.isdigit() and (b"raylet" in cmd or b"gcs_server" in cmd):
            pids.add(int(d.name))
    return pids


def test_a_retried_trial_equals_an_uninterrupted_run(sweep, tmp_path):
    """The killed-and-resumed trial's metrics match the same trial run in one go — here by
    run_trial itself, after a kill before its first checkpoint, which must start it cleanly."""
    tid = sweep.killer.once
    algo, seed = tid.split("/")[1], tid[-1]
    out = tmp_path / "again"
    sweep_cfg, _ = parse_sweep_args(["--algos", algo, "--seeds", seed, "--out", str(out), *TINY])
    (trial,) = expand_trials(sweep_cfg)
    run_dir = trial.run_dir(out)
    proc = subprocess.Popen([sys.executable, "-m", "algd", "train", "--algo", algo, "--seed",
                             seed, "--out", str(run_dir), "--checkpoint-every", "0",
                             "--progress", "false", *TINY],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    start = time.time()
    while not ((run_dir / "metrics.csv").exists() and len(env_steps(run_dir)) >= 1):
        assert proc.poll() is None and time.time() - start < 120
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert trial_state(trial, out) == "restart"  # config.json and some rows, no checkpoint
    (out / "sweep.json").write_text("{}")  # run_trial checks that it sees the sweep directory
    result = run_trial(trial, str(out))
    assert result["status"] == "done" and result["action"] == "restart"
    assert "starting again from scratch" in (run_dir / "trial.log").read_text()
    assert without_timing(run_dir) == without_timing(sweep.out / tid)


@pytest.mark.slow
def test_a_sweep_runs_on_an_existing_cluster(tmp_path):
    """--address: a cluster started with `ray start --head` (token authentication, its token in
    the environment) runs the trials; about 30 s."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, OMP_NUM_THREADS="1", RAY_AUTH_MODE="token",
               RAY_AUTH_TOKEN=secrets.token_hex(32))
    head = subprocess.Popen([str(Path(sys.executable).parent / "ray"), "start", "--head",
                             "--block", "--port", str(port), "--num-cpus", "2",
                             "--include-dashboard", "false"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        start = time.time()
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert head.poll() is None and time.time() - start < 120
                time.sleep(0.5)
        out = tmp_path / "s"
        proc = subprocess.run([sys.executable, "-m", "algd", "sweep", "--address",
                               f"127.0.0.1:{port}", "--seeds", "0,1", "--out", str(out), *TINY,
                               "--steps", "200"], capture_output=True, text=True, timeout=300,
                              env=env)
        assert proc.returncode == 0, proc.stderr
        assert f"on the Ray cluster at 127.0.0.1:{port}" in proc.stderr
        assert "2 of 2 trials done" in proc.stdout
    finally:
        head.terminate()  # `ray start --block` drains and stops the node's processes
        head.wait(120)
