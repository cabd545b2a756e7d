"""Noise schedules against the tables of spec §2.2 and §2.3 (K = 5)."""

import pytest
import torch

from algd.diffusion.schedules import ddpm_schedule, ve_schedule


def test_ve_schedule_table():
    s = ve_schedule(5)
    assert s.sigma.tolist() == pytest.approx([0.01, 0.031623, 0.1, 0.316228, 1.0], abs=1e-6)
    assert s.delta.tolist() == pytest.approx([0.0001, 0.0009, 0.009, 0.09, 0.9], abs=1e-6)
    assert s.sqrt_delta_f == pytest.approx([0.01, 0.03, 0.094868, 0.3, 0.948683], abs=1e-6)
    torch.testing.assert_close(s.mc_sigma, s.sigma)


def test_ddpm_schedule_table():
    s = ddpm_schedule(5)
    assert s.beta.tolist() == pytest.approx([0.0001, 0.005075, 0.01005, 0.015025, 0.02], abs=1e-7)
    assert s.alpha_bar.tolist() == pytest.approx(
        [0.9999, 0.994826, 0.984828, 0.970030, 0.950630], abs=1e-6)
    assert s.mc_sigma.tolist() == pytest.approx(
        [0.01, 0.071934, 0.123177, 0.173117, 0.222194], abs=1e-6)
    assert s.posterior_std_f[1:] == pytest.approx([0.009904, 0.058545, 0.087216, 0.110185],
                                                  abs=1e-6)
    assert s.c1_f == pytest.approx([0.9999, 0.9807, 0.6607, 0.4975, 0.3990], abs=1e-4)
    assert s.c2_f == pytest.approx([0.0, 0.0193, 0.3393, 0.5024, 0.6009], abs=1e-4)


@pytest.mark.parametrize("make", [ve_schedule, ddpm_schedule])
def test_schedules_reject_bad_step_counts(make):
    with pytest.raises(ValueError, match="K must be >= 1"):
        make(0)


def test_single_step_schedules_are_defined():
    assert ve_schedule(1).sigma.tolist() == pytest.approx([0.01])
    assert ddpm_schedule(1).c1_f[0] == pytest.approx(0.9999, abs=1e-4)


@pytest.mark.parametrize("steps", [1, 5, 20])
def test_folded_ddpm_mean_is_the_posterior_mean(steps):
    """The sampler's μ = mean_x x − mean_eps ε is c1 x̂0 + c2 x with x̂0 = (x − sqrt(1−ᾱ) ε)/sqrt(ᾱ)
    (spec §2.2), at every step."""
    s = ddpm_schedule(steps)
    g = torch.Generator().manual_seed(0)
    x, eps = torch.randn(64, 3, generator=g), torch.randn(64, 3, generator=g)
    for k in range(steps):
        x0 = (x - s.sqrt_one_minus_alpha_bar_f[k] * eps) / s.sqrt_alpha_bar_f[k]
        expected = s.c1_f[k] * x0 + s.c2_f[k] * x
        folded = s.mean_x_f[k] * x - s.mean_eps_f[k] * eps
        torch.testing.assert_close(folded, expected, rtol=1e-5, atol=1e-6)
