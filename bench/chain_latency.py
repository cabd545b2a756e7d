"""Latency of one action draw: the fused reverse chain against the chain as the spec writes it.

    python bench/chain_latency.py [--steps 5] [--batches 1,16] [--threads 1]

``DiffusionPolicy.sample`` (algd/diffusion/policy.py) sums the first layer's state and time
parts once for all K steps and runs each step as a few fused ops. The baseline here evaluates the
same network as spec §2.1 writes it — ``Linear(concat[s, x, emb(t)])`` every step — and the
chains of §2.2 and §2.3 term by term. Both are timed in interleaved rounds on the same agent
(paper policy size, no_grad), so the ratio is a same-run measurement; both draw the same random
numbers, and the largest difference of their actions is printed as a check.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import Tensor

from algd.bench import OBS_DIM, _algo_config, _make_agent, interleaved_median_times
from algd.diffusion.policy import DiffusionPolicy
from algd.diffusion.schedules import EPS, DDPMSchedule, VESchedule


def spec_chain(policy: DiffusionPolicy, obs: Tensor) -> Tensor:
    """One stochastic action per state, every step evaluating the whole network (spec §2.1-2.3)."""
    net, batch = policy.net, obs.shape[0]

    def trunk(x: Tensor, t: int) -> Tensor:
        emb = net.time_emb.weight[t].expand(x.shape[0], -1)
        h = F.relu(net.inp(torch.cat([obs, x, emb], -1)))
        for lin in net.hidden:
            h = F.relu(lin(h))
        return h

    x = policy.start_std * torch.randn(batch, policy.act_dim)
    sched = policy.schedule
    for t in reversed(range(policy.steps)):
        a = policy.action_scale * torch.tanh(x) + policy.action_bias
        if isinstance(sched, VESchedule):
            x = x + sched.delta_f[t] * net.score_head(trunk(a, t))
            if t > 0:
                x = x + sched.sqrt_delta_f[t] * torch.randn_like(x)
            continue
        assert isinstance(sched, DDPMSchedule)
        eps, phi = net.eps_head(trunk(x, t)), net.score_head(trunk(a, t))
        x0 = (x - sched.sqrt_one_minus_alpha_bar_f[t] * eps) / sched.sqrt_alpha_bar_f[t]
        mu = sched.c1_f[t] * x0 + sched.c2_f[t] * x
        mu = mu + policy.guidance_scale * phi / (phi.norm(dim=-1, keepdim=True) + EPS)
        x = mu + sched.posterior_std_f[t] * torch.randn_like(mu) if t > 0 else mu
    return policy.action_scale * torch.tanh(x) + policy.action_bias


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=5, help="K, reverse steps")
    p.add_argument("--batches", default="1,16")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    print(f"{args.threads} thread(s), torch {torch.__version__}, K = {args.steps}, "
          "paper policy size, no_grad")
    print(f"{'':22s} {'spec ms':>9s} {'fused ms':>9s} {'speed-up':>9s} {'max |Δa|':>9s}")
    for algo in ("algd-vesde", "algd-ddpm"):
        cfg, _ = _algo_config(algo, "paper", "none")
        cfg.diffusion_steps = args.steps
        policy = _make_agent(algo, cfg, device, "none").policy
        for batch in map(int, args.batches.split(",")):
            obs = torch.randn(batch, OBS_DIM)
            with torch.no_grad():
                torch.manual_seed(0)
                a_spec = spec_chain(policy, obs)
                torch.manual_seed(0)
                a_fused = policy.sample(obs).action
                times = interleaved_median_times(
                    {"spec": lambda p=policy, o=obs: spec_chain(p, o),
                     "fused": lambda p=policy, o=obs: p.sample(o)}, device, repeats=args.repeats)
            diff = (a_spec - a_fused).abs().max().item()
            print(f"{algo + f' batch={batch}':22s} {times['spec'] * 1e3:9.3f} "
                  f"{times['fused'] * 1e3:9.3f} {times['spec'] / times['fused']:8.2f}x "
                  f"{diff:9.1e}")


if __name__ == "__main__":
    main()
