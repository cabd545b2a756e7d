"""Analysis: plots of runs (and, later, comparisons and energy landscapes)."""

from algd.analysis.plots import plot_run

__all__ = ["plot_run"]
