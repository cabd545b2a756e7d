"""The Monte-Carlo score target converges to the closed-form smoothed score (spec §8 T5)."""

import pytest
import torch

from algd.diffusion.score_target import mc_score_target

M = torch.tensor([0.3, -0.5], dtype=torch.float64)
S = 0.5  # energy E(a) = ‖a − m‖² / (2 s²)


def energy(y):
    return ((y - M) ** 2).sum(-1) / (2 * S**2)


def exact(x, beta, sigma):
    # p ∝ exp(−E/β) = N(m, β s² I); smoothed by σ: N(m, (β s² + σ²) I)
    return -(x - M) / (beta * S**2 + sigma**2)


@pytest.mark.parametrize("beta,sigma,tol", [(1.0, 0.2, 0.002), (0.5, 0.3, 0.04)])
def test_mc_target_converges_with_samples(beta, sigma, tol):
    """Relative error falls with N; slower when σ² ≫ βs² (degenerate importance weights)."""
    x = torch.randn(4000, 2, dtype=torch.float64)
    target = exact(x, beta, sigma)
    errors = []
    for n in (2, 8, 64, 1024):
        est = mc_score_target(energy, x, sigma, n, beta)
        errors.append(((est - target) ** 2).mean().item())
    assert errors == sorted(errors, reverse=True), errors
    assert errors[-1] < 0.05 * errors[0]
    rel = errors[-1] / (target**2).mean().item()
    assert rel < tol


def test_mc_target_per_sample_sigma_and_single_sample_limit():
    x = torch.randn(500, 2, dtype=torch.float64)
    sigma = torch.rand(500, 1, dtype=torch.float64) * 0.5
    est = mc_score_target(energy, x, sigma, 512, 1.0)
    rel = ((est - exact(x, 1.0, sigma)) ** 2).mean() / (exact(x, 1.0, sigma) ** 2).mean()
    assert rel < 0.02
    # σ = 0: every sample sits on x and the target is exactly −∇E(x)/β
    est0 = mc_score_target(energy, x, 0.0, 3, 2.0)
    torch.testing.assert_close(est0, -(x - M) / S**2 / 2.0)


def test_mc_target_is_detached_and_validates():
    x = torch.randn(4, 2, requires_grad=True)
    out = mc_score_target(lambda y: (y**2).sum(-1), x, 0.1, 4)
    assert not out.requires_grad
    with pytest.raises(ValueError):
        mc_score_target(lambda y: (y**2).sum(-1), x, 0.1, 0)
