"""The fast update path computes what a naive implementation computes (issue 7).

The agent's update uses the fused critic bank (stacked weights, one batched matmul per member
group), the split first layer of the diffusion network and fused Adam. Here the same update is
recomputed naively — every critic member as its own MLP in a Python loop, the score target by its
textbook formula — from the same random draws, and losses and gradients must agree.
"""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from algd.algos import ALGD, ALGDConfig, EnvInfo
from algd.bench import count_flops
from algd.buffers import Batch
from algd.lagrangian.energy import augmented_lagrangian_energy

INFO = EnvInfo(obs_dim=5, act_dim=2, action_low=-np.ones(2, np.float32),
               action_high=np.ones(2, np.float32), cost_threshold=0.3)
ACTS = {"relu": F.relu, "silu": F.silu}


def naive_critic(bank, obs, act):
    """Every member of the bank as its own MLP: a loop, no batching."""
    x = torch.cat([obs, act], -1)
    outs = []
    for m in range(bank.net.members):
        h = x
        layers = bank.net.member_layers(m)
        for i, (w, b, act_name) in enumerate(layers):
            h = h @ w + b
            if i < len(layers) - 1:
                h = ACTS[act_name](h)
        outs.append(h.squeeze(-1))
    q = torch.stack(outs)
    return q[: bank.reward_members], q[bank.reward_members :]


def naive_energy(agent, obs, act, lam):
    q, qc = naive_critic(agent.critic, obs, act)
    qc_ucb = qc.mean(0) + agent.cfg.ucb_k * qc.std(0)
    return augmented_lagrangian_energy(q.min(0).values, qc_ucb, lam, agent.h, agent.cfg.rho)


@pytest.mark.parametrize("split", [True, False])
@pytest.mark.parametrize("variant", ["vesde", "ddpm"])
def test_policy_update_matches_naive_computation(variant, split):
    """The agent's policy step (fused critic bank, split diffusion-net input, the critics' first
    layer split at the batch states by CriticsAtStates or evaluated on ``[s; a]``) computes the
    naive losses and gradients from the same random draws."""
    from algd.nets.critics import split_first_layer

    torch.manual_seed(0)
    agent = ALGD(INFO, ALGDConfig(variant=variant, policy_hidden=16, critic_hidden=(16, 16)),
                 torch.device("cpu"))
    reference = copy.deepcopy(agent)
    g = torch.Generator().manual_seed(1)
    batch = Batch(torch.randn(32, 5, generator=g), torch.rand(32, 2, generator=g) * 2 - 1,
                  torch.randn(32, generator=g), torch.rand(32, generator=g),
                  torch.randn(32, 5, generator=g), torch.zeros(32))
    torch.manual_seed(7)
    with split_first_layer(split):
        fast = agent.update_policy(batch)
    fast_grads = [p.grad for p in agent.policy.parameters()]

    # the same update, naively, from the same random draws (same order of RNG calls)
    torch.manual_seed(7)
    cfg, obs, pol = reference.cfg, batch.obs, reference.policy
    lam = reference.multiplier.value
    chain = pol.sample(obs, record=True)
    tau = torch.randint(pol.steps, (32,))
    a_tau = chain.inputs[tau, torch.arange(32)]
    actor_loss = naive_energy(reference, obs, chain.action, lam).mean()
    sigma = pol.mc_sigma_table[tau].unsqueeze(-1)
    y = (a_tau.detach() + sigma * torch.randn(cfg.mc_samples, 32, 2)).requires_grad_(True)
    energies = torch.stack([naive_energy(reference, obs, y[i], lam) for i in range(cfg.mc_samples)])
    (grad_e,) = torch.autograd.grad(energies.sum(), y)
    w = torch.exp(-energies.detach() / cfg.temperature)
    w = w / w.sum(0)
    phi_star = -(w.unsqueeze(-1) * grad_e).sum(0) / cfg.temperature
    score_loss = ((pol.score(obs, a_tau, tau) - phi_star) ** 2).mean()
    loss = actor_loss + 0.1 * score_loss
    params = list(pol.parameters())
    naive_grads = torch.autograd.grad(loss, params, allow_unused=True)

    torch.testing.assert_close(fast["actor_loss"], actor_loss.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast["score_loss"], score_loss.detach(), rtol=1e-5, atol=1e-6)
    for gf, gn in zip(fast_grads, naive_grads):
        if gn is None:
            assert gf is None
        else:
            torch.testing.assert_close(gf, gn, rtol=1e-4, atol=1e-6)


def test_critic_update_matches_naive_computation():
    torch.manual_seed(0)
    agent = ALGD(INFO, ALGDConfig(policy_hidden=16, critic_hidden=(16, 16)), torch.device("cpu"))
    ref = copy.deepcopy(agent)
    g = torch.Generator().manual_seed(2)
    batch = Batch(torch.randn(16, 5, generator=g), torch.rand(16, 2, generator=g),
                  torch.randn(16, generator=g), torch.rand(16, generator=g),
                  torch.randn(16, 5, generator=g), (torch.rand(16, generator=g) > 0.7).float())
    torch.manual_seed(3)
    fast = agent.update_critics(batch)
    torch.manual_seed(3)
    with torch.no_grad():
        a_next = ref.policy.sample(batch.next_obs).action
        qn, qcn = naive_critic(ref.critic_target, batch.next_obs, a_next)
        y_r = batch.reward + 0.99 * (1 - batch.terminated) * qn.min(0).values
        y_c = batch.cost + 0.99 * (1 - batch.terminated) * qcn
    q, qc = naive_critic(ref.critic, batch.obs, batch.act)
    reward_loss = sum(((q[i] - y_r) ** 2).mean() for i in range(2))
    cost_loss = ((qc - y_c) ** 2).mean()
    torch.testing.assert_close(fast["critic_loss"], reward_loss.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast["cost_critic_loss"], cost_loss.detach(), rtol=1e-5, atol=1e-6)


def test_flop_counter_counts_matmuls_exactly():
    a, b = torch.randn(8, 16), torch.randn(16, 4)
    assert count_flops(lambda: a @ b) == 2 * 8 * 16 * 4
    x, w = torch.randn(3, 5, 7), torch.randn(3, 7, 2)
    assert count_flops(lambda: torch.bmm(x, w)) == 2 * 3 * 5 * 7 * 2


def replay_batch(obs=None, act=None):
    """A fixed 64-row batch for the tiny agents (``obs``/``act`` given or drawn)."""
    g = torch.Generator().manual_seed(2)
    obs = torch.randn(64, 5, generator=g) if obs is None else obs
    act = torch.rand(64, 2, generator=g) if act is None else act
    return Batch(obs, act, torch.randn(64, generator=g), torch.rand(64, generator=g),
                 torch.randn(64, 5, generator=g), torch.zeros(64))


def assert_updates_agree(agent, compiled, batch, steps=3):
    """``steps`` updates of an eager agent and its compiled copy from the same random draws give
    the same diagnostics within float tolerance (the copy compiles its step after the first)."""
    for step in range(steps):
        torch.manual_seed(4 + step)
        d1 = agent.update(batch)
        torch.manual_seed(4 + step)
        d2 = compiled.update(batch)
        for k in d1:
            torch.testing.assert_close(d1[k], d2[k], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_compiled_critics_match_eager():
    """torch.compile path: the critics, and on a CPU the whole gradient step (critics, policy,
    multiplier and their Adam steps) from the second update on, traced as one graph without a
    break (slow: compilation takes a minute on 2 cores)."""
    from torch._dynamo.utils import counters

    counters.clear()
    torch.manual_seed(0)
    agent = ALGD(INFO, ALGDConfig(policy_hidden=16, critic_hidden=(16, 16)), torch.device("cpu"))
    compiled = copy.deepcopy(agent)
    compiled.compile_modules("default")
    obs, act = torch.randn(64, 5), torch.rand(64, 2)
    for a, b in zip(agent.critic(obs, act), compiled.critic(obs, act)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert_updates_agree(agent, compiled, replay_batch(obs, act))
    assert hasattr(compiled.gradient_step, "_torchdynamo_orig_callable")  # compiled by now
    assert not counters["graph_break"], "\n".join(counters["graph_break"])
    for p, q in zip(agent.policy.parameters(), compiled.policy.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_compiled_step_with_the_critics_first_layer_split_matches_eager():
    """States wider than SPLIT_MIN_OBS: the policy step evaluates the critics with their first
    layer split at the batch states (CriticsAtStates; compiled, the action half is a fused sum),
    still one graph without a break, and its updates agree with eager ones."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    from algd.nets.critics import SPLIT_MIN_OBS

    dim = SPLIT_MIN_OBS + 8
    wide = EnvInfo(obs_dim=dim, act_dim=2, action_low=-np.ones(2, np.float32),
                   action_high=np.ones(2, np.float32), cost_threshold=0.3)
    torch.manual_seed(0)
    agent = ALGD(wide, ALGDConfig(policy_hidden=16, critic_hidden=(16, 16)), torch.device("cpu"))
    compiled = copy.deepcopy(agent)
    torch._dynamo.reset()
    counters.clear()
    compiled.compile_modules("default")
    g = torch.Generator().manual_seed(2)
    batch = Batch(torch.randn(64, dim, generator=g), torch.rand(64, 2, generator=g),
                  torch.randn(64, generator=g), torch.rand(64, generator=g),
                  torch.randn(64, dim, generator=g), torch.zeros(64))
    assert agent.critic.at_states(batch.obs).offsets is not None
    assert_updates_agree(agent, compiled, batch)
    assert hasattr(compiled.gradient_step, "_torchdynamo_orig_callable")
    assert not counters["graph_break"], "\n".join(counters["graph_break"])
    for p, q in zip(agent.parameters(), compiled.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["cal", "sac-auglag", "algd-ddpm", "lgd-vesde", "lgd-ddpm"])
def test_compiled_gradient_step_matches_eager_for_every_algorithm(algo):
    """Every other algorithm `--compile auto` compiles on a long CPU run (ALGD-VESDE: above): its
    gradient step (critics, policy, multipliers with their Adam steps; CAL's and SAC-AugLag's with
    the rectified cost weight) is one graph without a break from the second update on, and its
    updates agree with eager ones within float tolerance."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    from algd.algos import get_algo

    spec = get_algo(algo)
    hidden = ({"actor_hidden": (16, 16)} if hasattr(spec.make_config({}), "actor_hidden")
              else {"policy_hidden": 16})
    cfg = spec.make_config({**hidden, "critic_hidden": (16, 16)})
    torch.manual_seed(0)
    agent = spec.agent_cls(INFO, cfg, torch.device("cpu"))
    compiled = copy.deepcopy(agent)
    torch._dynamo.reset()
    counters.clear()
    compiled.compile_modules("default")
    assert_updates_agree(agent, compiled, replay_batch())
    assert hasattr(compiled.gradient_step, "_torchdynamo_orig_callable")
    assert not counters["graph_break"], "\n".join(counters["graph_break"])
    for p, q in zip(agent.parameters(), compiled.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


def test_bench_reports_consistent_numbers(tmp_path):
    """Smoke test of `algd bench` (no timing is asserted, only that the report is coherent)."""
    import json

    from algd.cli import main

    out = tmp_path / "bench.json"
    assert main(["bench", "--algos", "algd-vesde", "--sizes", "builtin", "--repeats", "1",
                 "--no-end-to-end", "--obs-dim", "40", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["peak_gflops"] > 0
    assert (data["obs_dim"], data["act_dim"]) == (40, 6)
    u = data["updates"]["algd-vesde"]["builtin/none"]
    assert u["gflop_per_update"] > 0 and u["updates_per_s"] > 0
    assert u["efficiency"] == pytest.approx(
        u["gflop_per_update"] * u["updates_per_s"] / data["peak_gflops"], rel=1e-6)
    assert {a["K"] for a in data["act"]} == {1, 5, 10}
    assert data["failures"] == []
    assert u["matmul_ceiling"] > 0


def test_bench_updates_take_the_observation_width():
    """``--obs-dim``: the timed agent and its batches have that width, and the counted FLOPs
    grow with it by exactly the first layers' extra products (SAC-Lag: no split layer)."""
    from algd.bench import prepare_update

    cases = {d: prepare_update("sac-lag", "builtin", torch.device("cpu"), obs_dim=d)
             for d in (17, 27)}
    for d, case in cases.items():
        assert case.agent.critic.obs_dim == d
    cfg = cases[17].agent.cfg
    batch, members, cost = 128, 2 + cfg.cost_ensemble_size, cfg.cost_ensemble_size
    h_critic, h_actor = cfg.critic_hidden[0], cfg.actor_hidden[0]
    # multiply-adds per extra input feature (10 of them) and batch row, in the one counted
    # update: critics: target forward, online forward and weight gradient (TD step), the actor loss's
    # frozen pass forward and input gradient; actor: next action, forward and weight gradient;
    # the multiplier's cost-only pass
    macs = 5 * members * h_critic + 3 * h_actor + cost * h_critic
    assert cases[27].flops - cases[17].flops == 2 * 10 * batch * macs


def test_matmul_replay_runs_exactly_the_updates_products_and_changes_nothing():
    from algd.bench import prepare_update, record_matmuls

    case = prepare_update("algd-vesde", "builtin", torch.device("cpu"))
    recorder = record_matmuls(case.run)
    assert len(recorder.calls) > 50
    assert count_flops(recorder.replay) == case.flops
    operands = [t for _, args, _ in recorder.calls for t in args if isinstance(t, torch.Tensor)]
    before = [t.clone() for t in operands]
    recorder.replay()
    assert all(torch.equal(a, b) for a, b in zip(before, operands))  # pure: no operand written


@pytest.mark.slow
def test_bench_times_the_ratio_baseline_in_every_mode(tmp_path, capsys):
    """Compiled rows get their ÷SAC-Lag ratio from a compiled sac-lag[E=4], not from eager."""
    import json

    from algd.cli import main

    out = tmp_path / "bench.json"
    assert main(["bench", "--algos", "algd-vesde,sac-lag", "--sizes", "builtin", "--repeats", "1",
                 "--compile", "--no-end-to-end", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert set(data["updates"]["sac-lag[E=4]"]) == {"builtin/none", "builtin/default"}
    rows = [line.split() for line in capsys.readouterr().out.splitlines()
            if line.startswith("algd-vesde ")]
    assert [r[2] for r in rows] == ["none", "default"]
    assert all(r[-1].endswith("x") for r in rows)  # both have a ratio


@pytest.mark.parametrize("argv,message", [
    (["--cuda-graph", "--device", "cpu"], "--cuda-graph needs --device cuda"),
    (["--compile", "--compile-mode", "fast"], "unknown --compile-mode"),
    (["--sizes", "huge"], "unknown size preset"),
    (["--algos", "ALGD-VESDE"], "Did you mean algd-vesde?"),
    (["--device", "mps"], "'mps' is not supported"),
    (["--repeats", "0"], "--repeats must be >= 1"),
    (["--threads", "0"], "--threads must be >= 1"),
    (["--json", "/nonexistent/dir/bench.json"], "directory /nonexistent/dir does not exist"),
    (["--obs-dim", "0"], "--obs-dim must be >= 1"),
])
def test_bench_rejects_bad_options_in_one_line(capsys, argv, message):
    """...before building anything (a typo in --algos used to fail after the warm-up)."""
    from algd.cli import main

    assert main(["bench", *argv]) == 2
    out, err = capsys.readouterr()
    assert message in err and "Traceback" not in err
    assert "build and warm up" not in out


def test_interleaved_timing_alternates_the_functions_round_by_round():
    """A slowdown of a shared machine must hit every timed function alike: rounds interleave."""
    from algd.bench import interleaved_median_times

    log = []
    times = interleaved_median_times({"a": lambda: log.append("a"), "b": lambda: log.append("b")},
                                     torch.device("cpu"), warmup=1, repeats=3, min_block_s=0.0)
    assert log == ["a", "a", "b", "b"] + ["a", "b"] * 3  # warm-up + calibration, then rounds
    assert set(times) == {"a", "b"} and all(t > 0 for t in times.values())


def test_cpu_step_options_per_mode():
    """What a CPU gradient step is compiled with: eager-mode random numbers and the C++ wrapper in
    every mode, no CUDA graphs, and max-autotune's GEMM choice kept to ATen's (MKL)."""
    from algd.algos.base import cpp_wrapper, cpu_step_options

    for mode in ("default", "reduce-overhead", "max-autotune"):
        options = cpu_step_options(mode)
        assert options["fallback_random"] and options["cpp_wrapper"]
        assert "triton.cudagraphs" not in options
    assert cpu_step_options("max-autotune")["max_autotune_gemm_backends"] == "ATEN"
    assert "max_autotune" not in cpu_step_options("default")
    with cpp_wrapper(False):
        assert cpu_step_options("default")["cpp_wrapper"] is False


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["reduce-overhead", "max-autotune"])
def test_every_compile_mode_compiles_and_runs_the_gradient_step_on_a_cpu(mode):
    """`--compile-mode reduce-overhead` and `max-autotune` on a CPU: the one-graph step compiles
    and updates (max-autotune's C++ GEMM template failed on it before its GEMMs were kept to
    ATen's)."""
    from algd.algos import get_algo

    spec = get_algo("sac-lag")
    agent = spec.agent_cls(INFO, spec.make_config({"actor_hidden": (16, 16),
                                                   "critic_hidden": (16, 16)}),
                           torch.device("cpu"))
    agent.compile_modules(mode)
    batch = replay_batch()
    for _ in range(3):
        diag = agent.update(batch)
    assert hasattr(agent.gradient_step, "_torchdynamo_orig_callable")
    assert all(torch.isfinite(v).all() for v in diag.values())
