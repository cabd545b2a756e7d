"""The energies of spec §2.4 against their closed forms, values and action-gradients."""

import math

import pytest
import torch

from algd.lagrangian.energy import (
    augmented_lagrangian_energy,
    energy,
    lagrangian_energy,
    ucb_cost,
)

# An analytic "critic" on a 2-D action: Q(a) = −‖a − a_r‖² (reward peak at a_r) and a cost
# Qc(a) = 2 a_0 + 0.5 a_1² (varies along both axes).
A_R = torch.tensor([0.3, -0.2], dtype=torch.float64)


def q_fn(a):
    return -((a - A_R) ** 2).sum(-1)


def qc_fn(a):
    return 2.0 * a[..., 0] + 0.5 * a[..., 1] ** 2


def grad_q(a):
    return -2.0 * (a - A_R)


def grad_qc(a):
    return torch.stack([torch.full_like(a[..., 0], 2.0), a[..., 1]], -1)


def la_and_grad(a, lam, h, rho):
    a = a.clone().requires_grad_(True)
    e = augmented_lagrangian_energy(q_fn(a), qc_fn(a), lam, h, rho)
    (g,) = torch.autograd.grad(e.sum(), a)
    return e.detach(), g


@pytest.mark.parametrize("rho", [0.5, 1.0, 4.0])
def test_active_region_matches_closed_form(rho):
    lam, h = 0.7, 0.1
    a = torch.tensor([[0.4, 0.6], [0.9, -0.3]], dtype=torch.float64)
    g = qc_fn(a) - h
    assert torch.all(lam + rho * g > 0)  # active
    e, grad = la_and_grad(a, lam, h, rho)
    expected = -q_fn(a) + lam * g + 0.5 * rho * g**2
    expected_grad = -grad_q(a) + (lam + rho * g).unsqueeze(-1) * grad_qc(a)
    torch.testing.assert_close(e, expected)
    torch.testing.assert_close(grad, expected_grad)


@pytest.mark.parametrize("rho", [0.5, 1.0, 4.0])
def test_inactive_region_is_reward_minus_constant(rho):
    lam, h = 0.3, 2.0
    a = torch.tensor([[-0.8, 0.1], [-0.5, 0.4]], dtype=torch.float64)
    g = qc_fn(a) - h
    assert torch.all(lam + rho * g <= 0)  # comfortably feasible
    e, grad = la_and_grad(a, lam, h, rho)
    torch.testing.assert_close(e, -q_fn(a) - lam**2 / (2 * rho))
    torch.testing.assert_close(grad, -grad_q(a))  # the cost critic has no influence


def test_lambda_to_zero_is_quadratic_penalty():
    rho, h = 2.0, 0.2
    a = torch.tensor([[0.5, 0.5], [-0.9, 0.0], [0.1, 0.0]], dtype=torch.float64)
    g = qc_fn(a) - h
    e = augmented_lagrangian_energy(q_fn(a), qc_fn(a), 0.0, h, rho)
    torch.testing.assert_close(e, -q_fn(a) + 0.5 * rho * torch.clamp(g, min=0) ** 2)


def test_equal_to_plain_lagrangian_at_kkt_points():
    """Where complementary slackness holds (g ≤ 0, λ ≥ 0, λg = 0; in particular at KKT pairs)
    L_A = L and ∇L_A = ∇L for every ρ (spec §8 T4)."""
    h = 0.7
    # interior optimum of Q (constraint inactive): a = a_r, λ = 0
    a_int = A_R.clone().unsqueeze(0)
    assert qc_fn(a_int) - h < 0
    # boundary point with λ > 0: g = 0 exactly
    a_bnd = torch.tensor([[0.35, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(qc_fn(a_bnd), torch.tensor([h], dtype=torch.float64))
    for a, lam in [(a_int, 0.0), (a_bnd, 0.8)]:
        for rho in [0.1, 1.0, 10.0]:
            x = a.clone().requires_grad_(True)
            la = augmented_lagrangian_energy(q_fn(x), qc_fn(x), lam, h, rho)
            (g_la,) = torch.autograd.grad(la.sum(), x)
            y = a.clone().requires_grad_(True)
            lg = lagrangian_energy(q_fn(y), qc_fn(y), lam, h)
            (g_l,) = torch.autograd.grad(lg.sum(), y)
            torch.testing.assert_close(la, lg)
            torch.testing.assert_close(g_la, g_l)


def test_augmented_hessian_adds_rank_one_term_on_boundary():
    """On the boundary, ∇²L_A = ∇²L + ρ ∇Q̄c ∇Q̄cᵀ (spec §8 T3): curvature grows by ρ‖∇Q̄c‖²."""
    h, lam, rho = 0.5, 0.8, 3.0
    a0 = torch.tensor([0.25, 0.0], dtype=torch.float64)

    def la(a):
        return augmented_lagrangian_energy(q_fn(a), qc_fn(a), lam, h, rho)

    def l(a):
        return lagrangian_energy(q_fn(a), qc_fn(a), lam, h)

    h_la = torch.autograd.functional.hessian(la, a0)
    h_l = torch.autograd.functional.hessian(l, a0)
    gc = grad_qc(a0)
    torch.testing.assert_close(h_la, h_l + rho * torch.outer(gc, gc))
    assert torch.linalg.eigvalsh(h_la).min() >= torch.linalg.eigvalsh(h_l).min()


def test_ucb_cost_mean_plus_k_unbiased_std():
    qc = torch.tensor([[1.0, 2.0], [3.0, 2.0], [2.0, 5.0], [6.0, 3.0]])
    mean = qc.mean(0)
    std = torch.sqrt(((qc - mean) ** 2).sum(0) / 3.0)
    torch.testing.assert_close(ucb_cost(qc, 1.0), mean + std)
    torch.testing.assert_close(ucb_cost(qc, 0.5), mean + 0.5 * std)
    torch.testing.assert_close(ucb_cost(qc[:1], 1.0), qc[0])  # one member: std := 0


def test_energy_dispatch_and_unknown_kind():
    q, qc = torch.tensor([1.0]), torch.tensor([3.0])
    assert energy("lagrangian", q, qc, 0.5, 1.0, 1.0).item() == pytest.approx(-1 + 0.5 * 2)
    expected = -1 + ((0.5 + 2.0) ** 2 - 0.25) / 2
    assert energy("augmented", q, qc, 0.5, 1.0, 1.0).item() == pytest.approx(expected)
    with pytest.raises(ValueError, match="unknown energy"):
        energy("nope", q, qc, 0.5, 1.0, 1.0)  # type: ignore[arg-type]
    assert math.isfinite(energy("augmented", q, qc, torch.tensor(0.0), 1.0, 1.0).item())
