"""Analysis of runs: evaluate, compare, explain.

* :mod:`~algd.analysis.plots` — one run's learning curves (drawn at the end of training)
* :mod:`~algd.analysis.evaluation` — reload a checkpoint and evaluate it (``algd eval``)
* :mod:`~algd.analysis.runs` — find, read, group and align many runs
* :mod:`~algd.analysis.stats` — IQM and (stratified) bootstrap intervals over seeds
* :mod:`~algd.analysis.compare` — learning curves of many runs (``algd plot``)
* :mod:`~algd.analysis.report` — final-performance tables (``algd report``)
* :mod:`~algd.analysis.landscape` — plain vs augmented Lagrangian energy (``algd landscape``)
* :mod:`~algd.analysis.commands` — the command-line front ends of the above
"""

from algd.analysis.compare import comparison_figure, plot_comparison
from algd.analysis.plots import plot_run, run_figure
from algd.analysis.report import build_report
from algd.analysis.runs import group_runs, load_runs

__all__ = ["build_report", "comparison_figure", "group_runs", "load_runs", "plot_comparison",
           "plot_run", "run_figure"]
