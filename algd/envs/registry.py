"""Named constrained tasks: how to build them and how their safety budget is measured.

A :class:`TaskSpec` is data: the factory of a vectorised environment plus the protocol facts the
rest of the library needs (the cost limit, whether it bounds the plain or the discounted episode
cost, the episode length used to convert it into a critic threshold, and the cost-critic masking
convention). ``algd envs`` lists what is registered.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Callable, Literal

import numpy as np

from algd.envs.core import ConstrainedVecEnv
from algd.envs.point_detour import PointDetourParams, PointDetourVec, draw_point_detour

Budget = Literal["episode", "discounted"]


@dataclass(frozen=True)
class TaskSpec:
    """Everything algd needs to know about a constrained task."""

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

    def eval_cost_discount(self, gamma: float) -> float | None:
        """Discount applied to the reported episode cost (None = plain sum)."""
        return gamma if self.budget == "discounted" else None

    def make(self, num_envs: int = 1, gamma: float = 0.99) -> ConstrainedVecEnv:
        return self.make_vec(num_envs, self.eval_cost_discount(gamma))


_TASKS: dict[str, TaskSpec] = {}


def register_task(spec: TaskSpec) -> TaskSpec:
    """Add a task to the registry (re-registering a name replaces it)."""
    _TASKS[spec.name] = spec
    return spec


def get_task(name: str) -> TaskSpec:
    """Look a task up by name; unknown names raise a ``KeyError`` that suggests close matches."""
    try:
        return _TASKS[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_TASKS), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise KeyError(
            f"unknown task {name!r}.{hint} Run `algd envs` to list the tasks."
        ) from None


def list_tasks() -> list[TaskSpec]:
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
