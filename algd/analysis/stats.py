"""Statistics over seeds: interquartile mean and percentile-bootstrap confidence intervals.

The conventions follow rliable (Agarwal et al., *Deep RL at the Edge of the Statistical
Precipice*, NeurIPS 2021), re-implemented with numpy:

* **IQM** — the 25 % trimmed mean with scipy's ``trim_mean`` semantics: sort the n scores, drop
  ``floor(0.25 n)`` from each end, average the rest. For n < 4 nothing is dropped (the IQM is
  the mean); for n = 4 it is the mean of the middle two.
* **Stratified bootstrap** — resample the runs *within* each stratum (task) with replacement,
  keeping every stratum's size, evaluate the statistic on the pooled resample; repeat ``reps``
  times. With one stratum this is the ordinary bootstrap over seeds.
* **Interval** — the percentile interval of the bootstrap distribution (rliable's default
  ``method="percentile"``), 95 % unless asked otherwise.

Every function takes an explicit ``numpy.random.Generator`` or seed, so a report is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

Statistic = Callable[..., np.ndarray]  #: f(x, axis=...) → reduced array


def trimmed_mean(x: np.ndarray, proportion: float, axis: int = -1) -> np.ndarray:
    """Mean after dropping ``floor(proportion · n)`` values from each end along ``axis``."""
    if not 0.0 <= proportion < 0.5:
        raise ValueError(f"proportion must be in [0, 0.5), got {proportion}")
    x = np.sort(np.asarray(x, dtype=float), axis=axis)
    n = x.shape[axis]
    if n == 0:
        raise ValueError("trimmed mean of an empty sample")
    cut = int(proportion * n)
    return np.take(x, np.arange(cut, n - cut), axis=axis).mean(axis=axis)


def iqm(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean (25 % trimmed mean), rliable's robust aggregate."""
    return trimmed_mean(x, 0.25, axis=axis)


def mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.asarray(x, dtype=float).mean(axis=axis)


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its bootstrap confidence interval (NaN interval when n < 2)."""

    value: float
    low: float
    high: float
    n: int

    @property
    def has_interval(self) -> bool:
        return bool(np.isfinite(self.low) and np.isfinite(self.high))


def stratified_bootstrap(
    strata: Sequence[np.ndarray],
    statistic: Statistic = iqm,
    *,
    reps: int = 50_000,
    confidence: float = 0.95,
    rng: np.random.Generator | int | None = 0,
) -> Estimate:
    """Statistic of the pooled scores with a stratified percentile-bootstrap interval.

    Args:
        strata: one 1-D array of run scores per stratum (e.g. per task); each is resampled with
            replacement at its own size.
        statistic: reduces a ``[reps, n]`` array along ``axis=-1`` (e.g. :func:`iqm`, :func:`mean`).
        reps: bootstrap resamples.
        confidence: coverage of the interval.
        rng: generator or seed.

    Returns the statistic of the original pooled sample and the percentile interval. With fewer
    than two runs in every stratum there is no variability to resample: the interval is NaN.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    arrays = [np.asarray(s, dtype=float).ravel() for s in strata]
    arrays = [a for a in arrays if a.size]
    if not arrays:
        raise ValueError("no scores to aggregate")
    pooled = np.concatenate(arrays)
    value = float(statistic(pooled, axis=-1))
    if max(a.size for a in arrays) < 2:
        return Estimate(value, float("nan"), float("nan"), pooled.size)
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    resampled = np.concatenate(
        [a[gen.integers(0, a.size, size=(reps, a.size))] for a in arrays], axis=1
    )  # [reps, n]: every resample keeps each stratum's size
    boot = statistic(resampled, axis=-1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(boot, [alpha, 1.0 - alpha])
    return Estimate(value, float(low), float(high), pooled.size)


def bootstrap_ci(
    scores: np.ndarray,
    statistic: Statistic = iqm,
    *,
    reps: int = 50_000,
    confidence: float = 0.95,
    rng: np.random.Generator | int | None = 0,
) -> Estimate:
    """Statistic of ``scores`` with a percentile-bootstrap interval (a single stratum)."""
    return stratified_bootstrap([scores], statistic, reps=reps, confidence=confidence, rng=rng)


def bootstrap_band(
    values: np.ndarray,
    *,
    reps: int = 2_000,
    confidence: float = 0.95,
    rng: np.random.Generator | int | None = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds at every point of a curve, with a bootstrap interval of the mean.

    Args:
        values: ``[seeds, points]`` (NaN-free).

    Returns ``(mean, low, high)`` arrays of length ``points``; low/high are NaN with one seed.
    Seeds are resampled jointly across points (a resample is a set of whole curves).
    """
    values = np.asarray(values, dtype=float)
    if values.ndim != 2:
        raise ValueError(f"values must be [seeds, points], got shape {values.shape}")
    centre = values.mean(0)
    n = values.shape[0]
    if n < 2:
        nan = np.full_like(centre, np.nan)
        return centre, nan, nan
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    idx = gen.integers(0, n, size=(reps, n))
    boot = values[idx].mean(1)  # [reps, points]
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(boot, [alpha, 1.0 - alpha], axis=0)
    return centre, low, high
