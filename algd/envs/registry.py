"""Named constrained tasks: how to build them and how their safety budget is measured.

A :class:`TaskSpec` is data: the factory of a vectorised environment plus the protocol facts the
rest of the library needs (the cost limit, whether it bounds the plain or the discounted episode
cost, the episode length used to convert it into a critic threshold, and the cost-critic masking
convention). ``algd envs`` lists what is registered.

Tasks of the optional simulator families (MuJoCo velocity, Safety-Gymnasium) register themselves
when ``algd.envs`` is imported but import their simulator only when an environment is built, so
the registry lists them even where their extra is not installed. Names that are not registered
(every ``Safety*`` id of Safety-Gymnasium) are resolved on demand by the *resolvers* added with
:func:`register_resolver`.
"""

from __future__ import annotations

import difflib
import sys
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Literal

import gymnasium as gym
import numpy as np

from algd.config import UnknownNameError
from algd.envs.core import ConstrainedVecEnv, GymVecEnv
from algd.envs.point_detour import PointDetourParams, PointDetourVec, draw_point_detour

Budget = Literal["episode", "discounted"]


@dataclass(frozen=True)
class TaskSpec:
    """Everything algd needs to know about a constrained task.

    Required: ``name``; ``make_vec(num_envs, cost_discount)``, which builds the vectorised
    environment (``TaskSpec.from_gym(name, make_env, ...)`` makes it from a Gymnasium env that
    reports ``info["cost"]``); ``cost_limit``, the budget d; ``budget``, ``"episode"`` (d bounds
    the episode's cost sum) or ``"discounted"`` (d bounds Σ γ^t c_t); ``max_episode_steps``,
    the episode length T the critic threshold is derived from. The optional fields (terminal
    handling, drawing, protocol, extra) are documented next to each below.
    """

    name: str
    #: builds the vectorised environment: ``make_vec(num_envs, cost_discount)``
    make_vec: Callable[[int, float | None], ConstrainedVecEnv]
    #: the safety budget d: a per-episode cost sum ("episode") or a threshold on Σ γ^t c_t
    cost_limit: float
    #: "episode": d bounds the undiscounted episode cost (Safety-Gym protocol, spec §1.4);
    #: "discounted": d bounds the discounted episode cost (ALGD/CAL MuJoCo protocol, spec §1.3)
    budget: Budget
    #: episode length T used by the budget → critic-threshold conversion (spec §1.4)
    max_episode_steps: int
    #: False: the cost critic ignores terminal flags (mask = 1, Safety-Gym convention, spec §1.5)
    cost_mask_terminal: bool = True
    description: str = ""
    #: optional, for 2-D tasks: draw the layout on a matplotlib Axes / map observations to (x, y)
    draw_arena: Callable[[Any], None] | None = None
    position: Callable[[np.ndarray], np.ndarray] | None = None
    #: True: a time-limit truncation is stored as terminal for both critics (no bootstrapping
    #: past the limit). The reference does this on MuJoCo, where gym v3's TimeLimit reported
    #: ``done`` (spec §1.5); the default bootstraps through truncations, which is correct
    truncation_terminal: bool = False
    #: steps whose ``info[key]`` is true are stored as terminal although the episode goes on,
    #: e.g. ``"goal_met"`` (reference Safety-Gym convention, spec §1.5); needs ``GymVecEnv``
    terminal_info_key: str | None = None
    #: which benchmark protocol the task follows (shown by ``algd envs``)
    protocol: str = "built-in"
    #: the pip extra its simulator needs (``pip install 'algd[EXTRA]'``), None: none
    extra: str | None = None
    #: builds one Gymnasium environment of the task, ``make_env(render_mode=None)`` (videos)
    make_env: Callable[..., gym.Env] | None = None

    @classmethod
    def from_gym(cls, name: str, make_env: Callable[..., gym.Env], **fields: Any) -> "TaskSpec":
        """A task whose environments are single Gymnasium envs reporting ``info["cost"]``,
        built by ``make_env()`` and stepped together by :class:`GymVecEnv`.

        As ``gym.register(..., max_episode_steps=T)`` would, an environment without a time limit
        of its own (no ``TimeLimit`` wrapper) is truncated after ``max_episode_steps`` steps."""
        key = fields.get("terminal_info_key")
        make_env = _time_limited(make_env, fields.get("max_episode_steps"))
        return cls(
            name=name,
            make_vec=lambda n, disc: GymVecEnv([make_env] * n, disc, terminal_info_key=key),
            make_env=make_env,
            **fields,
        )

    def eval_cost_discount(self, gamma: float) -> float | None:
        """Discount applied to the reported episode cost (None = plain sum)."""
        return gamma if self.budget == "discounted" else None

    def make(self, num_envs: int = 1, gamma: float = 0.99) -> ConstrainedVecEnv:
        """``num_envs`` environments of the task stepped together; episode costs are discounted by
        ``gamma`` where the budget is on the discounted cost."""
        return self.make_vec(num_envs, self.eval_cost_discount(gamma))


def has_time_limit(env: gym.Env) -> bool:
    """Whether a wrapper of ``env`` ends its episodes after a number of steps (Gymnasium's
    ``TimeLimit``, Safety-Gymnasium's ``SafeTimeLimit``, ...)."""
    while isinstance(env, gym.Wrapper):
        if isinstance(env, gym.wrappers.TimeLimit) or type(env).__name__.endswith("TimeLimit"):
            return True
        env = env.env
    return False


def _time_limited(make_env: Callable[..., gym.Env],
                  steps: int | None) -> Callable[..., gym.Env]:
    """``make_env`` whose environments end after ``steps`` steps unless they have a limit."""
    if steps is None:
        return make_env

    def make(*args: Any, **kwargs: Any) -> gym.Env:
        env = make_env(*args, **kwargs)
        return env if has_time_limit(env) else gym.wrappers.TimeLimit(env, int(steps))

    return make


_TASKS: dict[str, TaskSpec] = {}
_RESOLVERS: list[Callable[[str], TaskSpec | None]] = []
_RESOLVABLE: list[Callable[[], Iterable[str]]] = []  #: names resolvers know (for suggestions)


#: the module that registered each task (a sweep checks its workers can import it)
_ORIGIN: dict[str, str] = {}


def register_task(spec: TaskSpec) -> TaskSpec:
    """Add a task to the registry (re-registering a name replaces it, with a warning where
    another module registered it)."""
    origin = str(sys._getframe(1).f_globals.get("__name__", "?"))  # the caller's
    if spec.name in _TASKS and _ORIGIN.get(spec.name) != origin:
        warnings.warn(f"task {spec.name!r} of {_ORIGIN.get(spec.name)} is replaced by "
                      f"{origin}'s", stacklevel=2)
    _TASKS[spec.name] = spec
    _ORIGIN[spec.name] = origin
    return spec


def task_origin(name: str) -> str:
    """The module that registered task ``name`` (a resolver's module for resolved names)."""
    get_task(name)
    return _ORIGIN.get(name, "?")


def register_resolver(resolver: Callable[[str], TaskSpec | None],
                      names: Callable[[], Iterable[str]] | None = None) -> None:
    """Add a function that builds (and registers) tasks for names not in the registry, or
    returns None for names it does not know; it may raise a ConfigError to explain.

    ``names`` lists the names it resolves, so a misspelt one gets them as suggestions."""
    _RESOLVERS.append(resolver)
    if names is not None:
        _RESOLVABLE.append(names)


def get_task(name: str) -> TaskSpec:
    """Look a task up by name; unknown names raise :class:`~algd.config.UnknownNameError` (a
    ``KeyError``) that suggests close matches."""
    try:
        return _TASKS[name]
    except KeyError:
        for resolve in _RESOLVERS:
            spec = resolve(name)
            if spec is not None:
                return register_task(spec)
        known = set(_TASKS).union(*(names() for names in _RESOLVABLE))
        # registered tasks first (then the Safety-Gymnasium ids), alphabetically
        ordered = sorted(known, key=lambda k: (k not in _TASKS, k))
        low = name.lower()
        close = ([k for k in ordered if k.lower() == low]
                 or [k for k in ordered if k.lower().startswith(low)][:3]  # "Ant": AntVelocity
                 or difflib.get_close_matches(name, sorted(known), n=3))
        if not close:  # a misspelt start of a longer name ("Hoper" for HopperVelocity)
            heads = {k[: len(name) + 1].lower(): k for k in reversed(ordered)}
            close = [heads[h] for h in difflib.get_close_matches(low, heads, n=3, cutoff=0.75)]
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownNameError(
            f"unknown task {name!r}.{hint} Run `algd envs` to list the tasks."
        ) from None


def list_tasks() -> list[TaskSpec]:
    """Every registered task, by name (resolvable Safety-Gymnasium ids are not listed)."""
    return [_TASKS[k] for k in sorted(_TASKS)]


register_task(
    TaskSpec(
        name="PointDetour",
        make_vec=lambda n, disc: PointDetourVec(n, cost_discount=disc),
        cost_limit=2.0,
        budget="episode",
        max_episode_steps=50,
        cost_mask_terminal=True,
        description="built-in: reach the goal past a hazard on the straight path; "
        "two symmetric safe detours (bimodal optimum). 50 steps, budget 2.",
        draw_arena=lambda ax: draw_point_detour(ax, PointDetourParams()),
        position=lambda obs: obs[..., :2],
    )
)
