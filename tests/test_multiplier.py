"""The Lagrange-multiplier rules by hand (spec §4.1, §4.4) and how agents build them."""

import math

import numpy as np
import pytest
import torch

from algd.algos import ALGD, ALGDConfig, EnvInfo, get_algo
from algd.config import ConfigError
from algd.lagrangian import LogMultiplier, ProjectedMultiplier, make_multiplier

INFO = EnvInfo(obs_dim=5, act_dim=2, action_low=-np.ones(2, np.float32),
               action_high=np.ones(2, np.float32), cost_threshold=1.0)


# -- projected rule: λ ← [λ + η (Q̄c − h)]₊ ------------------------------------------------------------
def test_projected_rule_ascends_on_violation():
    m = ProjectedMultiplier(init=0.2, lr=0.5)
    m.update(torch.tensor(3.0), threshold=1.0)
    assert m.value.item() == pytest.approx(0.2 + 0.5 * (3.0 - 1.0))  # 1.2
    m.update(torch.tensor(2.0), threshold=1.0)
    assert m.value.item() == pytest.approx(1.2 + 0.5 * 1.0)  # 1.7


def test_projected_rule_descends_and_is_clamped_at_zero():
    m = ProjectedMultiplier(init=1.0, lr=0.5)
    m.update(torch.tensor(0.6), threshold=1.0)  # feasible: 1.0 − 0.5·0.4
    assert m.value.item() == pytest.approx(0.8)
    m = ProjectedMultiplier(init=0.2, lr=0.5)
    m.update(torch.tensor(0.0), threshold=1.0)  # 0.2 − 0.5 = −0.3 → projected to 0
    assert m.value.item() == 0.0
    m.update(torch.tensor(0.0), threshold=1.0)  # stays on the boundary
    assert m.value.item() == 0.0
    m.update(torch.tensor(1.5), threshold=1.0)  # and leaves it from 0, not from −0.3
    assert m.value.item() == pytest.approx(0.25)


def test_projected_rule_state_travels_with_the_state_dict():
    m = ProjectedMultiplier(init=0.2, lr=0.5)
    m.update(torch.tensor(3.0), threshold=1.0)
    again = ProjectedMultiplier(init=0.0, lr=0.5)
    again.load_state_dict(m.state_dict())
    assert again.value.item() == pytest.approx(1.2)


def test_projected_rule_refuses_a_negative_start():
    with pytest.raises(ValueError, match=">= 0"):
        ProjectedMultiplier(init=-0.1)
    ProjectedMultiplier(init=0.0)  # λ₀ = 0 is allowed


# -- log rule (CAL, spec §4.1): λ = exp(ℓ), Adam on ℓ with loss λ (h − Q̄c) --------------------------
@pytest.mark.parametrize("cost,direction", [(3.0, +1), (0.2, -1)])
def test_log_rule_moves_log_lambda_by_adams_first_step(cost, direction):
    """Adam's first step is lr · g / (|g| + eps): ℓ moves by lr, up iff Q̄c > h."""
    m = LogMultiplier(init=0.5, lr=1e-2)
    loss = m.update(torch.tensor(cost), threshold=1.0)
    assert loss.item() == pytest.approx(0.5 * (1.0 - cost))  # evaluated at λ before the step
    # ∂/∂ℓ [exp(ℓ)(h − Q̄c)] = λ (h − Q̄c)
    assert m.log_lam.grad.item() == pytest.approx(0.5 * (1.0 - cost))
    assert m.log_lam.item() == pytest.approx(math.log(0.5) + direction * 1e-2, abs=1e-6)
    assert m.value.item() == pytest.approx(0.5 * math.exp(direction * 1e-2), rel=1e-6)


def test_log_rule_refuses_a_non_positive_start():
    with pytest.raises(ValueError, match="> 0"):
        LogMultiplier(init=0.0)


# -- building the rules -----------------------------------------------------------------------------
def test_make_multiplier_builds_each_rule_and_refuses_an_unknown_one():
    log = make_multiplier("log-adam", 0.7, 1e-3)
    assert isinstance(log, LogMultiplier)
    assert log.value.item() == pytest.approx(0.7)
    assert log.optimizer.param_groups[0]["lr"] == 1e-3
    proj = make_multiplier("projected", 0.2, 0.5)
    assert isinstance(proj, ProjectedMultiplier)
    assert proj.value.item() == pytest.approx(0.2) and proj.lr == 0.5
    with pytest.raises(ValueError, match="unknown multiplier rule 'pid'"):
        make_multiplier("pid", 0.2, 0.5)  # type: ignore[arg-type]


@pytest.mark.parametrize("algo", ["algd-vesde", "sac-lag", "cal"])
def test_agents_build_the_configured_rule(algo):
    spec = get_algo(algo)
    sizes = {"policy_hidden": 16, "critic_hidden": (16, 16), "actor_hidden": (16, 16)}
    sizes = {k: v for k, v in sizes.items() if k in spec.config_cls.__dataclass_fields__}
    cfg = spec.make_config({**sizes, "multiplier": "projected", "lambda_init": 0.2,
                            "lambda_lr": 0.5})
    agent = spec.agent_cls(INFO, cfg, torch.device("cpu"))
    assert isinstance(agent.multiplier, ProjectedMultiplier)
    assert agent.multiplier.lr == 0.5
    assert agent.lagrange_multiplier.item() == pytest.approx(0.2)
    cfg = spec.make_config({**sizes, "lambda_init": 0.3})
    agent = spec.agent_cls(INFO, cfg, torch.device("cpu"))
    assert isinstance(agent.multiplier, LogMultiplier)  # the default: the reference's rule
    assert agent.lagrange_multiplier.item() == pytest.approx(0.3)


def test_config_validation_of_the_multiplier():
    ALGDConfig(multiplier="projected", lambda_init=0.0).validate()  # λ₀ = 0 is fine when projected
    with pytest.raises(ConfigError, match="lambda_init > 0"):
        ALGDConfig(multiplier="log-adam", lambda_init=0.0).validate()
    with pytest.raises(ConfigError):
        ALGDConfig(lambda_lr=0.0).validate()


def test_algd_projected_update_from_the_ucb_of_constant_critics():
    """Cost members output 1, 2, 3, 6 → Q̄c = 3 + sqrt(14/3) (unbiased std, k = 1);
    λ = [0.2 + 0.5 (Q̄c − 1)]₊."""
    from test_sac_lag import set_constant_outputs

    cfg = ALGDConfig(policy_hidden=16, critic_hidden=(16, 16), multiplier="projected",
                     lambda_init=0.2, lambda_lr=0.5)
    agent = ALGD(INFO, cfg, torch.device("cpu"))
    set_constant_outputs(agent.critic, [0.0, 0.0, 1.0, 2.0, 3.0, 6.0])
    g = torch.Generator().manual_seed(0)
    from algd.buffers import Batch

    batch = Batch(torch.randn(8, 5, generator=g), torch.rand(8, 2, generator=g) * 2 - 1,
                  torch.zeros(8), torch.zeros(8), torch.randn(8, 5, generator=g), torch.zeros(8))
    agent.update_multiplier(batch)
    qc_bar = 3.0 + math.sqrt(14.0 / 3.0)
    assert agent.lagrange_multiplier.item() == pytest.approx(0.2 + 0.5 * (qc_bar - 1.0), rel=1e-6)
    set_constant_outputs(agent.critic, [0.0, 0.0, 0.0, 0.0, 0.0, 0.0])  # Q̄c = 0: far below h
    for _ in range(5):
        agent.update_multiplier(batch)
    assert agent.lagrange_multiplier.item() == 0.0
