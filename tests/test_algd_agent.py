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


# -- Polyak averaging (spec §3.4): θ' ← (1 − τ) θ' + τ θ ------------------------------------------------
def test_polyak_update_by_hand():
    from algd.algos.base import polyak_update
    from algd.nets.critics import CriticBank

    torch.manual_seed(0)
    online, target = CriticBank(5, 2, (16, 16), 2, 4), CriticBank(5, 2, (16, 16), 2, 4)
    old, new = snapshot(target), snapshot(online)
    assert not same(old, new)
    polyak_update(target, online, 0.1)
    for t_old, o, t_new in zip(old, new, snapshot(target)):
        torch.testing.assert_close(t_new, 0.9 * t_old + 0.1 * o)
    assert same(new, snapshot(online))  # the online network is only read


def test_agent_soft_update_uses_rate_tau():
    agent = make_agent(tau=0.1, target_update_every=1)
    with torch.no_grad():  # move the target away from the online copy it starts as
        for p in agent.critic_target.parameters():
            p.add_(0.1 * torch.randn_like(p))
    old = snapshot(agent.critic_target)
    agent.update(make_batch())
    for t_old, o, t_new in zip(old, snapshot(agent.critic), snapshot(agent.critic_target)):
        torch.testing.assert_close(t_new, 0.9 * t_old + 0.1 * o)  # o: online after its step


# -- critic targets by hand (spec §1.5, §3.1, §3.2): no entropy term, γ and γ_c separate -------------
@pytest.mark.parametrize("cost_mask_terminal", [True, False])
def test_critic_targets_by_hand(cost_mask_terminal):
    from test_sac_lag import set_constant_outputs

    info = EnvInfo(5, 2, INFO.action_low, INFO.action_high, 1.0,
                   cost_mask_terminal=cost_mask_terminal)
    cfg = ALGDConfig(policy_hidden=16, critic_hidden=(16, 16), gamma=0.9, cost_gamma=0.8)
    agent = ALGD(info, cfg, torch.device("cpu"))
    # online: Q1 = 1, Q2 = 2, Qc = 0.1..0.4; target: Q1' = 5, Q2' = 4, Qc' = 1..4
    set_constant_outputs(agent.critic, [1.0, 2.0, 0.1, 0.2, 0.3, 0.4])
    set_constant_outputs(agent.critic_target, [5.0, 4.0, 1.0, 2.0, 3.0, 4.0])
    terminated = torch.tensor([0.0, 0.0, 1.0, 0.0])
    batch = make_batch(n=4)._replace(reward=torch.tensor([1.0, -0.5, 2.0, 0.0]),
                                     cost=torch.tensor([0.0, 1.0, 0.5, 0.25]),
                                     terminated=terminated)
    diag = agent.update_critics(batch)
    # y_r = r + γ (1 − d) min(Q1', Q2') = r + 0.9 (1 − d) · 4
    y_r = torch.tensor([1.0 + 3.6, -0.5 + 3.6, 2.0, 0.0 + 3.6])
    expected_r = ((1.0 - y_r) ** 2).mean() + ((2.0 - y_r) ** 2).mean()
    # y_c,e = c + γ_c m Qc'_e, m = 1 − d (MuJoCo) or 1 (Safety-Gym: cost ignores terminals)
    m = 1.0 - terminated if cost_mask_terminal else torch.ones(4)
    y_c = batch.cost + 0.8 * m * torch.tensor([1.0, 2.0, 3.0, 4.0]).view(4, 1)  # [E, B]
    expected_c = ((torch.tensor([0.1, 0.2, 0.3, 0.4]).view(4, 1) - y_c) ** 2).mean()
    torch.testing.assert_close(diag["critic_loss"], expected_r)
    torch.testing.assert_close(diag["cost_critic_loss"], expected_c)
    assert diag["q"].item() == pytest.approx(1.5)


# -- the multiplier's source (spec §3.3, §4.1, §4.3) ----------------------------------------------------
C_SCALE, C_SHIFT = torch.tensor([1.0, 2.0, 3.0, 6.0]), torch.tensor([0.5, 0.3, 0.7, 0.5])


def cost_members_by_hand(act):
    """Qc_e(s, a) = c_e · silu(silu(a_0)) + d_e, what `action_dependent_cost` wires up. [E, B]"""
    u = torch.nn.functional.silu(torch.nn.functional.silu(act[:, 0]))
    return C_SCALE.view(-1, 1) * u + C_SHIFT.view(-1, 1)


def action_dependent_cost(agent):
    """Set the real cost ensemble's weights so member e computes `cost_members_by_hand`."""
    first, hidden, last = agent.critic.net.blocks[1]
    with torch.no_grad():
        for layer in (first, hidden, last):
            layer.weight.zero_()
            layer.bias.zero_()
        first.weight[:, INFO.obs_dim, 0] = 1.0  # unit 0 reads a_0
        hidden.weight[:, 0, 0] = 1.0
        last.weight[:, 0, 0] = C_SCALE
        last.bias[:, 0, 0] = C_SHIFT


def ucb_by_hand(members, k=1.0):
    e = members.shape[0]
    mean = members.sum(0) / e
    std = ((members - mean).square().sum(0) / (e - 1)).sqrt()  # unbiased (E − 1), spec §3.3
    return mean + k * std


def test_multiplier_follows_the_batch_mean_ucb_of_replay_actions():
    act = torch.tensor([[-1.0, 0.3], [-0.8, -0.2], [-0.5, 0.9], [-0.2, 0.0],
                        [0.0, -1.0], [0.1, 0.5], [0.9, 0.1], [1.0, -0.7]])
    rows = ucb_by_hand(cost_members_by_hand(act))
    h = 1.5
    assert rows.mean() < h < rows.max()  # feasible on average, violated on some rows
    info = EnvInfo(5, 2, INFO.action_low, INFO.action_high, h)
    agent = ALGD(info, ALGDConfig(policy_hidden=16, critic_hidden=(16, 16)), torch.device("cpu"))
    action_dependent_cost(agent)
    g = torch.Generator().manual_seed(3)
    batch = Batch(torch.randn(8, 5, generator=g), act, torch.zeros(8), torch.zeros(8),
                  torch.randn(8, 5, generator=g), torch.zeros(8))
    torch.testing.assert_close(agent.critic.cost(batch.obs, act), cost_members_by_hand(act))
    policy_act = agent.act(batch.obs)
    assert abs(ucb_by_hand(cost_members_by_hand(policy_act)).mean() - rows.mean()) > 0.05

    log_lam0 = agent.multiplier.log_lam.item()
    diag = agent.update_multiplier(batch)
    torch.testing.assert_close(diag["qc_ucb"], rows.mean())
    torch.testing.assert_close(diag["violation"], (rows - h).clamp(min=0.0).mean())
    assert diag["violation"].item() > 0.0  # the mean of clamps, not the clamp of the mean (= 0)
    # mean Q̄c < h: Adam's first step lowers ℓ by lr = 3e-4
    assert agent.multiplier.log_lam.item() == pytest.approx(log_lam0 - 3e-4, abs=1e-6)
