"""The reverse chains with an exact score reproduce a known Gaussian target (spec §8 T1)."""

import pytest
import torch

from algd.diffusion.policy import DiffusionPolicy
from algd.diffusion.samplers import ddpm_reverse, ve_reverse
from algd.diffusion.schedules import ddpm_schedule, ve_schedule

MEAN = torch.tensor([0.5, -0.3], dtype=torch.float64)
STD = 0.4
N = 20_000


def test_ve_chain_with_exact_score_reproduces_gaussian():
    sched = ve_schedule(1000, sigma_min=0.01, sigma_max=20.0)

    def score(x, t):  # score of N(m, s²) smoothed by N(0, σ_t²)
        return -(x - MEAN) / (STD**2 + sched.sigma_f[t] ** 2)

    x = sched.sigma_max * torch.randn(N, 2, dtype=torch.float64)
    out = ve_reverse(score, x, sched).action
    torch.testing.assert_close(out.mean(0), MEAN, atol=0.03, rtol=0)
    torch.testing.assert_close(out.std(0), torch.full((2,), STD, dtype=torch.float64),
                               atol=0.02, rtol=0)


def test_ddpm_chain_with_exact_noise_prediction_reproduces_gaussian():
    sched = ddpm_schedule(1000, 1e-4, 0.02)
    abar = sched.alpha_bar.double()

    def model(x, a, t):  # exact ε for x_t ~ N(sqrt(ᾱ) m, ᾱ s² + 1 − ᾱ)
        var = abar[t] * STD**2 + 1 - abar[t]
        eps = (1 - abar[t]).sqrt() * (x - abar[t].sqrt() * MEAN) / var
        return eps, torch.zeros_like(x)

    x = torch.randn(N, 2, dtype=torch.float64)
    out = ddpm_reverse(model, x, sched, guidance_scale=0.0).action
    torch.testing.assert_close(out.mean(0), MEAN, atol=0.03, rtol=0)
    torch.testing.assert_close(out.std(0), torch.full((2,), STD, dtype=torch.float64),
                               atol=0.02, rtol=0)


def test_ve_chain_wrong_sign_fails_to_reproduce():
    """The test above can fail: the pre-correction sign (x − Δφ) misses the target badly."""
    sched = ve_schedule(200, sigma_min=0.01, sigma_max=5.0)

    def anti_score(x, t):
        return (x - MEAN) / (STD**2 + sched.sigma_f[t] ** 2)

    x = sched.sigma_max * torch.randn(2000, 2, dtype=torch.float64)
    out = ve_reverse(anti_score, x, sched).action
    assert (out.std(0) - STD).abs().max() > 0.5


def test_ddpm_guidance_adds_normalised_score():
    sched = ddpm_schedule(1)
    phi = torch.tensor([[3.0, 4.0]])

    def model(x, a, t):
        return torch.zeros_like(x), phi

    x = torch.tensor([[0.2, -0.1]])
    plain = ddpm_reverse(model, x, sched, guidance_scale=0.0, noise=False).action
    guided = ddpm_reverse(model, x, sched, guidance_scale=0.05, noise=False).action
    torch.testing.assert_close(guided - plain, 0.05 * phi / 5.0)
    raw = ddpm_reverse(model, x, sched, guidance_scale=0.05, guidance_normalize=False,
                       noise=False).action
    torch.testing.assert_close(raw - plain, 0.05 * phi)


@pytest.mark.parametrize("variant", ["vesde", "ddpm"])
def test_policy_deterministic_sampling_is_noise_free(variant):
    pol = DiffusionPolicy(3, 2, -torch.ones(2), torch.ones(2), variant=variant, hidden=16)
    obs = torch.randn(8, 3)
    a1 = pol.sample(obs, deterministic=True).action
    torch.manual_seed(999)
    a2 = pol.sample(obs, deterministic=True).action
    torch.testing.assert_close(a1, a2, rtol=0, atol=0)
    s1 = pol.sample(obs).action
    s2 = pol.sample(obs).action
    assert not torch.equal(s1, s2)  # the stochastic chain does vary


@pytest.mark.parametrize("variant", ["vesde", "ddpm"])
def test_policy_actions_in_box_and_recorded_points(variant):
    low, high = torch.tensor([-2.0, 0.0]), torch.tensor([2.0, 1.0])
    pol = DiffusionPolicy(3, 2, low, high, variant=variant, steps=4, hidden=16)
    obs = torch.randn(64, 3)
    chain = pol.sample(obs, record=True)
    assert chain.action.shape == (64, 2)
    assert torch.all(chain.action >= low) and torch.all(chain.action <= high)
    assert chain.inputs.shape == (4, 64, 2)
    out = chain.step_points("output")
    torch.testing.assert_close(out[0], chain.action)  # after step 0 = final action
    torch.testing.assert_close(out[1:], chain.inputs[:-1])  # after step t = entering step t−1
    # chains are differentiable end to end
    chain.action.sum().backward()
    assert pol.net.score_head.weight.grad is not None


@pytest.mark.parametrize("steps", [1, 2, 5])
def test_ve_chain_starts_from_the_configured_sigma_max_for_every_k(steps):
    """Spec §2.3: x ~ N(0, σ_max² I) whatever K; with K = 1 the schedule's only level is σ_min,
    which the start once took (a chain starting at N(0, 0.01²))."""
    pol = DiffusionPolicy(3, 2, -torch.ones(2), torch.ones(2), steps=steps, hidden=8,
                          sigma_max=0.7)
    assert pol.start_std == pytest.approx(0.7)
    ddpm = DiffusionPolicy(3, 2, -torch.ones(2), torch.ones(2), variant="ddpm", steps=steps,
                           hidden=8)
    assert ddpm.start_std == 1.0
