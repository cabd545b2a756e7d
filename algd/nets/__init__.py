"""Neural-network building blocks: MLPs, batched ensembles, the critic bank, the diffusion net."""

from algd.nets.critics import CriticBank, CriticValues
from algd.nets.diffusion_net import DiffusionPolicyNet
from algd.nets.ensemble import MLP, EnsembleLinear, EnsembleMLP, MemberGroup

__all__ = [
    "MLP",
    "CriticBank",
    "CriticValues",
    "DiffusionPolicyNet",
    "EnsembleLinear",
    "EnsembleMLP",
    "MemberGroup",
]
