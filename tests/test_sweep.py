"""Sweep specification (issue 8): trials, directory names, files, resuming decisions, bad input.

Nothing here starts Ray; tests/test_sweep_ray.py runs real sweeps."""

import dataclasses
import sys

import pytest

from algd.cli import main
from algd.config import ConfigError
from algd.sweep import expand_trials, sweep_from_values, trial_state
from algd.sweep.cli import parse_sweep_args
from algd.sweep.runner import default_gpu_share, import_ray
from algd.train import Trainer

TINY = ["--steps", "300", "--warmup-steps", "100", "--eval-every", "100", "--eval-episodes", "2",
        "--batch-size", "32", "--plot", "false", "--policy-hidden", "16", "--critic-hidden",
        "16,16"]


def sweep_of(*argv):
    return parse_sweep_args(list(argv))[0]


def test_trials_are_every_combination_with_readable_directories(tmp_path):
    sweep = sweep_of("--algos", "algd-vesde,algd-ddpm", "--seeds", "0,1", "--grid", "rho=0.5,2",
                     "--grid", "critic-hidden=16,16;32,32", "--out", str(tmp_path), *TINY)
    trials = expand_trials(sweep)
    assert len(trials) == 2 * 2 * 2 * 2
    ids = [t.id for t in trials]
    assert len(set(ids)) == len(ids)
    assert ids[0] == "PointDetour/algd-vesde/rho=0.5/critic_hidden=16-16/seed0"
    assert all(t.seed == 0 for t in trials[:8])  # seed-major: every configuration's seed 0 first
    t = next(t for t in trials if t.id == "PointDetour/algd-ddpm/rho=2/critic_hidden=32-32/seed1")
    assert (t.algo, t.env, t.seed) == ("algd-ddpm", "PointDetour", 1)
    assert t.algo_cfg.rho == 2.0 and t.algo_cfg.critic_hidden == (32, 32)
    assert t.algo_cfg.variant == "ddpm" and t.algo_cfg.policy_hidden == 16
    assert t.train.steps == 300 and t.train.seed == 1 and t.train.algo == "algd-ddpm"
    assert t.train.progress is False and t.train.torch_threads == 1  # 1 CPU per trial
    assert t.train.out == str(tmp_path / t.id)


def test_yaml_file_and_flags_combine(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("out: %s\nalgos: [algd-ddpm]\nseeds: [3, 4]\nsteps: 500\nrho: 3\n"
                 "cpus_per_trial: 2\ngrid:\n  mc-samples: [4, 8]\n" % (tmp_path / "o"))
    sweep, dry = parse_sweep_args([str(f), "--seeds", "7", "--steps", "200", "--dry-run"])
    assert dry
    trials = expand_trials(sweep)
    assert [t.id for t in trials] == ["PointDetour/algd-ddpm/mc_samples=4/seed7",
                                      "PointDetour/algd-ddpm/mc_samples=8/seed7"]
    assert trials[0].train.steps == 200 and trials[0].algo_cfg.rho == 3.0
    assert trials[1].algo_cfg.mc_samples == 8 and trials[0].train.torch_threads == 2


def test_preset_values_and_explicit_torch_threads(tmp_path):
    sweep = sweep_from_values({"out": str(tmp_path), "preset": "smoke", "torch_threads": 3,
                               "seeds": "0,1"})
    trials = expand_trials(sweep)
    assert [t.train.steps for t in trials] == [2000, 2000]
    assert trials[0].algo_cfg.critic_hidden == (32, 32) and trials[0].train.torch_threads == 3
    assert sweep.torch_threads == 3  # what the sweep reports and records: the trials' value
    for none in ("none", None):  # torch's default, as `algd train --torch-threads none`
        sweep = sweep_from_values({"out": str(tmp_path), "torch_threads": none})
        assert sweep.torch_threads is None
        assert expand_trials(sweep)[0].train.torch_threads is None


@pytest.mark.parametrize("argv, message", [
    (["--seeds", "0"], "needs a directory"),
    (["--out", "o", "--algos", "algd-vsde"], "Did you mean algd-vesde"),
    (["--out", "o", "--envs", "Nowhere"], "unknown task"),
    (["--out", "o", "--seed", "3"], "takes --seeds"),
    (["--out", "o", "--grid", "seed=1,2"], "set it with --seeds"),
    (["--out", "o", "--grid", "rho"], "write FIELD=V1,V2"),
    (["--out", "o", "--grid", "rhoo=1,2"], "unknown field 'rhoo'"),
    (["--out", "o", "--grid", "rho=1,x"], "cannot read 'x'"),
    (["--out", "o", "--grid", "rho=1,1.0"], "lists a value twice"),
    (["--out", "o", "--seeds", "1,1"], "lists a value twice"),
    (["--out", "o", "--rho", "-1"], "rho must be > 0"),
    (["--out", "o", "--cpus-per-trial", "0"], "cpus_per_trial must be > 0"),
    (["--out", "o", "--gpus-per-trial", "1.5"], "gpus_per_trial must be a fraction"),
    (["nofile.yaml"], "does not exist"),
])
def test_bad_input_is_one_line_error_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", *argv, "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("algd: error:")
    assert not (tmp_path / "o").exists()


def test_a_misspelt_out_key_in_a_sweep_file_is_named(tmp_path, capsys):
    spec = tmp_path / "sweep.yaml"
    spec.write_text("outt: runs\nseeds: [0]\n")
    assert main(["sweep", str(spec), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown key(s) 'outt' (is 'outt' meant to be 'out'?)" in err
    assert len(err.splitlines()) == 1


def test_missing_ray_is_explained(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if `pip install algd` without [ray]
    with pytest.raises(ConfigError, match=r"pip install 'algd\[ray\]'"):
        import_ray()
    assert main(["sweep", "--out", str(tmp_path / "s"), *TINY]) == 2
    assert "algd[ray]" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()  # nothing written


def test_gpu_share_fills_the_gpus_among_concurrent_trials():
    assert default_gpu_share(16, 0, 1) == 0.0
    assert default_gpu_share(16, 1, 1) == 0.0625
    assert default_gpu_share(16, 2, 4) == 0.5
    assert default_gpu_share(4, 8, 1) == 1.0  # never more than one GPU each by default
    assert default_gpu_share(3, 1, 1) == 0.3333


def test_existing_directories_decide_what_a_trial_does(tmp_path):
    out = tmp_path / "s"
    (trial,) = expand_trials(sweep_of("--out", str(out), *TINY))
    assert trial_state(trial, out) == "new"
    run_dir = trial.run_dir(out)
    run_dir.mkdir(parents=True)
    (run_dir / "trial.log").write_text("a log alone is no run\n")
    assert trial_state(trial, out) == "new"
    (run_dir / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="holds files but no algd run"):
        trial_state(trial, out)
    (run_dir / "notes.txt").unlink()
    # a run of another configuration in the trial's directory is refused, not mixed in
    (other,) = expand_trials(sweep_of("--out", str(out), *TINY, "--rho", "5"))
    short = dataclasses.replace(other.train, steps=100)
    Trainer(short, other.algo_cfg).run(run_dir, keep=("trial.log",))
    assert trial_state(other, out) == "resume"  # same config, 100 of 300 steps: extend it
    with pytest.raises(ConfigError, match="rho=5.0, but this sweep asks for rho=10.0"):
        trial_state(trial, out)
    assert main(["sweep", "--out", str(out), *TINY, "--dry-run"]) == 2
    (run_dir / "checkpoint.pt").unlink()  # finished, but it cannot be extended without one
    with pytest.raises(ConfigError, match="without a checkpoint"):
        trial_state(other, out)


MY_TASKS = '''
import dataclasses

from algd.envs.registry import get_task, register_task

register_task(dataclasses.replace(get_task("PointDetour"), name="MyDetour"))
'''


def test_own_tasks_reach_the_workers_through_imports(tmp_path, monkeypatch):
    """A task registered in the driver alone would be unknown in every worker: the sweep
    refuses it up front unless a module in `imports` registers it, and a fresh worker process
    (no Ray needed: run_trial is what Ray calls) imports that module and trains on the task."""
    import json
    import pickle
    import subprocess

    from algd.sweep import SweepConfig
    from algd.sweep.spec import MANIFEST

    (tmp_path / "my_tasks_mod.py").write_text(MY_TASKS)
    monkeypatch.syspath_prepend(str(tmp_path))
    import my_tasks_mod  # noqa: F401  (registered here, in the driver, only)

    out = tmp_path / "sweep"
    tiny = {"steps": 200, "warmup_steps": 100, "eval_every": 100, "eval_episodes": 2,
            "batch_size": 32, "plot": False, "policy_hidden": 16, "critic_hidden": (16, 16)}
    with pytest.raises(ConfigError, match=r"registered by module 'my_tasks_mod'.*imports"):
        expand_trials(SweepConfig(out=out, envs="MyDetour", overrides=tiny))
    (trial,) = expand_trials(SweepConfig(out=out, envs="MyDetour", imports="my_tasks_mod",
                                         overrides=tiny))
    assert trial.imports == ("my_tasks_mod",) and trial.env == "MyDetour"
    assert trial.train.imports == ("my_tasks_mod",)  # recorded: eval/resume of it import it

    out.mkdir()
    (out / MANIFEST).write_text("{}")
    (tmp_path / "trial.pkl").write_bytes(pickle.dumps(trial))
    worker = ("import pickle, json, sys; from algd.sweep.trial import run_trial; "
              "from algd.envs.registry import get_task; "
              "t = pickle.load(open(sys.argv[1], 'rb')); "
              "assert 'my_tasks_mod' not in sys.modules; "
              "print(json.dumps(run_trial(t, sys.argv[2])))")
    env = {**__import__("os").environ, "PYTHONPATH": str(tmp_path)}
    res = subprocess.run([sys.executable, "-c", worker, str(tmp_path / "trial.pkl"), str(out)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    result = json.loads(res.stdout.strip().splitlines()[-1])
    assert result["status"] == "done", result
    assert result["summary"]["env"] == "MyDetour" and result["summary"]["env_steps"] == 200


def test_a_task_registered_by_a_script_is_refused_for_sweeps(tmp_path):
    from algd.sweep import SweepConfig

    namespace = {"__name__": "__main__"}
    exec("import dataclasses\nfrom algd.envs.registry import get_task, register_task\n"
         "register_task(dataclasses.replace(get_task('PointDetour'), name='ScriptDetour'))",
         namespace)
    with pytest.raises(ConfigError, match=r"this script \(__main__\)"):
        expand_trials(SweepConfig(out=tmp_path, envs=("ScriptDetour",)))
    # from Python, single values where tuples are meant are read as one-element tuples
    s = SweepConfig(out=tmp_path, algos="algd-vesde,algd-ddpm", seeds=3)
    assert s.algos == ("algd-vesde", "algd-ddpm") and s.seeds == (3,) and s.out == str(tmp_path)


def test_a_resumed_sweeps_progress_bar_starts_at_the_steps_already_done():
    """Steps done before the command (finished or checkpointed trials) are where the bar
    starts, not progress: its rate and ETA count only the steps this command runs."""
    import io

    from algd.sweep.runner import TrialRecord, _Display

    records = [TrialRecord(f"t{i}", "algd-vesde", "PointDetour", i, {}, 1000) for i in range(3)]
    records[0].env_steps, records[1].env_steps = 1000, 400  # done, resumable from 400
    stream = io.StringIO()
    display = _Display(records, True, stream)
    assert display.bar.format_dict["initial"] == 1400 and display.bar.n == 1400
    records[2].status = "running"
    records[2].env_steps = 100
    display.refresh(records)
    assert display.bar.n == 1500 and display.bar.format_dict["total"] == 3000
    display.close()
