"""Safety-Gymnasium adapter: import on Python 3.11, step signature, cost semantics, seeding,
episode lengths and terminal flags of both protocols (needs ``algd[safety]``).

Navigation resets rebuild the MuJoCo model (≈ 0.5–1 s each), so these tests reset rarely.
"""

import numpy as np
import pytest

from algd.config import ConfigError
from algd.envs.extras import extra_available

pytestmark = pytest.mark.skipif(not extra_available("safety"),
                                reason="needs algd[safety] (see README)")

from algd.envs import get_task  # noqa: E402
from algd.envs.safety_gym import import_safety_gymnasium, make_safety_env  # noqa: E402
from algd.lagrangian.threshold import critic_threshold  # noqa: E402


def teleport(env, xy):
    """Put the robot of a navigation env at the planar point ``xy`` (at rest)."""
    import mujoco

    task = env.unwrapped.task
    model, data = task.model, task.data
    body = model.body("agent").id
    rot = np.zeros(9)
    mujoco.mju_quat2Mat(rot, model.body_quat[body])
    shift = np.zeros(3)
    shift[:2] = np.asarray(xy) - task.agent.pos[:2]
    adr = model.jnt_qposadr[model.body_jntadr[body]]
    data.qpos[adr:adr + 2] += (rot.reshape(3, 3).T @ shift)[:2]  # slide joints, body frame
    data.qvel[:] = 0
    mujoco.mj_forward(model, data)


def in_hazard(env):
    task = env.unwrapped.task
    return any(np.linalg.norm(task.agent.pos[:2] - p[:2]) <= task.hazards.size
               for p in task.hazards.pos)


def test_import_works_on_this_python_and_colours_are_hashable():
    sg = import_safety_gymnasium()
    from safety_gymnasium.assets.color import COLOR

    assert all(hash(c) is not None for c in COLOR.values())
    np.testing.assert_array_equal(COLOR["hazard"], [0, 0, 1, 0.25])  # values unchanged
    assert import_safety_gymnasium() is sg


def test_adapter_step_signature_and_hazard_cost_against_geometry():
    env = make_safety_env("SafetyPointGoal1-v0")
    obs, info = env.reset(seed=1)
    assert obs.shape == env.observation_space.shape == (60,)
    rng = np.random.default_rng(0)
    for _ in range(100):
        out = env.step(rng.uniform(-1, 1, 2))
        assert len(out) == 5
        obs, reward, terminated, truncated, info = out
        assert isinstance(reward, float) and isinstance(info["cost"], float)
        assert info["cost"] == info["cost_sum"] == float(in_hazard(env))
    hazard = env.unwrapped.task.hazards.pos[0][:2]
    teleport(env, hazard)  # inside a hazard: cost 1, hand-checked against the geometry
    *_, info = env.step(np.zeros(2))
    assert in_hazard(env) and info["cost"] == 1.0
    teleport(env, hazard + [0.0, 0.21 + env.unwrapped.task.hazards.size])
    *_, info = env.step(np.zeros(2))
    assert info["cost"] == float(in_hazard(env))


def test_seeded_reset_is_reproducible():
    a, b = get_task("SafetyPointGoal1-v0").make(1), get_task("SafetyPointGoal1-v0").make(1)
    first = a.reset(seed=5)
    np.testing.assert_array_equal(first, b.reset(seed=5))
    act = np.random.default_rng(0).uniform(-1, 1, (20, 1, 2))
    for x in act:
        sa, sb = a.step(x), b.step(x)
    np.testing.assert_array_equal(sa.obs, sb.obs)
    assert not np.array_equal(first, a.reset(seed=6))


def test_paper_protocol_cuts_episodes_at_400_and_goal_is_terminal_for_the_critics():
    from algd.algos import get_algo
    from algd.config import TrainConfig
    from algd.train import Trainer

    spec = get_task("PointGoal1")  # any navigation task has an ALGD-protocol name
    assert (spec.cost_limit, spec.budget, spec.max_episode_steps) == (10.0, "episode", 400)
    assert not spec.cost_mask_terminal and spec.terminal_info_key == "goal_met"
    assert critic_threshold(10, "episode", 400, 0.99) == pytest.approx(2.4551, abs=1e-4)
    cfg = TrainConfig(env="PointGoal1", warmup_policy="uniform", warmup_steps=1000, utd=0,
                      eval_episodes=1, progress=False)
    trainer = Trainer(cfg, get_algo(cfg.algo).make_config({"policy_hidden": 8,
                                                           "critic_hidden": (8, 8)}))
    assert trainer.agent.env_info.cost_mask_terminal is False  # the cost critic never stops
    obs = trainer.env.reset(seed=2)
    inner = trainer.env.envs[0]
    teleport(inner, inner.unwrapped.task.goal.pos[:2])
    obs = trainer._collect(obs)
    # goal reached: the episode goes on (Safety-Gymnasium places a new goal), but the replay
    # stores a terminal transition for the reward critic
    assert float(trainer.buffer.terminated[0]) == 1.0 and not trainer._episodes
    for t in range(2, 401):
        assert not trainer._episodes, t
        obs = trainer._collect(obs)
    assert len(trainer._episodes) == 1  # the episode was cut at 400 steps ...
    assert float(trainer.buffer.terminated[399]) == 0.0  # ... and the cut bootstraps


def test_standard_protocol_keeps_the_registered_episode_length():
    spec = get_task("SafetyPointButton1-v0")
    assert (spec.cost_limit, spec.max_episode_steps, spec.protocol) == (25.0, 1000,
                                                                         "Safety-Gymnasium")
    assert spec.cost_mask_terminal and spec.terminal_info_key is None
    assert get_task("SafetyCarCircle1-v0").max_episode_steps == 500
    env = get_task("SafetyPointGoal1-v0").make(1)  # same protocol, faster steps
    env.reset(seed=0)
    for t in range(1, 1001):
        s = env.step(np.zeros((1, 2)))
        assert s.done[0] == (t == 1000)
    assert s.truncated[0] and s.critic_terminal is None and s.episode_length[0] == 1000


def test_names_resolve_or_explain():
    assert get_task("SafetyCarGoal2-v0").protocol == "Safety-Gymnasium"
    assert get_task("DoggoPush0").max_episode_steps == 400
    with pytest.raises(ConfigError, match="texture"):
        get_task("SafetyPointRace1-v0")
    with pytest.raises(ConfigError, match="Vision"):
        get_task("SafetyPointGoal1Vision-v0")
    with pytest.raises(KeyError, match="unknown task"):
        get_task("SafetyPointGoal7-v0")


def test_frames_render_off_screen_with_markers(monkeypatch):
    """The lidar and cost markers render on MuJoCo 3 (the adapter initialises their material)."""
    import ctypes.util

    if ctypes.util.find_library("EGL") is None:
        pytest.skip("no EGL library for off-screen rendering")
    monkeypatch.setenv("MUJOCO_GL", "egl")  # read when the renderer is created
    env = get_task("PointGoal1").make_env(render_mode="rgb_array")
    env.reset(seed=0)
    teleport(env, env.unwrapped.task.hazards.pos[0][:2])
    *_, info = env.step(np.zeros(2))
    assert info["cost"] == 1.0  # the cost sphere is drawn too
    frame = env.render()
    assert frame.ndim == 3 and frame.shape[2] == 3 and frame.std() > 5
    task = env.unwrapped.task
    assert task._viewers
    env.close()
    # the GL context is freed now, not by garbage collection after EGL's teardown at exit
    # (which printed EGL_NOT_INITIALIZED tracebacks after every `algd video`)
    assert not task._viewers and task.viewer is None


def test_navigation_episode_resumes_by_replay_into_the_next_layout():
    """Layouts are drawn per episode, so a navigation env is saved as its episode's seed and
    actions and replayed on load; the copy continues bit for bit into the next episode (a new
    layout from the restored seed generator). A state the actions cannot explain (the robot
    moved by hand) is detected, not restored wrongly."""
    from algd.envs.core import ReplayDivergedError

    a, b = get_task("PointGoal1").make(1), get_task("PointGoal1").make(1)
    a.reset(seed=4)
    b.reset(seed=9)
    acts = np.random.default_rng(0).uniform(-1, 1, (420, 1, a.act_dim))
    for act in acts[:380]:
        a.step(act)
    state = a.state_dict()
    assert state["envs"][0]["actions"].shape == (380, a.act_dim)
    b.load_state_dict(state)
    ends = 0
    for act in acts[380:]:
        sa, sb = a.step(act), b.step(act)
        np.testing.assert_array_equal(sa.obs, sb.obs)
        np.testing.assert_array_equal(sa.cost, sb.cost)
        ends += int(sa.truncated[0])
    assert ends == 1  # the 400-step episode ended and both drew the same next layout
    teleport(a.envs[0], a.envs[0].unwrapped.task.goal.pos[:2])
    a.step(acts[0])
    with pytest.raises(ReplayDivergedError, match="did not reproduce"):
        b.load_state_dict(a.state_dict())


@pytest.mark.slow
def test_interrupted_navigation_run_resumes_bit_for_bit(tmp_path):
    """Stopped mid-episode at step 450 of 900 (2 envs, 400-step episodes), resumed by replay:
    the same metrics as the uninterrupted run (~1 min)."""
    from helpers import stopped_run_equals_uninterrupted

    stopped_run_equals_uninterrupted(tmp_path, "PointGoal1", 450, 900)
