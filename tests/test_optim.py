"""Adam as the agents step it: torch's Adam eagerly, its functional form traced when compiled."""

import pytest
import torch

from algd.nets.optim import adam, adam_step, set_grads, traced_adam


def _pair(lr: float = 1e-2):
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(6, 4)), torch.nn.Parameter(torch.randn(4))]
    ref = [torch.nn.Parameter(p.detach().clone()) for p in params]
    return params, adam(params, lr), ref, adam(ref, lr)


def _grads(params, k):
    g = torch.Generator().manual_seed(k)
    return [torch.randn(p.shape, generator=g) for p in params]


def test_adam_step_eagerly_is_adams_own_step():
    params, opt, ref, ref_opt = _pair()
    for k in range(3):
        set_grads(params, _grads(params, k))
        adam_step(opt)
        set_grads(ref, _grads(ref, k))
        ref_opt.step()
    assert all(torch.equal(p, q) for p, q in zip(params, ref))


@pytest.mark.parametrize("traced", [True, False])
def test_compiled_adam_step_moves_parameters_and_moments_as_torch_adam(traced):
    """Under torch.compile, once Adam has state (the agents compile after their first update),
    the step is torch's functional Adam traced into the graph without a break or, switched off,
    Adam.step itself between graph breaks: either way parameters, both moments and the step
    counter follow torch's fused Adam to float rounding."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    params, opt, ref, ref_opt = _pair()

    def step(grads: list[torch.Tensor]) -> None:
        set_grads(params, grads)
        adam_step(opt)

    step(_grads(params, 0))  # eager first step: creates the state
    set_grads(ref, _grads(ref, 0))
    ref_opt.step()
    torch._dynamo.reset()
    counters.clear()
    with traced_adam(traced):
        compiled = torch.compile(step, dynamic=False)
        for k in range(1, 4):
            compiled(_grads(params, k))
            set_grads(ref, _grads(ref, k))
            ref_opt.step()
    assert bool(counters["graph_break"]) != traced, dict(counters["graph_break"])
    for p, q in zip(params, ref):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-5)
        for key in ("exp_avg", "exp_avg_sq", "step"):
            torch.testing.assert_close(opt.state[p][key], ref_opt.state[q][key].to(
                opt.state[p][key].dtype), atol=1e-7, rtol=1e-5)
