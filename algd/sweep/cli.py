"""``algd sweep``: many runs (algorithms × tasks × grid values × seeds) on Ray.

    algd sweep --algos algd-vesde,algd-ddpm --envs PointDetour --seeds 0,1,2 --steps 20000 \\
               --out sweeps/first [--grid rho=0.5,1,2] [--FIELD VALUE ...]
    algd sweep sweep.yaml [flags that override the file]

The command line and the YAML file take the same keys. Any training or algorithm field is a flag
(``--policy-hidden 64``) fixed for every trial; ``--grid FIELD=V1,V2,...`` varies one (repeat it
for several; a tuple field such as critic_hidden separates its values with ``;``).
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from pathlib import Path
from typing import Any, Sequence

from algd.config import ConfigError, TrainConfig
from algd.sweep.spec import (
    DIMENSIONS,
    MANIFEST,
    SweepConfig,
    expand_trials,
    load_sweep_file,
    sweep_from_values,
    trial_state,
)

EXAMPLES = """\
examples:
  algd sweep --algos algd-vesde,algd-ddpm --seeds 0,1,2 --steps 20000 --out sweeps/first
  algd sweep --grid rho=0.5,1,2 --grid mc-samples=4,8 --seeds 0,1 --out sweeps/rho
  algd sweep sweep.yaml --address ray-head:6379      # on an existing Ray cluster
  algd sweep sweep.yaml --dry-run                    # list the trials, run nothing

A sweep file (YAML) holds the same keys, e.g.
  out: sweeps/first
  algos: [algd-vesde, algd-ddpm]
  seeds: [0, 1, 2]
  steps: 20000                  # any training or algorithm field, fixed for every trial
  grid: {rho: [0.5, 1, 2]}      # one trial per combination

Each trial is an ordinary run directory OUT/<env>/<algo>[/<field>=<value>...]/seed<k> with its
output in trial.log; OUT/sweep.json lists the trials and their status. Running the same command
again skips finished trials and resumes the others from their checkpoints.
"""

_WHAT = {"new": "to start", "done": "done", "resume": "to resume from its checkpoint",
         "restart": "to start again (stopped before its first checkpoint)"}


def sweep_parser() -> argparse.ArgumentParser:
    """The parser of ``algd sweep``: the sweep flags (a YAML file takes the same keys)."""
    from algd import cli
    from algd.algos.registry import list_algos

    _add_dataclass_flags = cli._add_dataclass_flags
    p = cli.ArgParser(prog="algd sweep", allow_abbrev=False, epilog=EXAMPLES,
                formatter_class=argparse.RawDescriptionHelpFormatter,
                description="Run every combination of algorithms, tasks, grid values and seeds "
                "as ordinary training runs on Ray (a local Ray instance unless --address).")
    p.add_argument("file", nargs="?", default=argparse.SUPPRESS,
                   help="YAML file with the sweep (its keys are the options below; flags "
                   "override it)")
    g = p.add_argument_group("sweep")
    _add_dataclass_flags(g, SweepConfig, {}, skip=("grid", "overrides"))
    g.add_argument("--grid", action="append", metavar="FIELD=V1,V2,...", default=argparse.SUPPRESS,
                   help="vary a training or algorithm field: one trial per value (repeat for "
                   "several fields; tuple fields separate values with ';')")
    g.add_argument("--dry-run", action="store_true", default=argparse.SUPPRESS,
                   help="list the trials and what each would do; run nothing")
    seen = set(DIMENSIONS) | {"progress", "imports"}  # the sweep's --imports sets every trial's
    _add_dataclass_flags(p.add_argument_group("every trial's run (fixed values)"), TrainConfig,
                         {}, skip=tuple(seen))
    seen |= {f.name for f in dataclasses.fields(TrainConfig)}
    by_class: dict[type, list[str]] = {}
    for spec in list_algos():
        by_class.setdefault(spec.config_cls, []).append(spec.name)
    for cls, names in by_class.items():
        group = p.add_argument_group(f"algorithm options ({', '.join(names)}; applied to the "
                                     "algorithms that have them)")
        _add_dataclass_flags(group, cls, {}, skip=tuple(seen))
        seen |= {f.name for f in dataclasses.fields(cls)}
    return p


def parse_sweep_args(argv: Sequence[str]) -> tuple[SweepConfig, bool]:
    """``algd sweep`` arguments (and the YAML file they name) → (sweep, dry_run)."""
    for token in argv:
        flag = token.split("=", 1)[0].replace("_", "-")
        for name, plural in DIMENSIONS.items():
            if flag == f"--{name}" and plural != flag:
                raise ConfigError(f"a sweep takes {plural} (comma-separated), not {flag}")
    args: dict[str, Any] = vars(sweep_parser().parse_args(list(argv)))
    dry_run = bool(args.pop("dry_run", False))
    values: dict[str, Any] = load_sweep_file(args.pop("file")) if "file" in args else {}
    grid = dict(values.get("grid") or {})
    for item in args.pop("grid", []):
        name, sep, text = item.partition("=")
        if not sep or not name.strip() or not text.strip():
            raise ConfigError(f"--grid {item!r}: write FIELD=V1,V2,... (e.g. --grid rho=0.5,1,2)")
        grid[name.strip()] = text
    return sweep_from_values({**values, **args, "grid": grid}), dry_run


def cmd_sweep(argv: Sequence[str]) -> int:
    """``algd sweep``: parse the sweep, run it (or print its trials with ``--dry-run``) and
    print the table of results."""
    from algd.analysis.plots import format_duration
    from algd.sweep.runner import SweepInterrupted, format_table, run_sweep

    sweep, dry_run = parse_sweep_args(argv)
    if dry_run:
        trials = expand_trials(sweep)
        out = Path(sweep.out or "")
        states = [trial_state(t, out) for t in trials]
        width = max(len(t.id) for t in trials)
        print(f"{len(trials)} trials in {out}:")
        for t, state in zip(trials, states):
            print(f"  {t.id:{width}s}  {_WHAT[state]}")
        return 0
    try:
        result = run_sweep(sweep, command=shlex.join(["algd", "sweep", *argv]))
    except SweepInterrupted as exc:
        print(f"\nalgd: {exc}", file=sys.stderr)
        return 130
    counts = result.counts()
    print("\n" + format_table(result.trials))
    failed = counts["failed"] + counts["interrupted"]
    print(f"\n{counts['done']} of {len(result.trials)} trials done"
          + (f", {failed} not (see their trial.log)" if failed else "")
          + f" in {format_duration(result.wall_s)}; status: {result.out / MANIFEST}")
    from algd.cli import COMMANDS

    tools = [f"algd {name} {result.out}" for name in ("plot", "report") if name in COMMANDS]
    if tools and counts["done"]:
        print(f"compare them: {' / '.join(tools)}")
    return 0 if result.ok else 1
