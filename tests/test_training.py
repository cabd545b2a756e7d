"""The training loop: run-directory contents, determinism, and the command line."""

import csv
import json
import subprocess
import sys

import pytest

from algd.algos import get_algo
from algd.cli import main, resolve_train_args
from algd.config import ConfigError, TrainConfig, config_from_dict
from algd.train import Trainer

TINY = dict(steps=300, warmup_steps=100, eval_every=100, eval_episodes=2, batch_size=32,
            progress=False, plot=False)
TINY_ALGO = dict(policy_hidden=16, critic_hidden=(16, 16))
TIMING = {"updates_per_s", "env_steps_per_s", "wall_s"}


def run(tmp_path, name, **kw):
    cfg = TrainConfig(out=str(tmp_path / name), **{**TINY, **kw})
    algo = get_algo(cfg.algo).make_config(TINY_ALGO)
    return Trainer(cfg, algo).run()


def rows(run_dir):
    with open(run_dir / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_run_directory_holds_config_metrics_summary_checkpoint(tmp_path):
    res = run(tmp_path, "a")
    d = res.run_dir
    assert {"config.json", "metrics.csv", "summary.json", "checkpoint.pt"} <= {p.name for p in d.iterdir()}
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["train"]["steps"] == 300 and cfg["algo"]["variant"] == "vesde"
    assert cfg["task"]["critic_threshold"] == pytest.approx(2 * (1 - 0.99**50) / (0.01 * 50))
    r = rows(d)
    required = {"env_steps", "eval_return", "eval_cost", "train_return", "train_cost",
                "cum_train_cost", "lambda", "updates_per_s", "env_steps_per_s", "wall_s",
                "critic_loss", "actor_loss", "score_loss"}
    assert required <= set(r[0])
    assert [int(x["env_steps"]) for x in r] == [0, 100, 200, 300]
    summary = json.loads((d / "summary.json").read_text())
    assert summary["final_return"] == pytest.approx(float(r[-1]["eval_return"]), rel=1e-5)
    assert summary["final_cost"] == pytest.approx(float(r[-1]["eval_cost"]), rel=1e-5)
    assert summary["updates"] == 200  # utd 1 after 100 warm-up steps
    assert float(r[-1]["cum_train_cost"]) == pytest.approx(summary["cum_train_cost"], rel=1e-5)
    episodes = sum(int(x["train_episodes"]) for x in r)
    assert episodes == 300 // 50  # every finished training episode is counted once
    assert int(r[-1]["train_violations"]) == summary["train_violations"] <= episodes


@pytest.mark.parametrize("algo", ["algd-vesde", "algd-ddpm"])
def test_same_seed_gives_identical_metrics(tmp_path, algo):
    a = rows(run(tmp_path, "a", algo=algo, seed=3).run_dir)
    b = rows(run(tmp_path, "b", algo=algo, seed=3).run_dir)
    c = rows(run(tmp_path, "c", algo=algo, seed=4).run_dir)
    strip = lambda rs: [{k: v for k, v in r.items() if k not in TIMING} for r in rs]  # noqa: E731
    assert strip(a) == strip(b)
    assert strip(a) != strip(c)


def test_existing_run_directory_is_not_overwritten(tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("precious")
    with pytest.raises(ConfigError, match="already holds files"):
        run(tmp_path, "busy")
    assert (tmp_path / "busy" / "keep.txt").read_text() == "precious"


def test_cli_train_writes_a_run_and_prints_a_summary(tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["train", "--steps", "200", "--warmup-steps", "100", "--eval-every", "100",
                 "--eval-episodes", "2", "--batch_size", "32", "--policy-hidden", "16",
                 "--critic-hidden", "16,16", "--progress", "false", "--out", str(out),
                 "--algo", "algd-ddpm", "--rho", "2.5"])
    assert code == 0
    text = capsys.readouterr().out
    assert "final evaluation" in text and "limit 2" in text and str(out) in text
    assert "curves.png" in text and (out / "curves.png").stat().st_size > 10_000
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["algo"]["rho"] == 2.5 and cfg["algo"]["variant"] == "ddpm"
    assert cfg["algo"]["critic_hidden"] == [16, 16]


@pytest.mark.parametrize("argv,message", [
    (["--algo", "sac-nope"], "unknown algorithm"),
    (["--env", "Nowhere"], "unknown task"),
    (["--diffusion-steps", "0"], "diffusion_steps must be > 0"),
    (["--rho", "0"], "rho must be > 0"),
    (["--cost-limit", "-1"], "cost_limit must be >= 0"),
    (["--utd", "1e30"], "utd must be <= 1000"),  # once hung: the update credit never drained
    (["--batch-size", "512", "--buffer-size", "100"], "larger than buffer_size"),
    (["--steps", "ten"], "cannot read 'ten' as int (not a number)"),
    (["--variant", "flow"], "must be one of vesde, ddpm"),
    (["--preset", "nope"], "unknown preset"),
    (["--device", "tpu"], "unknown device"),
])
def test_bad_input_gives_one_line_error_and_exit_2(tmp_path, capsys, argv, message):
    out = tmp_path / "bad"
    code = main(["train", "--out", str(out), "--progress", "false", *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_unusable_run_directory_or_missing_tensorboard_is_a_one_line_error(tmp_path, capsys):
    """An --out that is a file or cannot be created, or --tensorboard without the package: exit 2
    with one line, and nothing left behind that would block the next attempt."""
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    bad_outs = [(a_file, "is a file, not a directory"),
                (a_file / "run", "cannot create the run directory")]
    for out, message in bad_outs:
        assert main(["train", "--out", str(out), "--steps", "10", "--progress", "false"]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    assert a_file.read_text() == "x"
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        out = tmp_path / "tb"
        assert main(["train", "--out", str(out), "--tensorboard", "true", "--steps", "10"]) == 2
        assert "--tensorboard needs the tensorboard package" in capsys.readouterr().err
        assert not out.exists()


def test_a_run_without_gradient_updates_says_so(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "r"), "--steps", "100", "--warmup-steps", "200",
                 "--eval-episodes", "1", "--progress", "false", "--plot", "false"]) == 0
    assert "--steps 100 <= --warmup-steps 200: this run only collects data" in \
        capsys.readouterr().err
    # a ratio too small to owe one update over the run is told the same way
    assert main(["train", "--out", str(tmp_path / "r2"), "--steps", "220", "--warmup-steps",
                 "200", "--utd", "0.01", "--eval-episodes", "1", "--progress", "false", "--plot",
                 "false"]) == 0
    assert "--utd 0.01 over the 20 steps after --warmup-steps owes less than one update" in \
        capsys.readouterr().err
    assert json.loads((tmp_path / "r2" / "summary.json").read_text())["updates"] == 0


def test_cli_resolves_defaults_and_overrides():
    train_cfg, algo_cfg = resolve_train_args([])
    assert train_cfg.algo == "algd-vesde" and train_cfg.env == "PointDetour"
    assert algo_cfg.variant == "vesde" and algo_cfg.energy == "augmented"
    train_cfg, algo_cfg = resolve_train_args(["--algo", "algd-ddpm", "--seed", "7",
                                              "--mc_samples", "8", "--steps", "2e4"])
    assert (train_cfg.seed, train_cfg.steps, algo_cfg.mc_samples) == (7, 20000, 8)
    assert algo_cfg.variant == "ddpm"


def test_config_coercion():
    cfg = config_from_dict(TrainConfig, {"steps": "1_000", "utd": "0.5", "tensorboard": "yes",
                                         "cost_limit": "none"})
    assert (cfg.steps, cfg.utd, cfg.tensorboard, cfg.cost_limit) == (1000, 0.5, True, None)
    with pytest.raises(ConfigError, match="unknown TrainConfig field"):
        config_from_dict(TrainConfig, {"stepz": 1})
    with pytest.raises(ConfigError, match="int"):
        config_from_dict(TrainConfig, {"steps": 1.5})


def test_every_preset_resolves():
    from algd.config import list_presets

    for preset in list_presets():
        train_cfg, algo_cfg = resolve_train_args(["--preset", preset.name])
        for key, value in preset.values.items():
            if not hasattr(train_cfg, key) and not hasattr(algo_cfg, key):
                continue  # another algorithm's field (tests/test_algos_registry.py)
            got = getattr(train_cfg, key, getattr(algo_cfg, key, None))
            assert got == (tuple(value) if isinstance(value, list) else value), key


def test_console_entry_point_lists_algorithms_and_tasks():
    out = subprocess.run([sys.executable, "-m", "algd", "algos"], capture_output=True, text=True,
                         check=True).stdout
    assert "algd-vesde" in out and "algd-ddpm" in out
    out = subprocess.run([sys.executable, "-m", "algd", "train", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "--rho" in out and "--steps" in out and "--device" in out


def test_load_run_restores_the_trained_agent(tmp_path):
    import numpy as np
    import torch

    from algd.train.checkpoint import CheckpointError, load_run

    res = run(tmp_path, "load")
    loaded = load_run(res.run_dir)
    assert loaded.env_steps == 300 and loaded.cost_limit == 2.0
    obs = np.random.default_rng(0).normal(size=(5, 5)).astype(np.float32)
    env = loaded.task.make(1)
    trainer_agent = load_run(res.run_dir).agent
    np.testing.assert_array_equal(loaded.agent.act_np(obs, True), trainer_agent.act_np(obs, True))
    # the run hands back the agent it trained: the same policy as the one reloaded
    np.testing.assert_array_equal(res.agent.act_np(obs, True), loaded.agent.act_np(obs, True))
    # one observation in, one action out; a wrong size is named
    one = loaded.agent.act_np(obs[0], True)
    assert one.shape == (loaded.agent.env_info.act_dim,)
    np.testing.assert_allclose(one, loaded.agent.act_np(obs, True)[0], atol=1e-5)
    with pytest.raises(ValueError, match=r"one observation of shape \(5,\) or a batch"):
        loaded.agent.act_np(obs[:, :3], True)
    # a truncated checkpoint is rejected with a one-line reason
    ck = res.run_dir / "checkpoint.pt"
    ck.write_bytes(ck.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_run(res.run_dir)
    with pytest.raises(CheckpointError, match="not a run directory"):
        load_run(tmp_path)
    env.close()
    del torch


def test_constraint_verdict_separates_noise_from_violation():
    import numpy as np

    from algd.train.loop import constraint_verdict

    assert constraint_verdict(np.array([0.0, 2.0, 1.0]), 2.0) == "satisfied"
    # mean 2.5, standard error 0.5: above the limit but within two standard errors
    assert constraint_verdict(np.array([1.5, 3.5, 1.5, 3.5]), 2.0) == "at the limit"
    assert constraint_verdict(np.array([4.0, 4.2, 3.8, 4.1]), 2.0) == "violated"


@pytest.mark.parametrize("algo", [a.name for a in __import__("algd.algos", fromlist=["x"])
                                  .list_algos()])
def test_every_algorithm_declares_exactly_the_diagnostics_it_returns(algo):
    """metrics.csv columns come from Agent.diagnostics; an undeclared key would be lost."""
    import numpy as np
    import torch

    from algd.algos import EnvInfo
    from algd.buffers import Batch

    spec = get_algo(algo)
    info = EnvInfo(5, 2, -np.ones(2, np.float32), np.ones(2, np.float32), 1.0)
    names = set(spec.config_cls.__dataclass_fields__)
    sizes = {k: v for k, v in {"policy_hidden": 8, "critic_hidden": (8, 8),
                               "actor_hidden": (8, 8)}.items() if k in names}
    agent = spec.agent_cls(info, spec.make_config(sizes), torch.device("cpu"))
    batch = Batch(torch.randn(8, 5), torch.rand(8, 2), torch.randn(8), torch.rand(8),
                  torch.randn(8, 5), torch.zeros(8))
    assert set(agent.update(batch)) == set(agent.diagnostics)


def test_evaluation_splits_episodes_evenly_over_environments():
    """No thrown-away episodes beyond rounding: 20 episodes are 2 rounds of 10, not 16 + 16."""
    from algd.train.evaluate import eval_env_count

    assert [eval_env_count(e) for e in (1, 10, 16, 17, 20, 32, 50)] == [1, 10, 16, 9, 10, 16, 13]
    for e in range(1, 200):
        n = eval_env_count(e)
        rounds = -(-e // n)
        assert n <= 16 and rounds == -(-e // 16) and n * rounds - e < rounds
    with pytest.raises(ValueError):
        eval_env_count(0)


@pytest.mark.parametrize("utd,updates", [
    (0.5, 100),  # credit 0.5·2 = 1 per vector step: one update each
    (0.75, 150),  # credit 1.5 per vector step: 1, 2, 1, 2, … updates
    (1.5, 300),  # credit 3 per vector step
])
def test_update_to_data_credit_counts_every_environment(tmp_path, utd, updates):
    """utd is per environment step, not per vectorised step: with 2 environments each vector step
    after the warm-up adds utd·2 to the credit; every whole unit of credit is one update. 300
    steps, 100 of warm-up: 100 vector steps train, so utd·200 updates in all."""
    res = run(tmp_path, f"utd{utd}", num_envs=2, utd=utd, eval_every=300, eval_episodes=1)
    assert res.summary["updates"] == updates == res.agent.num_updates
    assert updates == int(utd * (300 - 100))


MY_TASKS = '''
import dataclasses

from algd.envs.registry import get_task, register_task

register_task(dataclasses.replace(get_task("PointDetour"), name="ImportedDetour"))
'''


def test_own_task_by_imports_trains_evaluates_and_resumes_in_fresh_processes(tmp_path):
    """`algd train --imports MODULE` registers the task before the run is built and records the
    module, so `algd eval` and `--resume` in fresh processes find the task; a run whose task is
    unknown to the process says what to do."""
    import os
    import subprocess
    import sys

    (tmp_path / "imported_tasks_mod.py").write_text(MY_TASKS)
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "OMP_NUM_THREADS": "1"}
    run = tmp_path / "run"
    tiny = ["--warmup-steps", "100", "--eval-every", "100", "--eval-episodes", "2",
            "--batch-size", "32", "--progress", "false", "--plot", "false", "--torch-threads",
            "1", "--policy-hidden", "16", "--critic-hidden", "16,16"]

    def algd(*args):
        return subprocess.run([sys.executable, "-m", "algd", *args], capture_output=True,
                              text=True, env=env, timeout=300)

    res = algd("train", "--imports", "imported_tasks_mod", "--env", "ImportedDetour",
               "--steps", "200", "--out", str(run), *tiny)
    assert res.returncode == 0, res.stderr
    assert "ImportedDetour" in res.stdout
    assert json.loads((run / "config.json").read_text())["train"]["imports"] == [
        "imported_tasks_mod"]
    res = algd("eval", str(run), "--episodes", "2")
    assert res.returncode == 0 and "ImportedDetour" in res.stdout, res.stderr
    res = algd("train", "--resume", str(run), "--steps", "300")
    assert res.returncode == 0, res.stderr
    assert json.loads((run / "summary.json").read_text())["env_steps"] == 300

    # without the record (a run of an older algd, or of a task registered in a script)
    config = json.loads((run / "config.json").read_text())
    config["train"]["imports"] = []
    (run / "config.json").write_text(json.dumps(config))
    res = algd("eval", str(run))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "a task 'ImportedDetour'" in res.stderr and "--imports MODULE" in res.stderr
    res = algd("eval", str(run), "--episodes", "1", "--imports", "imported_tasks_mod")
    assert res.returncode == 0 and "ImportedDetour" in res.stdout, res.stderr
    res = algd("train", "--imports", "no_such_module_here", "--steps", "200")
    assert res.returncode == 2 and "cannot import 'no_such_module_here'" in res.stderr
    assert "PYTHONPATH=." in res.stderr

    # the listings take --imports too (and refuse what they do not know)
    res = algd("envs", "--imports", "imported_tasks_mod")
    assert res.returncode == 0 and "ImportedDetour" in res.stdout, res.stderr
    assert "ImportedDetour" not in algd("envs").stdout
    for listing in ("envs", "algos", "presets"):
        res = algd(listing, "--bogus")
        assert res.returncode == 2 and "unrecognized arguments: --bogus" in res.stderr


@pytest.mark.slow
def test_compiled_training_run_checkpoints_resumes_and_tracks_the_eager_run(tmp_path, capsys):
    """`algd train --compile default` on a CPU: the gradient step compiles after the first
    update (the progress bar says so meanwhile), the run checkpoints and resumes (compiling
    again), and its losses and λ after 100 updates are the eager run's to float tolerance
    (compiled updates round differently, not bit for bit; slow: two compilations)."""
    from algd.train import resume_run

    eager = rows(run(tmp_path, "eager", seed=5, steps=200).run_dir)
    capsys.readouterr()
    compiled = run(tmp_path, "compiled", seed=5, steps=200, compile="default", progress=True)
    assert "compiling the update" in capsys.readouterr().err
    assert hasattr(compiled.agent.gradient_step, "_torchdynamo_orig_callable")
    assert json.loads((compiled.run_dir / "config.json").read_text())["compile"] == "default"
    got = rows(compiled.run_dir)
    assert [r["env_steps"] for r in got] == [r["env_steps"] for r in eager] == ["0", "100", "200"]
    for key in ("critic_loss", "cost_critic_loss", "actor_loss", "lambda"):  # after 100 updates
        assert float(got[2][key]) == pytest.approx(float(eager[2][key]), rel=1e-3, abs=1e-5)
    resumed = resume_run(compiled.run_dir, {"steps": 300})
    assert hasattr(resumed.agent.gradient_step, "_torchdynamo_orig_callable")
    assert [int(r["env_steps"]) for r in rows(resumed.run_dir)] == [0, 100, 200, 300]
