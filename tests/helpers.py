"""Helpers shared by the tests (importable: pytest puts tests/ on sys.path)."""

import csv
from pathlib import Path

import torch

from algd.algos import get_algo
from algd.config import TrainConfig
from algd.nets import gemm
from algd.train import Trainer
from algd.train.checkpoint import BEST_NAME, read_checkpoint
from algd.train.loop import resume_run

#: a tiny run: settings for TrainConfig, for the algorithm (ALGD), and as `algd train` flags
TINY = dict(warmup_steps=100, eval_every=100, eval_episodes=2, batch_size=32, progress=False,
            plot=False, torch_threads=1)
TINY_ALGO = dict(policy_hidden=16, critic_hidden=(16, 16))
CLI_TINY = ["--warmup-steps", "100", "--eval-every", "100", "--eval-episodes", "2",
            "--batch-size", "32", "--progress", "false", "--plot", "false",
            "--torch-threads", "1", "--policy-hidden", "16", "--critic-hidden", "16,16"]

#: columns that measure the machine, not the run: left out when runs are compared
TIMING = {"updates_per_s", "env_steps_per_s", "wall_s"}


def metrics(run_dir):
    """The rows of a run's metrics.csv without the timing columns."""
    with open(Path(run_dir) / "metrics.csv") as f:
        return [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(f)]


def same_tensors(a, b):
    """Nested state dicts hold equal tensors and equal everything else."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(
            same_tensors(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same_tensors(x, y) for x, y in zip(a, b))
    return a == b


def same_best(run_a, run_b):
    """Both runs kept the same best.pt: the same evaluation and the same weights."""
    a, b = read_checkpoint(Path(run_a) / BEST_NAME), read_checkpoint(Path(run_b) / BEST_NAME)
    return a["best"] == b["best"] and same_tensors(a["agent"], b["agent"])


def stopped_run_equals_uninterrupted(tmp_path, env, stop_at, steps, **train):
    """Train ``steps`` in one go and, separately, ``stop_at`` steps then resume to ``steps``
    (tiny ALGD-VESDE networks, 2 environments); assert equal metrics, return the resumed run."""
    cfg = dict(env=env, warmup_steps=100, eval_every=150, eval_episodes=1, batch_size=32,
               progress=False, plot=False, torch_threads=1, num_envs=2, **train)
    algo = get_algo("algd-vesde").make_config(dict(policy_hidden=16, critic_hidden=(16, 16)))
    ref = Trainer(TrainConfig(out=str(tmp_path / "ref"), steps=steps, **cfg), algo).run().run_dir
    part = Trainer(TrainConfig(out=str(tmp_path / "part"), steps=stop_at, **cfg), algo).run()
    resume_run(part.run_dir, {"steps": steps})
    assert metrics(part.run_dir) == metrics(ref)
    return Path(part.run_dir)


#: the GEMM backends this torch build has (algd.nets.gemm); the ``backend`` fixture runs a test
#: once per backend
BACKENDS = ["torch"] + (["onednn"] if gemm.onednn_available() else [])
