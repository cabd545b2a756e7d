import pytest

from algd.lagrangian.threshold import critic_threshold, episode_budget_to_threshold


def test_safety_gym_budget_conversion():
    assert episode_budget_to_threshold(10, 400, 0.99) == pytest.approx(2.4551, abs=5e-5)


def test_undiscounted_and_discounted_budgets():
    assert episode_budget_to_threshold(10, 400, 1.0) == 10
    assert critic_threshold(82.748, "discounted", 1000, 0.99) == 82.748
    # constant per-step cost d/T summed with discount equals h
    d, T, g = 2.0, 50, 0.99
    assert critic_threshold(d, "episode", T, g) == pytest.approx(sum(d / T * g**t for t in range(T)))


@pytest.mark.parametrize("args", [(-1, 10, 0.99), (1, 0, 0.99), (1, 10, 0.0), (1, 10, 1.5)])
def test_invalid_budget_inputs(args):
    with pytest.raises(ValueError):
        episode_budget_to_threshold(*args)
