"""Sweeps: many ordinary training runs (algorithms × tasks × grid values × seeds) on Ray.

    from algd.sweep import SweepConfig, run_sweep
    result = run_sweep(SweepConfig(out="sweeps/first", algos=("algd-vesde", "algd-ddpm"),
                                   seeds=(0, 1, 2), overrides={"steps": 20_000}))

Ray is an optional dependency (``pip install 'algd[ray]'``); only :func:`run_sweep` needs it.
"""

from algd.sweep.runner import SweepInterrupted, SweepResult, TrialRecord, run_sweep
from algd.sweep.spec import (
    SweepConfig,
    Trial,
    expand_trials,
    load_sweep_file,
    sweep_from_values,
    trial_state,
)
from algd.sweep.trial import run_trial

__all__ = ["SweepConfig", "SweepInterrupted", "SweepResult", "Trial", "TrialRecord",
           "expand_trials", "load_sweep_file", "run_sweep", "run_trial", "sweep_from_values",
           "trial_state"]
