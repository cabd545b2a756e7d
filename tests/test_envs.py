"""The constrained-env interface and the built-in PointDetour task."""

import gymnasium as gym
import numpy as np
import pytest

import algd.envs  # noqa: F401  (registers algd/PointDetour-v0)
from algd.envs import GymVecEnv, PointDetourEnv, PointDetourVec, RecordEpisodeCost, get_task
from algd.envs.core import EpisodeTracker
from algd.envs.point_detour import PointDetourParams


def rollout(env: PointDetourVec, policy, seed=0):
    """Run one episode per sub-env with ``policy(obs) -> actions``; return VecStep at the end."""
    obs = env.reset(seed=seed)
    positions = [obs[:, :2].copy()]
    for _ in range(env.params.horizon):
        step = env.step(policy(obs))
        positions.append(step.final_obs[:, :2].copy())
        obs = step.obs
    assert step.truncated.all()
    return step, np.stack(positions)


def straight(obs):
    return np.clip(obs[:, 2:4] / 0.1, -1, 1)  # head for the goal at full speed


def detour(sign):
    """Scripted safe detour: waypoints beside the hazard, then the goal (mirror with ``sign``)."""
    waypoints = np.array([[-0.45, 0.62], [0.45, 0.62], [1.0, 0.0]]) * np.array([1.0, sign])

    def policy(obs):
        pos = obs[:, :2]
        stage = (pos[:, 0] > -0.5).astype(int) + (pos[:, 0] > 0.4).astype(int)
        d = waypoints[stage] - pos
        n = np.linalg.norm(d, axis=1, keepdims=True)
        return d / np.maximum(n, 1e-9) * np.minimum(1.0, n / 0.1)

    return policy


def test_unconstrained_optimum_violates_and_detours_are_safe_and_symmetric():
    env = PointDetourVec(16)
    budget = get_task("PointDetour").cost_limit
    s_straight, _ = rollout(env, straight)
    s_up, path_up = rollout(env, detour(+1))
    s_down, path_down = rollout(env, detour(-1))
    assert s_straight.episode_cost.mean() > 3 * budget  # the shortest path crosses the hazard
    assert s_up.episode_cost.max() <= budget and s_down.episode_cost.max() <= budget
    # both detours are worth the same (mirror images) and less than the straight path
    assert s_up.episode_return.mean() == pytest.approx(s_down.episode_return.mean(), abs=0.3)
    assert s_straight.episode_return.mean() > s_up.episode_return.mean() + 1.0
    assert s_up.episode_return.mean() > 40  # a safe policy can still earn most of the reward
    assert (path_up[:, :, 1].max(0) > 0.4).all() and (path_down[:, :, 1].min(0) < -0.4).all()


def test_random_policy_earns_little():
    env = PointDetourVec(32)
    rng = np.random.default_rng(0)
    step, _ = rollout(env, lambda o: rng.uniform(-1, 1, size=(32, 2)))
    assert step.episode_return.mean() < 5


def test_cost_is_indicator_of_hazard_and_reward_is_progress():
    env = PointDetourVec(1, PointDetourParams(start_noise=0.0))
    obs = env.reset(seed=0)
    np.testing.assert_allclose(obs[0], [-1.0, 0.0, 2.0, 0.0, 0.5], atol=1e-6)
    costs, rewards = [], []
    for _ in range(6):
        s = env.step(np.array([[1.0, 0.0]]))
        costs.append(s.cost[0])
        rewards.append(s.reward[0])
    # positions -0.9 … -0.4: inside the hazard (radius 0.5) from x = -0.4 on
    assert costs == [0, 0, 0, 0, 0, 1]
    np.testing.assert_allclose(rewards, 1.0, atol=1e-5)  # full-speed progress = 1 per step
    # the signed distance to the hazard edge is negative inside
    assert s.obs[0, 4] < 0


def test_speed_is_bounded_by_a_disc_and_arena_clips():
    env = PointDetourVec(1, PointDetourParams(start_noise=0.0))
    env.reset(seed=0)
    s = env.step(np.array([[1.0, 1.0]]))  # diagonal is not faster
    assert np.linalg.norm(s.obs[0, :2] - [-1.0, 0.0]) == pytest.approx(0.1, abs=1e-6)
    for _ in range(20):
        s = env.step(np.array([[-1.0, 0.0]]))
    assert s.obs[0, 0] == pytest.approx(-1.5)


def test_seeded_reset_is_reproducible_and_seeds_differ():
    a, b = PointDetourVec(4), PointDetourVec(4)
    np.testing.assert_array_equal(a.reset(seed=3), b.reset(seed=3))
    assert not np.array_equal(a.reset(seed=3), b.reset(seed=4))


def test_truncation_and_autoreset_keep_final_observation():
    env = PointDetourVec(2)
    obs = env.reset(seed=0)
    for t in range(50):
        s = env.step(np.zeros((2, 2)))
        if t < 49:
            assert not s.done.any() and np.isnan(s.episode_return).all()
    assert s.truncated.all() and not s.terminated.any()
    np.testing.assert_allclose(s.final_obs[:, :2], obs[:, :2], atol=1e-6)  # standing still
    assert (s.episode_length == 50).all()
    assert not np.allclose(s.obs, s.final_obs)  # the next episode started somewhere new


def test_gymnasium_registration_and_single_env_matches_vector():
    env = gym.make("algd/PointDetour-v0")
    obs, info = env.reset(seed=5)
    vec = PointDetourVec(1)
    np.testing.assert_allclose(obs, vec.reset(seed=5)[0])
    a = np.array([0.3, -0.7], dtype=np.float32)
    o1, r1, te, tr, info = env.step(a)
    s = vec.step(a[None])
    np.testing.assert_allclose(o1, s.final_obs[0])
    assert r1 == pytest.approx(s.reward[0]) and info["cost"] == s.cost[0]
    assert te is False and tr is False


def test_gym_vec_env_reports_episode_stats_like_native():
    native = PointDetourVec(3)
    wrapped = GymVecEnv([PointDetourEnv for _ in range(3)])
    rng = np.random.default_rng(1)
    acts = rng.uniform(-1, 1, size=(50, 3, 2))
    native.reset(seed=0)
    wrapped.reset(seed=0)
    # sub-env i of GymVecEnv is seeded with seed + i, so compare per-episode sums to a manual run
    for t in range(50):
        sw = wrapped.step(acts[t])
    manual = []
    for i in range(3):
        env = PointDetourEnv()
        env.reset(seed=i)
        total_r = total_c = 0.0
        for t in range(50):
            _, r, _, _, info = env.step(acts[t, i])
            total_r += r
            total_c += info["cost"]
        manual.append((total_r, total_c))
    np.testing.assert_allclose(sw.episode_return, [m[0] for m in manual], rtol=1e-5)
    np.testing.assert_allclose(sw.episode_cost, [m[1] for m in manual])


def test_gym_vec_env_requires_cost_in_info():
    env = GymVecEnv([lambda: gym.make("Pendulum-v1")])
    env.reset(seed=0)
    with pytest.raises(KeyError, match="info\\['cost'\\]"):
        env.step(np.zeros((1, 1)))


def test_record_episode_cost_wrapper_and_discounted_tracker():
    env = RecordEpisodeCost(PointDetourEnv(PointDetourParams(start_noise=0.0)))
    env.reset(seed=0)
    info = {}
    for _ in range(50):
        *_, info = env.step(np.array([1.0, 0.0]))
    assert info["episode"]["l"] == 50 and info["episode"]["c"] == 10.0
    tr = EpisodeTracker(1, cost_discount=0.5)
    for _ in range(2):
        tr.update(np.zeros(1), np.ones(1), np.zeros(1, bool))
    _, c, n = tr.update(np.zeros(1), np.ones(1), np.ones(1, bool))
    assert c[0] == pytest.approx(1 + 0.5 + 0.25) and n[0] == 3


def test_unknown_task_suggests_names():
    with pytest.raises(KeyError, match="Did you mean PointDetour"):
        get_task("PointDetur")
    # names only a resolver builds (Safety-Gymnasium ids) are suggested too, and so is a
    # longer name whose start is misspelt
    with pytest.raises(KeyError, match="Did you mean SafetyPointGoal1-v0"):
        get_task("SafetyPointGoal1-v0x")
    with pytest.raises(KeyError, match="Did you mean HopperVelocity"):
        get_task("Hoper")
    with pytest.raises(KeyError, match=r"'xyzzy'\. Run `algd envs`"):
        get_task("xyzzy")
    # the start of a name suggests the registered tasks it starts (AntRun0 is a resolver's)
    with pytest.raises(KeyError, match="Did you mean AntVelocity, "):
        get_task("Ant")
    with pytest.raises(KeyError, match=r"'Nope'\. Run `algd envs`"):  # no far-fetched guess
        get_task("Nope")


def test_resolvable_safety_names_are_real_ids():
    """Every suggested navigation id is one Safety-Gymnasium registers (or one algd refuses
    with a reason), so a suggestion never leads to 'unknown task'."""
    from algd.envs.extras import extra_available
    from algd.envs.safety_gym import import_safety_gymnasium, resolvable_names

    if not extra_available("safety"):
        pytest.skip("needs algd[safety]")

    import_safety_gymnasium()
    from safety_gymnasium.utils.registration import safe_registry

    ids = [n for n in resolvable_names() if n.startswith("Safety")]
    assert len(ids) == 5 * 19 and set(ids) <= set(safe_registry)  # 6 tasks x 3 levels + Run0


def test_a_missing_extra_is_named_with_the_task_the_user_gave(monkeypatch):
    """`--env PointButton1` without Safety-Gymnasium: the error names PointButton1 (and the id it
    runs on) and the install command."""
    import sys

    import algd.envs.extras as extras
    from algd.envs.extras import MissingExtraError

    monkeypatch.setattr(extras, "extra_available", lambda extra: False)
    monkeypatch.delitem(sys.modules, "safety_gymnasium", raising=False)
    with pytest.raises(MissingExtraError) as err:
        get_task("PointButton1").make(1)
    message = str(err.value)
    assert message.startswith("task PointButton1 (Safety-Gymnasium's SafetyPointButton1-v0) "
                              "needs the optional 'safety' dependencies")
    assert "pip install" in message
