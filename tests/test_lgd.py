"""LGD, the plain-Lagrangian ablation (spec §2.4, §7.4-1): ALGD with one field changed."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from algd.algos import ALGD, EnvInfo, get_algo
from algd.buffers import Batch

INFO = EnvInfo(obs_dim=5, act_dim=2, action_low=-np.ones(2, np.float32),
               action_high=np.ones(2, np.float32), cost_threshold=1.0)
QC_BAR = 3.0 + math.sqrt(14.0 / 3.0)  # members 1, 2, 3, 6: mean + 1·unbiased std
LAM0 = 0.6931


@pytest.mark.parametrize("variant", ["vesde", "ddpm"])
def test_lgd_is_algd_with_the_lagrangian_energy(variant):
    lgd = dataclasses.asdict(get_algo(f"lgd-{variant}").make_config())
    algd = dataclasses.asdict(get_algo(f"algd-{variant}").make_config())
    assert lgd.pop("energy") == "lagrangian" and algd.pop("energy") == "augmented"
    assert lgd == algd  # everything else (ρ, E, k, N, K, β, λ rule, sizes) is shared
    assert get_algo(f"lgd-{variant}").agent_cls is ALGD


def make(name):
    spec = get_algo(name)
    agent = spec.agent_cls(INFO, spec.make_config({"policy_hidden": 16,
                                                   "critic_hidden": (16, 16)}),
                           torch.device("cpu"))
    values = torch.tensor([2.0, 3.0, 1.0, 2.0, 3.0, 6.0])
    with torch.no_grad():  # Q1 = 2, Q2 = 3, cost members 1, 2, 3, 6 everywhere
        start = 0
        for block in agent.critic.net.blocks:  # reward twin, then the cost ensemble
            last = block[-1]
            last.weight.zero_()
            last.bias.copy_(values[start : start + last.members].view(-1, 1, 1))
            start += last.members
    return agent


@pytest.mark.parametrize("variant", ["vesde", "ddpm"])
def test_energy_by_hand(variant):
    """g = Q̄c − h = QC_BAR − 1: L = −2 + λ g (LGD); L_A = −2 + ((λ + ρg)² − λ²)/(2ρ) (ALGD)."""
    obs, act = torch.randn(8, 5), torch.rand(8, 2) * 2 - 1
    lam = torch.tensor(LAM0)
    g = QC_BAR - 1.0
    lgd, algd = make(f"lgd-{variant}"), make(f"algd-{variant}")
    torch.testing.assert_close(lgd.energy(obs, act, lam), torch.full((8,), -2.0 + LAM0 * g))
    rho = algd.cfg.rho
    torch.testing.assert_close(algd.energy(obs, act, lam),
                               torch.full((8,), -2.0 + ((LAM0 + rho * g) ** 2 - LAM0**2) / (2 * rho)))
    # the policy is trained on that energy (the actor loss J is its batch mean)
    batch = Batch(obs, act, torch.zeros(8), torch.zeros(8), obs, torch.zeros(8))
    j = lgd.update_policy(batch)["actor_loss"]
    assert j.item() == pytest.approx(-2.0 + LAM0 * g, rel=1e-6)
