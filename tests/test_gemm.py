"""The ensembles' GEMM backends (algd.nets.gemm): oneDNN and torch compute the same products,
values and gradients, and the choice between them is explicit or measured."""

import pytest
import torch
from helpers import BACKENDS

from algd.bench import count_flops, record_matmuls
from algd.nets import gemm
from algd.nets.critics import CriticBank
from algd.nets.ensemble import EnsembleMLP, MemberGroup


@pytest.mark.parametrize("shared", [True, False])
def test_products_equal_torch_ops(backend, shared):
    torch.manual_seed(0)
    a = torch.randn(*(() if shared else (3,)), 17, 9)
    am = a.expand(3, 17, 9) if shared else a
    b, bias = torch.randn(3, 9, 5), torch.randn(3, 1, 5)
    torch.testing.assert_close(gemm.bmm(a, b), torch.bmm(am, b))
    torch.testing.assert_close(gemm.baddbmm(bias, a, b), torch.baddbmm(bias, am, b))
    g = torch.randn(3, 17, 5)
    torch.testing.assert_close(gemm.bmm_nt(g, b), torch.bmm(g, b.transpose(1, 2)))
    torch.testing.assert_close(gemm.bmm_tn(a, g), torch.bmm(am.transpose(1, 2), g))


def test_onednn_matmul_is_a_matmul():
    if not gemm.onednn_available():
        pytest.skip("this torch build has no oneDNN")
    a, b = torch.randn(33, 20), torch.randn(20, 7)
    torch.testing.assert_close(gemm.onednn_matmul(a, b), a @ b)


def test_critic_values_and_all_gradients_agree_across_backends(monkeypatch):
    """A TD-style loss through the whole bank (shared first-layer input, ReLU and SiLU groups,
    1-wide outputs): same values and parameter and input gradients on every backend."""
    monkeypatch.setattr(gemm, "ONEDNN_MIN_MACS", 0)  # every product, however small
    torch.manual_seed(0)
    bank = CriticBank(5, 2, (32, 32), reward_members=2, cost_members=4)
    obs, act = torch.randn(64, 5), torch.randn(64, 2, requires_grad=True)
    results = {}
    for name in BACKENDS:
        with gemm.use_gemm_backend(name):
            q, qc = bank(obs, act)
            loss = q.square().mean() + qc.sin().mean()
            grads = torch.autograd.grad(loss, [act, *bank.parameters()])
            with torch.no_grad():
                nograd = torch.cat(list(bank(obs, act)))
            results[name] = (torch.cat([q, qc]), grads, nograd)
    ref = results["torch"]
    for name, (values, grads, nograd) in results.items():
        torch.testing.assert_close(values, ref[0], msg=name)
        torch.testing.assert_close(nograd, ref[0], msg=name)
        for g, g_ref in zip(grads, ref[1]):
            torch.testing.assert_close(g, g_ref, atol=1e-5, rtol=1e-4, msg=name)


def test_second_derivatives_on_every_backend(backend):
    """A backward that records a graph (the landscape's Hessians) runs on differentiable torch
    ops whatever the backend: double-backward matches finite differences."""
    torch.manual_seed(0)
    net = EnsembleMLP(4, 1, (8, 8), [MemberGroup(2, "silu")]).double()
    x = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda v: net(v).sum(0), (x,))


def test_flops_counted_on_every_backend(monkeypatch):
    monkeypatch.setattr(gemm, "ONEDNN_MIN_MACS", 0)
    net = EnsembleMLP(23, 1, (64, 64), [MemberGroup(2, "relu"), MemberGroup(4, "silu")])
    x = torch.randn(100, 23, requires_grad=True)
    counts = {}
    for name in BACKENDS:
        with gemm.use_gemm_backend(name):
            counts[name] = count_flops(lambda: torch.autograd.grad(net(x).sum(), x))
    forward = 2 * 6 * 100 * (23 * 64 + 64 * 64 + 64 * 1)
    # forward, weight gradients (a second forward's worth) and input gradients, less the 1-wide
    # output layer's, which is a broadcast multiply and no product
    expected = 3 * forward - 2 * 6 * 100 * 64
    assert all(c == expected for c in counts.values()), counts


def test_choice_is_explicit_or_measured(monkeypatch):
    with pytest.raises(ValueError, match="unknown GEMM backend 'mkl'"):
        gemm.set_gemm_backend("mkl")
    times = gemm.measure_backends(batch=32, width=32, repeats=2) if gemm.onednn_available() else {}
    assert all(t > 0 for t in times.values())
    with gemm.use_gemm_backend("torch"):
        assert gemm.gemm_backend() == "torch"
        with gemm.use_gemm_backend("auto") as chosen:
            assert chosen in BACKENDS
        assert gemm.gemm_backend() == "torch"  # restored
    monkeypatch.setenv(gemm.ENV_VAR, "fastest")
    with gemm.use_gemm_backend("torch"):
        gemm._requested, gemm._resolved = None, None  # as a fresh process that reads the env
        with pytest.raises(ValueError, match="ALGD_GEMM='fastest'"):
            gemm.gemm_backend()


def test_small_products_stay_on_torch():
    """Below ONEDNN_MIN_MACS a oneDNN call's fixed cost outweighs its throughput: such products
    run on torch's GEMM even with oneDNN chosen; larger ones go to oneDNN."""
    if not gemm.onednn_available():
        pytest.skip("this torch build has no oneDNN")
    net = EnsembleMLP(23, 1, (64, 64), [MemberGroup(4, "silu")])
    big = EnsembleMLP(23, 1, (256, 256), [MemberGroup(4, "silu")])

    def ops(model, rows):
        with torch.no_grad():
            return {str(func._overloadpacket) for func, _, _ in
                    record_matmuls(lambda: model(torch.randn(rows, 23))).calls}

    with gemm.use_gemm_backend("onednn"):
        assert "mkldnn._linear_pointwise" not in ops(net, 128)  # 128·64·64 multiply-adds
        assert "mkldnn._linear_pointwise" in ops(big, 256)  # 256·256·256


def test_measuring_the_backends_leaves_the_global_random_stream_alone():
    """The auto choice is measured lazily, after a run has seeded torch: it must not draw from
    the global generator, or ``auto`` and an explicit ``ALGD_GEMM`` naming the same backend
    would train different runs from one seed."""
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    gemm.measure_backends(batch=8, width=8, repeats=1)
    torch.testing.assert_close(torch.rand(3), expected, rtol=0, atol=0)
