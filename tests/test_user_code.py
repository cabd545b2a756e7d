"""A user's own tasks and algorithms: what algd checks for them and how it reports their bugs."""

import json
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from helpers import CLI_TINY, TINY, TINY_ALGO

from algd.algos import get_algo
from algd.algos.registry import AlgoSpec, register_algo
from algd.algos.sac_lag import SACLag, SACLagConfig
from algd.cli import main
from algd.config import ConfigError, TrainConfig, import_modules
from algd.envs import TaskSpec, register_task
from algd.envs.core import GymVecEnv
from algd.envs.registry import has_time_limit
from algd.train import Trainer, evaluate, train
from algd.train.checkpoint import env_info_for, load_run
from algd.train.loop import check_diagnostics, make_configs


@pytest.fixture(autouse=True)
def _registries_restored():
    """What a test registers is gone after it (other test files list the registries)."""
    import algd.algos.registry as algos
    import algd.envs.registry as tasks

    saved = [(d, dict(d)) for d in (algos._ALGOS, algos._ORIGIN, tasks._TASKS, tasks._ORIGIN)]
    yield
    for d, before in saved:
        d.clear()
        d.update(before)


class Walk(gym.Env):
    """A 1-D walk that never ends its episodes by itself; cost 1 right of the origin."""

    def __init__(self, obs_size=1, cost_key="cost", bug=False):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.obs_size, self.cost_key, self.bug, self.x = obs_size, cost_key, bug, 0.0

    def _obs(self):
        return np.full(self.obs_size, self.x, np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = 0.0
        return self._obs(), {}

    def step(self, action):
        if self.bug:
            settings = {"speed": 0.1}
            self.x += settings["sped"]  # the user's typo
        self.x += 0.1 * float(action[0])
        return self._obs(), -abs(self.x - 1.0), False, False, {self.cost_key: float(self.x > 0)}


def walk_task(name, **kw):
    return TaskSpec.from_gym(name, lambda render_mode=None: Walk(**kw), cost_limit=2.0,
                             budget="episode", max_episode_steps=20)


def test_a_gymnasium_task_without_a_time_limit_ends_at_its_episode_length():
    env = walk_task("WalkTimeLimit").make(2)
    env.reset(seed=0)
    for t in range(1, 21):
        step = env.step(np.zeros((2, 1), np.float32))
        assert step.truncated.all() == (t == 20)
    assert step.episode_length.tolist() == [20, 20]
    # an environment with a limit of its own keeps it (not wrapped twice)
    assert has_time_limit(gym.make("Pendulum-v1"))
    assert not has_time_limit(Walk())


def test_an_evaluation_episode_that_never_ends_is_an_error_not_a_hang():
    env = GymVecEnv([Walk])  # a hand-made vector environment: nothing adds a time limit
    agent = get_algo("sac-lag").agent_cls(
        env_info_for(env, walk_task("WalkForever"), 1.0),
        get_algo("sac-lag").make_config({"actor_hidden": (8,), "critic_hidden": (8,)}),
        torch.device("cpu"))
    with pytest.raises(ValueError, match=r"has run 200 steps, 10× the task's max_episode_steps "
                                         r"\(20\), without ending"):
        evaluate(agent, env, 1, max_episode_steps=20)


def test_an_observation_of_the_wrong_size_and_a_missing_cost_say_what_the_env_did(tmp_path):
    with pytest.raises(ValueError, match=r"reset\(\) returned an observation of shape \(3,\), "
                                         r"but its observation_space is Box.*\(1 numbers\)"):
        walk_task("WalkBadObs", obs_size=3).make(1).reset(seed=0)
    register_task(walk_task("WalkBadObsRun", obs_size=3))
    with pytest.raises(ValueError, match="returned an observation of shape"):
        train(TrainConfig(env="WalkBadObsRun", out=str(tmp_path / "run"), **TINY), TINY_ALGO)
    assert not (tmp_path / "run").exists()  # stopped before anything was written
    env = walk_task("WalkNoCost", cost_key="costs").make(1)
    env.reset(seed=0)
    with pytest.raises(KeyError, match=r"did not report info\['cost'\] \(its info keys: "
                                       r"'costs'\)"):
        env.step(np.zeros((1, 1), np.float32))


def test_a_bug_in_the_users_env_is_reported_where_it_is(tmp_path, capsys, monkeypatch):
    """The CLI turns algd's own ValueErrors and KeyErrors into one line; one raised in the
    user's code names its file and line, and ALGD_DEBUG=1 shows the traceback."""
    register_task(walk_task("WalkBuggy", bug=True))
    args = ["train", "--env", "WalkBuggy", "--steps", "200", "--out", str(tmp_path / "r"),
            *CLI_TINY]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "algd: error: KeyError: 'sped'" in err
    assert f"raised at {__file__}:" in err and "in step" in err
    assert 'self.x += settings["sped"]' in err and "ALGD_DEBUG=1" in err
    monkeypatch.setenv("ALGD_DEBUG", "1")
    with pytest.raises(KeyError, match="sped"):
        main(args[:-len(CLI_TINY)] + ["--out", str(tmp_path / "r2"), *CLI_TINY])


class FloatDiagnostics(SACLag):
    def update(self, batch):
        return {k: float(v) for k, v in super().update(batch).items()}


class UndeclaredDiagnostics(SACLag):
    diagnostics = ("critic_loss", "my_metric")


def test_an_algorithm_whose_update_breaks_the_diagnostics_contract_is_told_how():
    for cls, message in [
        (FloatDiagnostics, r"returned 'critic_loss' as float: diagnostics must be detached "
                           r"one-element tensors"),
        (UndeclaredDiagnostics, r"declared but not returned: my_metric; returned but not "
                                r"declared: .*actor_loss"),
    ]:
        register_algo(AlgoSpec(f"user-{cls.__name__.lower()}", cls, SACLagConfig))
        cfg = TrainConfig(algo=f"user-{cls.__name__.lower()}", steps=200, **TINY)
        with pytest.raises(TypeError, match=message):
            train(cfg, {"actor_hidden": (16,), "critic_hidden": (16, 16)})
    with pytest.raises(TypeError, match="must return a dict"):
        check_diagnostics(SACLag.__new__(SACLag), [1.0])


ALGO_MODULE = '''
from algd.algos.registry import AlgoSpec, register_algo
from algd.algos.sac_lag import SACLag, SACLagConfig

register_algo(AlgoSpec("user-sac-lag", SACLag, SACLagConfig, {}, "SAC-Lag, registered by a user"))
'''


def test_train_imports_the_module_of_its_algorithm_and_records_hand_imports(tmp_path,
                                                                            monkeypatch):
    """``train(TrainConfig(algo=..., imports=(...)))`` imports before it looks the algorithm
    up; a module imported by hand is recorded in config.json, so eval and resume find it."""
    (tmp_path / "user_algo_mod.py").write_text(ALGO_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    sac = {"actor_hidden": (16,), "critic_hidden": (16, 16)}
    res = train(TrainConfig(algo="user-sac-lag", imports=("user_algo_mod",), steps=200,
                            out=str(tmp_path / "a"), **TINY), sac)
    assert res.summary["algo"] == "user-sac-lag"

    register_task(walk_task("WalkByHand"))  # registered by this module, imported by hand
    res = train(TrainConfig(algo="user-sac-lag", env="WalkByHand", steps=200,
                            out=str(tmp_path / "b"), **TINY), sac)
    imports = json.loads((res.run_dir / "config.json").read_text())["train"]["imports"]
    assert imports == ["user_algo_mod", __name__]
    assert load_run(res.run_dir).train_cfg.imports == ("user_algo_mod", __name__)


def test_python_callers_get_config_errors_that_name_the_fix(tmp_path):
    with pytest.raises(ConfigError, match=r"cal is configured by a SACLagConfig, not a "
                                          r"ALGDConfig; build it with make_configs\('cal'"):
        Trainer(TrainConfig(algo="cal", **TINY), make_configs("algd-vesde")[1])
    with pytest.raises(ConfigError, match=r"'rhoo': did you mean 'rho'\?"):
        train(TrainConfig(steps=200, **TINY), {"rhoo": 2})
    with pytest.raises(ConfigError, match=r"steps: training option\(s\), not algd-vesde's; set "
                                          r"them on the TrainConfig"):
        train(TrainConfig(**TINY), {"steps": 100})


def test_a_module_that_imports_a_missing_package_is_named_as_such(tmp_path, monkeypatch):
    (tmp_path / "needs_missing_pkg.py").write_text("import no_such_package_anywhere\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match=r"importing 'needs_missing_pkg' \(--imports\) failed: "
                                          r"No module named 'no_such_package_anywhere'"):
        import_modules(["needs_missing_pkg"])
    sys.modules.pop("needs_missing_pkg", None)


def test_user_registrations_are_listed_apart_and_a_replaced_name_warns(capsys):
    register_task(walk_task("WalkListed"))
    register_algo(AlgoSpec("user-listed", SACLag, SACLagConfig, {}, "mine"))
    assert main(["envs"]) == 0 and main(["algos"]) == 0
    out = capsys.readouterr().out
    mine = out.split(f"registered by {__name__}:\n")[1].split("\n\n")[0]
    assert "  WalkListed " in mine and "PointDetour" not in mine
    assert f"user-listed    mine  (registered by {__name__})" in out
    from algd.envs.registry import get_task

    with pytest.warns(UserWarning, match=r"task 'PointDetour' of algd.envs.registry is "
                                         rf"replaced by {__name__}'s"):
        register_task(get_task("PointDetour"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        register_task(get_task("PointDetour"))  # the same module again: no warning


def test_act_np_refuses_a_deterministic_flag_that_is_not_a_bool():
    cfg, algo_cfg = make_configs("sac-lag", actor_hidden=(8,), critic_hidden=(8,))
    agent = Trainer(cfg, algo_cfg).agent
    with pytest.raises(TypeError, match="deterministic must be True or False, got 'yes'"):
        agent.act_np(np.zeros(agent.env_info.obs_dim), deterministic="yes")
