"""Algorithms: one readable module each, built from the shared parts, plus a registry."""

from algd.algos.algd import ALGD, ALGDConfig
from algd.algos.base import Agent, EnvInfo
from algd.algos.registry import AlgoSpec, get_algo, list_algos, register_algo

__all__ = ["ALGD", "ALGDConfig", "Agent", "AlgoSpec", "EnvInfo", "get_algo", "list_algos",
           "register_algo"]
