"""The Monte-Carlo score target converges to the closed-form smoothed score (spec §8 T5)."""

import numpy as np
import pytest
import torch

from algd.algos import ALGD, ALGDConfig, EnvInfo
from algd.buffers import Batch
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


# ---------------------------------------------------------------------------------------------
# The score target inside the ALGD update (spec §2.5): where it is taken and at which noise level.
K = 5
INFO = EnvInfo(obs_dim=4, act_dim=2, action_low=-np.ones(2, np.float32),
               action_high=np.ones(2, np.float32), cost_threshold=1.0)


def hand_mc_sigma(variant):
    """σ̃_τ of spec §2.5 step 1, by hand: σ_τ (VE, §2.3) or sqrt(1 − ᾱ_τ) (DDPM, §2.2)."""
    if variant == "vesde":
        return [0.01 * 100.0 ** (k / (K - 1)) for k in range(K)]
    abar, out = 1.0, []
    for k in range(K):
        abar *= 1.0 - (1e-4 + (0.02 - 1e-4) * k / (K - 1))
        out.append((1.0 - abar) ** 0.5)
    return out


def run_policy_update(monkeypatch, variant, batch_size=100, **cfg):
    """One ``update_policy`` with a quadratic energy (an input, standing in for the critics),
    recording what the chain queried, the point and τ the score loss used, and every energy call."""
    agent = ALGD(INFO, ALGDConfig(variant=variant, policy_hidden=16, critic_hidden=(8, 8),
                                  diffusion_steps=K, **cfg), torch.device("cpu"))
    rec = {"trunk": [], "energy": []}
    net, policy = agent.policy.net, agent.policy
    trunk, score = net.trunk, policy.score

    def rec_trunk(base, x, w_x_t=None):
        rec["trunk"].append(x.detach().clone())
        return trunk(base, x, w_x_t)

    def rec_score(obs, action, tau):
        rec["a_tau"], rec["tau"] = action.detach().clone(), tau.clone()
        return score(obs, action, tau)

    def quad_energy(obs, act, lam, critics=None):
        rec["energy"].append(act.detach().clone())
        return (act**2).sum(-1)

    monkeypatch.setattr(net, "trunk", rec_trunk)
    monkeypatch.setattr(policy, "score", rec_score)
    monkeypatch.setattr(agent, "energy", quad_energy)
    g = torch.Generator().manual_seed(0)
    obs = torch.randn(batch_size, 4, generator=g)
    batch = Batch(obs, torch.zeros(batch_size, 2), torch.zeros(batch_size),
                  torch.zeros(batch_size), obs, torch.zeros(batch_size))
    agent.update_policy(batch)
    # the K queries of the score head while sampling, in order t = K−1 … 0 (DDPM: the trunk sees
    # [x_t; a_t], 2B rows); then the score-loss query φθ(s, a_τ, τ)
    queries = [x[batch_size:] if variant == "ddpm" else x for x in rec["trunk"][:K]][::-1]
    rec["query"] = torch.stack(queries)  # [K, B, A]: action entering step t
    return rec


@pytest.mark.parametrize("variant", ["vesde", "ddpm"])
@pytest.mark.parametrize("scale", [0.5, 2.0])
def test_update_perturbs_with_score_sigma_scale_times_step_level(monkeypatch, variant, scale):
    """Spec §2.5 step 2: ã_i = a_τ + s·σ̃_τ ε_i, so (ã_i − a_τ)/(s σ̃_τ) is N(0, 1) for every τ."""
    n_mc = 400
    rec = run_policy_update(monkeypatch, variant, mc_samples=n_mc, score_sigma_scale=scale)
    (y,) = [e for e in rec["energy"] if e.dim() == 3]  # the MC call: [N, B, A]
    assert y.shape == (n_mc, 100, 2)
    sigma = torch.tensor(hand_mc_sigma(variant))[rec["tau"]].view(1, -1, 1)
    z = (y - rec["a_tau"]) / (scale * sigma)
    for t in range(K):
        zt = z[:, rec["tau"] == t]
        if zt.numel() == 0:
            continue
        # sample variance of n N(0,1) draws has standard error sqrt(2/n); allow 6 SE. Each τ
        # has ~20 of the 100 rows, n ≈ 400·2·20 = 16 000 → ±7 %; an ignored scale gives 4 or 1/4
        tol = 6 * (2 / zt.numel()) ** 0.5
        assert zt.var().item() == pytest.approx(1.0, abs=tol), f"tau={t}"
        assert abs(zt.mean().item()) < 6 / zt.numel() ** 0.5, f"tau={t}"
    assert len(set(rec["tau"].tolist())) >= 3  # several step levels were exercised


@pytest.mark.parametrize("variant", ["vesde", "ddpm"])
def test_score_points_output_is_the_action_after_step_tau(monkeypatch, variant):
    """Spec §2.5 / §9.4 (the reference): a_τ is the action after reverse step τ, i.e. the
    action the score head is queried at in step τ − 1, and the final action for τ = 0."""
    rec = run_policy_update(monkeypatch, variant, score_points="output", mc_samples=2)
    (final,) = [e for e in rec["energy"] if e.dim() == 2]  # J is taken at the final action
    tau, rows = rec["tau"], torch.arange(100)
    after = torch.cat([final.unsqueeze(0), rec["query"][:-1]])  # after step t, t = 0 … K−1
    torch.testing.assert_close(rec["a_tau"], after[tau, rows], rtol=0, atol=0)
    assert (tau == 0).any() and (tau > 0).any()
    # "input" queries the action entering step τ, where φθ(·, τ) is used while sampling
    rec_in = run_policy_update(monkeypatch, variant, score_points="input", mc_samples=2)
    torch.testing.assert_close(rec_in["a_tau"], rec_in["query"][rec_in["tau"], rows], rtol=0,
                               atol=0)
