"""algd — safe online reinforcement learning with diffusion policies.

The core algorithm is ALGD, Augmented Lagrangian-Guided Diffusion (Cheng et al., 2026,
arXiv:2602.02924). Quick use::

    from algd.config import TrainConfig
    from algd.train import train
    result = train(TrainConfig(algo="algd-vesde", env="PointDetour", steps=15_000))
    print(result.summary["final_return"], result.summary["final_cost"])
"""

__version__ = "0.1.0"
