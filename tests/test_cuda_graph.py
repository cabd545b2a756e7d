"""Whole-update CUDA graphs (issue 7): the replayed update computes what the eager one does, every
algorithm captures, and runs trained with graphs checkpoint, resume and move to the CPU.

The GPU tests skip without CUDA; the optimiser-state test runs everywhere."""

import numpy as np
import pytest
import torch

from algd.algos import get_algo
from algd.algos.base import EnvInfo
from algd.buffers import Batch
from algd.config import TrainConfig
from algd.nets.optim import load_optimizer_state
from algd.train import Trainer
from algd.train.cuda_graph import GraphedUpdate
from algd.train.loop import resume_run

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
INFO = EnvInfo(5, 2, -np.ones(2, np.float32), np.ones(2, np.float32), 0.5)
SMALL = {"algd-vesde": dict(policy_hidden=32, critic_hidden=[32, 32]),
         "algd-ddpm": dict(policy_hidden=32, critic_hidden=[32, 32]),
         "lgd-vesde": dict(policy_hidden=32, critic_hidden=[32, 32]),
         "sac-lag": dict(actor_hidden=[32, 32], critic_hidden=[32, 32]),
         "cal": dict(actor_hidden=[32, 32], critic_hidden=[32, 32])}


def batches(n, device, size=64):
    g = torch.Generator().manual_seed(1)
    out = []
    for _ in range(n):
        b = Batch(torch.randn(size, 5, generator=g), torch.rand(size, 2, generator=g) * 2 - 1,
                  torch.randn(size, generator=g), torch.rand(size, generator=g),
                  torch.randn(size, 5, generator=g), (torch.rand(size, generator=g) < 0.1).float())
        out.append(Batch(*(t.to(device) for t in b)))
    return out


def test_capturable_state_loads_next_to_cpu_parameters():
    """A GPU-graphed run's optimiser state (capturable=True) must resume on a CPU."""
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.Adam([p], lr=0.1)
    p.grad = torch.ones(3)
    opt.step()
    state = opt.state_dict()
    state["param_groups"][0]["capturable"] = True  # as saved by a graphed CUDA run
    q = torch.nn.Parameter(torch.ones(3))
    fresh = torch.optim.Adam([q], lr=0.1)
    load_optimizer_state(fresh, state)
    assert fresh.param_groups[0]["capturable"] is False
    q.grad = torch.ones(3)
    fresh.step()  # capturable Adam would refuse CPU tensors here
    assert int(fresh.state[q]["step"]) == 2  # the saved moments and counter were carried on
    assert torch.allclose(q.detach(), torch.full((3,), 0.9), atol=1e-3)  # Adam's step ≈ lr


def test_graphs_refuse_a_cpu_agent():
    spec = get_algo("algd-vesde")
    agent = spec.agent_cls(INFO, spec.make_config(SMALL["algd-vesde"]), torch.device("cpu"))
    with pytest.raises(ValueError, match="CUDA device"):
        GraphedUpdate(agent)


@cuda
@pytest.mark.parametrize("algo", sorted(SMALL))
def test_graphed_update_matches_eager(algo):
    """Same seed, same batches: replayed graphs and eager calls end at the same parameters, λ
    and diagnostics (graph-safe RNG draws the same noise as eager calls)."""
    spec = get_algo(algo)
    dev = torch.device("cuda")
    torch.manual_seed(0)
    eager = spec.agent_cls(INFO, spec.make_config(SMALL[algo]), dev)
    graphed_agent = spec.agent_cls(INFO, spec.make_config(SMALL[algo]), dev)
    graphed_agent.load_state_dict(eager.state_dict())
    graphed = GraphedUpdate(graphed_agent)
    data = batches(12, dev)
    torch.manual_seed(1)
    ref = [eager.update(b) for b in data]
    ref = [{k: v.clone() for k, v in d.items()} for d in ref]
    torch.manual_seed(1)
    out = [{k: v.clone() for k, v in graphed(b).items()} for b in data]
    assert graphed.captured == graphed.period  # every phase was captured and replayed
    assert graphed_agent.num_updates == eager.num_updates == 12
    for r, o in zip(ref, out):
        for k in r:
            torch.testing.assert_close(o[k], r[k], rtol=1e-4, atol=1e-5, msg=k)
    for (name, a), b in zip(eager.state_dict().items(), graphed_agent.state_dict().values()):
        if isinstance(a, torch.Tensor):
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5, msg=name)
    torch.testing.assert_close(graphed_agent.lagrange_multiplier, eager.lagrange_multiplier)


@cuda
def test_graphed_training_checkpoints_resumes_and_moves_to_the_cpu(tmp_path):
    tiny = dict(steps=600, warmup_steps=200, eval_every=300, eval_episodes=2, batch_size=32,
                progress=False, plot=False, seed=0)
    cfg = TrainConfig(out=str(tmp_path / "g"), device="cuda", cuda_graph=True, **tiny)
    result = Trainer(cfg, get_algo(cfg.algo).make_config(SMALL["algd-vesde"])).run()
    assert result.summary["updates"] == 400
    assert np.isfinite(result.summary["final_return"])
    # resume on the CPU (optimiser state saved with capturable=True), then again on the GPU
    more = resume_run(tmp_path / "g", overrides={"steps": 900, "device": "cpu",
                                                 "cuda_graph": False})
    assert more.summary["updates"] == 700
    again = resume_run(tmp_path / "g", overrides={"steps": 1200, "device": "cuda",
                                                  "cuda_graph": True})
    assert again.summary["updates"] == 1000
