"""Batched ensembles compute exactly what separate networks would (spec §3.1–3.2)."""

import math

import pytest
import torch
import torch.nn.functional as F

from algd.nets.critics import CriticBank
from algd.nets.diffusion_net import DiffusionPolicyNet
from algd.nets.ensemble import EnsembleLinear, EnsembleMLP, MemberGroup


def member_forward(net: EnsembleMLP, m: int, x: torch.Tensor, acts) -> torch.Tensor:
    """Evaluate member ``m`` as an ordinary MLP with its own slice of the stacked weights."""
    h = x
    layers = net.member_layers(m)
    for i, (w, b, _) in enumerate(layers):
        h = h @ w + b
        if i < len(layers) - 1:
            h = acts[m](h)
    return h


def test_ensemble_equals_loop_over_members_with_group_activations():
    groups = [MemberGroup(2, "relu"), MemberGroup(3, "silu", "trunc_normal")]
    net = EnsembleMLP(7, 1, (16, 16), groups)
    acts = [F.relu] * 2 + [F.silu] * 3
    x = torch.randn(10, 7)
    out = net(x)
    assert out.shape == (5, 10, 1)
    for m in range(5):
        torch.testing.assert_close(out[m], member_forward(net, m, x, acts))
    # a per-member input [M, B, in] works too
    xm = torch.randn(5, 10, 7)
    out_m = net(xm)
    for m in range(5):
        torch.testing.assert_close(out_m[m], member_forward(net, m, xm[m], acts))


def test_member_initialisation_follows_groups():
    torch.manual_seed(0)
    net = EnsembleMLP(256, 1, (256,), [MemberGroup(1, "relu"), MemberGroup(1, "silu",
                                                                            "trunc_normal")])
    w = torch.stack([net.member_layers(m)[0][0].detach() for m in range(2)])
    bound = math.sqrt(6 / (256 + 256))
    assert w[0].abs().max() <= bound and w[0].std() == pytest.approx(bound / math.sqrt(3), rel=0.05)
    std = 1 / (2 * math.sqrt(256))
    assert w[1].abs().max() <= 2 * std + 1e-7  # truncated at ±2σ (the reference meant to)
    assert w[1].std() == pytest.approx(0.88 * std, rel=0.05)  # std of a ±2σ-truncated normal
    assert all(torch.all(block[0].bias == 0) for block in net.blocks)
    assert not torch.equal(w[0], w[1])  # members differ


def test_critic_bank_splits_reward_and_cost_and_flattens_leading_dims():
    bank = CriticBank(5, 2, (32, 32), reward_members=2, cost_members=4)
    obs, act = torch.randn(3, 8, 5), torch.randn(3, 8, 2)
    q, qc = bank(obs, act)
    assert q.shape == (2, 3, 8) and qc.shape == (4, 3, 8)
    flat_q, flat_qc = bank(obs.reshape(24, 5), act.reshape(24, 2))
    torch.testing.assert_close(q.reshape(2, 24), flat_q)
    torch.testing.assert_close(qc.reshape(4, 24), flat_qc)


def test_diffusion_net_split_first_layer_equals_concatenated_input():
    net = DiffusionPolicyNet(5, 2, steps=4, hidden=32)
    obs, a = torch.randn(6, 5), torch.randn(6, 2)
    t = torch.tensor([0, 1, 2, 3, 3, 0])
    x = torch.cat([obs, a, net.time_emb(t)], -1)
    h = F.relu(net.inp(x))
    for lin in net.hidden:
        h = F.relu(lin(h))
    torch.testing.assert_close(net.score(obs, a, t), net.score_head(h))
    torch.testing.assert_close(net.eps(obs, a, t), net.eps_head(h))


@pytest.mark.parametrize("activation", ["relu", "silu", "tanh", "elu"])
def test_inference_path_and_in_place_activations_match_autograd_path(activation):
    """Without autograd the ensemble adds biases and activates in place; with autograd ReLU and
    tanh still run in place. Values and gradients must equal a member-by-member reference."""
    torch.manual_seed(0)
    net = EnsembleMLP(6, 1, (16, 16), [MemberGroup(3, activation)])
    act = {"relu": F.relu, "silu": F.silu, "tanh": torch.tanh, "elu": F.elu}[activation]
    x = torch.randn(9, 6, requires_grad=True)
    out = net(x)
    ref = torch.stack([member_forward(net, m, x, [act] * 3) for m in range(3)])
    torch.testing.assert_close(out, ref)
    (g,) = torch.autograd.grad(out.square().sum(), x)
    (g_ref,) = torch.autograd.grad(ref.square().sum(), x)
    torch.testing.assert_close(g, g_ref)
    with torch.no_grad():
        torch.testing.assert_close(net(x), ref)
    with torch.inference_mode():
        torch.testing.assert_close(net(x.detach()), ref.detach())


def test_critic_bank_cost_evaluates_the_cost_ensemble_alone():
    bank = CriticBank(5, 2, (32, 32), reward_members=2, cost_members=3)
    obs, act = torch.randn(4, 6, 5), torch.randn(4, 6, 2)
    torch.testing.assert_close(bank.cost(obs, act), bank(obs, act).cost)
    with pytest.raises(ValueError, match="no cost critics"):
        CriticBank(5, 2, (8,), cost_members=0).cost(obs, act)


@pytest.mark.parametrize("in_dim,out_dim", [(23, 16), (40, 16), (16, 1), (1, 1)])
@pytest.mark.parametrize("shared", [True, False])
def test_batched_affine_equals_baddbmm_in_value_and_every_gradient(in_dim, out_dim, shared,
                                                                   backend):
    """The layer lays its products out by shape (1-wide outputs as row-vector products and a
    broadcast multiply, thin inputs transposed) or runs them on oneDNN: same numbers as baddbmm
    and its autograd."""
    torch.manual_seed(0)
    layer = EnsembleLinear(3, in_dim, out_dim)
    torch.nn.init.normal_(layer.weight)
    torch.nn.init.normal_(layer.bias)
    x = torch.randn(*(() if shared else (3,)), 11, in_dim, requires_grad=True)
    out = layer(x)
    xb = x.unsqueeze(0).expand(3, 11, in_dim) if shared else x
    ref = torch.baddbmm(layer.bias, xb, layer.weight)
    torch.testing.assert_close(out, ref)
    grad_out = torch.randn_like(ref)
    got = torch.autograd.grad(out, (x, layer.weight, layer.bias), grad_out)
    want = torch.autograd.grad(ref, (x, layer.weight, layer.bias), grad_out)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        torch.testing.assert_close(g, w)
    with torch.no_grad():  # the autograd-free path
        torch.testing.assert_close(layer(x), ref)


def test_batched_affine_second_derivatives_for_the_energy_hessian(backend):
    """The landscape analysis differentiates the critics twice (action Hessians): the custom
    backward is itself differentiable."""
    torch.manual_seed(0)
    net = EnsembleMLP(4, 1, (8, 8), [MemberGroup(2, "silu")])
    x = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    net.double()
    assert torch.autograd.gradgradcheck(lambda v: net(v).sum(0), (x,))
    acts = [F.silu, F.silu]

    def ref(v):
        return torch.stack([member_forward(net, m, v, acts) for m in range(2)]).sum(0)

    (g,) = torch.autograd.grad(net(x).sum(), x, create_graph=True)
    (g_ref,) = torch.autograd.grad(ref(x).sum(), x, create_graph=True)
    h = torch.autograd.grad(g[:, 0].sum(), x)[0]
    h_ref = torch.autograd.grad(g_ref[:, 0].sum(), x)[0]
    torch.testing.assert_close(h, h_ref)


def test_frozen_critics_differentiate_the_input_only():
    """``frozen=True`` (actor losses, score targets): same values and input gradients, and no
    path to the weights, so no weight gradient is computed."""
    torch.manual_seed(0)
    bank = CriticBank(5, 2, (16, 16), reward_members=2, cost_members=3)
    obs, act = torch.randn(7, 5), torch.randn(7, 2, requires_grad=True)
    q, qc = bank(obs, act)
    fq, fqc = bank(obs, act, frozen=True)
    torch.testing.assert_close(fq, q)
    torch.testing.assert_close(fqc, qc)
    (g,) = torch.autograd.grad((q.sum() + qc.sum()), act)
    (fg,) = torch.autograd.grad((fq.sum() + fqc.sum()), act)
    torch.testing.assert_close(fg, g)
    params = list(bank.parameters())
    assert all(
        gp is None for gp in torch.autograd.grad(fq.sum(), params, allow_unused=True)
    )
    torch.testing.assert_close(bank.cost(obs, act, frozen=True), qc)


@pytest.mark.parametrize("activation", ["relu", "silu", "tanh", "elu"])
@pytest.mark.parametrize("hidden", [(16,), (16, 12), (8, 16, 12)])
@pytest.mark.parametrize("shared", [True, False])
def test_frozen_group_gradient_equals_the_recorded_one(activation, hidden, shared, backend):
    """The frozen path's own input gradient (the Jacobian from the output weights down, scaled
    by the upstream gradient at the end; :class:`algd.nets.ensemble._FrozenMLP`) equals
    autograd's through the recorded layers, for every activation and depth, a shared or
    per-member input, upstream gradients that differ per member and row, and every GEMM
    backend; a second derivative (create_graph) goes through a recorded recomputation."""
    torch.manual_seed(0)
    net = EnsembleMLP(9, 1, hidden, [MemberGroup(3, activation, "trunc_normal")])
    x = torch.randn(*(() if shared else (3,)), 40, 9, requires_grad=True)
    upstream = torch.randn(3, 40, 1)
    out = net(x, frozen=True)
    assert torch.equal(out, net(x))  # the same ops forward: bit for bit (ReLU masks agree)
    (g,) = torch.autograd.grad(out, x, upstream)
    (g_ref,) = torch.autograd.grad(net(x), x, upstream)
    torch.testing.assert_close(g, g_ref, atol=1e-6, rtol=1e-5)
    assert all(p.grad is None for p in net.parameters())
    (g2,) = torch.autograd.grad(net(x, frozen=True), x, upstream, create_graph=True)
    (g2_ref,) = torch.autograd.grad(net(x), x, upstream, create_graph=True)
    weights = torch.randn_like(g2)
    torch.testing.assert_close(torch.autograd.grad((g2 * weights).sum(), x)[0],
                               torch.autograd.grad((g2_ref * weights).sum(), x)[0])


def test_policy_net_scores_a_grid_of_actions_per_state():
    """φθ(s, a, t) takes actions with leading grid dimensions ([G, B, A]), as one call per grid
    row would."""
    net = DiffusionPolicyNet(5, 2, 3, hidden=16)
    obs, grid = torch.randn(4, 5), torch.randn(7, 4, 2)
    rows = torch.stack([net.score(obs, grid[i], 1) for i in range(7)])
    torch.testing.assert_close(net.score(obs, grid, 1), rows)
    torch.testing.assert_close(net.eps(obs, grid, 2),
                               torch.stack([net.eps(obs, grid[i], 2) for i in range(7)]))


@pytest.mark.parametrize("fusion", [True, False])
def test_compiled_frozen_group_matches_eager(fusion):
    """Compiled, a frozen group runs the fusable forms (bias added in the activation's loop,
    1-wide output as a sum, SiLU's value and derivative from one sigmoid; ``compiled_fusion``):
    values and input gradients agree with eager mode's to float rounding, either way."""
    import torch._dynamo

    from algd.nets.ensemble import compiled_fusion

    torch.manual_seed(0)
    net = EnsembleMLP(9, 1, (16, 12), [MemberGroup(2, "relu"), MemberGroup(3, "silu",
                                                                           "trunc_normal")])
    x = torch.randn(40, 9)
    upstream = torch.randn(5, 40, 1)

    def values_and_grad(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.detach().requires_grad_(True)
        out = net(x, frozen=True)
        return out.detach(), torch.autograd.grad(out, x, upstream)[0]

    eager = values_and_grad(x)
    torch._dynamo.reset()
    with compiled_fusion(fusion), torch._dynamo.config.patch(trace_autograd_ops=True):
        compiled = torch.compile(values_and_grad, dynamic=False, fullgraph=True)(x)
    for c, e in zip(compiled, eager):
        torch.testing.assert_close(c, e, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("lead", [(), (4,)])
@pytest.mark.parametrize("fast", [True, False])
def test_critics_at_states_equal_the_frozen_bank(lead, fast):
    """:class:`CriticsAtStates` (the state half of the first layer computed once per state,
    spec §2.5's 1 + N critic evaluations per state) gives the frozen bank's values, action
    gradients, second derivatives and no-grad cost values, for one action per state and for N
    per state, on the frozen fast path and off it; no gradient reaches the weights."""
    from algd.nets.critics import split_first_layer
    from algd.nets.ensemble import frozen_fast_path

    torch.manual_seed(0)
    bank = CriticBank(7, 3, (16, 12), reward_members=2, cost_members=3)
    obs = torch.randn(10, 7)
    act = torch.randn(*lead, 10, 3, requires_grad=True)
    obs_rows = obs.expand(*lead, 10, 7)
    with frozen_fast_path(fast), split_first_layer(True):  # 7-wide states: forced on
        at = bank.at_states(obs)
        assert at.offsets is not None
        for part in range(2):  # reward critics, cost ensemble
            v, ref = at(act)[part], bank(obs_rows, act, frozen=True)[part]
            assert v.shape == ref.shape == (ref.shape[0], *lead, 10)
            torch.testing.assert_close(v, ref)
            upstream = torch.randn_like(ref)
            (g,) = torch.autograd.grad(v, act, upstream, create_graph=True)
            (g_ref,) = torch.autograd.grad(ref, act, upstream, create_graph=True)
            torch.testing.assert_close(g, g_ref, atol=1e-6, rtol=1e-5)
            weights = torch.randn_like(g)
            torch.testing.assert_close(torch.autograd.grad((g * weights).sum(), act)[0],
                                       torch.autograd.grad((g_ref * weights).sum(), act)[0],
                                       atol=1e-6, rtol=1e-5)
        assert all(p is None for p in torch.autograd.grad(at(act).reward.sum(),
                                                          list(bank.parameters()),
                                                          allow_unused=True))
        with torch.no_grad():
            torch.testing.assert_close(at.cost(act), bank.cost(obs_rows, act))
    with split_first_layer(False):  # the A/B baseline: the concatenated input, same numbers
        concat = bank.at_states(obs)
        assert concat.offsets is None
        torch.testing.assert_close(concat(act).cost, bank(obs_rows, act, frozen=True).cost)


def test_critics_at_states_split_wide_states_by_default():
    from algd.nets.critics import SPLIT_MIN_OBS

    for obs_dim, split in ((SPLIT_MIN_OBS, False), (SPLIT_MIN_OBS + 1, True)):
        bank = CriticBank(obs_dim, 3, (16, 12), reward_members=2, cost_members=3)
        assert (bank.at_states(torch.randn(10, obs_dim)).offsets is not None) == split


def test_critics_at_states_refuse_mismatched_shapes_and_hold_the_states_constant():
    """A wrong number of states or a wrong action or state width is an error (the split first
    layer would otherwise multiply the wrong weight rows); states that require grad are taken as
    constants on both paths, as the docstring says."""
    from algd.nets.critics import split_first_layer

    bank = CriticBank(7, 3, (16, 12), reward_members=2, cost_members=3)
    for split in (True, False):
        with split_first_layer(split):
            at = bank.at_states(torch.randn(10, 7))
            for act in (torch.randn(4, 9, 3), torch.randn(10, 2), torch.randn(10, 5)):
                with pytest.raises(ValueError, match=r"do not end in \[10, 3\]"):
                    at(act)
            with pytest.raises(ValueError, match=r"obs must be \[S, 7\]"):
                bank.at_states(torch.randn(2, 10, 7))
            with pytest.raises(ValueError, match=r"obs must be \[S, 7\]"):
                bank.at_states(torch.randn(10, 8))
            obs = torch.randn(10, 7, requires_grad=True)
            act = torch.randn(10, 3, requires_grad=True)
            q = bank.at_states(obs)(act).reward
            torch.testing.assert_close(q, bank(obs, act, frozen=True).reward)
            grads = torch.autograd.grad(q.sum(), [obs, act], allow_unused=True)
            assert grads[0] is None and grads[1] is not None
    with pytest.raises(ValueError, match="must not require grad"):
        bank.net.first_layer_offsets(torch.randn(10, 7, requires_grad=True))


@pytest.mark.parametrize("fusion", [True, False])
def test_compiled_critics_at_states_match_eager(fusion):
    """Compiled, the action half of the split first layer is a sum that inductor fuses with the
    state offsets and the activation (``compiled_fusion``): values and action gradients agree
    with eager mode's to float rounding, either way."""
    import torch._dynamo

    from algd.nets.critics import split_first_layer
    from algd.nets.ensemble import compiled_fusion

    torch.manual_seed(0)
    bank = CriticBank(7, 3, (16, 12), reward_members=2, cost_members=3)
    obs, act = torch.randn(10, 7), torch.randn(4, 10, 3)
    upstream = torch.randn(5, 4, 10)

    def values_and_grad(act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        act = act.detach().requires_grad_(True)
        with split_first_layer(True):
            out = torch.cat(bank.at_states(obs)(act))
        return out.detach(), torch.autograd.grad(out, act, upstream)[0]

    eager = values_and_grad(act)
    torch._dynamo.reset()
    with compiled_fusion(fusion), torch._dynamo.config.patch(trace_autograd_ops=True):
        compiled = torch.compile(values_and_grad, dynamic=False, fullgraph=True)(act)
    for c, e in zip(compiled, eager):
        torch.testing.assert_close(c, e, atol=1e-6, rtol=1e-5)
