"""Every preset loads, keeps its values, and trains a few hundred environment steps (smoke).

The paper presets carry the reference's sizes; the smoke run keeps those networks but shortens
the run (few steps, small batches, fewer updates), so it checks that the task, the preset and the
agent fit together, not that anything is learned. Presets whose simulator extra is missing are
skipped (the test set-up installs both extras).
"""

import math

import pytest

from algd.cli import resolve_train_args
from algd.config import ConfigError, list_presets, load_preset
from algd.envs import get_task
from algd.envs.extras import extra_available
from algd.train import Trainer

SMOKE = {"steps": 300, "warmup_steps": 200, "batch_size": 32, "utd": 0.5, "eval_every": 300,
         "eval_episodes": 1, "progress": False, "plot": False, "checkpoint": False}


def smoke_args(preset: str, out) -> list[str]:
    args = ["--preset", preset, "--out", str(out)]
    for key, value in SMOKE.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return args


def test_paper_presets_cover_the_papers_tasks_with_their_budgets():
    expected = {"PointButton1": 100_000, "CarButton1": 150_000, "PointButton2": 200_000,
                "PointPush1": 200_000, "CarButton2": 300_000, "HalfCheetahVelocity": 100_000,
                "HopperVelocity": 150_000, "AntVelocity": 200_000, "HumanoidVelocity": 500_000}
    paper = {p.values["env"]: p for p in list_presets() if p.name.startswith("paper-")}
    assert set(paper) == set(expected)
    base = load_preset("paper").values
    for env, steps in expected.items():
        values = paper[env].values
        assert values["steps"] == steps + 5000  # + the uncounted warm-up (spec §6.1)
        assert values["eval_every"] == get_task(env).max_episode_steps  # one epoch (§6.4)
        assert values["eval_episodes"] == 1
        assert {k: values[k] for k in base} == base  # the reference's hyperparameters (§5)


def test_a_preset_cannot_extend_itself(tmp_path, monkeypatch):
    import algd.config as config

    (tmp_path / "loop.yaml").write_text("description: x\nextends: loop\n")
    monkeypatch.setattr(config, "PRESET_DIR", tmp_path)
    with pytest.raises(ConfigError, match="extends itself"):
        load_preset("loop")


def _preset_params() -> list:
    """Every preset; of the Safety-Gymnasium ones (~20 s each, most of it building the task) one
    runs in the default suite and the others among the slow tests."""
    params, navigation = [], 0
    for p in list_presets():
        if get_task(p.values.get("env", "PointDetour")).extra == "safety":
            navigation += 1
            if navigation > 1:
                params.append(pytest.param(p.name, marks=pytest.mark.slow))
                continue
        params.append(p.name)
    return params


@pytest.mark.parametrize("preset", _preset_params())
def test_every_preset_trains_a_few_hundred_steps(preset, tmp_path):
    values = load_preset(preset).values
    task = get_task(values.get("env", "PointDetour"))
    if task.extra and not extra_available(task.extra):
        pytest.skip(f"{task.name} needs algd[{task.extra}]")
    train_cfg, algo_cfg = resolve_train_args(smoke_args(preset, tmp_path / "run"))
    for key, value in values.items():  # the preset's own values survive, except the smoke's
        if key not in SMOKE and (hasattr(train_cfg, key) or hasattr(algo_cfg, key)):
            # (fields of other algorithms, e.g. SAC's actor_hidden, do not apply to ALGD)
            got = getattr(train_cfg, key, getattr(algo_cfg, key, None))
            assert got == (tuple(value) if isinstance(value, list) else value), key
    res = Trainer(train_cfg, algo_cfg).run()
    s = res.summary
    assert s["env_steps"] == 300 and s["updates"] == 50 and s["env"] == task.name
    assert math.isfinite(s["final_return"]) and math.isfinite(s["final_cost"])
