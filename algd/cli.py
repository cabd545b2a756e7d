"""The ``algd`` command: train, and list algorithms, tasks and presets.

    algd train [--algo NAME] [--env NAME] [--preset NAME] [--seed N] [--steps N] [--out DIR]
               [--device auto|cpu|cuda] [--<any config field> VALUE ...]
    algd train --resume RUN_DIR [--steps N]
    algd algos | envs | presets
    algd eval | plot | report | landscape | modality   (see algd.analysis.commands)
    algd video RUN_DIR [--out FILE.gif|mp4] [--episodes N] [--max-steps N]

Every field of the training config and of the chosen algorithm's config is a flag
(``--batch-size 256`` or ``--batch_size 256``); ``algd train --algo NAME --help`` lists them with
their documentation. Values are resolved as: algorithm defaults ← preset ← command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import types
from pathlib import Path
from typing import Any, Literal, Sequence, Union, get_args, get_origin

from algd.config import (
    RESUMABLE_OVERRIDES,
    ConfigError,
    TrainConfig,
    field_docs,
    import_modules,
    imported_by,
    list_presets,
    load_preset,
    resolved_types,
)


class ArgParser(argparse.ArgumentParser):
    """argparse, but errors are one-line :class:`ConfigError`s (printed by ``main``)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"{self.prog}: {message} (see `{self.prog} --help`)")


def seed_arg(text: str) -> int:
    """argparse type of ``--seed`` flags: an integer >= 0 (what numpy's seeding accepts)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def _metavar(tp: Any) -> str:
    inner = [a for a in get_args(tp) if a is not type(None)] if get_origin(tp) in (
        Union, types.UnionType) else [tp]
    t = inner[0]
    if get_origin(t) is Literal:
        return "{" + ",".join(map(str, get_args(t))) + "}"
    if get_origin(t) is tuple:
        elem = _metavar(get_args(t)[0])
        return f"{elem},{elem},..."
    return {bool: "BOOL", int: "INT", float: "FLOAT", str: "TEXT"}.get(t, "VALUE")


def _add_dataclass_flags(group: Any, cls: type, shown_defaults: dict[str, Any],
                         skip: Sequence[str] = ("algo",), fixed: dict[str, str] | None = None,
                         ) -> None:
    """One flag per field of ``cls``; a field in ``fixed`` (a categorical value that defines the
    algorithm) says so in its help instead of offering values the algorithm refuses."""
    docs = field_docs(cls)
    hints = resolved_types(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        tp = hints[f.name]
        default = shown_defaults.get(f.name, f.default)
        if isinstance(default, tuple):
            default = ",".join(map(str, default))
        meta = _metavar(tp)
        flags = [f"--{f.name.replace('_', '-')}"]
        if "_" in f.name:
            flags.append(f"--{f.name}")
        doc = docs.get(f.name, "")
        if fixed and f.name in fixed:
            group.add_argument(*flags, dest=f.name, default=argparse.SUPPRESS, metavar=meta or
                               "VALUE", help=f"{doc} (fixed: {default}; {fixed[f.name]})")
            continue
        shown = ("" if "(default" in doc or "(required)" in doc else
                 " (default: none)" if default in ("", None) else f" (default: {default})")
        group.add_argument(  # a docstring that explains its default is not told it twice
            *flags, dest=f.name, default=argparse.SUPPRESS, metavar=meta or "VALUE",
            help=doc + shown,
        )


def _train_parser(algo_name: str, prog: str, preset: str | None = None) -> argparse.ArgumentParser:
    """The parser of ``algd train`` for ``--algo algo_name``; its help shows the defaults that
    ``--preset preset`` gives (when one is named), else the algorithm's."""
    from algd.algos.registry import get_algo, list_algos
    from algd.train.loop import make_configs

    spec = get_algo(algo_name)
    train_shown: dict[str, Any] = {}
    algo_shown: dict[str, Any] = dict(spec.defaults)
    if preset:
        train_cfg, algo_cfg = make_configs(algo_name, preset)
        train_shown = {f.name: getattr(train_cfg, f.name) for f in dataclasses.fields(train_cfg)}
        algo_shown = {f.name: getattr(algo_cfg, f.name) for f in dataclasses.fields(algo_cfg)}
    p = ArgParser(
        prog=prog,
        description=f"Train an agent. Showing the options of --algo {algo_name}"
        f"{f' with the defaults of --preset {preset}' if preset else ''}: {spec.description}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    names = ", ".join(s.name for s in list_algos())
    p.add_argument("--algo", default=argparse.SUPPRESS,
                   help=f"algorithm, one of: {names} (`algd algos` describes them; "
                   "default: algd-vesde)")
    p.add_argument("--preset", default=argparse.SUPPRESS,
                   help="named settings to start from (`algd presets`)")
    p.add_argument("--resume", metavar="RUN_DIR", default=argparse.SUPPRESS,
                   help="continue an interrupted run from its checkpoint (only "
                   f"{', '.join('--' + f.replace('_', '-') for f in RESUMABLE_OVERRIDES)} "
                   "may change)")
    _add_dataclass_flags(p.add_argument_group("run"), TrainConfig, train_shown)
    # categorical values that define the algorithm (ALGD's variant and energy): another value
    # is another --algo, named in the flag's help
    fixed = {}
    for key, value in spec.defaults.items():
        if isinstance(value, str):
            others = [f"{v}: --algo {name}" for v, name in spec.siblings(key).items()]
            fixed[key] = "; ".join(others) if others else f"it defines {algo_name}"
    _add_dataclass_flags(p.add_argument_group(f"algorithm ({algo_name})"), spec.config_cls,
                         algo_shown, fixed=fixed)
    return p


def resolve_train_args(argv: Sequence[str]) -> tuple[TrainConfig, Any]:
    """Turn ``algd train`` arguments into validated (TrainConfig, algorithm config)."""
    from algd.algos.registry import get_algo
    from algd.train.loop import make_configs

    pre = ArgParser(add_help=False, prog="algd train")
    pre.add_argument("--algo")
    pre.add_argument("--preset")
    pre.add_argument("--imports", default="")
    known, _ = pre.parse_known_args(argv)
    # first: the modules may register the --algo and --env named here
    import_arg(known.imports)
    preset_algo = load_preset(known.preset).values.get("algo") if known.preset else None
    algo_name = known.algo or preset_algo or TrainConfig.algo
    get_algo(algo_name)  # an unknown name: suggestions before the parser is built
    parsed, extra = _train_parser(algo_name, "algd train", known.preset).parse_known_args(argv)
    if extra:
        _explain_unknown_flags(algo_name, extra)
    args = vars(parsed)
    args.pop("preset", None)
    args.pop("algo", None)
    train_cfg, algo_cfg = make_configs(algo_name, known.preset, **args)
    ignored = algo_cfg.ignored_fields() if hasattr(algo_cfg, "ignored_fields") else []
    if ignored:  # e.g. --sigma-max given to the DDPM variant: accepted, but has no effect
        flags = ", ".join(f"--{name.replace('_', '-')}" for name in ignored)
        print(f"note: {algo_name} does not use {flags} (another variant's setting); it has no "
              "effect on this run", file=sys.stderr)
    return train_cfg, algo_cfg


def _explain_unknown_flags(algo_name: str, extra: Sequence[str]) -> None:
    """Raise a :class:`ConfigError` for flags ``algd train`` does not know, naming the algorithms
    that do have them (``--rho`` given to sac-lag)."""
    from algd.algos.registry import list_algos

    flags = [a for a in extra if a.startswith("--")]
    for flag in flags:
        name = flag[2:].split("=", 1)[0].replace("-", "_")
        owners = [spec.name for spec in list_algos()
                  if name in {f.name for f in dataclasses.fields(spec.config_cls)}]
        if owners:
            raise ConfigError(
                f"algd train: {algo_name} has no option --{name.replace('_', '-')}; it is an "
                f"option of {', '.join(owners)} (see `algd train --algo {algo_name} --help`)"
            )
    raise ConfigError(f"algd train: unrecognized arguments: {' '.join(extra)} "
                      "(see `algd train --help`)")


def _resume_args(argv: Sequence[str]) -> tuple[str | None, dict[str, Any]]:
    """Split ``--resume RUN_DIR`` from the (few) flags a resumed run may change."""
    pre = ArgParser(add_help=False, prog="algd train")
    pre.add_argument("--resume")
    known, rest = pre.parse_known_args(argv)
    if known.resume is None:
        return None, {}
    from algd.train.checkpoint import read_config

    config = read_config(Path(known.resume))
    algo_name = config.get("train", {}).get("algo", TrainConfig.algo)
    # a --preset is kept, so that resume_run refuses it as it refuses any other changed setting
    overrides = vars(_train_parser(algo_name, "algd train --resume RUN_DIR").parse_args(rest))
    if "algo" in overrides and overrides["algo"] == algo_name:
        overrides.pop("algo")
    return known.resume, overrides


def cmd_train(argv: Sequence[str]) -> int:
    """``algd train``: train a new run from flags (or a preset), or go on with one (``--resume
    RUN_DIR``); prints the final evaluation. Returns the exit status."""
    from algd.analysis.plots import format_duration
    from algd.train.auto_compile import CompileFailed
    from algd.train.loop import NonFiniteError, Trainer, TrainingInterrupted, resume_run

    try:
        resume_dir, overrides = _resume_args(argv)
        if resume_dir is not None:
            res = resume_run(resume_dir, overrides)
        else:
            train_cfg, algo_cfg = resolve_train_args(argv)
            res = Trainer(train_cfg, algo_cfg).run()
    except TrainingInterrupted as exc:
        print(f"\nalgd: {exc}", file=sys.stderr)
        return 128 + exc.signum
    except (NonFiniteError, CompileFailed) as exc:
        print(f"\nalgd: error: {exc}", file=sys.stderr)
        return 1
    s = res.summary
    ok = s.get("constraint") or ("satisfied" if s["constraint_satisfied"] else "violated")
    if ok == "violated":
        ok = "VIOLATED"
    elif ok == "at the limit":
        ok = "at the limit: above it by less than two standard errors"
    kind = "discounted " if s["cost_budget_kind"] == "discounted" else ""
    print(
        f"\n{s['algo']} on {s['env']} (seed {s['seed']}): {s['env_steps']} environment steps, "
        f"{s['updates']} updates in {format_duration(s['wall_s'])}\n"
        f"  final evaluation ({s['eval_episodes']} episode{'s' * (s['eval_episodes'] != 1)}): "
        f"return {s['final_return']:.2f} ± {s['final_return_std']:.2f}, "
        f"{kind}cost {s['final_cost']:.2f} ± {s['final_cost_std']:.2f} "
        f"(limit {s['cost_limit']:g}: {ok})\n"
        f"  untrained policy: return {s['initial_return']:.2f}, {kind}cost "
        f"{s['initial_cost']:.2f}; "
        f"final λ = {s['final_lambda']:.3g}\n"
        + _best_line(s) +
        f"  run directory: {res.run_dir}\n"
        + (f"  learning curves: {s['plot']}\n" if s.get("plot") else "")
    )
    return 0


def _best_line(s: dict) -> str:
    """The summary's line on best.pt (none with --keep-best false)."""
    if "best" not in s:
        return ""
    best = s["best"]
    if best is None:
        return "  no evaluation met the cost limit, so there is no best.pt\n"
    if best["env_steps"] == s["env_steps"]:
        return "  best evaluation within the limit: the final one (saved as best.pt)\n"
    return (f"  best evaluation within the limit: return {best['return']:.2f}, cost "
            f"{best['cost']:.2f} at step {best['env_steps']} (saved as best.pt)\n")


def cmd_sweep(argv: Sequence[str]) -> int:
    """``algd sweep``: algorithms × seeds × a grid on Ray, local or a cluster (:mod:`algd.sweep.cli`)."""
    from algd.sweep.cli import cmd_sweep as sweep

    return sweep(argv)


def add_imports_arg(p: ArgParser) -> None:
    """``--imports`` of a command that loads runs: modules that register a run's own task or
    algorithm (runs trained with ``--imports`` record theirs)."""
    p.add_argument("--imports", default="", metavar="MODULES",
                   help="comma-separated modules to import first, which register the run's own "
                   "task or algorithm (a run trained with --imports, or from Python after "
                   "importing them, records its modules itself)")


def import_arg(value: str) -> None:
    """Import the modules of an ``--imports`` value (comma-separated)."""
    import_modules([m.strip() for m in value.split(",") if m.strip()])


def _parse_listing(name: str, argv: Sequence[str], what: str, imports: bool = True) -> None:
    """Options of a listing command: ``--imports`` (modules that register more), nothing else;
    an unknown argument is a usage error, not ignored."""
    p = ArgParser(prog=f"algd {name}", description=f"List the {what}.")
    if imports:
        p.add_argument("--imports", default="", metavar="MODULES",
                       help="comma-separated modules to import first (they register their own "
                            f"{what}), as `algd train --imports` takes them")
    args = p.parse_args(list(argv))
    if imports:
        import_arg(args.imports)


def cmd_algos(argv: Sequence[str]) -> int:
    """``algd algos``: the registered algorithms, built-in and registered by user modules."""
    from algd.algos.registry import algo_origin, list_algos

    _parse_listing("algos", argv, "algorithms")
    for spec in list_algos():
        origin = algo_origin(spec.name)
        mine = "" if imported_by(origin, ()) else f"  (registered by {origin})"
        print(f"{spec.name:14s} {spec.description}{mine}")
    return 0


def cmd_envs(argv: Sequence[str]) -> int:
    """``algd envs``: the registered tasks by protocol, with their limits and the extras that are
    not installed."""
    from algd.envs.extras import INSTALL_COMMANDS, extra_available
    from algd.envs.registry import list_tasks, task_origin

    _parse_listing("envs", argv, "tasks")
    tasks = list_tasks()

    def group(t: Any) -> str:  # a user's task (--imports) is not built in, whatever its protocol
        origin = task_origin(t.name)
        return t.protocol if imported_by(origin, ()) else f"registered by {origin}"

    order = {"built-in": 0, "ALGD/CAL": 1, "Safety-Gymnasium": 2}
    titles = {"built-in": "built-in:", "ALGD/CAL": "ALGD/CAL protocol (the paper's):"}
    for protocol in sorted({group(t) for t in tasks}, key=lambda p: (order.get(p, 3), p)):
        print(titles.get(protocol, f"{protocol}:" if protocol.startswith("registered by ")
                         else f"{protocol} protocol:"))
        for t in (t for t in tasks if group(t) == protocol):
            kind = "discounted" if t.budget == "discounted" else "per episode"
            missing = t.extra is not None and not extra_available(t.extra)
            print(f"  {t.name:30s} limit {t.cost_limit:g} ({kind}), T={t.max_episode_steps}  "
                  f"{t.description}" + (f"  [needs algd[{t.extra}]]" if missing else ""))
    print("\nAlso every Safety-Gymnasium navigation id, e.g. SafetyCarGoal2-v0 (Safety-Gymnasium "
          "protocol),\nand the same without 'Safety' and '-v0', e.g. CarGoal2 (ALGD/CAL protocol: "
          "400 steps, budget 10).")
    for extra in ("mujoco", "safety"):
        if not extra_available(extra):
            print(f"Install the {extra} tasks with: {INSTALL_COMMANDS[extra]}  "
                  f"(in a clone: -e '.[{extra}]')")
    return 0


def cmd_presets(argv: Sequence[str]) -> int:
    """``algd presets``: the shipped presets with their descriptions."""
    _parse_listing("presets", argv, "presets", imports=False)
    for p in list_presets():
        print(f"{p.name:24s} {p.description}")
    return 0


def cmd_bench(argv: Sequence[str]) -> int:
    """``algd bench``: the speed benchmark (:mod:`algd.bench`)."""
    from algd.bench import main as bench_main

    return bench_main(list(argv))


def _analysis(name: str):
    """A command of :mod:`algd.analysis.commands`, imported when run (keeps `algd` start fast)."""

    def run(argv: Sequence[str]) -> int:
        from algd.analysis import commands

        return getattr(commands, name)(argv)

    return run


def cmd_video(argv: Sequence[str]) -> int:
    """``algd video``: record a run's policy acting in its task as an MP4 (a GIF without ffmpeg)."""
    try:
        from algd.analysis.video import record_video
    except (ImportError, AttributeError) as exc:  # MuJoCo failed to load the MUJOCO_GL backend
        import os

        raise ConfigError(f"MuJoCo cannot load the rendering backend MUJOCO_GL="
                          f"{os.environ.get('MUJOCO_GL')!r} ({type(exc).__name__}: {exc}); "
                          "unset MUJOCO_GL to use EGL") from None

    p = ArgParser(
        prog="algd video",
        description="Render evaluation episodes of a trained run off-screen to a GIF or MP4 "
        "(MuJoCo through MUJOCO_GL=egl by default; MP4 needs `pip install 'algd[video]'`).")
    p.add_argument("run_dir", help="a run directory (holds config.json and checkpoint.pt)")
    p.add_argument("--out", default=None,
                   help="output .gif or .mp4 (default: RUN_DIR/eval.mp4, or eval.gif without "
                   "imageio-ffmpeg)")
    p.add_argument("--episodes", type=int, default=1, help="episodes to record (default: 1)")
    p.add_argument("--max-steps", type=int, default=None,
                   help="cut each episode after this many steps (default: its natural end)")
    p.add_argument("--seed", type=seed_arg, default=0, help="reset seed of the first episode")
    p.add_argument("--deterministic", action="store_true",
                   help="use the zero-start, noise-free chain instead of the policy's sampler")
    p.add_argument("--checkpoint", choices=("last", "best"), default="last",
                   help="last: checkpoint.pt (default); best: best.pt, the best training "
                   "evaluation within the cost limit")
    add_imports_arg(p)
    a = p.parse_args(argv)
    import_arg(a.imports)
    res = record_video(a.run_dir, a.out, a.episodes, a.max_steps, a.seed, a.deterministic,
                       a.checkpoint, progress=True)
    for i, (r, c, n) in enumerate(zip(res.returns, res.costs, res.lengths)):
        # plain sums: a discounted-budget task's summary.json reports the discounted cost
        print(f"episode {i}: return {r:.2f}, cost {c:.2f} (undiscounted sums over {n} steps)")
    print(f"wrote {res.frames} frames to {res.path}")
    return 0


COMMANDS = {
    "train": (cmd_train, "train an agent (algd train --help)"),
    "algos": (cmd_algos, "list the algorithms"),
    "envs": (cmd_envs, "list the tasks"),
    "presets": (cmd_presets, "list the presets"),
    "bench": (cmd_bench, "measure update speed against the machine's matmul peak"),
    "eval": (_analysis("cmd_eval"), "evaluate a saved run on fresh episodes (eval.json)"),
    "plot": (_analysis("cmd_plot"), "learning curves of many runs, mean and CI over seeds"),
    "report": (_analysis("cmd_report"), "table of final return and cost, IQM and CI over seeds"),
    "landscape": (_analysis("cmd_landscape"),
                  "plain vs augmented Lagrangian energy over the action box (--demo: no run)"),
    "modality": (_analysis("cmd_modality"),
                 "how often each run's policy is multimodal near the cost boundary"),
    "video": (cmd_video, "render evaluation episodes of a run to a video (algd video --help)"),
    "sweep": (cmd_sweep, "run algorithms x tasks x seeds (x grids) on Ray (algd sweep --help)"),
}


#: set to 1 to see the traceback of an error the CLI would report in one line
DEBUG_VAR = "ALGD_DEBUG"


def _raised_outside_algd(exc: BaseException) -> str | None:
    """``file:line in function`` (and the line) where ``exc`` was raised, if that is not in
    algd's own code (a user's task or algorithm, a library); None if algd raised it."""
    import linecache
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return None
    last = frames[-1]
    package = Path(__file__).resolve().parent
    try:
        Path(last.filename).resolve().relative_to(package)
        return None
    except ValueError:
        pass
    code = (last.line or linecache.getline(last.filename, last.lineno or 0)).strip()
    return f"{last.filename}:{last.lineno}, in {last.name}" + (f"\n    {code}" if code else "")


def main(argv: Sequence[str] | None = None) -> int:
    """The ``algd`` command: dispatch to ``algd COMMAND``; a bad input ends in one
    ``algd: error: ...`` line and status 2 (``ALGD_DEBUG=1`` shows the traceback)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: algd COMMAND [options]\n\ncommands:")
        for name, (_, help_) in COMMANDS.items():
            print(f"  {name:10s} {help_}")
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        from algd import __version__

        print(f"algd {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"algd: error: unknown command {name!r}; choose from {', '.join(COMMANDS)}",
              file=sys.stderr)
        return 2
    try:
        return COMMANDS[name][0](rest)
    except (ConfigError, KeyError, ValueError) as exc:
        if os.environ.get(DEBUG_VAR, "") not in ("", "0"):
            raise
        where = _raised_outside_algd(exc)
        if where is None:  # algd's own message about the input
            msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            print(f"algd: error: {msg}", file=sys.stderr)
        else:  # a bug in the user's task or algorithm (or a library): say where it came from
            print(f"algd: error: {type(exc).__name__}: {exc}\n  raised at {where}\n"
                  f"  ({DEBUG_VAR}=1 shows the whole traceback)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("algd: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `algd presets | head`: the reader left, nothing to report
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return 0
    except OSError as exc:  # a file that cannot be read or written (full disk, no permission)
        where = f" {exc.filename}" if exc.filename else ""
        if isinstance(exc, (FileExistsError, NotADirectoryError)):
            what, why = "write", ("a file is in the way of a directory in that path; choose "
                                  "another output path")
        else:
            what, why = "access", exc.strerror or str(exc)
        print(f"algd: error: cannot {what}{where}: {why}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
