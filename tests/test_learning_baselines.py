"""Short real training runs of the baselines and the LGD ablation on the built-in task.

PointDetour: the untrained policy scores about −5…5, the straight (unsafe) path about 51 with
cost 10, a safe detour about 46-48 with cost 0; the budget is 2 per episode.

SAC-AugLag and CAL (cheap updates, the rectification makes them safe quickly) run in the default
suite. SAC-Lag needs longer (its λ must first grow while the cost critic catches up, the
primal-dual lag CAL was designed to remove), and LGD costs as much per update as ALGD and, guided
by the plain Lagrangian, becomes safe only once λ has grown: those are marked slow
(`pytest -m slow`).
"""

import pytest

from algd.algos import get_algo
from algd.config import TrainConfig
from algd.train import Trainer


def train(tmp_path, algo, steps):
    cfg = TrainConfig(algo=algo, steps=steps, seed=0, eval_every=1000, eval_episodes=10,
                      progress=False, plot=False, checkpoint=False, out=str(tmp_path / algo))
    return Trainer(cfg, get_algo(algo).make_config()).run().summary


def assert_learned_safely(s):
    assert s["initial_return"] < 12  # the untrained policy does not reach the goal
    assert s["final_return"] > 35, s  # reaches the goal...
    assert s["final_cost"] <= s["cost_limit"], s  # ...without crossing the hazard
    assert s["final_return"] > s["initial_return"] + 30


@pytest.mark.parametrize("algo", ["sac-auglag", "cal"])
def test_rectified_sac_learns_safe_detour(tmp_path, algo):
    assert_learned_safely(train(tmp_path, algo, 6000))


@pytest.mark.slow
def test_sac_lag_learns_safe_detour(tmp_path):
    assert_learned_safely(train(tmp_path, "sac-lag", 10_000))


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["lgd-vesde", "lgd-ddpm"])
def test_lgd_learns_safe_detour(tmp_path, algo):
    """LGD needs far longer than ALGD (safe by ~6000 steps, tests/test_learning.py): it takes the
    straight path until λ has grown enough (≈ 8000 steps VE-SDE, ≈ 13000 DDPM on seed 0)."""
    assert_learned_safely(train(tmp_path, algo, 16_000))
