"""The ``algd`` command: train, and list algorithms, tasks and presets.

    algd train [--algo NAME] [--env NAME] [--preset NAME] [--seed N] [--steps N] [--out DIR]
               [--device auto|cpu|cuda] [--<any config field> VALUE ...]
    algd algos | envs | presets

Every field of the training config and of the chosen algorithm's config is a flag
(``--batch-size 256`` or ``--batch_size 256``); ``algd train --algo NAME --help`` lists them with
their documentation. Values are resolved as: algorithm defaults ← preset ← command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
from typing import Any, Literal, Sequence, Union, get_args, get_origin

from algd.config import (
    ConfigError,
    TrainConfig,
    config_from_dict,
    field_docs,
    list_presets,
    load_preset,
    resolved_types,
)


def _metavar(tp: Any) -> str:
    inner = [a for a in get_args(tp) if a is not type(None)] if get_origin(tp) in (
        Union, types.UnionType) else [tp]
    t = inner[0]
    if get_origin(t) is Literal:
        return "{" + ",".join(map(str, get_args(t))) + "}"
    if get_origin(t) is tuple:
        return "INT,INT,..."
    return {bool: "BOOL", int: "INT", float: "FLOAT", str: "TEXT"}.get(t, "VALUE")


def _add_dataclass_flags(group: Any, cls: type, shown_defaults: dict[str, Any]) -> None:
    docs = field_docs(cls)
    hints = resolved_types(cls)
    for f in dataclasses.fields(cls):
        if f.name in ("algo",):
            continue
        tp = hints[f.name]
        default = shown_defaults.get(f.name, f.default)
        if isinstance(default, tuple):
            default = ",".join(map(str, default))
        meta = _metavar(tp)
        flags = [f"--{f.name.replace('_', '-')}"]
        if "_" in f.name:
            flags.append(f"--{f.name}")
        group.add_argument(
            *flags, dest=f.name, default=argparse.SUPPRESS, metavar=meta or "VALUE",
            help=f"{docs.get(f.name, '')} (default: {default})",
        )


def _train_parser(algo_name: str, prog: str) -> argparse.ArgumentParser:
    from algd.algos.registry import get_algo, list_algos

    spec = get_algo(algo_name)
    p = argparse.ArgumentParser(
        prog=prog,
        description=f"Train an agent. Showing the options of --algo {algo_name}: "
        f"{spec.description}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    names = ", ".join(s.name for s in list_algos())
    p.add_argument("--algo", default=argparse.SUPPRESS,
                   help=f"algorithm, one of: {names} (`algd algos` describes them; "
                   "default: algd-vesde)")
    p.add_argument("--preset", default=argparse.SUPPRESS,
                   help="named settings to start from (`algd presets`)")
    _add_dataclass_flags(p.add_argument_group("run"), TrainConfig, {})
    _add_dataclass_flags(p.add_argument_group(f"algorithm ({algo_name})"), spec.config_cls,
                         spec.defaults)
    return p


def resolve_train_args(argv: Sequence[str]) -> tuple[TrainConfig, Any]:
    """Turn ``algd train`` arguments into validated (TrainConfig, algorithm config)."""
    from algd.algos.registry import algo_field_names, get_algo

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--algo")
    pre.add_argument("--preset")
    known, _ = pre.parse_known_args(argv)
    preset_values: dict[str, Any] = {}
    if known.preset:
        preset_values = dict(load_preset(known.preset).values)
    algo_name = known.algo or preset_values.get("algo") or TrainConfig.algo
    spec = get_algo(algo_name)
    args = vars(_train_parser(algo_name, "algd train").parse_args(argv))
    args.pop("preset", None)
    args["algo"] = algo_name
    train_names = {f.name for f in dataclasses.fields(TrainConfig)}
    algo_names = {f.name for f in dataclasses.fields(spec.config_cls)}
    unknown = set(preset_values) - train_names - algo_field_names()
    if unknown:
        raise ConfigError(f"preset {known.preset} sets field(s) no algorithm has: {sorted(unknown)}")
    # a preset may also hold other algorithms' fields (e.g. `paper` sizes both the diffusion
    # policy and the SAC actor); those do not apply to this one
    preset_values = {k: v for k, v in preset_values.items() if k in train_names | algo_names}
    merged = {**preset_values, **args}
    train_cfg = config_from_dict(TrainConfig, {k: v for k, v in merged.items() if k in train_names})
    algo_cfg = spec.make_config({k: v for k, v in merged.items() if k in algo_names})
    train_cfg.validate()
    algo_cfg.validate()
    return train_cfg, algo_cfg


def cmd_train(argv: Sequence[str]) -> int:
    from algd.analysis.plots import format_duration
    from algd.train.loop import Trainer

    train_cfg, algo_cfg = resolve_train_args(argv)
    trainer = Trainer(train_cfg, algo_cfg)
    res = trainer.run()
    s = res.summary
    ok = "satisfied" if s["constraint_satisfied"] else "VIOLATED"
    kind = "discounted " if s["cost_budget_kind"] == "discounted" else ""
    print(
        f"\n{s['algo']} on {s['env']} (seed {s['seed']}): {s['env_steps']} environment steps, "
        f"{s['updates']} updates in {format_duration(s['wall_s'])}\n"
        f"  final evaluation ({s['eval_episodes']} episodes): "
        f"return {s['final_return']:.2f} ± {s['final_return_std']:.2f}, "
        f"{kind}cost {s['final_cost']:.2f} ± {s['final_cost_std']:.2f} "
        f"(limit {s['cost_limit']:g}: {ok})\n"
        f"  untrained policy: return {s['initial_return']:.2f}, cost {s['initial_cost']:.2f}; "
        f"final λ = {s['final_lambda']:.3g}\n"
        f"  run directory: {res.run_dir}\n"
        + (f"  learning curves: {s['plot']}\n" if s.get("plot") else "")
    )
    return 0


def cmd_algos(argv: Sequence[str]) -> int:
    from algd.algos.registry import list_algos

    for spec in list_algos():
        print(f"{spec.name:14s} {spec.description}")
    return 0


def cmd_envs(argv: Sequence[str]) -> int:
    from algd.envs.registry import list_tasks

    for t in list_tasks():
        kind = "discounted" if t.budget == "discounted" else "per episode"
        print(f"{t.name:24s} limit {t.cost_limit:g} ({kind}), T={t.max_episode_steps}  "
              f"{t.description}")
    return 0


def cmd_presets(argv: Sequence[str]) -> int:
    for p in list_presets():
        print(f"{p.name:24s} {p.description}")
    return 0


COMMANDS = {
    "train": (cmd_train, "train an agent (algd train --help)"),
    "algos": (cmd_algos, "list the algorithms"),
    "envs": (cmd_envs, "list the tasks"),
    "presets": (cmd_presets, "list the presets"),
}


def main(argv: Sequence[str] | None = None) -> int:
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
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"algd: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("algd: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
