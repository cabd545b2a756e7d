"""The Python API as a notebook uses it: loose value types, single paths, figures, globals."""

from pathlib import Path

import numpy as np
import pytest
import torch

from algd.algos import get_algo
from algd.config import ConfigError, TrainConfig
from algd.train import Trainer, resume_run, train
from algd.train.checkpoint import load_run

TINY = dict(warmup_steps=100, eval_every=100, eval_episodes=2, batch_size=32, progress=False,
            plot=False, torch_threads=1)
TINY_ALGO = dict(policy_hidden=16, critic_hidden=(16, 16))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One tiny run started with the loose values a notebook passes: a Path, numbers as text."""
    out = tmp_path_factory.mktemp("api") / "run"
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        res = train(TrainConfig(out=out, steps="200", seed="1", **TINY), TINY_ALGO)  # type: ignore[arg-type]
        threads_after = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    return res, threads_after


def test_loose_types_are_read_as_the_command_line_reads_them(run):
    res, threads_after = run
    assert res.summary["env_steps"] == 200 and res.summary["seed"] == 1
    assert isinstance(res.run_dir, Path)
    assert threads_after == 2  # the run's one torch thread was for the run only
    with pytest.raises(ConfigError, match="steps.*not an integer"):
        Trainer(TrainConfig(steps=300.7, **TINY), get_algo("algd-vesde").make_config(TINY_ALGO))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="seed"):
        Trainer(TrainConfig(seed="one", **TINY), get_algo("algd-vesde").make_config(TINY_ALGO))  # type: ignore[arg-type]


def test_loaded_run_prints_short_and_takes_checkpoint_names(run):
    res, _ = run
    loaded = load_run(res.run_dir, checkpoint="best")  # as evaluate_run(..., checkpoint="best")
    assert loaded.env_steps == res.summary["best"]["env_steps"]
    assert len(repr(loaded)) < 5_000  # not the replay buffer and RNG states
    assert load_run(str(res.run_dir), checkpoint="last").env_steps == 200
    assert load_run(res.run_dir, checkpoint="best.pt").env_steps == loaded.env_steps
    with pytest.raises(ConfigError, match=r"the checkpoint must be one of last, best \(files "
                                          r"checkpoint.pt, best.pt\), got 'bestt'"):
        load_run(res.run_dir, checkpoint="bestt")
    from algd.analysis.evaluation import evaluate_run

    # the file names work here too, as in load_run
    ev = evaluate_run(res.run_dir, 1, checkpoint="best.pt", write=False, seed=0)
    assert ev["checkpoint"] == "best.pt" and ev["checkpoint_env_steps"] == loaded.env_steps
    assert callable(resume_run)  # exported next to train


def test_single_paths_and_figures_from_the_run_alone(run):
    from matplotlib.figure import Figure

    from algd.analysis import comparison_figure, group_runs, load_runs, run_figure
    from algd.analysis.runs import read_run

    res, _ = run
    runs = load_runs(str(res.run_dir))  # one path, not a list of characters
    assert len(runs) == 1 and read_run(str(res.run_dir)) is not None
    fig = run_figure(res.run_dir)  # limit, h and title from the run's config
    assert isinstance(fig, Figure)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts + [ax.title]]
    assert "algd-vesde on PointDetour (seed 1)" == fig._suptitle.get_text()
    labels = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().texts]
    assert "limit 2" in labels and any(lab.startswith("h = ") for lab in labels), (labels, texts)
    assert isinstance(comparison_figure(group_runs(load_runs(res.run_dir))), Figure)


def test_make_configs_is_algd_train_from_python():
    """Presets and fields as `algd train --preset paper --algo cal --steps 20000` resolves them."""
    from algd.cli import resolve_train_args
    from algd.train import make_configs

    cfg, algo_cfg = make_configs("cal", "paper", steps="20000", seed=1)
    cli_cfg, cli_algo = resolve_train_args(["--preset", "paper", "--algo", "cal", "--steps",
                                            "20000", "--seed", "1"])
    assert (cfg, algo_cfg) == (cli_cfg, cli_algo)
    assert cfg.batch_size == 256 and cfg.utd == 10 and algo_cfg.actor_hidden == (256, 256)
    assert algo_cfg.cost_ensemble_size == 4  # CAL's own E, whatever the preset holds
    assert make_configs("algd-vesde", "paper")[1].policy_hidden == 128  # its fields, not SAC's
    with pytest.raises(ConfigError, match="unknown field.*rhoo"):
        make_configs("algd-vesde", rhoo=2)
    with pytest.raises(ConfigError, match="unknown algorithm 'algd-vsde'.*algd-vesde"):
        make_configs("algd-vsde")


def test_modality_takes_one_run_directory(run):
    from algd.analysis.modality import compare_modality

    res, _ = run
    chosen, rates = compare_modality(str(res.run_dir), states=3, samples=8, episodes=2)
    assert len(rates) == 1 and len(chosen.obs) == 3


def test_help_lists_every_option_with_its_default_and_meaning():
    from algd.algos.algd import ALGDConfig
    from algd.sweep import SweepConfig

    assert "steps = 8000\n        total environment steps, warm-up included" in TrainConfig.__doc__
    assert "rho = " in ALGDConfig.__doc__ and "imports = ()" in SweepConfig.__doc__


@pytest.mark.parametrize("algo", ["algd-vesde", "sac-lag"])
def test_act_takes_one_observation_or_a_batch_in_any_float_dtype(algo):
    """ALGD's sampler took obs.shape[0] as the batch size, so one observation [S] gave S actions."""
    from algd.algos.base import EnvInfo, NonFiniteObservation

    spec = get_algo(algo)
    info = EnvInfo(obs_dim=5, act_dim=2, action_low=-np.ones(2, np.float32),
                   action_high=np.ones(2, np.float32), cost_threshold=1.0)
    agent = spec.agent_cls(info, spec.make_config(dict(critic_hidden=(16, 16))), torch.device("cpu"))
    obs = torch.randn(3, info.obs_dim)
    batch = agent.act(obs, deterministic=True)
    assert batch.shape == (3, info.act_dim) and batch.dtype == torch.float32
    one = agent.act(obs[1], deterministic=True)
    assert one.shape == (info.act_dim,)
    torch.testing.assert_close(one, batch[1])
    torch.testing.assert_close(agent.act(obs.double(), deterministic=True), batch)
    torch.testing.assert_close(agent.act_np(obs[1].numpy(), deterministic=True), one.numpy())
    with pytest.raises(TypeError, match="act_np"):
        agent.act(obs.numpy())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=rf"shape \({info.obs_dim},\)"):
        agent.act(obs[:, :3])
    with pytest.raises(ValueError, match="got shape"):
        agent.act(obs.unsqueeze(0))
    bad = obs.numpy().copy()
    bad[2, 4] = float("nan")
    with pytest.raises(NonFiniteObservation, match="row 2, entry 4"):
        agent.act_np(bad)
    with pytest.raises(NonFiniteObservation, match=r"\(entry 0\)"):
        agent.act_np(np.full(info.obs_dim, np.inf))
