"""The tanh-Gaussian actor's log-density against an analytic reference and numerical integration."""

import math

import numpy as np
import pytest
import torch
from torch.distributions import AffineTransform, Normal, TanhTransform, TransformedDistribution

from algd.nets.tanh_gaussian import TanhGaussianActor, tanh_gaussian_log_prob

# a non-symmetric box: scale (2.5, 1) and bias (0.75, 0), so the affine part is exercised too
LOW = torch.tensor([-0.5, -1.0], dtype=torch.float64)
HIGH = torch.tensor([2.0, 1.0], dtype=torch.float64)
SCALE, BIAS = (HIGH - LOW) / 2, (HIGH + LOW) / 2


def test_log_prob_matches_torch_transformed_distribution():
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(64, 2, generator=g, dtype=torch.float64)
    log_std = torch.randn(64, 2, generator=g, dtype=torch.float64) * 0.5
    u = mean + log_std.exp() * torch.randn(64, 2, generator=g, dtype=torch.float64)
    ref = TransformedDistribution(
        Normal(mean, log_std.exp()), [TanhTransform(), AffineTransform(BIAS, SCALE)]
    )
    action = torch.tanh(u) * SCALE + BIAS
    # TransformedDistribution inverts the action (atanh), so compare where that is accurate
    expected = ref.log_prob(action).sum(-1)
    torch.testing.assert_close(tanh_gaussian_log_prob(u, mean, log_std, SCALE), expected)


def test_density_integrates_to_one_over_the_box():
    """∫ π(a) da = 1 on [low, high] for a 1-D action (trapezoid rule in action space)."""
    mean, log_std = torch.tensor([[0.3]], dtype=torch.float64), torch.tensor([[-0.4]],
                                                                             dtype=torch.float64)
    scale = SCALE[:1]
    a = torch.linspace(-1 + 1e-9, 1 - 1e-9, 400_001, dtype=torch.float64)  # tanh(u)
    u = torch.atanh(a).unsqueeze(-1)
    dens = tanh_gaussian_log_prob(u, mean.expand_as(u), log_std.expand_as(u), scale).exp()
    actions = a * scale + BIAS[:1]
    total = torch.trapezoid(dens, actions).item()
    assert total == pytest.approx(1.0, abs=1e-5)


def test_log_prob_is_finite_and_exact_where_tanh_saturates():
    """At |u| = 15, 1 − tanh²(u) underflows in float32; the stable form still gives the exact
    log-Jacobian −2 log cosh(u), while log(1 − tanh² + 1e-6) would clip it at log 1e-6."""
    u = torch.tensor([[15.0, -15.0]])
    lp = tanh_gaussian_log_prob(u, torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(2))
    gaussian = -0.5 * 225.0 * 2 - math.log(2 * math.pi)
    log_cosh = 15.0 - math.log(2.0) + math.log1p(math.exp(-30.0))
    assert torch.isfinite(lp).all()
    assert lp.item() == pytest.approx(gaussian + 2 * 2 * log_cosh, rel=1e-6)


def test_actor_samples_in_the_box_with_reparameterised_gradients():
    torch.manual_seed(0)
    actor = TanhGaussianActor(3, 2, LOW.float(), HIGH.float(), hidden=(16, 16))
    obs = torch.randn(256, 3)
    action, log_prob = actor.sample(obs)
    assert action.shape == (256, 2) and log_prob.shape == (256,)
    assert torch.all(action >= LOW.float()) and torch.all(action <= HIGH.float())
    # the log-density of the sampled action is the one of the pre-squash point that produced it
    mean, log_std = actor(obs)
    u = torch.atanh(((action - BIAS.float()) / SCALE.float()).clamp(-1 + 1e-6, 1 - 1e-6))
    ok = u.abs().max(-1).values < 3  # where atanh is well conditioned in float32
    torch.testing.assert_close(log_prob[ok], tanh_gaussian_log_prob(u, mean, log_std,
                                                                    SCALE.float())[ok],
                               rtol=1e-3, atol=1e-3)
    # reparameterised: gradients reach every parameter through the action and the log-density
    (action.sum() + log_prob.sum()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in actor.parameters())


def test_deterministic_action_is_squashed_mean_and_log_std_is_clamped():
    actor = TanhGaussianActor(3, 2, LOW.float(), HIGH.float(), hidden=(8,))
    with torch.no_grad():  # force huge raw log-σ outputs
        actor.net.linears[-1].bias[2:] = torch.tensor([50.0, -50.0])
    obs = torch.randn(4, 3)
    mean, log_std = actor(obs)
    assert torch.all(log_std[:, 0] == 2.0) and torch.all(log_std[:, 1] == -20.0)
    det = actor.sample(obs, deterministic=True)
    torch.testing.assert_close(det.action, torch.tanh(mean) * SCALE.float() + BIAS.float())
    assert np.all(det.log_prob.numpy() == 0.0)
