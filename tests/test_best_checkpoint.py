"""best.pt: the best evaluation within the cost limit is kept, reloads, resumes exactly."""

import json

import numpy as np
import pytest
import torch
from helpers import metrics, same_best, same_tensors

from algd.algos import get_algo
from algd.cli import main
from algd.config import TrainConfig
from algd.train import Trainer
from algd.train.checkpoint import BEST_NAME, CheckpointError, load_run, read_checkpoint
from algd.train.evaluate import eval_env_count, evaluate
from algd.train.loop import resume_run
from algd.train.seeding import SeedStreams

TINY = dict(warmup_steps=100, eval_every=100, eval_episodes=2, batch_size=32, progress=False,
            plot=False, torch_threads=1)
TINY_ALGO = dict(policy_hidden=16, critic_hidden=(16, 16))


def _trainer(out, **kw):
    cfg = TrainConfig(out=str(out), **{**TINY, **kw})
    return Trainer(cfg, get_algo(cfg.algo).make_config(TINY_ALGO))


def test_best_is_the_highest_return_within_the_limit(tmp_path):
    """The selection rule on given evaluation rows: infeasible rows never count, a lower return
    never replaces the best, an equal one does (the later policy)."""
    t = _trainer(tmp_path / "run", steps=200, cost_limit=2.0)
    t.run_dir = tmp_path / "run"
    t.run_dir.mkdir()
    for steps, ret, cost, expected in [
        (0, -5.0, 0.0, 0), (100, 40.0, 9.0, 0), (200, 10.0, 2.0, 200),  # the limit itself is ok
        (300, 8.0, 0.0, 200), (400, 10.0, 1.0, 400), (500, 50.0, 2.5, 400),
    ]:
        t.env_steps = steps
        t._track_best({"eval_return": ret, "eval_cost": cost})
        assert t._best is not None and t._best["env_steps"] == expected
        assert read_checkpoint(t.run_dir / BEST_NAME)["best"]["env_steps"] == expected
    nan = _trainer(tmp_path / "nan", steps=200, cost_limit=2.0)
    nan.run_dir = tmp_path / "nan"
    nan._track_best({"eval_return": 1.0, "eval_cost": float("nan")})
    assert nan._best is None and not (nan.run_dir / BEST_NAME).exists()


def test_best_checkpoint_reproduces_its_evaluation(tmp_path):
    """best.pt holds the weights of the chosen evaluation: re-running that evaluation (same
    deterministic sampler, same start states) with them gives the logged return and cost."""
    res = _trainer(tmp_path / "run", steps=600, eval_deterministic=True, cost_limit=1e9).run()
    rows = metrics(res.run_dir)
    returns = {int(r["env_steps"]): float(r["eval_return"]) for r in rows}  # 6 digits in csv
    best = res.summary["best"]
    assert best["return"] == pytest.approx(returns[best["env_steps"]], rel=1e-5)
    assert best["return"] == pytest.approx(max(returns.values()), rel=1e-5)

    run = load_run(res.run_dir, checkpoint=BEST_NAME)
    assert run.env_steps == best["env_steps"]
    env = run.task.make(eval_env_count(2), run.algo_cfg.gamma)
    ev = evaluate(run.agent, env, 2, deterministic=True, seed=SeedStreams.from_seed(0).eval_env)
    assert float(np.mean(ev.returns)) == pytest.approx(best["return"], rel=1e-5, abs=1e-5)
    assert float(np.mean(ev.costs)) == pytest.approx(best["cost"], abs=1e-6)
    if best["env_steps"] != 600:  # an earlier policy than the final one
        final = load_run(res.run_dir)
        assert not same_tensors(run.checkpoint["agent"], final.checkpoint["agent"])


def test_resume_restores_best_and_discards_a_later_one(tmp_path):
    """A resumed run ends with the same best.pt as an uninterrupted one, even when the
    interrupted run had written a best.pt after its checkpoint."""
    kw = dict(eval_deterministic=True, cost_limit=1e9)
    ref = _trainer(tmp_path / "ref", steps=500, **kw).run().run_dir
    part = _trainer(tmp_path / "part", steps=300, **kw).run().run_dir
    kept = read_checkpoint(part / BEST_NAME)
    # what a run killed after its checkpoint leaves: a best.pt from beyond the checkpoint
    stale = {**kept, "env_steps": 10_000, "best": {**kept["best"], "env_steps": 10_000}}
    torch.save(stale, part / BEST_NAME)
    resume_run(part)  # nothing left to train: restores the checkpoint's best.pt and finishes
    restored = read_checkpoint(part / BEST_NAME)
    assert restored["best"] == kept["best"] and same_tensors(restored["agent"], kept["agent"])
    resume_run(part, {"steps": 500})
    assert same_best(part, ref)
    assert json.loads((part / "summary.json").read_text())["best"] == {
        **read_checkpoint(ref / BEST_NAME)["best"], "path": str(part / BEST_NAME)}


def test_cli_reports_and_evaluates_the_best_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    tiny = ["--warmup-steps", "100", "--eval-every", "100", "--eval-episodes", "2",
            "--batch-size", "32", "--progress", "false", "--plot", "false",
            "--torch-threads", "1", "--policy-hidden", "16", "--critic-hidden", "16,16"]
    assert main(["train", "--steps", "300", "--out", str(run), "--cost-limit", "1e9",
                 *tiny]) == 0
    out = capsys.readouterr().out
    assert "best evaluation within the limit" in out and "best.pt" in out
    assert main(["eval", str(run), "--checkpoint", "best", "--episodes", "2"]) == 0
    out = capsys.readouterr().out
    best = json.loads((run / "summary.json").read_text())["best"]
    assert f"best.pt at {best['env_steps']} env steps" in out
    report = json.loads((run / "eval_best.json").read_text())
    assert report["checkpoint"] == "best.pt" and report["checkpoint_env_steps"] == best["env_steps"]
    assert not (run / "eval.json").exists()  # the last checkpoint's numbers are not overwritten

    no_best = tmp_path / "no_best"
    assert main(["train", "--steps", "200", "--out", str(no_best), "--keep-best", "false",
                 *tiny]) == 0
    out = capsys.readouterr().out
    assert "best evaluation" not in out and "best.pt" not in out
    assert not (no_best / BEST_NAME).exists()
    assert main(["eval", str(no_best), "--checkpoint", "best"]) == 2
    err = capsys.readouterr().err
    assert "no best.pt" in err and "--keep-best false" in err and "Traceback" not in err
    with pytest.raises(CheckpointError, match="last checkpoint"):
        load_run(no_best, checkpoint=BEST_NAME)
