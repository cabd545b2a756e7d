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


# ---------------------------------------------------------------------------------------------
# K = 5 (the policy's size): every step of the chain checked against the spec's closed forms.
# The schedules are recomputed here by hand from spec §2.2/§2.3, not read from the sampler's tables.

K = 5
A = 3  # action dims
N_VAR = 20_000  # chains per variance test: N_VAR·A = 60 000 increments per step
# sample variance of n normal draws has relative standard error sqrt(2/(n−1)) ≈ 0.0058 here;
# the tolerances below are 6 standard errors (a false failure has probability ~1e-9)
VAR_RTOL = 6 * (2 / (N_VAR * A - 1)) ** 0.5

# VE (spec §2.3): σ_k = σ_min (σ_max/σ_min)^{k/(K−1)}, Δ_k = σ_k² − σ_{k−1}², σ_{−1} = 0
VE_SIGMA = [0.01 * (1.0 / 0.01) ** (k / (K - 1)) for k in range(K)]
VE_DELTA = [VE_SIGMA[0] ** 2] + [VE_SIGMA[k] ** 2 - VE_SIGMA[k - 1] ** 2 for k in range(1, K)]

# DDPM (spec §2.2): β = linspace(1e-4, 0.02, K), ᾱ_{−1} = 1, 1e-8 in every denominator/sqrt
_EPS = 1e-8
BETA = [1e-4 + (0.02 - 1e-4) * k / (K - 1) for k in range(K)]
ABAR = [1.0 - BETA[0]]
for _b in BETA[1:]:
    ABAR.append(ABAR[-1] * (1.0 - _b))
ABAR_PREV = [1.0] + ABAR[:-1]
C1 = [ABAR_PREV[k] ** 0.5 * BETA[k] / (1 - ABAR[k] + _EPS) for k in range(K)]
C2 = [(1 - BETA[k]) ** 0.5 * (1 - ABAR_PREV[k]) / (1 - ABAR[k] + _EPS) for k in range(K)]
POST_VAR = [BETA[k] * (1 - ABAR_PREV[k]) / (1 - ABAR[k] + _EPS) + _EPS for k in range(K)]
# with ε ≡ 0: x̂0 = x/sqrt(ᾱ_t), μ = (c1_t/sqrt(ᾱ_t) + c2_t) x =: g_t x
GAIN = [C1[k] / (ABAR[k] + _EPS) ** 0.5 + C2[k] for k in range(K)]


class StepScore(torch.nn.Module):
    """φ(a, t) = w_t (the same value in every action dim), a stand-in score network."""

    def __init__(self, weights):
        super().__init__()
        self.register_buffer("w", torch.as_tensor(weights, dtype=torch.float64))

    def forward(self, a, t):
        return self.w[t] * torch.ones_like(a)


class FixedDDPMModel(torch.nn.Module):
    """ε ≡ 0 and φ = a fixed [B, A] tensor (a stand-in for the eps and score heads)."""

    def __init__(self, phi):
        super().__init__()
        self.register_buffer("phi", phi)

    def forward(self, x, a, t):
        return torch.zeros_like(x), self.phi.expand_as(a)


def test_hand_schedules_match_spec_tables():
    """Guard for the hand formulas above: they reproduce the numbers printed in spec §2.2/§2.3."""
    assert VE_DELTA == pytest.approx([0.0001, 0.0009, 0.009, 0.09, 0.9], rel=1e-9)
    assert [v**0.5 for v in POST_VAR[1:]] == pytest.approx([0.009904, 0.058545, 0.087216, 0.110185],
                                                          abs=2e-6)
    assert C1 == pytest.approx([0.9999, 0.9807, 0.6607, 0.4975, 0.3990], abs=1e-4)
    assert C2 == pytest.approx([0.0, 0.0193, 0.3393, 0.5024, 0.6009], abs=1e-4)


def test_ve_k5_noise_free_drift_is_delta_t_times_score_at_every_step():
    sched = ve_schedule(K)
    start = torch.randn(7, A, dtype=torch.float64)
    # φ ≡ 1: the output moves by Σ_t Δ_t (= σ_max², telescoping)
    out = ve_reverse(StepScore([1.0] * K), start, sched, noise=False).action
    torch.testing.assert_close(out - start, torch.full_like(start, sum(VE_DELTA)))
    # per step (a cyclic index shift keeps the sum): step t moves x by exactly Δ_t
    chain = ve_reverse(StepScore([1.0] * K), start, sched, noise=False, record=True)
    entering = chain.inputs  # identity squash: the latent entering step t
    torch.testing.assert_close(entering[K - 1], start)
    torch.testing.assert_close(chain.action - entering[0], torch.full_like(start, VE_DELTA[0]))
    for t in range(1, K):
        torch.testing.assert_close(entering[t - 1] - entering[t],
                                   torch.full_like(start, VE_DELTA[t]), msg=f"step t={t}")
    # a step-dependent score φ_t = t + 1 weights each Δ_t by its own step
    out = ve_reverse(StepScore([t + 1.0 for t in range(K)]), start, sched, noise=False).action
    expected = sum((t + 1.0) * VE_DELTA[t] for t in range(K))
    torch.testing.assert_close(out - start, torch.full_like(start, expected))


def test_ve_k5_injected_noise_variance_is_delta_t_at_every_step():
    """φ ≡ 0: x_{t−1} − x_t = sqrt(Δ_t) z for t ≥ 1 (Var = Δ_t), and step 0 adds nothing."""
    sched = ve_schedule(K)
    start = torch.randn(N_VAR, A, dtype=torch.float64)
    chain = ve_reverse(StepScore([0.0] * K), start, sched, record=True)
    entering = chain.inputs
    torch.testing.assert_close(chain.action, entering[0], rtol=0, atol=0)  # t = 0: no noise
    for t in range(1, K):
        inc = entering[t - 1] - entering[t]
        assert inc.var().item() == pytest.approx(VE_DELTA[t], rel=VAR_RTOL), f"step t={t}"
        assert abs(inc.mean().item()) < 6 * (VE_DELTA[t] / inc.numel()) ** 0.5, f"step t={t}"


@pytest.mark.parametrize("start_std", [0.0, 0.3])
def test_ddpm_k5_variance_follows_the_posterior_recursion(start_std):
    """ε ≡ 0, φ ≡ 0: x_{t−1} = g_t x_t + σ_t z, so v ← g_t² v + σ_t² (t ≥ 1) and v ← g_0² v at
    t = 0, with g_t = c1_t/sqrt(ᾱ_t) + c2_t and c1, c2, σ_t from the spec's posterior formulas."""
    sched = ddpm_schedule(K)
    start = start_std * torch.randn(N_VAR, A, dtype=torch.float64)
    model = FixedDDPMModel(torch.zeros(1, A, dtype=torch.float64))
    chain = ddpm_reverse(model, start, sched, record=True)
    entering = chain.inputs
    # each step's injected noise on its own: residual of the deterministic map has Var σ_t²
    torch.testing.assert_close(chain.action, GAIN[0] * entering[0])  # t = 0: no noise
    for t in range(1, K):
        resid = entering[t - 1] - GAIN[t] * entering[t]
        assert resid.var().item() == pytest.approx(POST_VAR[t], rel=VAR_RTOL), f"step t={t}"
    # the marginal variance entering every step and at the output (all entries are i.i.d.
    # N(0, v), so the sample variance has the same relative error VAR_RTOL/6 per SE)
    v = start_std**2
    for t in reversed(range(K)):
        if t < K - 1:
            assert entering[t].var().item() == pytest.approx(v, rel=VAR_RTOL), f"entering t={t}"
        v = GAIN[t] ** 2 * v + (POST_VAR[t] if t > 0 else 0.0)
    assert chain.action.var().item() == pytest.approx(v, rel=VAR_RTOL)


def test_ddpm_k5_guidance_is_normalised_per_row():
    """Spec §2.2 step 3: μ += w_g φ/(‖φ‖₂ + 1e-8) per sample. With ε ≡ 0 and no noise, the
    guided minus unguided chains differ by d with d ← g_t d + w_g φ̂ (d = 0 at the start), so the
    output shift is w_g φ̂ (1 + g_0 + g_0 g_1 + …) for each row's own φ̂."""
    sched = ddpm_schedule(K)
    phi = torch.tensor([[3.0, 4.0], [0.0, 1.0]], dtype=torch.float64)
    model = FixedDDPMModel(phi)
    x = torch.tensor([[0.2, -0.1], [0.5, 0.3]], dtype=torch.float64)
    plain = ddpm_reverse(model, x, sched, guidance_scale=0.0, noise=False).action
    guided = ddpm_reverse(model, x, sched, guidance_scale=0.05, noise=False).action
    gain_sum, prod = 0.0, 1.0
    for t in range(K):  # 1 + g_0 + g_0 g_1 + g_0 g_1 g_2 + g_0 g_1 g_2 g_3
        gain_sum += prod
        prod *= GAIN[t]
    row_norm = torch.tensor([[5.0], [1.0]], dtype=torch.float64)  # ‖(3, 4)‖, ‖(0, 1)‖
    unit = phi / (row_norm + _EPS)
    torch.testing.assert_close(guided - plain, 0.05 * gain_sum * unit)


@pytest.mark.parametrize(("variant", "max_ops"), [("vesde", 16), ("ddpm", 25)])
def test_one_reverse_step_is_a_few_dispatched_ops(variant, max_ops):
    """Acting at batch 1 costs per-op overhead, not FLOPs: a reverse step of a 3-layer trunk
    stays at its fused op count (VE-SDE: squash 2, first layer 2, trunk and head 8, Euler step
    and noise 3, plus a view; DDPM also runs both heads, the folded mean and the guidance)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Count.n += 1
            return func(*args, **(kwargs or {}))

    def ops(steps):
        policy = DiffusionPolicy(10, 3, -torch.ones(3), torch.ones(3), variant=variant,
                                 steps=steps, hidden=32)
        Count.n = 0
        with torch.no_grad(), Count():
            policy.sample(torch.randn(1, 10))
        return Count.n

    assert (ops(5) - ops(1)) / 4 <= max_ops
