"""ALGD's update: each step touches only what it should; state round-trips exactly."""

import numpy as np
import pytest
import torch

from algd.algos import ALGD, ALGDConfig, EnvInfo
from algd.buffers import Batch

INFO = EnvInfo(obs_dim=5, act_dim=2, action_low=-np.ones(2, np.float32),
               action_high=np.ones(2, np.float32), cost_threshold=1.0)


def make_agent(variant="vesde", **kw):
    cfg = ALGDConfig(variant=variant, policy_hidden=16, critic_hidden=(16, 16), **kw)
    return ALGD(INFO, cfg, torch.device("cpu"))


def make_batch(n=32, cost=0.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Batch(torch.randn(n, 5, generator=g), torch.rand(n, 2, generator=g) * 2 - 1,
                 torch.randn(n, generator=g), torch.full((n,), cost),
                 torch.randn(n, 5, generator=g), torch.zeros(n))


def snapshot(module):
    return [p.detach().clone() for p in module.parameters()]


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("variant", ["vesde", "ddpm"])
def test_policy_step_leaves_critics_untouched(variant):
    agent = make_agent(variant)
    batch = make_batch()
    agent.update_critics(batch)  # give the critics some Adam state and gradients
    critic, target = snapshot(agent.critic), snapshot(agent.critic_target)
    grads = [p.grad.clone() for p in agent.critic.parameters()]
    policy = snapshot(agent.policy)
    agent.update_policy(batch)
    assert same(critic, snapshot(agent.critic)) and same(target, snapshot(agent.critic_target))
    assert all(torch.equal(g, p.grad) for g, p in zip(grads, agent.critic.parameters()))
    assert not same(policy, snapshot(agent.policy))  # the policy did move


@pytest.mark.parametrize("variant", ["vesde", "ddpm"])
def test_critic_step_leaves_policy_untouched(variant):
    agent = make_agent(variant)
    batch = make_batch()
    policy, critic = snapshot(agent.policy), snapshot(agent.critic)
    agent.update_critics(batch)
    assert same(policy, snapshot(agent.policy))
    assert all(p.grad is None for p in agent.policy.parameters())
    assert not same(critic, snapshot(agent.critic))


def test_vesde_never_trains_the_unused_noise_head():
    agent = make_agent("vesde")
    eps_w = agent.policy.net.eps_head.weight.detach().clone()
    agent.update(make_batch())
    assert torch.equal(eps_w, agent.policy.net.eps_head.weight)


def test_multiplier_rises_when_cost_estimate_exceeds_threshold_and_falls_otherwise():
    up = make_agent(ucb_k=0.0)
    with torch.no_grad():  # make every cost critic output exactly 3 > h = 1
        last = up.critic.net.blocks[1][-1]  # the cost group's output layer
        last.weight.zero_()
        last.bias.fill_(3.0)
    lam0 = up.lagrange_multiplier.item()
    up.update_multiplier(make_batch())
    assert up.lagrange_multiplier.item() > lam0
    down = make_agent(ucb_k=0.0)
    with torch.no_grad():
        last = down.critic.net.blocks[1][-1]
        last.weight.zero_()
        last.bias.fill_(-1.0)
    down.update_multiplier(make_batch())
    assert down.lagrange_multiplier.item() < lam0


def test_targets_follow_polyak_on_even_updates():
    agent = make_agent(tau=0.5, target_update_every=2)
    batch = make_batch()
    agent.update(batch)  # update 0: soft update happens
    online = snapshot(agent.critic)
    target1 = snapshot(agent.critic_target)
    agent.update(batch)  # update 1: no soft update
    assert same(target1, snapshot(agent.critic_target))
    assert not same(online, snapshot(agent.critic))
    agent.update(batch)  # update 2: θ' ← 0.5 θ' + 0.5 θ
    for t_old, o, t_new in zip(target1, snapshot(agent.critic), snapshot(agent.critic_target)):
        torch.testing.assert_close(t_new, 0.5 * t_old + 0.5 * o)


def test_cost_target_ignores_terminal_when_configured():
    """Safety-Gym convention: the cost critic bootstraps through terminals (spec §1.5)."""
    info = EnvInfo(5, 2, INFO.action_low, INFO.action_high, 1.0, cost_mask_terminal=False)
    cfg = ALGDConfig(policy_hidden=16, critic_hidden=(16, 16), critic_lr=1e-9)
    a, b = ALGD(info, cfg, torch.device("cpu")), ALGD(INFO, cfg, torch.device("cpu"))
    b.load_state_dict(a.state_dict())
    batch = make_batch()._replace(terminated=torch.ones(32))
    torch.manual_seed(0)
    la = a.update_critics(batch)["cost_critic_loss"]
    torch.manual_seed(0)
    lb = b.update_critics(batch)["cost_critic_loss"]
    assert not torch.isclose(la, lb)  # only the cost mask differs


@pytest.mark.parametrize("variant", ["vesde", "ddpm"])
def test_state_dict_round_trip_continues_identically(variant):
    a = make_agent(variant)
    for i in range(3):
        a.update(make_batch(seed=i))
    b = make_agent(variant)
    b.load_state_dict(a.state_dict())
    assert b.num_updates == 3
    obs = torch.randn(4, 5)
    torch.testing.assert_close(a.act(obs, deterministic=True), b.act(obs, deterministic=True))
    torch.manual_seed(5)
    da = a.update(make_batch(seed=9))
    torch.manual_seed(5)
    db = b.update(make_batch(seed=9))
    for k in da:
        torch.testing.assert_close(da[k], db[k])
    assert same(snapshot(a), snapshot(b))


def test_lagrangian_energy_variant_is_the_plain_lagrangian():
    agent = make_agent(energy="lagrangian", ucb_k=0.0)
    obs, act = torch.randn(8, 5), torch.rand(8, 2)
    lam = torch.tensor(0.4)
    q, qc = agent.critic(obs, act)
    expected = -q.min(0).values + lam * (qc.mean(0) - 1.0)
    torch.testing.assert_close(agent.energy(obs, act, lam), expected)
