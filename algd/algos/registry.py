"""The algorithm registry: name → agent class, config class and the defaults that define it.

Adding an algorithm = one module with a config dataclass and an :class:`~algd.algos.base.Agent`
subclass, plus one :func:`register_algo` call here.
"""

from __future__ import annotations

import difflib
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from algd.algos.algd import ALGD, ALGDConfig
from algd.algos.base import Agent, EnvInfo
from algd.algos.sac_lag import SACLag, SACLagConfig
from algd.config import UnknownNameError

#: an Agent subclass: its constructor takes (env info, the algorithm's config, device)
AgentFactory = Callable[[EnvInfo, Any, torch.device], Agent]


@dataclass(frozen=True)
class AlgoSpec:
    """A registered algorithm: its name, agent class, config dataclass and the config values that
    define it (``algd-vesde`` and ``lgd-vesde`` share ALGD's agent and config and differ in
    ``energy``). :func:`register_algo` adds one; ``algd algos`` lists them."""

    name: str
    agent_cls: AgentFactory
    config_cls: type[Any]  #: a dataclass
    defaults: dict[str, Any] = field(default_factory=dict)  #: config values that define it
    description: str = ""

    def make_config(self, overrides: dict[str, Any] | None = None) -> Any:
        """The algorithm's config: its defining values, then ``overrides``.

        Numeric defining values may be overridden (CAL with E = 8, c = 100 is still CAL); a
        categorical one (``energy``, ``variant``) names another algorithm, which is refused.
        """
        from algd.config import ConfigError, config_from_dict

        overrides = overrides or {}
        cfg = config_from_dict(self.config_cls, {**self.defaults, **overrides})  # types first
        for key, value in self.defaults.items():
            if isinstance(value, str) and key in overrides and overrides[key] != value:
                other = self.siblings(key).get(overrides[key])
                hint = f"; use --algo {other}" if other else ""
                raise ConfigError(f"{self.name} is defined by {key}={value}, so it cannot run with "
                                  f"{key}={overrides[key]}{hint}")
        return cfg

    def siblings(self, key: str) -> dict[Any, str]:
        """The registered algorithms that differ from this one in its defining value ``key``
        alone (``energy``: algd-vesde ↔ lgd-vesde), by their value of ``key``."""
        found: dict[Any, str] = {}
        for s in _ALGOS.values():
            if (s.config_cls is self.config_cls and s.defaults.get(key) is not None
                    and s.defaults.get(key) != self.defaults.get(key)
                    and all(s.defaults.get(k) == v for k, v in self.defaults.items()
                            if k != key)):
                found.setdefault(s.defaults[key], s.name)
        return found


_ALGOS: dict[str, AlgoSpec] = {}
#: the module that registered each algorithm (a sweep checks its workers can import it)
_ORIGIN: dict[str, str] = {}


#: config fields every algorithm must have: the training loop reads its discounts from them
#: (the critics' cost threshold, the environments' discounted-cost bookkeeping)
REQUIRED_FIELDS = ("gamma", "cost_gamma")


def register_algo(spec: AlgoSpec) -> AlgoSpec:
    """Add ``spec`` to the registry (under ``spec.name``, replacing any entry of that name;
    with a warning where another module registered it).

    Raises:
        TypeError: the config class is not a dataclass or lacks one of :data:`REQUIRED_FIELDS`.
    """
    import dataclasses

    if not dataclasses.is_dataclass(spec.config_cls):
        raise TypeError(f"algorithm {spec.name!r}: config_cls must be a dataclass "
                        f"(its fields become the `algd train` flags)")
    names = {f.name for f in dataclasses.fields(spec.config_cls)}
    missing = [f for f in REQUIRED_FIELDS if f not in names]
    if missing:
        raise TypeError(
            f"algorithm {spec.name!r}: {spec.config_cls.__name__} lacks {', '.join(missing)}; "
            f"the training loop reads the reward and cost discounts from these fields "
            f"(add e.g. `gamma: float = 0.99` and `cost_gamma: float = 0.99`)"
        )
    origin = str(sys._getframe(1).f_globals.get("__name__", "?"))
    if spec.name in _ALGOS and _ORIGIN.get(spec.name) != origin:
        warnings.warn(f"algorithm {spec.name!r} of {_ORIGIN.get(spec.name)} is replaced by "
                      f"{origin}'s", stacklevel=2)
    _ALGOS[spec.name] = spec
    _ORIGIN[spec.name] = origin
    return spec


def algo_origin(name: str) -> str:
    """The module that registered algorithm ``name``."""
    get_algo(name)
    return _ORIGIN.get(name, "?")


def get_algo(name: str) -> AlgoSpec:
    """The registered algorithm ``name``; an unknown name raises
    :class:`~algd.config.UnknownNameError` (a ``KeyError``) that suggests close matches."""
    try:
        return _ALGOS[name]
    except KeyError:
        close = ([k for k in _ALGOS if k.lower() == name.lower()]
                 or difflib.get_close_matches(name.lower(), list(_ALGOS), n=3))
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownNameError(
            f"unknown algorithm {name!r}.{hint} Known: {', '.join(sorted(_ALGOS))} (`algd algos`)."
        ) from None


def list_algos() -> list[AlgoSpec]:
    """Every registered algorithm, by name."""
    return [_ALGOS[k] for k in sorted(_ALGOS)]


def algo_field_names() -> set[str]:
    """Every config field of every registered algorithm (what a preset may name)."""
    import dataclasses

    return {f.name for spec in _ALGOS.values() for f in dataclasses.fields(spec.config_cls)}


register_algo(AlgoSpec(
    "algd-vesde", ALGD, ALGDConfig, {"variant": "vesde", "energy": "augmented"},
    "ALGD, VE-SDE diffusion policy guided by the augmented Lagrangian (the paper's method)",
))
register_algo(AlgoSpec(
    "algd-ddpm", ALGD, ALGDConfig, {"variant": "ddpm", "energy": "augmented"},
    "ALGD, DDPM diffusion policy with augmented-Lagrangian score guidance",
))
register_algo(AlgoSpec(
    "lgd-vesde", ALGD, ALGDConfig, {"variant": "vesde", "energy": "lagrangian"},
    "ablation: ALGD (VE-SDE) guided by the plain Lagrangian −Q + λ(Q̄c − h) instead of L_A",
))
register_algo(AlgoSpec(
    "lgd-ddpm", ALGD, ALGDConfig, {"variant": "ddpm", "energy": "lagrangian"},
    "ablation: ALGD (DDPM) guided by the plain Lagrangian (the paper's 'direct usage')",
))
# The SAC primal-dual family (spec §7.1): one update, three settings of (E, k, c).
register_algo(AlgoSpec(
    "sac-lag", SACLag, SACLagConfig,
    {"cost_ensemble_size": 1, "ucb_k": 0.0, "convexity": 0.0},
    "baseline: SAC + cost critic + Lagrange multiplier (dual ascent on log λ)",
))
register_algo(AlgoSpec(
    "sac-auglag", SACLag, SACLagConfig,
    {"cost_ensemble_size": 1, "ucb_k": 0.0, "convexity": 10.0},
    "baseline: SAC-Lag with CAL's augmented-Lagrangian rectification of the cost weight (c = 10)",
))
register_algo(AlgoSpec(
    "cal", SACLag, SACLagConfig,
    {"cost_ensemble_size": 4, "ucb_k": 1.0, "convexity": 10.0},
    "baseline: CAL (Wu et al. 2024), SAC + UCB cost ensemble (E = 4, k = 1) + AL rectification",
))
