"""From a task's safety budget to the threshold h that the cost critic is held to (spec §1.4)."""

from __future__ import annotations


def episode_budget_to_threshold(budget: float, horizon: int, gamma: float) -> float:
    """Convert a per-episode cost budget d over T steps into a discounted-critic threshold.

    h is the value a discounted cost critic would have if the budget were spread evenly over the
    episode (constant per-step cost d/T):

        h = (d / T) · Σ_{t<T} γ^t = d (1 − γ^T) / ((1 − γ) T),   and h = d when γ = 1.

    Example (Safety-Gym protocol): d = 10, T = 400, γ = 0.99 → h ≈ 2.4551.
    """
    if budget < 0:
        raise ValueError(f"the cost budget must be >= 0, got {budget}")
    if horizon < 1:
        raise ValueError(f"the episode length must be >= 1, got {horizon}")
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"the cost discount must be in (0, 1], got {gamma}")
    if gamma == 1.0:
        return float(budget)
    return float(budget * (1.0 - gamma**horizon) / ((1.0 - gamma) * horizon))


def critic_threshold(budget: float, kind: str, horizon: int, gamma: float) -> float:
    """h for a task whose budget is per ``"episode"`` (converted) or ``"discounted"`` (as is)."""
    if kind == "episode":
        return episode_budget_to_threshold(budget, horizon, gamma)
    if kind == "discounted":
        if budget < 0:
            raise ValueError(f"the cost budget must be >= 0, got {budget}")
        return float(budget)
    raise ValueError(f"unknown budget kind {kind!r}; use 'episode' or 'discounted'")
