"""The SAC primal-dual family (SAC-Lag, SAC-AugLag, CAL): its distinctive maths by hand."""

import copy
import math

import numpy as np
import pytest
import torch

from algd.algos import EnvInfo, SACLag, get_algo
from algd.algos.td import critic_td_step
from algd.buffers import Batch
from algd.lagrangian import al_cost_weight, augmented_lagrangian_energy

H = 1.0
INFO = EnvInfo(obs_dim=5, act_dim=2, action_low=-np.ones(2, np.float32),
               action_high=np.ones(2, np.float32), cost_threshold=H)


def make_agent(name="sac-lag", **kw) -> SACLag:
    spec = get_algo(name)
    cfg = spec.make_config({"actor_hidden": (16, 16), "critic_hidden": (16, 16), **kw})
    return spec.agent_cls(INFO, cfg, torch.device("cpu"))


def make_batch(n=32, cost=0.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Batch(torch.randn(n, 5, generator=g), torch.rand(n, 2, generator=g) * 2 - 1,
                 torch.randn(n, generator=g), torch.full((n,), cost),
                 torch.randn(n, 5, generator=g), torch.zeros(n))


def set_constant_outputs(bank, values):
    """Make critic member m output exactly values[m] for every input."""
    values = torch.tensor(values, dtype=torch.float32)
    with torch.no_grad():
        start = 0
        for block in bank.net.blocks:  # one stacked block per member group
            last = block[-1]
            last.weight.zero_()
            last.bias.copy_(values[start : start + last.members].view(-1, 1, 1))
            start += last.members


def snapshot(module):
    return [p.detach().clone() for p in module.parameters()]


# -- the registry entries are the paper's settings (spec §7.1) -----------------------------------
@pytest.mark.parametrize("name,ens,k,c", [("sac-lag", 1, 0.0, 0.0), ("sac-auglag", 1, 0.0, 10.0),
                                          ("cal", 4, 1.0, 10.0)])
def test_registry_settings(name, ens, k, c):
    cfg = get_algo(name).make_config()
    assert (cfg.cost_ensemble_size, cfg.ucb_k, cfg.convexity) == (ens, k, c)
    agent = make_agent(name)
    assert agent.critic.reward_members == 2 and agent.critic.cost_members == ens
    assert agent.target_entropy == -2.0  # −|A|


# -- CAL's rectified cost weight -------------------------------------------------------------------
@pytest.mark.parametrize("qc_mean,expected", [
    (1.2, 0.5 + 10 * 0.2),  # violated: rect = 10·(1 − 1.2) = −2 → w = 0.5 + 2 = 2.5
    (0.99, 0.5 - 0.1),  # barely feasible: rect = 0.1 < λ → w = 0.4
    (0.5, 0.0),  # comfortably feasible: rect = 5 ≥ λ → cost term off
])
def test_al_cost_weight_hand_values(qc_mean, expected):
    w = al_cost_weight(torch.tensor(0.5), torch.tensor(qc_mean), threshold=1.0, c=10.0)
    assert w.item() == pytest.approx(expected)
    # c = 0 is plain SAC-Lag: the weight is λ
    assert al_cost_weight(torch.tensor(0.5), torch.tensor(qc_mean), 1.0, 0.0).item() == 0.5


@pytest.mark.parametrize("c", [0.5, 10.0])
def test_al_cost_weight_is_the_augmented_lagrangian_slope(c):
    """w = ∂/∂Q̄c of ([λ + c(Q̄c − h)]₊² − λ²)/(2c), i.e. ALGD's L_A with ρ = c (spec §2.4)."""
    lam = torch.tensor(0.7, dtype=torch.float64)
    for qc in [-1.0, 0.8, 0.95, 1.3, 4.0]:
        q = torch.tensor(qc, dtype=torch.float64, requires_grad=True)
        (slope,) = torch.autograd.grad(
            augmented_lagrangian_energy(torch.zeros((), dtype=torch.float64), q, lam, H, c), q)
        assert al_cost_weight(lam, q.detach(), H, c).item() == pytest.approx(slope.item())


# -- the actor loss, term by term -------------------------------------------------------------------
@pytest.mark.parametrize("name", ["sac-lag", "sac-auglag", "cal"])
def test_actor_loss_matches_hand_computation(name):
    agent = make_agent(name)
    batch = make_batch(cost=0.8)
    agent.update_critics(batch)
    ref = copy.deepcopy(agent)
    torch.manual_seed(11)
    diag = agent.update_actor(batch)
    # by hand, on the pre-update copy with the same noise
    cfg = ref.cfg
    with torch.no_grad():
        qc_buf = ref.critic(batch.obs, batch.act).cost  # [E, B] on replay actions
        mean = qc_buf.mean(0)
        std = qc_buf.std(0) if cfg.cost_ensemble_size > 1 else torch.zeros_like(mean)
        qc_bar_buf = (mean + cfg.ucb_k * std).mean()
        lam, alpha = ref.lagrange_multiplier, ref.alpha
        weight = torch.clamp(lam + cfg.convexity * (qc_bar_buf - H), min=0.0)  # = λ when c = 0
        torch.manual_seed(11)
        action, log_prob = ref.actor.sample(batch.obs)
        q, qc = ref.critic(batch.obs, action)
        qc_pi = qc.mean(0) + (cfg.ucb_k * qc.std(0) if cfg.cost_ensemble_size > 1 else 0.0)
        loss = (alpha * log_prob - q.min(0).values + weight * qc_pi).mean()
    torch.testing.assert_close(diag["cost_weight"], weight)
    torch.testing.assert_close(diag["actor_loss"], loss)
    torch.testing.assert_close(diag["qc_ucb"], qc_bar_buf)
    torch.testing.assert_close(diag["entropy"], -log_prob.mean())


def test_cal_ucb_estimate_of_known_members():
    """Cost members outputting 1, 2, 3, 6: Q̄c = 3 + 1·sqrt(14/3) (unbiased std)."""
    agent = make_agent("cal")
    set_constant_outputs(agent.critic, [0.0, 0.0, 1.0, 2.0, 3.0, 6.0])
    diag = agent.update_actor(make_batch())
    assert diag["qc_ucb"].item() == pytest.approx(3.0 + math.sqrt(14.0 / 3.0), rel=1e-6)
    # the rectified weight sees the violation: λ + 10·(Q̄c − h)
    lam0 = 0.6931
    assert diag["cost_weight"].item() == pytest.approx(lam0 + 10 * (5.1602 - H), rel=1e-4)


def test_actor_step_moves_only_the_actor():
    agent = make_agent("cal")
    batch = make_batch()
    agent.update_critics(batch)
    critic, target = snapshot(agent.critic), snapshot(agent.critic_target)
    grads = [p.grad.clone() for p in agent.critic.parameters()]
    actor = snapshot(agent.actor)
    agent.update_actor(batch)
    assert all(torch.equal(a, b) for a, b in zip(critic, snapshot(agent.critic)))
    assert all(torch.equal(a, b) for a, b in zip(target, snapshot(agent.critic_target)))
    assert all(torch.equal(g, p.grad) for g, p in zip(grads, agent.critic.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(actor, snapshot(agent.actor)))


# -- automatic entropy temperature -------------------------------------------------------------------
@pytest.mark.parametrize("target,direction", [(10.0, +1), (-10.0, -1)])
def test_temperature_step_follows_the_entropy_constraint(target, direction):
    """loss α·(H − H̄): Adam's first step moves log α by exactly lr against the gradient's sign,
    up when the entropy is below its target, down when above."""
    agent = make_agent(target_entropy=target, alpha_init=0.5, alpha_lr=1e-2)
    diag = agent.update_actor(make_batch())
    entropy = diag["entropy"].item()
    assert (entropy < target) == (direction > 0)
    log_alpha = agent.temperature.log_lam.item()
    assert log_alpha == pytest.approx(math.log(0.5) + direction * 1e-2, abs=1e-7)
    assert diag["alpha"].item() == pytest.approx(0.5)  # the actor used α before its step


def test_temperature_gradient_is_alpha_times_entropy_gap():
    agent = make_agent(alpha_init=0.3)
    log_prob = torch.tensor([-1.0, 0.5, 2.0])
    agent.temperature.optimizer.zero_grad()
    agent.temperature.update(log_prob.mean(), -agent.target_entropy)
    # d/dlogα [α · mean(−log π − H̄)] = α · (−0.5 − (−2)) = 0.3 · 1.5
    assert agent.temperature.log_lam.grad.item() == pytest.approx(0.3 * 1.5)


# -- the soft TD target (shared step with SAC's bonus) ------------------------------------------------
def test_soft_td_target_by_hand():
    agent = make_agent("cal", gamma=0.9, cost_gamma=0.8)
    # online: Q1 = 1, Q2 = 2, Qc = 0.1..0.4; target: Q1' = 5, Q2' = 4, Qc' = 1..4
    set_constant_outputs(agent.critic, [1.0, 2.0, 0.1, 0.2, 0.3, 0.4])
    set_constant_outputs(agent.critic_target, [5.0, 4.0, 1.0, 2.0, 3.0, 4.0])
    batch = make_batch(n=4, cost=0.5)._replace(terminated=torch.tensor([0.0, 0.0, 1.0, 0.0]))
    bonus = torch.tensor([0.1, -0.2, 0.3, 0.0])
    diag = critic_td_step(agent.critic, agent.critic_target, agent.optimizers["critic"], batch,
                          torch.zeros(4, 2), gamma=0.9, cost_gamma=0.8, cost_mask_terminal=True,
                          next_bonus=bonus)
    not_done = 1 - batch.terminated
    y_r = batch.reward + 0.9 * not_done * (4.0 + bonus)
    expected_r = ((1.0 - y_r) ** 2).mean() + ((2.0 - y_r) ** 2).mean()
    qc_t = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(4, 1)
    y_c = 0.5 + 0.8 * not_done * qc_t
    expected_c = ((torch.tensor([0.1, 0.2, 0.3, 0.4]).view(4, 1) - y_c) ** 2).mean()
    torch.testing.assert_close(diag["critic_loss"], expected_r)
    torch.testing.assert_close(diag["cost_critic_loss"], expected_c)


def test_critic_target_uses_the_entropy_bonus():
    """Same batch and noise; only α differs → only the reward-critic loss differs."""
    a, b = make_agent(alpha_init=1.0), make_agent(alpha_init=1.0)
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        b.temperature.log_lam.fill_(math.log(5.0))
    batch = make_batch()
    torch.manual_seed(0)
    da = a.update_critics(batch)
    torch.manual_seed(0)
    db = b.update_critics(batch)
    assert not torch.isclose(da["critic_loss"], db["critic_loss"])
    torch.testing.assert_close(da["cost_critic_loss"], db["cost_critic_loss"])


# -- the multiplier and the Agent API ---------------------------------------------------------------
def test_multiplier_rises_under_violation():
    agent = make_agent("sac-lag")
    set_constant_outputs(agent.critic, [0.0, 0.0, 3.0])  # Qc = 3 > h = 1
    lam0 = agent.lagrange_multiplier.item()
    agent.update_actor(make_batch())
    assert agent.lagrange_multiplier.item() == pytest.approx(lam0 * math.exp(3e-4), rel=1e-6)


@pytest.mark.parametrize("name", ["sac-lag", "cal"])
def test_state_dict_round_trip_continues_identically(name):
    a = make_agent(name)
    for i in range(3):
        a.update(make_batch(seed=i))
    b = make_agent(name)
    b.load_state_dict(a.state_dict())
    assert b.num_updates == 3
    obs = torch.randn(4, 5)
    torch.testing.assert_close(a.act(obs, deterministic=True), b.act(obs, deterministic=True))
    torch.manual_seed(5)
    da = a.update(make_batch(seed=9))
    torch.manual_seed(5)
    db = b.update(make_batch(seed=9))
    assert set(da) >= {"critic_loss", "actor_loss", "alpha", "entropy", "cost_weight"}
    for k in da:
        assert da[k].device.type == "cpu" and da[k].dim() == 0 and not da[k].requires_grad
        torch.testing.assert_close(da[k], db[k])
    assert all(torch.equal(x, y) for x, y in zip(snapshot(a), snapshot(b)))


def test_a_subclass_plugs_its_own_multiplier_rule_in():
    """`build_multiplier` is the extension point: the new rule is used by the update, its state
    travels with the agent's state_dict, and no unused built-in rule is built."""
    from algd.lagrangian import LogMultiplier, Multiplier

    class Integral(Multiplier):
        def __init__(self, ki):
            super().__init__()
            self.ki = ki
            self.register_buffer("total", torch.zeros(()))

        @property
        def value(self):
            return (self.ki * self.total).clamp(min=0.0)

        @torch.no_grad()
        def update(self, cost_estimate, threshold):
            self.total.add_(cost_estimate.detach() - threshold)
            return self.value

    class SACIntegral(SACLag):
        def build_multiplier(self, cfg):
            return Integral(ki=0.5)

    cfg = get_algo("sac-lag").make_config({"actor_hidden": (16, 16), "critic_hidden": (16, 16)})
    agent = SACIntegral(INFO, cfg, torch.device("cpu"))
    assert isinstance(agent.multiplier, Integral)
    assert not any(isinstance(m, LogMultiplier) and m is not agent.temperature
                   for m in agent.modules())
    set_constant_outputs(agent.critic, [0.0, 0.0, 3.0])  # Q̄c = 3, h = 1: Σ grows by 2 per step
    agent.update_actor(make_batch())
    agent.update_actor(make_batch())
    assert agent.lagrange_multiplier.item() == pytest.approx(0.5 * 4.0)
    again = SACIntegral(INFO, cfg, torch.device("cpu"))
    again.load_state_dict(agent.state_dict())
    assert again.lagrange_multiplier.item() == pytest.approx(2.0)
