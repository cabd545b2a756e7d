"""Algorithms: one readable module each, built from the shared parts, plus a registry."""

from algd.algos.algd import ALGD, ALGDConfig
from algd.algos.base import Agent, EnvInfo
from algd.algos.registry import AlgoSpec, get_algo, list_algos, register_algo
from algd.algos.sac_lag import SACLag, SACLagConfig

__all__ = ["ALGD", "ALGDConfig", "Agent", "AlgoSpec", "EnvInfo", "SACLag", "SACLagConfig",
           "get_algo", "list_algos", "register_algo"]
