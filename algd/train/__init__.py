"""Training: replay buffer, loop, evaluation, logging, seeding."""

from algd.buffers.replay import Batch, ReplayBuffer
from algd.train.evaluate import EvalResult, evaluate
from algd.train.loop import (
    RunResult,
    Trainer,
    TrainingInterrupted,
    make_configs,
    resume_run,
    train,
)
from algd.train.seeding import SeedStreams, resolve_device

__all__ = ["Batch", "EvalResult", "ReplayBuffer", "RunResult", "SeedStreams", "Trainer",
           "TrainingInterrupted",
           "evaluate", "make_configs", "resolve_device", "resume_run", "train"]
