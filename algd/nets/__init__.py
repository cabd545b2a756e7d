"""Neural-network building blocks: MLPs, batched ensembles, the critic bank, the diffusion net."""

from algd.nets.critics import CriticBank, CriticValues
from algd.nets.diffusion_net import DiffusionPolicyNet
from algd.nets.ensemble import MLP, EnsembleLinear, EnsembleMLP, MemberGroup
from algd.nets.tanh_gaussian import TanhGaussianActor, tanh_gaussian_log_prob

__all__ = [
    "MLP",
    "CriticBank",
    "CriticValues",
    "DiffusionPolicyNet",
    "EnsembleLinear",
    "EnsembleMLP",
    "MemberGroup",
    "TanhGaussianActor",
    "tanh_gaussian_log_prob",
]
