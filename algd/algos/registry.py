"""The algorithm registry: name → agent class, config class and the defaults that define it.

Adding an algorithm = one module with a config dataclass and an :class:`~algd.algos.base.Agent`
subclass, plus one :func:`register_algo` call here.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from algd.algos.algd import ALGD, ALGDConfig
from algd.algos.base import Agent


@dataclass(frozen=True)
class AlgoSpec:
    name: str
    agent_cls: type[Agent]
    config_cls: type
    defaults: dict[str, Any] = field(default_factory=dict)  #: config values that define it
    description: str = ""

    def make_config(self, overrides: dict[str, Any] | None = None) -> Any:
        from algd.config import config_from_dict

        return config_from_dict(self.config_cls, {**self.defaults, **(overrides or {})})


_ALGOS: dict[str, AlgoSpec] = {}


def register_algo(spec: AlgoSpec) -> AlgoSpec:
    _ALGOS[spec.name] = spec
    return spec


def get_algo(name: str) -> AlgoSpec:
    try:
        return _ALGOS[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_ALGOS), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise KeyError(
            f"unknown algorithm {name!r}.{hint} Known: {', '.join(sorted(_ALGOS))} (`algd algos`)."
        ) from None


def list_algos() -> list[AlgoSpec]:
    return [_ALGOS[k] for k in sorted(_ALGOS)]


register_algo(AlgoSpec(
    "algd-vesde", ALGD, ALGDConfig, {"variant": "vesde", "energy": "augmented"},
    "ALGD, VE-SDE diffusion policy guided by the augmented Lagrangian (the paper's method)",
))
register_algo(AlgoSpec(
    "algd-ddpm", ALGD, ALGDConfig, {"variant": "ddpm", "energy": "augmented"},
    "ALGD, DDPM diffusion policy with augmented-Lagrangian score guidance",
))
