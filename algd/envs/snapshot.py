"""Exact snapshots of Gymnasium MuJoCo environments, so that a resumed run continues mid-episode.

A checkpoint must let training continue exactly where it stopped (README, "Stop and resume"). For
the built-in task the vectorised environment saves its own arrays; for simulator-backed tasks this
module captures one Gymnasium environment's state as plain numbers (numpy arrays, ints, floats),
which a checkpoint stores without pickling code:

* the MuJoCo ``MjData``: every array whose size is fixed by the model — the integration state
  (``qpos``, ``qvel``, ``act``, ``ctrl``, ``qacc_warmstart``, applied forces, mocap)
  *and* the derived quantities (``xpos``, ``cfrc_ext``, sensors, ...). The derived ones matter: an
  environment reads e.g. the torso position before a step from the previous step's forward pass,
  so recomputing them with ``mj_forward`` would change the next reward in the last bits. Arrays
  sized by the current contacts (``efc_*``, ``contact``) are rebuilt inside every ``mj_step``
  before they are read, and are not saved;
* ``data.time`` and the environment's ``np_random`` (the noise of the next ``reset``);
* the counters of the wrappers around it (``TimeLimit``'s elapsed steps, the order and checker
  flags);
* the MuJoCo version: a snapshot loads only into the same version and model, else
  :class:`EnvStateError` (and the caller starts fresh episodes).

Only classes whose Python-level state is known are snapshotted: Gymnasium's own MuJoCo
environments (without MuJoCo plugins, whose state sits behind C pointers), Gymnasium's standard
wrappers, algd's wrappers and whatever is registered with :func:`register_snapshot_type`. For
anything else :func:`env_snapshot` returns ``None`` and the caller falls back to replaying the
episode from its seed (:class:`algd.envs.core.GymVecEnv`; Safety-Gymnasium, whose layout and
task objects are rebuilt per episode, is such a case).
"""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import OrderEnforcing, PassiveEnvChecker, TimeLimit


class EnvStateError(RuntimeError):
    """A saved environment state cannot be put back into this environment (another simulator
    version or model, a differently built environment, or a replay that diverged)."""


#: ``MjData`` arrays never saved: raw C pointers of plugin instances
_UNSAFE_FIELDS = frozenset({"plugin_data"})

#: class → names of the Python attributes that hold its state between steps
_STATE_ATTRS: dict[type, tuple[str, ...]] = {
    TimeLimit: ("_elapsed_steps",),
    OrderEnforcing: ("_has_reset",),
    PassiveEnvChecker: ("checked_reset", "checked_step", "checked_render"),
}


def register_snapshot_type(cls: type, state_attrs: tuple[str, ...] = ()) -> type:
    """Declare that instances of ``cls`` (a wrapper, or a MuJoCo environment class) keep no state
    between steps other than ``state_attrs`` (and, for an environment, its ``MjData`` and
    ``np_random``), so that :func:`env_snapshot` may save them. Returns ``cls``."""
    _STATE_ATTRS[cls] = tuple(state_attrs)
    return cls


def _is_known_mujoco_env(env: gym.Env) -> bool:
    try:
        from gymnasium.envs.mujoco.mujoco_env import MujocoEnv
    except ImportError:  # mujoco not installed: no MuJoCo environment can exist
        return False
    if not isinstance(env, MujocoEnv):
        return False
    cls = type(env)
    known = cls in _STATE_ATTRS or cls.__module__.startswith("gymnasium.envs.mujoco.")
    return known and env.model.nplugin == 0  # plugin state lives behind C pointers


def can_snapshot(env: gym.Env) -> bool:
    """Whether :func:`env_snapshot` can capture ``env`` (every layer of a known type)."""
    wrappers, base = _layers(env)
    return all(type(w) in _STATE_ATTRS for w in wrappers) and _is_known_mujoco_env(base)


def _layers(env: gym.Env) -> tuple[list[gym.Wrapper], gym.Env]:
    wrappers = []
    while isinstance(env, gym.Wrapper):
        wrappers.append(env)
        env = env.env
    return wrappers, env


def _fixed_size_fields(model: Any) -> list[str]:
    """Names of the ``MjData`` arrays whose size the model alone fixes: those already allocated
    in a fresh ``MjData`` (no contacts, no constraints: the arrays sized by them are empty)."""
    import mujoco

    empty = mujoco.MjData(model)
    return [name for name in dir(empty)
            if not name.startswith("_") and name not in _UNSAFE_FIELDS
            and isinstance(value := getattr(empty, name), np.ndarray) and value.size]


def env_snapshot(env: gym.Env) -> dict[str, Any] | None:
    """The state of ``env`` (a possibly wrapped MuJoCo environment) as plain data, or ``None``
    when some layer of it is of a type whose state this module does not know."""
    if not can_snapshot(env):
        return None
    import mujoco

    wrappers, base = _layers(env)
    # a MujocoEnv (can_snapshot), but gym.Env, the type _layers returns, declares neither attribute
    data, model = base.data, base.model  # type: ignore[attr-defined]
    return {
        "mujoco": mujoco.__version__,
        "wrappers": [{k: getattr(w, k) for k in _STATE_ATTRS[type(w)]} for w in wrappers],
        "env": {k: getattr(base, k) for k in _STATE_ATTRS.get(type(base), ())},
        "np_random": copy.deepcopy(base.np_random.bit_generator.state),
        "time": float(data.time),
        "data": {name: getattr(data, name).copy() for name in _fixed_size_fields(model)},
    }


def load_env_snapshot(env: gym.Env, state: dict[str, Any]) -> None:
    """Put ``env`` (built by the same factory as the snapshotted one) into the saved state.

    Raises :class:`EnvStateError`, before changing anything, when the snapshot does not fit:
    another MuJoCo version, another model, a differently wrapped environment.
    """
    import mujoco

    wrappers, base = _layers(env)
    if len(wrappers) != len(state["wrappers"]) or not can_snapshot(env):
        raise EnvStateError("the snapshot was taken of a differently built environment")
    if state.get("mujoco") != mujoco.__version__:
        raise EnvStateError(f"the snapshot was taken with MuJoCo {state.get('mujoco')}, this is "
                            f"{mujoco.__version__}")
    # a MujocoEnv (can_snapshot), but gym.Env, the type _layers returns, declares neither attribute
    data, model = base.data, base.model  # type: ignore[attr-defined]
    fields = _fixed_size_fields(model)
    if sorted(fields) != sorted(state["data"]):
        raise EnvStateError("the snapshot holds other simulator fields: it was taken of a "
                            "different model")
    for name in fields:
        if getattr(data, name).shape != np.shape(state["data"][name]):
            raise EnvStateError(f"snapshot field {name} has shape {np.shape(state['data'][name])}"
                                f", the environment {getattr(data, name).shape}: it was taken "
                                "of a different model")
    for wrapper, attrs in zip(wrappers, state["wrappers"]):
        for key, value in attrs.items():
            setattr(wrapper, key, value)
    for key, value in state["env"].items():
        setattr(base, key, value)
    base.np_random.bit_generator.state = state["np_random"]
    for name in fields:
        getattr(data, name)[...] = state["data"][name]
    data.time = state["time"]
