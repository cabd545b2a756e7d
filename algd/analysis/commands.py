"""The analysis commands of ``algd``: eval, plot, report, landscape, modality (registered in
algd.cli).

    algd eval RUN_DIR [--episodes N] [--device cpu] [--seed S]
    algd plot RUN_DIR... [--out FILE.png] [--smooth N] [--no-seeds]
    algd report RUN_DIR... [--out FILE.md] [--last K]
    algd landscape RUN_DIR [--out FILE.png] [--lambda L]      |   algd landscape --demo
    algd modality RUN_DIR... [--reference RUN_DIR] [--states 50] [--samples 128]
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Sequence

from algd.cli import ArgParser as _Parser
from algd.cli import add_imports_arg, import_arg, seed_arg
from algd.config import ConfigError


def cmd_eval(argv: Sequence[str]) -> int:
    """``algd eval``: evaluate a run's checkpoint on fresh episodes (:func:`evaluate_run`)."""
    from algd.analysis.evaluation import evaluate_run, format_eval

    p = _Parser(prog="algd eval", description="Reload a run's checkpoint and evaluate it on fresh "
                "episodes with the deterministic and the stochastic sampler; writes eval.json "
                "into the run directory.")
    p.add_argument("run_dir", help="run directory (holds config.json and checkpoint.pt)")
    p.add_argument("--episodes", type=int, default=20, help="episodes per sampler (default 20)")
    p.add_argument("--device", default="cpu",
                   help="cpu (default; also for runs trained on a GPU), cuda, cuda:N or auto")
    p.add_argument("--seed", type=seed_arg, default=None,
                   help="seed of the start states (default: fixed per run, different from the "
                   "states training evaluated on)")
    p.add_argument("--checkpoint", choices=("last", "best"), default="last",
                   help="last: checkpoint.pt, the end of training (default; writes eval.json); "
                   "best: best.pt, the training evaluation with the highest return within the "
                   "cost limit (writes eval_best.json)")
    add_imports_arg(p)
    a = p.parse_args(argv)
    import_arg(a.imports)
    print(format_eval(evaluate_run(a.run_dir, a.episodes, device=a.device, seed=a.seed,
                                   checkpoint=a.checkpoint, progress=True)))
    return 0


def cmd_plot(argv: Sequence[str]) -> int:
    """``algd plot``: learning curves of runs grouped by task and setting, mean over seeds with a
    bootstrap band (:func:`plot_comparison`)."""
    from algd.analysis.compare import plot_comparison
    from algd.analysis.runs import group_runs, load_runs

    p = _Parser(prog="algd plot", description="Learning curves of many runs grouped by task and "
                "setting: mean over seeds with a 95% bootstrap band, the cost limit, and the "
                "cumulative training cost. Writes PNG and SVG.")
    p.add_argument("runs", nargs="+", help="run directories, globs, or directories holding runs")
    p.add_argument("--out", default=None,
                   help="PNG path (an .svg is written next to it; default: comparison.png in the "
                   "runs' common parent directory)")
    p.add_argument("--smooth", type=int, default=0,
                   help="trailing moving average over this many evaluations (default 0: raw)")
    p.add_argument("--no-seeds", action="store_true", help="do not draw individual seeds")
    a = p.parse_args(argv)
    if a.smooth < 0:
        raise ConfigError(f"--smooth must be >= 0, got {a.smooth}")
    runs = load_runs(a.runs)
    groups = group_runs(runs)
    out = Path(a.out) if a.out else _common_parent([r.path for r in runs]) / "comparison.png"
    written = plot_comparison(groups, out, smooth=a.smooth, show_seeds=not a.no_seeds)
    for g in groups:
        print(f"{g.task:16s} {g.label:40s} {len(g.runs)} run(s), seeds {g.seeds}")
    print("wrote " + ", ".join(map(str, written)))
    return 0


def cmd_report(argv: Sequence[str]) -> int:
    """``algd report``: final return and cost per task and algorithm over seeds, as Markdown (and
    CSV with ``--out``)."""
    from algd.analysis.report import build_report, report_warnings, to_markdown, write_csv
    from algd.analysis.runs import group_runs, load_runs

    p = _Parser(prog="algd report", description="Final return and cost per task and algorithm: "
                "interquartile mean over seeds with a 95% stratified-bootstrap CI, seeds within "
                "the limit, cumulative training cost. Prints Markdown; --out also writes it "
                "with a CSV.")
    p.add_argument("runs", nargs="+", help="run directories, globs, or directories holding runs")
    p.add_argument("--out", default=None, help="write the Markdown here and the CSV next to it "
                   "(same name, .csv)")
    p.add_argument("--last", type=int, default=1,
                   help="final value = mean of each run's last K evaluations (default 1)")
    p.add_argument("--reps", type=int, default=50_000, help="bootstrap resamples (default 50000)")
    p.add_argument("--seed", type=seed_arg, default=0, help="seed of the bootstrap (default 0)")
    a = p.parse_args(argv)
    if a.last < 1 or a.reps < 1:
        raise ConfigError("--last and --reps must be >= 1")
    groups = group_runs(load_runs(a.runs))
    for note in report_warnings(groups, last=a.last):
        print(f"algd: warning: {note}", file=sys.stderr)
    rows = build_report(groups, last=a.last, reps=a.reps, seed=a.seed)
    text = to_markdown(rows, last=a.last)
    print(text, end="")
    if a.out:
        md = Path(a.out)
        md.parent.mkdir(parents=True, exist_ok=True)
        md.write_text(text)
        csv_path = write_csv(rows, md.with_suffix(".csv"))
        print(f"wrote {md}, {csv_path}")
    return 0


def cmd_landscape(argv: Sequence[str]) -> int:
    """``algd landscape``: the plain and augmented Lagrangian energies over the action box at
    chosen states, with denoising paths (of a run, or of closed-form critics with ``--demo``)."""
    from algd.analysis import landscape as ls

    p = _Parser(prog="algd landscape", description="Contours of the plain and the augmented "
                "Lagrangian energy over a 2-D action box at chosen states, with the feasible-set "
                "boundary, denoising paths of sampled actions, and the Hessian / multimodality "
                "readout. --demo needs no run: closed-form PointDetour critics.")
    p.add_argument("run_dir", nargs="?", help="run directory (or use --demo)")
    p.add_argument("--demo", action="store_true", help="no checkpoint: closed-form PointDetour "
                   "critics and energy-guided chains (seconds)")
    p.add_argument("--out", default=None, help="PNG path (an .svg and a .json readout are "
                   "written next to it; default: RUN_DIR/landscape.png or landscape-demo.png)")
    p.add_argument("--lambda", dest="lam", type=float, default=None,
                   help="λ (default: the run's final λ; demo: 1)")
    p.add_argument("--rho", type=float, default=None, help="ρ (default: the run's; demo: 1)")
    p.add_argument("--positions", default=None,
                   help="PointDetour positions 'x,y;x,y', quoted for the shell's sake "
                   "(write --positions='-1,0;0,0.7' when the first number is negative; default: "
                   "start, beside and above the hazard)")
    p.add_argument("--states", default="auto", choices=("auto", "named", "rollout"),
                   help="named PointDetour positions, or the start and the two visited states "
                   "closest to the boundary in deterministic episodes (default: auto)")
    p.add_argument("--samples", type=int, default=128,
                   help="action samples per state (default: 128)")
    p.add_argument("--grid", type=int, default=81,
                   help="grid points per action dimension (default: 81)")
    p.add_argument("--temperature", type=float, default=0.25,
                   help="demo only: β of the energy-guided chains (default 0.25)")
    p.add_argument("--seed", type=seed_arg, default=0, help="seed of the sampling (default 0)")
    add_imports_arg(p)
    a = p.parse_args(argv)
    import_arg(a.imports)
    if a.samples < 2 or a.grid < 3:
        raise ConfigError(f"--samples must be >= 2 and --grid >= 3, got {a.samples}, {a.grid}")
    if a.rho is not None and a.rho <= 0:
        raise ConfigError(f"--rho must be > 0, got {a.rho}")
    if a.lam is not None and a.lam < 0:
        raise ConfigError(f"--lambda must be >= 0, got {a.lam}")
    positions = ls.parse_positions(a.positions) if a.positions else None
    if a.demo == (a.run_dir is not None):
        raise ConfigError("algd landscape: give a run directory or --demo (not both)")
    if a.demo:
        result = ls.landscape_demo(lam=1.0 if a.lam is None else a.lam,
                                   rho=1.0 if a.rho is None else a.rho, positions=positions,
                                   samples=a.samples, temperature=a.temperature, grid=a.grid,
                                   seed=a.seed)
        out = Path(a.out or "landscape-demo.png")
    else:
        result = ls.landscape_run(a.run_dir, lam=a.lam, rho=a.rho, positions=positions,
                                  states=a.states, samples=a.samples, grid=a.grid, seed=a.seed)
        out = Path(a.out) if a.out else Path(a.run_dir) / "landscape.png"
    written = ls.plot_landscape(result, out)
    readout = written[0].with_suffix(".json")
    readout.write_text(json.dumps(ls.readout_dict(result), indent=2) + "\n")
    print(ls.format_readout(result))
    print("wrote " + ", ".join(map(str, [*written, readout])))
    return 0


def cmd_modality(argv: Sequence[str]) -> int:
    """``algd modality``: how often each run's policy is multimodal at states near the cost
    boundary (spec §7.5)."""
    from algd.analysis import modality as mm

    p = _Parser(prog="algd modality", description="How often each run's policy is multimodal at "
                "the same states near the cost boundary (spec §7.5): 2-means on sampled actions "
                "per state. Boundary states come from the reference run's rollouts and critics.")
    p.add_argument("runs", nargs="+", help="run directories (same task)")
    p.add_argument("--reference", default=None,
                   help="run whose rollouts and cost critic choose the states (default: the first)")
    p.add_argument("--states", type=int, default=50, help="boundary states (default 50)")
    p.add_argument("--samples", type=int, default=128, help="actions per state (default 128)")
    p.add_argument("--episodes", type=int, default=20,
                   help="deterministic reference episodes to choose states from (default 20)")
    p.add_argument("--seed", type=seed_arg, default=0, help="seed of rollouts and sampling (default 0)")
    p.add_argument("--out", default=None, help="JSON with every state's test (default: "
                   "modality.json in the deepest directory holding all runs)")
    add_imports_arg(p)
    a = p.parse_args(argv)
    import_arg(a.imports)
    chosen, rates = mm.compare_modality(a.runs, reference=a.reference, states=a.states,
                                        samples=a.samples, episodes=a.episodes, seed=a.seed)
    print(mm.format_modality(chosen, rates))
    out = Path(a.out) if a.out else _common_parent([Path(r) for r in a.runs]) / "modality.json"
    print(f"wrote {mm.write_modality(chosen, rates, out)}")
    return 0


def _common_parent(paths: Sequence[Path]) -> Path:
    """The deepest directory holding every run (the run itself when there is one)."""
    return Path(os.path.commonpath([str(p.resolve()) for p in paths]))
