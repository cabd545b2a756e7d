"""MuJoCo velocity tasks: step signature, cost against the simulator, seeding, episode ends,
observation cuts and the terminal flags the critics learn from (needs ``algd[mujoco]``)."""

import numpy as np
import pytest

pytest.importorskip("mujoco")

from algd.config import TrainConfig  # noqa: E402
from algd.envs import get_task  # noqa: E402
from algd.envs.mujoco_velocity import ROBOTS, swimmer_xml  # noqa: E402
from algd.lagrangian.threshold import critic_threshold  # noqa: E402

PAPER = {"HalfCheetahVelocity": 151.989, "HopperVelocity": 82.748, "AntVelocity": 103.115,
         "HumanoidVelocity": 20.140}
SAFETY = {"SafetyHalfCheetahVelocity-v1": 3.2096, "SafetyHopperVelocity-v1": 0.7402,
          "SafetyWalker2dVelocity-v1": 2.3415, "SafetySwimmerVelocity-v1": 0.2282,
          "SafetyAntVelocity-v1": 2.6222, "SafetyHumanoidVelocity-v1": 1.4149}


def position(env):
    """The planar position the robot's velocity is measured on, read from the simulator:
    Humanoid's centre of mass, Ant's torso, the root's slide joints (qpos) for the others.
    (Body positions are those MuJoCo computed at the last sub-step, as the envs read them.)"""
    u = env.unwrapped
    if "Humanoid" in type(u).__name__:
        mass = u.model.body_mass[:, None]
        return (mass * u.data.xipos).sum(0)[:2] / mass.sum()
    if "Ant" in type(u).__name__:
        return u.data.body("torso").xpos[:2].copy()
    return np.array([u.data.qpos[0], u.data.qpos[1] if "Swimmer" in type(u).__name__ else 0.0])


def hand_velocity(env, action):
    """Step ``env`` and return (step result, (v_x, v_y)) with v computed from the positions."""
    before = position(env)
    out = env.step(action)
    return out, (position(env) - before) / env.unwrapped.dt


def test_every_robot_has_its_tasks_and_protocol_facts():
    for name, budget in PAPER.items():
        t = get_task(name)
        assert (t.cost_limit, t.budget, t.max_episode_steps) == (budget, "discounted", 1000)
        assert t.truncation_terminal and t.cost_mask_terminal and t.protocol == "ALGD/CAL"
        # the threshold of a discounted budget is the budget itself (spec §1.4)
        assert critic_threshold(t.cost_limit, t.budget, t.max_episode_steps, 0.99) == budget
    for name in SAFETY:
        t = get_task(name)
        assert (t.cost_limit, t.budget, t.max_episode_steps) == (25.0, "episode", 1000)
        assert not t.truncation_terminal and t.protocol == "Safety-Gymnasium"
    assert {r.name for r in ROBOTS} == {"HalfCheetah", "Hopper", "Ant", "Humanoid", "Walker2d",
                                        "Swimmer"}


@pytest.mark.parametrize("name", list(PAPER) + list(SAFETY))
def test_step_signature_and_cost_equals_the_simulators_speed(name):
    env = get_task(name).make_env()
    obs, info = env.reset(seed=0)
    rng = np.random.default_rng(0)
    saw_cost = 0.0
    for _ in range(40):
        out, (vx, vy) = hand_velocity(env, rng.uniform(-1, 1, env.action_space.shape))
        obs, reward, terminated, truncated, info = out
        assert obs.shape == env.observation_space.shape
        assert isinstance(terminated, bool) and isinstance(truncated, bool)
        assert np.isfinite(reward) and isinstance(info["cost"], float)
        if name in PAPER:  # cost = |v_x| or the planar speed (spec §1.2)
            speed = np.hypot(vx, vy) if name in ("AntVelocity", "HumanoidVelocity") else abs(vx)
            assert info["cost"] == pytest.approx(speed, rel=1e-6, abs=1e-9)
        else:  # cost = 1[v > threshold], v = v_x or the planar speed (Safety-Gymnasium v1)
            v = np.hypot(vx, vy) if ("Ant" in name or "Humanoid" in name) else vx
            assert info["velocity"] == pytest.approx(v, rel=1e-6, abs=1e-9)
            assert info["cost"] == float(v > SAFETY[name])
        saw_cost += info["cost"]
        if terminated or truncated:
            obs, info = env.reset()
    if name in PAPER:
        assert saw_cost > 0  # a moving robot pays


@pytest.mark.parametrize("name", ["SafetyHalfCheetahVelocity-v1", "SafetyAntVelocity-v1"])
def test_indicator_cost_switches_at_the_threshold(name):
    """Launch the robot forward faster / slower than the threshold: cost 1 / 0."""
    env = get_task(name).make_env()
    u = env.unwrapped
    for speed, expected in ((3 * SAFETY[name], 1.0), (0.2 * SAFETY[name], 0.0)):
        env.reset(seed=1)
        qvel = np.zeros_like(u.data.qvel)
        qvel[0] = speed  # the root's forward velocity
        u.set_state(u.data.qpos.copy(), qvel)
        *_, info = env.step(np.zeros(env.action_space.shape))
        assert info["cost"] == expected, (speed, info["velocity"])


def test_observation_cuts_of_the_paper():
    ant, humanoid = get_task("AntVelocity").make(1), get_task("HumanoidVelocity").make(1)
    assert (ant.obs_dim, humanoid.obs_dim) == (27, 45)
    assert get_task("SafetyHumanoidVelocity-v1").make(1).obs_dim == 376
    env = get_task("HumanoidVelocity").make_env()
    obs, _ = env.reset(seed=0)
    d = env.unwrapped.data  # the 45 kept numbers are qpos[2:] and qvel
    np.testing.assert_allclose(obs, np.concatenate([d.qpos[2:], d.qvel]))


@pytest.mark.parametrize("name", ["HopperVelocity", "SafetySwimmerVelocity-v1"])
def test_seeded_reset_is_reproducible(name):
    a, b = get_task(name).make(2), get_task(name).make(2)
    np.testing.assert_array_equal(a.reset(seed=3), b.reset(seed=3))
    assert not np.array_equal(a.reset(seed=3), b.reset(seed=4))
    b.reset(seed=3)
    acts = np.random.default_rng(0).uniform(-1, 1, (5, 2, a.act_dim))
    for act in acts:
        sa, sb = a.step(act), b.step(act)
        np.testing.assert_array_equal(sa.obs, sb.obs)
        np.testing.assert_array_equal(sa.cost, sb.cost)


def test_time_limit_truncates_at_1000_and_the_paper_protocol_stores_it_as_terminal():
    from algd.algos import get_algo
    from algd.train import Trainer

    for name, stored_terminal in (("HalfCheetahVelocity", 1.0),
                                  ("SafetyHalfCheetahVelocity-v1", 0.0)):
        cfg = TrainConfig(env=name, steps=1000, warmup_steps=1000, warmup_policy="uniform",
                          utd=0, eval_episodes=1, progress=False, plot=False)
        trainer = Trainer(cfg, get_algo(cfg.algo).make_config({"policy_hidden": 8,
                                                               "critic_hidden": (8, 8)}))
        obs = trainer.env.reset(seed=0)
        costs = []
        for t in range(1000):
            obs_before = obs
            obs = trainer._collect(obs)
            costs.append(float(trainer.buffer.cost[t]))
        # HalfCheetah never falls: the episode ends by truncation at exactly 1000 steps
        assert trainer.buffer.terminated[:999].sum() == 0
        assert float(trainer.buffer.terminated[999]) == stored_terminal
        assert trainer._episodes and len(trainer._episodes) == 1
        ret, ep_cost = trainer._episodes[0]
        if name == "HalfCheetahVelocity":  # reported cost is Σ 0.99^t c_t (spec §6.4)
            assert ep_cost == pytest.approx(sum(0.99**t * c for t, c in enumerate(costs)),
                                            rel=1e-4)
        else:
            assert ep_cost == pytest.approx(sum(costs))
        assert not np.array_equal(obs, obs_before)  # auto-reset started a new episode


def test_falling_is_terminal_and_reports_the_episode():
    env = get_task("HopperVelocity").make(1)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for t in range(1000):  # noqa: B007 - t is read after the loop
        s = env.step(rng.uniform(-1, 1, (1, env.act_dim)))
        if s.done[0]:
            break
    assert s.terminated[0] and not s.truncated[0] and t < 999  # a random Hopper falls
    assert s.episode_length[0] == t + 1


def test_swimmer_model_loads_on_mujoco_3_without_contacts():
    import gymnasium as gym

    env = get_task("SafetySwimmerVelocity-v1").make_env()
    text = swimmer_xml(env.unwrapped.fullpath)
    assert "collision" not in text and 'contype="0"' in text
    env.reset(seed=0)
    for _ in range(50):
        env.step(env.action_space.sample())
        assert env.unwrapped.data.ncon == 0  # "predefined" with no pairs meant: no contacts
    assert gym.spec("algd/Swimmer-v4").max_episode_steps == 1000
