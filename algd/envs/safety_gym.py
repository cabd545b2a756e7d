"""Safety-Gymnasium navigation tasks through an adapter (``algd[safety]``).

Every ``Safety*`` id of Safety-Gymnasium 1.0.0 can be trained on: the adapter turns its 6-tuple
step ``(obs, reward, cost, terminated, truncated, info)`` into Gymnasium's 5-tuple with the cost
in ``info["cost"]``, the form the rest of algd speaks. Two protocols, named differently:

**Safety-Gymnasium protocol** (Safety-Gymnasium's and OmniSafe's benchmarks): the id itself, e.g.
``SafetyPointGoal1-v0``. Episodes of the id's registered length (1000 steps; 500 for Circle and
Run), cost limit 25 on the plain episode cost, the time limit bootstraps, the cost critic stops
at true terminals.

**ALGD/CAL protocol** (the paper's Safety-Gym setting, spec §1.3–1.5), the id without
``Safety`` and ``-v0``, e.g. ``PointButton1``: episodes cut at 400 steps, budget 10 on the plain
cost of a 400-step episode (critic threshold h = 10(1 − 0.99⁴⁰⁰)/(0.01·400) ≈ 2.4551), the
400-step limit bootstraps, a reached goal (``info["goal_met"]``, after which Safety-Gymnasium
places a new goal and the episode goes on) is terminal for the reward critic, and the cost critic
never stops bootstrapping (mask = 1). The paper ran the CVPO fork of Safety-Gym with fixed
layouts; Safety-Gymnasium randomises layouts, so numbers are close in kind, not identical.

Per-step costs are indicators (Safety-Gymnasium's ``constrain_indicator``): 1 when any hazard,
wrong button, gremlin, pillar or vase constraint is violated, as in the reference.

Installing: Safety-Gymnasium 1.0.0 pins versions that do not install on Python 3.11, so it is
installed without its pins (``pip install 'algd[safety]' && pip install --no-deps
safety-gymnasium==1.0.0``); and on Python 3.11 its import fails (its dataclasses use numpy
colour arrays as defaults, which 3.11 rejects as unhashable). :func:`import_safety_gymnasium`
makes those colour arrays hashable as the module defining them loads, without touching the
installed files; on Python 3.10 this changes nothing.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import re
import sys
from types import ModuleType
from typing import Any

import gymnasium as gym
import numpy as np

from algd.config import ConfigError
from algd.envs.extras import quiet_plugin_notices, require_extra
from algd.envs.registry import TaskSpec, register_resolver, register_task

PAPER_EPISODE_STEPS = 400
PAPER_BUDGET = 10.0
STANDARD_LIMIT = 25.0

ROBOTS = ("Point", "Car", "Doggo", "Racecar", "Ant")
NAV_TASKS = ("Goal", "Button", "Push", "Circle", "Run", "FadingEasy", "FadingHard", "Race")
_ROBOT = "|".join(ROBOTS)
_NAV = "|".join(NAV_TASKS)
#: Safety-Gymnasium ids algd adapts: navigation (any robot, task, level) and velocity v0
_SAFETY_ID = re.compile(rf"^Safety(?:({_ROBOT})({_NAV})(\d)|(\w+)Velocity)(Vision|Debug)?-v(\d)$")
#: ALGD/CAL-protocol names of the navigation tasks: the id without "Safety" and "-v0"
_PAPER_NAME = re.compile(rf"^({_ROBOT})({_NAV})(\d)$")

#: ids that cannot run with the base stack, and why
_BROKEN = {
    "Race": "its floor texture (assets/textures/village_floor) is missing from the "
            "safety-gymnasium 1.0.0 wheel on PyPI",
    "SafetySwimmerVelocity-v0": "its model file is rejected by MuJoCo 3 (attribute 'collision'); "
                                "SafetySwimmerVelocity-v1 is algd's own and runs",
}


# -- importing Safety-Gymnasium on Python 3.11 -------------------------------------------------
class _HashableArray(np.ndarray):
    """An ndarray usable as a dataclass default on Python 3.11 (hash by identity)."""

    __hash__ = object.__hash__  # type: ignore[assignment]


_COLOR_MODULE = "safety_gymnasium.assets.color"


def _make_colours_hashable(module: ModuleType) -> None:
    for key, value in module.COLOR.items():
        if isinstance(value, np.ndarray) and not isinstance(value, _HashableArray):
            module.COLOR[key] = value.view(_HashableArray)


class _ColourFix(importlib.abc.MetaPathFinder):
    """Finds ``safety_gymnasium.assets.color`` as usual and fixes its colours once it has run,
    before the asset modules that use them as dataclass defaults are imported."""

    def find_spec(self, fullname: str, path: Any, target: Any = None):  # noqa: D102
        if fullname != _COLOR_MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        loader, run = spec.loader, spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run(module)
            _make_colours_hashable(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def import_safety_gymnasium(what: str = "Safety-Gymnasium") -> ModuleType:
    """Import ``safety_gymnasium`` (with the Python 3.11 colour fix); if it is missing, raise
    a :class:`MissingExtraError` saying that ``what`` needs it and how to install it."""
    if "safety_gymnasium" in sys.modules:
        return sys.modules["safety_gymnasium"]
    require_extra("safety", what)
    if _COLOR_MODULE in sys.modules:  # left over from an earlier, failed import
        _make_colours_hashable(sys.modules[_COLOR_MODULE])
    finder = _ColourFix()
    sys.meta_path.insert(0, finder)
    try:
        with quiet_plugin_notices():
            import safety_gymnasium
    finally:
        sys.meta_path.remove(finder)
    return safety_gymnasium


# -- the adapter ---------------------------------------------------------------------------------
class SafetyGymnasiumAdapter(gym.Wrapper):
    """Safety-Gymnasium's ``(obs, r, c, term, trunc, info)`` → ``(obs, r, term, trunc, info)``
    with ``info["cost"] = c``."""

    def step(self, action: Any):  # type: ignore[override]
        # Safety-Gymnasium's step returns six values; gym.Env.step is typed with five
        obs, reward, cost, terminated, truncated, info = self.env.step(action)  # type: ignore[misc]
        info = dict(info)
        info["cost"] = float(cost)
        return obs, float(reward), bool(terminated), bool(truncated), info

    def render(self):  # type: ignore[override]
        """The frame, with markers fixed for MuJoCo 3: Safety-Gymnasium draws lidar and cost
        markers through Gymnasium 0.29's renderer, which leaves the marker field ``matid`` (new
        in MuJoCo 3) uninitialised, and ``mjr_render`` then crashes; markers get no material."""
        if self.render_mode in ("rgb_array", "depth_array"):
            viewer = self.env.unwrapped.task._get_viewer(self.render_mode)
            if not getattr(viewer, "_algd_marker_fix", False):
                add_marker = viewer.add_marker
                viewer.add_marker = lambda **marker: add_marker(**{"matid": -1, **marker})
                viewer._algd_marker_fix = True
        return self.env.render()

    def close(self) -> None:
        """Free the renderers' GL contexts now: Safety-Gymnasium has no ``close``, so its viewers
        were left to garbage collection at interpreter exit, after EGL had been torn down, which
        printed ``EGL_NOT_INITIALIZED`` tracebacks after every ``algd video``."""
        task = getattr(self.env.unwrapped, "task", None)
        viewers = getattr(task, "_viewers", None) or {}
        for viewer in viewers.values():
            viewer.close()
        viewers.clear()
        if task is not None and hasattr(task, "viewer"):
            task.viewer = None
        super().close()


def make_safety_env(env_id: str, max_episode_steps: int | None = None,
                    render_mode: str | None = None, task: str | None = None) -> gym.Env:
    """One adapted Safety-Gymnasium environment; ``max_episode_steps`` overrides the id's own
    episode length (the ALGD protocol's 400). Frames come from the overhead ``track`` camera.
    ``task``: the name the user gave, where it is not ``env_id`` (for the missing-extra error)."""
    sg = import_safety_gymnasium(f"task {task} (Safety-Gymnasium's {env_id})" if task else
                                 f"task {env_id}")
    kwargs = {"camera_name": "track"} if render_mode is not None else {}
    env = sg.make(env_id, max_episode_steps=max_episode_steps, render_mode=render_mode, **kwargs)
    return SafetyGymnasiumAdapter(env)


def registered_episode_steps(env_id: str) -> int:
    """The episode length Safety-Gymnasium registers for ``env_id`` (raises if unknown)."""
    import_safety_gymnasium(f"task {env_id}")
    spec = gym.registry.get(env_id)
    if spec is None or spec.max_episode_steps is None:
        raise KeyError(env_id)
    return int(spec.max_episode_steps)


# -- tasks ---------------------------------------------------------------------------------------
def standard_task(env_id: str, episode_steps: int | None = None) -> TaskSpec:
    """``env_id`` under the Safety-Gymnasium protocol (its own episode length, limit 25)."""
    steps = episode_steps if episode_steps is not None else registered_episode_steps(env_id)
    return TaskSpec.from_gym(
        env_id,
        lambda render_mode=None: make_safety_env(env_id, render_mode=render_mode),
        cost_limit=STANDARD_LIMIT,
        budget="episode",
        max_episode_steps=steps,
        protocol="Safety-Gymnasium",
        extra="safety",
        description=f"Safety-Gymnasium's {env_id} as registered",
    )


def paper_task(name: str) -> TaskSpec:
    """The ALGD/CAL-protocol task ``name`` (e.g. ``PointButton1``) on ``Safety<name>-v0``."""
    env_id = f"Safety{name}-v0"
    return TaskSpec.from_gym(
        name,
        lambda render_mode=None: make_safety_env(env_id, PAPER_EPISODE_STEPS, render_mode,
                                                 task=name),
        cost_limit=PAPER_BUDGET,
        budget="episode",
        max_episode_steps=PAPER_EPISODE_STEPS,
        cost_mask_terminal=False,
        terminal_info_key="goal_met",
        protocol="ALGD/CAL",
        extra="safety",
        description=f"{env_id} cut to 400-step episodes; goal reached is terminal for the "
        "reward critic, the cost critic never stops",
    )


def _check_runnable(name: str, env_id: str, task: str | None) -> None:
    if task == "Race" or env_id in _BROKEN:
        raise ConfigError(f"{name} cannot run here: {_BROKEN.get(env_id, _BROKEN['Race'])}")


def resolve(name: str) -> TaskSpec | None:
    """Build the task for a ``Safety*`` id (Safety-Gymnasium protocol) or for its ALGD name
    (``PointGoal1`` …); None for names that are neither."""
    paper = _PAPER_NAME.match(name)
    if paper:
        env_id = f"Safety{name}-v0"
        _check_runnable(name, env_id, paper.group(2))
        return paper_task(name)
    m = _SAFETY_ID.match(name)
    if not m:
        return None
    if m.group(5):
        raise ConfigError(f"{name}: the {m.group(5)} variants are not supported (algd trains on "
                          "flat vector observations with no keyboard)")
    _check_runnable(name, name, m.group(2))
    try:
        return standard_task(name)
    except KeyError:
        return None  # not a Safety-Gymnasium id after all: get_task suggests close names


# The paper's five navigation tasks (spec §6.1) and their Safety-Gymnasium-protocol counterparts
# are listed by `algd envs`; every other id is built on demand by `resolve`.
PAPER_TASKS = ("PointButton1", "PointButton2", "CarButton1", "CarButton2", "PointPush1")
for _name in PAPER_TASKS:
    register_task(paper_task(_name))
    register_task(standard_task(f"Safety{_name}-v0", episode_steps=1000))


def resolvable_names() -> list[str]:
    """Every navigation id ``resolve`` knows (robot × task × level, in both namings)."""
    levels = {"Run": (0,), "Race": ()}  # Safety-Gymnasium 1.0 has Run0 only; Race cannot run here
    names = [f"{r}{t}{lvl}" for r in ROBOTS for t in NAV_TASKS
             for lvl in levels.get(t, (0, 1, 2))]
    return names + [f"Safety{n}-v0" for n in names]


register_resolver(resolve, resolvable_names)
