"""Never lose a run: exact resume, signals, non-finite values, corrupt checkpoints (issue 6)."""

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from helpers import CLI_TINY, TINY, TINY_ALGO, metrics, same_best

from algd.algos import get_algo
from algd.cli import main
from algd.config import ConfigError, TrainConfig
from algd.envs import PointDetourVec, TaskSpec, register_task
from algd.train import Trainer
from algd.train.checkpoint import CheckpointError, load_run, read_checkpoint
from algd.train.loop import TrainingInterrupted, resume_run


def train_run(out, **kw):
    cfg = TrainConfig(out=str(out), **{**TINY, **kw})
    return Trainer(cfg, get_algo(cfg.algo).make_config(TINY_ALGO)).run()




@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted 600-step run that the interrupted ones must reproduce."""
    return train_run(tmp_path_factory.mktemp("ref") / "run", steps=600).run_dir


def test_stop_and_extend_equals_uninterrupted_run(tmp_path, reference):
    run_dir = tmp_path / "run"
    train_run(run_dir, steps=300)
    resume_run(run_dir, {"steps": 600})
    assert metrics(run_dir) == metrics(reference)
    assert same_best(run_dir, reference)
    assert load_run(run_dir).env_steps == 600
    # the summary too, at full precision (metrics.csv rounds to 6 digits), timings aside
    summaries = [json.loads((Path(d) / "summary.json").read_text()) for d in (run_dir, reference)]
    for s in summaries:
        for k in ("wall_s", "run_dir", "checkpoint", "plot", "best"):
            s.pop(k)
    assert summaries[0] == summaries[1]


def _start_cli(out, *extra):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "algd", "train", "--steps", "600", "--out", str(out), *CLI_TINY,
         *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for(pred, proc, timeout=120):
    start = time.time()
    while not pred():
        if proc.poll() is not None:
            raise AssertionError(f"training exited early: {proc.communicate()}")
        if time.time() - start > timeout:
            proc.kill()
            raise AssertionError("timed out waiting for the training subprocess")
        time.sleep(0.05)


def _rows_written(run_dir):
    p = Path(run_dir) / "metrics.csv"
    return len(p.read_text().splitlines()) - 1 if p.exists() else 0


def test_sigterm_checkpoints_and_resume_is_exact(tmp_path, reference):
    out = tmp_path / "term"
    proc = _start_cli(out, "--checkpoint-every", "0")
    _wait_for(lambda: _rows_written(out) >= 3, proc)  # mid-run, somewhere after step 200
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert f"Resume with: algd train --resume {out}" in err
    assert "Traceback" not in err
    stopped_at = read_checkpoint(out / "checkpoint.pt")["env_steps"]
    assert 200 <= stopped_at < 600
    assert main(["train", "--resume", str(out)]) == 0
    assert metrics(out) == metrics(reference)


def test_sigkill_loses_at_most_one_interval_and_resume_is_exact(tmp_path, reference):
    out = tmp_path / "kill"
    proc = _start_cli(out, "--checkpoint-every", "150")
    ck = out / "checkpoint.pt"
    _wait_for(lambda: ck.exists() and _rows_written(out) >= 4, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    # every metrics row is complete: no torn line
    with open(out / "metrics.csv") as f:
        lines = list(csv.reader(f))
    assert all(len(line) == len(lines[0]) for line in lines)
    saved = read_checkpoint(ck)["env_steps"]
    assert saved % 150 == 0 and int(lines[-1][0]) - saved < 150 + 100  # ≤ one interval lost
    assert main(["train", "--resume", str(out)]) == 0
    assert metrics(out) == metrics(reference)
    assert same_best(out, reference)  # a best.pt written after the checkpoint is not kept


def _evaluate_then(monkeypatch, action):
    """Run ``action()`` inside the first evaluation (the step-0 one), then evaluate."""
    original, calls = Trainer._evaluate, []

    def evaluate(self):
        if not calls:
            calls.append(1)
            action()
        return original(self)

    monkeypatch.setattr(Trainer, "_evaluate", evaluate)


def test_signal_during_the_first_evaluation_checkpoints_step_0_and_resumes_exactly(
        tmp_path, reference, monkeypatch, capfd):
    """On the navigation tasks the step-0 evaluation takes ~40 s: Ctrl-C there must not leave a
    run that can be neither resumed nor started again."""
    _evaluate_then(monkeypatch, lambda: os.kill(os.getpid(), signal.SIGINT))
    with pytest.raises(TrainingInterrupted, match="SIGINT received at environment step 0"):
        train_run(tmp_path / "run", steps=600)
    # written straight to file descriptor 2 (print() may not run inside a signal handler)
    assert "SIGINT received; stopping after the current step or evaluation" in capfd.readouterr().err
    assert read_checkpoint(tmp_path / "run" / "checkpoint.pt")["env_steps"] == 0
    monkeypatch.undo()
    resume_run(tmp_path / "run")
    assert metrics(tmp_path / "run") == metrics(reference)
    assert same_best(tmp_path / "run", reference)


def test_run_that_died_before_its_first_checkpoint_is_started_again(tmp_path, reference,
                                                                    monkeypatch, capsys):
    def crash():
        raise RuntimeError("the machine went away")

    run_dir = tmp_path / "run"
    _evaluate_then(monkeypatch, crash)
    with pytest.raises(RuntimeError):
        train_run(run_dir, steps=600)
    monkeypatch.undo()
    assert (run_dir / "config.json").exists() and not (run_dir / "checkpoint.pt").exists()
    assert main(["train", "--resume", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "stopped before its first checkpoint" in err and "start it afresh" in err
    # another configuration is not taken for "the same command": refused, nothing deleted
    with pytest.raises(ConfigError, match="holds a run with seed=0 .* asks for seed=7"):
        train_run(run_dir, steps=600, seed=7)
    # while a process still runs there (it holds the run's lock), nothing is touched either
    from algd.train.run_lock import run_lock

    with run_lock(run_dir):
        with pytest.raises(ConfigError, match="in use by another algd process"):
            train_run(run_dir, steps=600)
    assert (run_dir / "config.json").exists()
    (run_dir / "best.pt.tmp").write_bytes(b"torn")  # a write cut short by the kill
    train_run(run_dir, steps=600)  # the same command again starts it afresh
    assert "starting it again" in capsys.readouterr().err
    assert metrics(run_dir) == metrics(reference)
    assert not (run_dir / "best.pt.tmp").exists()
    # and a run in progress cannot be resumed a second time
    with run_lock(run_dir):
        assert main(["train", "--resume", str(run_dir), "--steps", "700"]) == 2
        assert "in use by another algd process" in capsys.readouterr().err
    # a directory with anything else in it is still refused
    (tmp_path / "other").mkdir()
    for name in ("config.json", "notes.txt"):
        (tmp_path / "other" / name).write_text((run_dir / "config.json").read_text())
    with pytest.raises(ConfigError, match="already holds another run"):
        train_run(tmp_path / "other", steps=600)


def test_resume_refuses_config_changes_and_bad_checkpoints(tmp_path, capsys):
    run_dir = tmp_path / "run"
    train_run(run_dir, steps=200)
    before = (run_dir / "metrics.csv").read_text()
    assert main(["train", "--resume", str(run_dir), "--rho", "3"]) == 2
    assert "only steps" in capsys.readouterr().err
    for preset in ("smoke", "paper"):  # a preset would change the run too: refused, not dropped
        assert main(["train", "--resume", str(run_dir), "--preset", preset, "--steps", "300"]) == 2
        assert "not preset" in capsys.readouterr().err
    ck = run_dir / "checkpoint.pt"
    data = ck.read_bytes()
    ck.write_bytes(data[: len(data) // 2])  # truncated
    assert main(["train", "--resume", str(run_dir), "--steps", "300"]) == 2
    err = capsys.readouterr().err.strip()
    assert "corrupt or truncated" in err and len(err.splitlines()) == 1
    assert (run_dir / "metrics.csv").read_text() == before  # nothing overwritten
    assert main(["train", "--resume", str(tmp_path / "nowhere")]) == 2
    assert "not a run directory" in capsys.readouterr().err
    assert main(["train", "--resume", str(ck)]) == 2  # the checkpoint, not its directory
    assert f"pass the directory that holds it ({run_dir})" in capsys.readouterr().err
    # a checkpoint of another configuration is rejected
    other = tmp_path / "other"
    train_run(other, steps=200, seed=1)
    ck.write_bytes(data)
    state = torch.load(ck, weights_only=True)
    state["config"]["algo"]["rho"] = 9.0
    torch.save(state, ck)
    with pytest.raises(CheckpointError, match="different algo configuration"):
        resume_run(run_dir, {"steps": 300})


def test_existing_run_directory_points_to_resume(tmp_path, capsys):
    run_dir = tmp_path / "run"
    train_run(run_dir, steps=100)
    assert main(["train", "--out", str(run_dir), "--steps", "100"]) == 2
    assert f"algd train --resume {run_dir}" in capsys.readouterr().err


def test_resume_to_fewer_steps_than_done_is_refused(tmp_path, capsys):
    """`--resume RUN --steps N` below the checkpoint's steps used to reprint the old summary and
    exit 0; it would not extend anything, so it is an error that leaves the run as it was."""
    run_dir = tmp_path / "run"
    train_run(run_dir, steps=200)
    before = {f.name: f.read_bytes() for f in run_dir.iterdir() if f.is_file()}
    assert main(["train", "--resume", str(run_dir), "--steps", "150"]) == 2
    err = capsys.readouterr().err.strip()
    assert "already at 200 environment steps; --steps 150 would not extend it" in err
    assert {f.name: f.read_bytes() for f in run_dir.iterdir() if f.is_file()} == before
    assert main(["train", "--resume", str(run_dir)]) == 0  # a finished run: just its summary


def test_run_without_checkpoints_says_why_it_cannot_be_loaded(tmp_path, capsys):
    run_dir = tmp_path / "run"
    train_run(run_dir, steps=100, checkpoint=False)
    assert not (run_dir / "checkpoint.pt").exists()
    for argv in (["train", "--resume", str(run_dir)], ["eval", str(run_dir)]):
        assert main(argv) == 2
        assert "trained with --checkpoint false" in capsys.readouterr().err


class _NaNRewardAfter(PointDetourVec):
    """A (buggy) task whose reward turns NaN after 250 steps: the run must stop cleanly."""

    def step(self, actions):
        out = super().step(actions)
        self._count = getattr(self, "_count", 0) + 1
        if self._count > 250:
            out.reward[:] = np.nan
        return out


def test_non_finite_values_stop_the_run_and_keep_the_last_good_checkpoint(tmp_path, capsys):
    register_task(TaskSpec("NaNAfter250", lambda n, d: _NaNRewardAfter(n, cost_discount=d),
                           cost_limit=2.0, budget="episode", max_episode_steps=50))
    out = tmp_path / "nan"
    code = main(["train", "--env", "NaNAfter250", "--steps", "600", "--out", str(out),
                 "--checkpoint-every", "200", *CLI_TINY])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert "critic_loss" in err and "became non-finite" in err and "checkpoint" in err
    good = load_run(out)  # the last good checkpoint still loads...
    assert good.env_steps == 200  # ...and predates the NaNs
    assert all(torch.isfinite(p).all() for p in good.agent.parameters())


class _NaNObservationAfter(PointDetourVec):
    """A (buggy) task whose observations turn NaN after 250 steps: the policy would map them to
    NaN actions and the replay would store them; the run must stop and name the environment."""

    def step(self, actions):
        out = super().step(actions)
        self._count = getattr(self, "_count", 0) + 1
        if self._count > 250:
            out.obs[:, 1] = np.nan
        return out


@pytest.mark.parametrize("warmup_policy", ["policy", "uniform"])
def test_non_finite_observations_stop_the_run_and_name_the_environment(tmp_path, capsys,
                                                                         warmup_policy):
    """Caught as the environment returns them, before the replay stores them (uniform warm-up
    actions never pass an observation through act_np)."""
    register_task(TaskSpec("NaNObsAfter250", lambda n, d: _NaNObservationAfter(n, cost_discount=d),
                           cost_limit=2.0, budget="episode", max_episode_steps=50))
    out = tmp_path / "nan"
    code = main(["train", "--env", "NaNObsAfter250", "--steps", "600", "--out", str(out),
                 "--checkpoint-every", "200", "--warmup-policy", warmup_policy, *CLI_TINY,
                 "--warmup-steps", "300"])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert "training environment returned an observation holding NaN" in err
    assert "step 251" in err and "entry 1" in err and "checkpoint" in err
    assert load_run(out).env_steps == 200


class _PendulumCost(gym.Wrapper):
    """Pendulum with a cost, behind a wrapper the snapshot module does not know: its episodes
    are saved as seed + actions and replayed on resume."""

    noisy = False  # True: the dynamics draw unseeded noise, so a replay cannot reproduce them

    def step(self, action):
        if self.noisy:
            action = action + np.random.default_rng().normal(0.0, 0.1, size=np.shape(action))
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, {**info, "cost": float(abs(obs[2]) > 4.0)}


def _pendulum_task(name, noisy):
    def make(render_mode=None):
        env = _PendulumCost(gym.make("Pendulum-v1"))
        env.noisy = noisy
        return env

    register_task(TaskSpec.from_gym(name, make, cost_limit=5.0, budget="episode",
                                    max_episode_steps=200))


def test_gymnasium_task_resumes_exactly_by_replaying_the_episode(tmp_path):
    _pendulum_task("PendulumCost", noisy=False)
    ref = train_run(tmp_path / "ref", env="PendulumCost", steps=400, num_envs=2).run_dir
    run_dir = tmp_path / "part"
    train_run(run_dir, env="PendulumCost", steps=300, num_envs=2)  # stops mid-episode
    env_state = read_checkpoint(run_dir / "checkpoint.pt")["trainer"]["env"]
    assert [len(e["actions"]) for e in env_state["envs"]] == [150, 150]  # of 200-step episodes
    resume_run(run_dir, {"steps": 400})
    assert metrics(run_dir) == metrics(ref)


class _RandomCost(gym.Wrapper):
    """Pendulum whose cost is drawn from Python's global generator: the replay on resume draws
    from it too, so the trainer must restore the generators after the environments."""

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, {**info, "cost": float(random.random() < 0.2)}


def test_replay_does_not_consume_the_restored_random_generators(tmp_path):
    register_task(TaskSpec.from_gym(
        "RandomCostPendulum", lambda render_mode=None: _RandomCost(gym.make("Pendulum-v1")),
        cost_limit=5.0, budget="episode", max_episode_steps=200))
    ref = train_run(tmp_path / "ref", env="RandomCostPendulum", steps=400).run_dir
    run_dir = tmp_path / "part"
    train_run(run_dir, env="RandomCostPendulum", steps=300)  # 100 steps into an episode
    resume_run(run_dir, {"steps": 400})
    assert metrics(run_dir) == metrics(ref)


def test_environment_that_does_not_replay_resumes_with_fresh_episodes_and_says_so(tmp_path,
                                                                                  capsys):
    _pendulum_task("NoisyPendulumCost", noisy=True)
    run_dir = tmp_path / "noisy"
    train_run(run_dir, env="NoisyPendulumCost", steps=150)
    capsys.readouterr()
    resume_run(run_dir, {"steps": 300})
    err = capsys.readouterr().err
    assert "NoisyPendulumCost" in err and "did not reproduce the saved observation" in err
    assert "episodes in progress at step 150 restart" in err
    assert load_run(run_dir).env_steps == 300


def test_resume_uses_the_gemm_backend_the_run_was_trained_with(tmp_path, monkeypatch):
    """The CPU GEMM is measured per process; a resumed run must not switch it (the backends agree
    only up to summation order), unless ALGD_GEMM says so."""
    from algd.nets import gemm

    if not gemm.onednn_available():
        pytest.skip("this torch build has no oneDNN")
    monkeypatch.setattr(gemm, "ONEDNN_MIN_MACS", 0)  # tiny critics: every product on oneDNN
    monkeypatch.delenv(gemm.ENV_VAR, raising=False)
    with gemm.use_gemm_backend("onednn"):
        ref = train_run(tmp_path / "ref", steps=300).run_dir
        run_dir = train_run(tmp_path / "run", steps=200).run_dir
    monkeypatch.setattr(gemm, "_requested", None)  # a new process that measured MKL faster
    monkeypatch.setattr(gemm, "_resolved", "torch")
    seen = []
    from algd.algos.algd import ALGD

    update = ALGD.update

    def spy(agent, batch):
        seen.append(gemm.gemm_backend())
        return update(agent, batch)

    monkeypatch.setattr(ALGD, "update", spy)
    resume_run(run_dir, {"steps": 300})
    assert seen and set(seen) == {"onednn"}
    assert metrics(run_dir) == metrics(ref)
    assert gemm.gemm_backend() == "torch"  # the process's own choice is back


def test_first_row_after_resume_rates_the_work_since_the_last_row(tmp_path):
    """updates_per_s and env_steps_per_s of the first row after a resume divide the work since
    the previous row by the time it took, before and after the stop (not by the latter only)."""
    run_dir = tmp_path / "run"
    train_run(run_dir, steps=250, checkpoint_every=50)  # last row at 200, checkpoint at 250
    state = read_checkpoint(run_dir / "checkpoint.pt")
    assert state["trainer"]["since_last_row_s"] > 0
    state["trainer"]["since_last_row_s"] = 1000.0  # as if the 50 steps before the stop took long
    torch.save(state, run_dir / "checkpoint.pt")
    resume_run(run_dir, {"steps": 300})
    with open(run_dir / "metrics.csv") as f:
        last = list(csv.DictReader(f))[-1]
    assert int(last["env_steps"]) == 300
    assert float(last["env_steps_per_s"]) < 100 / 1000.0
