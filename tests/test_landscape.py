"""The landscape's energies, Hessians and multimodality test against closed forms (spec §7.5, §8).
"""

import numpy as np
import pytest
import torch

from algd.algos.algd import ALGD, ALGDConfig
from algd.algos.base import EnvInfo
from algd.analysis.landscape import (
    KINDS,
    DetourCaricature,
    EnergyModel,
    action_hessians,
    agent_critic,
    analyse_state,
    boundary_points,
    energy_guided_samples,
    format_readout,
    landscape_demo,
    min_eigenvalue,
    multimodality,
    point_detour_observations,
)

# Analytic critics on a 2-D action (the state is ignored):
#   Q(a)  = −½ (a − a_r)ᵀ P (a − a_r)           ∇²(−Q) = P
#   Q̄c(a) = ½ aᵀ S a + bᵀ a + d                  ∇Q̄c = S a + b,  ∇²Q̄c = S
P = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
A_R = torch.tensor([0.4, -0.1], dtype=torch.float64)
S = torch.tensor([[-3.0, 0.0], [0.0, 1.0]], dtype=torch.float64)  # indefinite cost curvature
B = torch.tensor([1.0, 0.5], dtype=torch.float64)
D = 0.2


def quad_critic(obs, act):
    p, s, b = P.to(act.dtype), S.to(act.dtype), B.to(act.dtype)
    d = act - A_R.to(act.dtype)
    q = -0.5 * torch.einsum("...i,ij,...j->...", d, p, d)
    qc = 0.5 * torch.einsum("...i,ij,...j->...", act, s, act) + act @ b + D
    return q, qc


def closed_form_hessian(kind, a, lam, h, rho):
    """∇²L = P + λS;  ∇²L_A = P + (λ + ρg) S + ρ ∇Q̄c∇Q̄cᵀ where λ + ρg > 0, else P."""
    qc = 0.5 * a @ S @ a + a @ B + D
    g = qc - h
    if kind == "lagrangian":
        return P + lam * S
    if lam + rho * g <= 0:
        return P.clone()
    grad = S @ a + B
    return P + (lam + rho * g) * S + rho * torch.outer(grad, grad)


@pytest.mark.parametrize("lam,h,rho", [(0.5, 0.0, 1.0), (0.0, 0.3, 4.0), (1.5, 2.0, 0.5)])
def test_energy_hessians_match_closed_forms(lam, h, rho):
    model = EnergyModel(quad_critic, lam, h, rho)
    acts = torch.tensor([[0.3, 0.4], [-0.8, 0.2], [0.9, -0.9], [0.0, 0.0]], dtype=torch.float64)
    obs = torch.zeros(len(acts), 5, dtype=torch.float64)
    for kind in KINDS:
        hess = action_hessians(lambda a, kind=kind: model.energy(kind, obs, a), acts)
        for i, a in enumerate(acts):
            expected = closed_form_hessian(kind, a, lam, h, rho)
            torch.testing.assert_close(hess[i], expected)
        eig = min_eigenvalue(lambda a, kind=kind: model.energy(kind, obs, a), acts)
        expected_eig = [torch.linalg.eigvalsh(closed_form_hessian(kind, a, lam, h, rho))[0]
                        for a in acts]
        torch.testing.assert_close(eig, torch.stack(expected_eig))


def test_on_the_boundary_the_augmented_hessian_adds_rho_grad_grad():
    """At g = 0: ∇²L_A = ∇²L + ρ∇Q̄c∇Q̄cᵀ, so λ_min can only grow (spec §8 T3)."""
    lam, rho = 0.7, 3.0
    a = torch.tensor([[0.5, 0.3]], dtype=torch.float64)
    h = float(quad_critic(None, a)[1])  # put the threshold through a: g(a) = 0
    model = EnergyModel(quad_critic, lam, h, rho)
    obs = torch.zeros(1, 5, dtype=torch.float64)
    h_l = action_hessians(lambda x: model.energy("lagrangian", obs, x), a)[0]
    h_a = action_hessians(lambda x: model.energy("augmented", obs, x), a)[0]
    grad = S @ a[0] + B
    torch.testing.assert_close(h_a - h_l, rho * torch.outer(grad, grad))
    assert torch.linalg.eigvalsh(h_a)[0] >= torch.linalg.eigvalsh(h_l)[0]


def test_batched_hessians_equal_autograd_functional_hessian_on_a_real_critic():
    """Rows of a real agent's energy do not interact, so the double-backward blocks equal
    torch.autograd.functional.hessian taken one action at a time."""
    info = EnvInfo(5, 2, np.array([-1, -1], np.float32), np.array([1, 1], np.float32), 1.5)
    agent = ALGD(info, ALGDConfig(critic_hidden=(16, 16), policy_hidden=16), torch.device("cpu"))
    model = EnergyModel(agent_critic(agent), 0.4, agent.h, agent.cfg.rho)
    torch.manual_seed(0)
    obs = torch.randn(6, 5)
    acts = torch.rand(6, 2) * 2 - 1
    # the landscape's augmented energy is the one the agent trains its policy on
    torch.testing.assert_close(model.energy("augmented", obs, acts),
                               agent.energy(obs, acts, torch.tensor(0.4)))
    for kind in KINDS:
        batched = action_hessians(lambda a, kind=kind: model.energy(kind, obs, a), acts)
        if kind == "lagrangian":  # λ∇²Q̄c: the SiLU cost ensemble has curvature (the ReLU
            assert batched.abs().max() > 0  # reward twin has none; L_A is inactive at init)
        for i in range(len(acts)):
            single = torch.autograd.functional.hessian(
                lambda a, i=i, kind=kind: model.energy(kind, obs[i:i + 1], a[None])[0], acts[i])
            torch.testing.assert_close(batched[i], single, atol=1e-5, rtol=1e-4)


def test_grid_energies_and_boundary_band_match_closed_forms():
    lam, h, rho = 0.5, 0.4, 2.0
    model = EnergyModel(quad_critic, lam, h, rho)
    rng = np.random.default_rng(0)
    samples = rng.uniform(-1, 1, size=(32, 2))
    from algd.analysis.landscape import ActionSamples

    drawn = {k: ActionSamples(samples[None], "uniform") for k in KINDS}
    st = analyse_state(model, "s", np.zeros(5), drawn, low=np.array([-1.0, -1.0]),
                       high=np.array([1.0, 1.0]), grid=11)
    a1, a2 = np.meshgrid(st.a1, st.a2)
    a = torch.tensor(np.stack([a1, a2], -1), dtype=torch.float64)
    q, qc = quad_critic(None, a)
    g = (qc - h).numpy()
    np.testing.assert_allclose(st.constraint, g, rtol=1e-5, atol=1e-5)
    plain = (-q + lam * (qc - h)).numpy()
    active = np.clip(lam + rho * g, 0, None)
    augmented = -q.numpy() + (active**2 - lam**2) / (2 * rho)
    np.testing.assert_allclose(st.energies["lagrangian"], plain, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(st.energies["augmented"], augmented, rtol=1e-5, atol=1e-4)
    # the plain Lagrangian's Hessian is constant: P + λS
    expected = np.linalg.eigvalsh((P + lam * S).numpy())[0]
    np.testing.assert_allclose(st.lam_min["lagrangian"], expected, rtol=1e-5)
    # boundary points found by interpolating sign changes of g lie on g = 0 (g is quadratic, so
    # linear interpolation between grid points 0.2 apart is off by O(0.2²))
    pts = boundary_points(st.a1, st.a2, st.constraint)
    assert len(pts) > 5
    _, qc_b = quad_critic(None, torch.tensor(pts, dtype=torch.float64))
    np.testing.assert_allclose(qc_b.numpy(), h, atol=0.05)
    assert len(boundary_points(st.a1, st.a2, np.ones((11, 11)))) == 0  # no sign change


@pytest.mark.parametrize("split,gap,expected", [
    (0.5, 3.0, True),  # two well-separated equal modes
    (0.5, 0.5, False),  # overlapping modes: distance below 1.75·spread
    (0.92, 3.0, False),  # a minor mode under 15 % of the samples
    (None, 0.0, False),  # one Gaussian
])
def test_multimodality_rule_of_spec_7_5(split, gap, expected):
    rng = np.random.default_rng(1)
    n = 400
    if split is None:
        x = rng.normal(0, 0.3, size=(n, 2))
    else:
        k = int(split * n)
        x = np.concatenate([rng.normal([0, 0], 0.3, (k, 2)), rng.normal([gap, 0], 0.3, (n - k, 2))])
    m = multimodality(x, rng=0)
    assert m.multimodal is expected
    if split == 0.5 and gap == 3.0:
        # centres ≈ gap apart; each cluster's mean squared distance ≈ 2·0.3² → spread ≈ 0.6
        assert m.distance == pytest.approx(3.0, abs=0.1)
        assert m.spread == pytest.approx(0.6, abs=0.05)
        assert m.shares == pytest.approx((0.5, 0.5))


def test_caricature_boundary_sits_at_the_tangent_headings():
    """Heading into the hazard is infeasible, heading past it feasible; at full speed straight at
    the centre Q̄c equals the discounted hazard steps C."""
    car = DetourCaricature()
    obs = torch.tensor(point_detour_observations([(-1.0, 0.0)]), dtype=torch.float64)
    parts = car.parts(obs)
    c = float(parts["height"][0])
    assert c == pytest.approx(0.99**5 * (1 - 0.99**10) / 0.01, rel=1e-6)
    alpha = np.arcsin(0.5)  # angular radius of the hazard from (−1, 0)
    def heading(ang):
        return torch.tensor([[np.cos(ang), np.sin(ang)]], dtype=torch.float64)

    _, at_centre = car(obs, heading(0.0))
    _, inside = car(obs, heading(0.8 * alpha))
    _, outside = car(obs, heading(1.2 * alpha))
    assert float(at_centre) == pytest.approx(c, rel=1e-3)  # ‖a‖ is smoothed: m ≲ m*
    assert float(inside) > car.threshold > float(outside)


def test_demo_runs_and_the_augmented_lagrangian_is_more_convex_on_the_boundary():
    res = landscape_demo(samples=32, grid=41)
    assert [s.name for s in res.states] == ["start", "beside the hazard", "above the hazard"]
    for st in res.states:
        plain = st.readout["lagrangian"]["lam_min_median_on_boundary"]
        aug = st.readout["augmented"]["lam_min_median_on_boundary"]
        assert np.isfinite(plain) and aug >= plain - 1e-6, (st.name, plain, aug)
        for kind in KINDS:
            assert st.samples[kind].paths.shape == (6, 32, 2)  # K = 5 steps + the final action
            assert np.all(np.abs(st.samples[kind].final) <= 1.0)
    # the readout names every state in full (navigation states' long names were cut at 20)
    res.states[1].name = "near boundary (g = -0.12), episode 3 step 141"
    table = format_readout(res).splitlines()
    assert sum(res.states[1].name in line for line in table) == len(KINDS)


def test_energy_guided_chain_matches_the_chain_with_the_exact_smoothed_score():
    """E(a) = ‖a − m‖²/(2 s²), β = 1: the smoothed Boltzmann score at level σ is
    −(a − m)/(s² + σ²). The chain driven by the Monte-Carlo score must sample like the same chain
    driven by that closed form."""
    from algd.diffusion.samplers import ve_reverse
    from algd.diffusion.schedules import ve_schedule

    m, s = torch.tensor([0.3, -0.4]), 0.6  # s² comparable to σ²: non-degenerate weights

    def critic(obs, act):
        return -((act - m) ** 2).sum(-1) / (2 * s**2), torch.zeros(act.shape[:-1])

    torch.manual_seed(0)
    model = EnergyModel(critic, 0.0, 1.0, 1.0)
    mc = energy_guided_samples(model, "lagrangian", torch.zeros(5), 4000, mc_samples=256).final
    sched = ve_schedule(5, 0.01, 1.0)
    exact = ve_reverse(lambda a, t: -(a - m) / (s**2 + sched.sigma_f[t] ** 2),
                       sched.sigma_max * torch.randn(4000, 2), sched, squash=torch.tanh).action
    np.testing.assert_allclose(mc.mean(0), exact.mean(0).numpy(), atol=0.04)
    np.testing.assert_allclose(mc.std(0), exact.std(0).numpy(), rtol=0.1)
    assert float(np.dot(mc.mean(0), m.numpy())) > 0.05  # drawn towards the mode from 0
