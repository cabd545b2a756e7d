"""Cost of one gradient update of every registered algorithm, relative to ALGD (VE-SDE).

    python bench/update_cost.py [--batch-size 128] [--seconds 3] [--threads 1] [--preset paper]

Builds each agent for PointDetour's sizes (5-d state, 2-d action) with its default config (or a
preset's), runs updates on fixed random batches for ``--seconds`` after a warm-up, and prints
milliseconds per update and the ratio to algd-vesde measured in the same run. Timings on a shared
machine are noisy: compare ratios, and take the best of ``--repeats`` rounds.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from algd.algos import EnvInfo, list_algos
from algd.buffers import Batch
from algd.config import load_preset


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--preset", default=None, help="apply a preset's algorithm fields (e.g. paper)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    info = EnvInfo(5, 2, -np.ones(2, np.float32), np.ones(2, np.float32), 1.6)
    g = torch.Generator().manual_seed(0)
    b = args.batch_size
    batches = [
        Batch(*(t.to(device) for t in (
            torch.randn(b, 5, generator=g), torch.rand(b, 2, generator=g) * 2 - 1,
            torch.randn(b, generator=g), torch.rand(b, generator=g),
            torch.randn(b, 5, generator=g), torch.zeros(b))))
        for _ in range(16)
    ]
    preset = load_preset(args.preset).values if args.preset else {}
    best: dict[str, float] = {}
    for _ in range(args.repeats):
        for spec in list_algos():
            fields = set(spec.config_cls.__dataclass_fields__)
            cfg = spec.make_config({k: v for k, v in preset.items() if k in fields})
            agent = spec.agent_cls(info, cfg, device)
            for i in range(10):
                agent.update(batches[i % 16])
            n, start = 0, time.perf_counter()
            while time.perf_counter() - start < args.seconds:
                agent.update(batches[n % 16])
                n += 1
            if device.type == "cuda":
                torch.cuda.synchronize()
            ms = (time.perf_counter() - start) / n * 1e3
            best[spec.name] = min(ms, best.get(spec.name, float("inf")))
    base = best["algd-vesde"]
    print(f"batch {b}, {args.threads} thread(s), {args.device}, preset {args.preset or '-'}")
    for name, ms in sorted(best.items(), key=lambda kv: kv[1]):
        print(f"  {name:12s} {ms:7.2f} ms/update   {ms / base:5.2f}x algd-vesde")


if __name__ == "__main__":
    main()
