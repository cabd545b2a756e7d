"""Exact mid-episode snapshots of MuJoCo environments (algd.envs.snapshot) and the resume they
give simulator-backed tasks: a resumed MuJoCo run equals the uninterrupted one (needs mujoco)."""

import gymnasium as gym
import numpy as np
import pytest
import torch

pytest.importorskip("mujoco")

from helpers import stopped_run_equals_uninterrupted  # noqa: E402

from algd.envs import get_task  # noqa: E402
from algd.envs.snapshot import EnvStateError, env_snapshot, load_env_snapshot  # noqa: E402
from algd.train.loop import _from_tensors, _to_tensors  # noqa: E402

TASKS = ["HalfCheetahVelocity", "HopperVelocity", "AntVelocity", "HumanoidVelocity",
         "SafetyWalker2dVelocity-v1", "SafetySwimmerVelocity-v1"]


def _through_checkpoint(state, tmp_path):
    """The snapshot as a resumed run gets it back: tensors, torch.save, weights-only load."""
    path = tmp_path / "snap.pt"
    torch.save(_to_tensors(state), path)
    return _from_tensors(torch.load(path, weights_only=True))


@pytest.mark.parametrize("name", TASKS)
def test_restored_env_continues_bit_for_bit_across_episode_ends(name, tmp_path):
    task = get_task(name)
    a = task.make_env()
    actions = np.random.default_rng(1).uniform(-1, 1, (600, a.action_space.shape[0]))
    a.reset(seed=3)
    for act in actions[:300]:
        *_, te, tr, _ = a.step(act)
        if te or tr:
            a.reset()
    state = _through_checkpoint(env_snapshot(a), tmp_path)
    b = task.make_env()
    b.reset(seed=99)  # somewhere else entirely
    b.step(actions[0])
    load_env_snapshot(b, state)
    for act in actions[300:]:
        oa, ra, tea, tra, ia = a.step(act)
        ob, rb, teb, trb, ib = b.step(act)
        np.testing.assert_array_equal(oa, ob)
        assert (ra, tea, tra, ia["cost"]) == (rb, teb, trb, ib["cost"])
        if tea or tra:  # the next episode's reset noise comes from the restored np_random
            np.testing.assert_array_equal(a.reset()[0], b.reset()[0])


def test_time_limit_counter_is_restored():
    task = get_task("HalfCheetahVelocity")
    a, b = task.make_env(), task.make_env()
    a.reset(seed=0)
    b.reset(seed=0)
    for _ in range(990):
        a.step(a.action_space.sample())
    load_env_snapshot(b, env_snapshot(a))
    truncated = [b.step(np.zeros(6))[3] for _ in range(10)]
    assert truncated == [False] * 9 + [True]


def test_unknown_layers_are_not_snapshotted():
    class Counter(gym.Wrapper):  # keeps state the snapshot cannot know of
        pass

    assert env_snapshot(Counter(get_task("HopperVelocity").make_env())) is None
    assert env_snapshot(gym.make("CartPole-v1")) is None  # not a MuJoCo environment
    assert get_task("PointDetour").make_vec(2, None).state_dict() is not None  # native state


def test_snapshot_that_does_not_fit_is_refused_before_anything_changes():
    ant = env_snapshot(get_task("AntVelocity").make_env())  # one wrapper more (observation cut)
    with pytest.raises(EnvStateError, match="differently built"):
        load_env_snapshot(get_task("SafetyAntVelocity-v1").make_env(), ant)
    hopper = env_snapshot(get_task("HopperVelocity").make_env())  # same wrappers, other robot
    walker = get_task("SafetyWalker2dVelocity-v1").make_env()
    walker.reset(seed=0)
    qpos = walker.unwrapped.data.qpos.copy()
    with pytest.raises(EnvStateError, match="different model"):
        load_env_snapshot(walker, hopper)
    np.testing.assert_array_equal(walker.unwrapped.data.qpos, qpos)  # untouched
    other_version = {**hopper, "mujoco": "0.0.1"}
    with pytest.raises(EnvStateError, match="MuJoCo 0.0.1"):
        load_env_snapshot(get_task("HopperVelocity").make_env(), other_version)


def test_vector_env_state_round_trip():
    v, w = get_task("HopperVelocity").make(3), get_task("HopperVelocity").make(3)
    v.reset(seed=0)
    w.reset(seed=5)
    acts = np.random.default_rng(0).uniform(-1, 1, (60, 3, v.act_dim))
    for act in acts[:30]:
        v.step(act)
    state = v.state_dict()
    assert all("snapshot" in e for e in state["envs"])  # MuJoCo: snapshots, no action records
    assert v._actions == [[], [], []]
    w.load_state_dict(state)
    for act in acts[30:]:
        sv, sw = v.step(act), w.step(act)
        np.testing.assert_array_equal(sv.obs, sw.obs)
        np.testing.assert_array_equal(sv.episode_return, sw.episode_return)  # tracker restored
    with pytest.raises(ValueError, match="3 environments"):
        get_task("HopperVelocity").make(2).load_state_dict(v.state_dict())


def test_resumed_mujoco_run_equals_the_uninterrupted_run(tmp_path):
    """Stopped at step 300 of a 1000-step episode, extended to 600: same metrics as one run,
    with the environments saved as simulator snapshots."""
    run_dir = stopped_run_equals_uninterrupted(tmp_path, "HalfCheetahVelocity", 300, 600)
    env_state = torch.load(run_dir / "checkpoint.pt", weights_only=True)["trainer"]["env"]
    assert [set(e) for e in env_state["envs"]] == [{"snapshot"}] * 2
