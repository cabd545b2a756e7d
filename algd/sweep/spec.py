"""What a sweep runs: algorithms × tasks × grid values × seeds, one ordinary run per trial.

    sweep = SweepConfig(out="sweeps/rho", algos=("algd-vesde", "algd-ddpm"), seeds=(0, 1, 2),
                        overrides={"steps": 20_000}, grid={"rho": [0.5, 1, 2]})
    for trial in expand_trials(sweep):       # validated configs, one per run directory
        print(trial.id, trial_state(trial, sweep.out))

Each trial is a normal run directory, ``OUT/<env>/<algo>[/<field>=<value>...]/seed<k>``, so
everything that reads runs (``load_run``, ``algd train --resume``, plots and reports) reads a
sweep's trials too. Values resolve as algorithm defaults ← preset ← fixed overrides ← grid values.
A field belongs to the training config or to an algorithm's config; a grid or override field
that an algorithm does not have leaves that algorithm's trials alone (one trial per seed).
Nothing here needs Ray; :mod:`algd.sweep.runner` runs the trials.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import yaml

from algd.config import (
    ConfigError,
    TrainConfig,
    coerce,
    config_from_dict,
    documented,
    import_modules,
    imported_by,
    load_preset,
    resolved_types,
)

MANIFEST = "sweep.json"  #: the sweep-level file: the command, resources and every trial's status
LOG_NAME = "trial.log"  #: a trial's stdout and stderr, inside its run directory
#: the dimensions of a sweep; they have their own options and cannot be fixed or gridded
DIMENSIONS = {"algo": "--algos", "env": "--envs", "seed": "--seeds", "out": "--out"}

TrialState = Literal["new", "done", "resume", "restart"]


@documented
@dataclass
class SweepConfig:
    """A sweep: which trials to run (algorithms × tasks × grid × seeds) and on which resources."""

    out: str | None = None
    """sweep directory: one run directory per trial below it, plus sweep.json (required)"""
    algos: tuple[str, ...] = ()
    """algorithms, comma-separated (`algd algos`) (default: the preset's, else algd-vesde)"""
    envs: tuple[str, ...] = ()
    """tasks, comma-separated (`algd envs`) (default: the preset's, else PointDetour)"""
    seeds: tuple[int, ...] = (0,)
    """seeds, comma-separated"""
    preset: str | None = None
    """named settings every trial starts from (`algd presets`)"""
    retries: int = 2
    """times a failed trial is run again (from its last checkpoint when it has one)"""
    cpus_per_trial: float = 1.0
    """CPUs Ray reserves for each trial; its torch threads = this (at least 1) unless
    --torch-threads says otherwise"""
    gpus_per_trial: float | None = None
    """GPUs (or a fraction of one) reserved for each trial (default: 0 on a cluster without
    GPUs, else its GPUs shared evenly among the trials that run at once)"""
    address: str | None = None
    """address of a running Ray cluster (default: start a local Ray for this sweep)"""
    num_cpus: int | None = None
    """CPUs of the local Ray instance (default: all of this machine's)"""
    progress: bool = True
    """show a live progress bar over the sweep's environment steps"""
    grid: dict[str, Any] = field(default_factory=dict)
    """field → list of values; one trial per combination (CLI: --grid FIELD=V1,V2,...)"""
    overrides: dict[str, Any] = field(default_factory=dict)
    """field → value fixed for every trial (CLI: --FIELD VALUE)"""
    imports: tuple[str, ...] = ()
    """Python modules the sweep and every trial import first: where your own tasks and
    algorithms are registered (each must be importable on every node, e.g. installed or on
    PYTHONPATH)"""

    def __post_init__(self) -> None:
        # from Python, a single value where a tuple is meant: "algd-vesde", "a,b", 0, a Path
        for name in ("algos", "envs", "imports"):
            value = getattr(self, name)
            if isinstance(value, str):
                setattr(self, name, tuple(v.strip() for v in value.split(",") if v.strip()))
        if isinstance(self.seeds, int):
            self.seeds = (self.seeds,)
        elif isinstance(self.seeds, str):
            self.seeds = tuple(int(v) for v in self.seeds.split(",") if v.strip())
        if isinstance(self.out, Path):
            self.out = str(self.out)

    def validate(self) -> None:
        """Raise :class:`ConfigError` for a sweep that cannot run."""
        if not self.out:
            raise ConfigError("a sweep needs a directory: pass --out DIR (or `out:` in the file)")
        for name in ("algos", "envs", "seeds"):
            values = getattr(self, name)
            if len(set(values)) != len(values):
                raise ConfigError(f"{name} lists a value twice: {','.join(map(str, values))}")
        if not self.seeds:
            raise ConfigError("seeds is empty; pass --seeds 0,1,2")
        if any(s < 0 for s in self.seeds):
            raise ConfigError(f"seeds must be >= 0, got {','.join(map(str, self.seeds))}")
        if self.retries < 0:
            raise ConfigError(f"retries must be >= 0, got {self.retries}")
        if not self.cpus_per_trial > 0:
            raise ConfigError(f"cpus_per_trial must be > 0, got {self.cpus_per_trial}")
        g = self.gpus_per_trial
        if g is not None and (g < 0 or (g > 1 and g != int(g))):
            raise ConfigError(f"gpus_per_trial must be a fraction in [0, 1] or a whole number, "
                              f"got {g}")
        if self.num_cpus is not None and self.num_cpus < 1:
            raise ConfigError(f"num_cpus must be >= 1, got {self.num_cpus}")
        for name in [*self.grid, *self.overrides]:
            if name in DIMENSIONS:
                raise ConfigError(f"{name} is a dimension of the sweep; set it with "
                                  f"{DIMENSIONS[name]}, not as a field or grid")

    @property
    def torch_threads(self) -> int | None:
        """Torch threads of each trial: an explicit ``torch_threads`` override (None: torch's
        default), else ``cpus_per_trial`` (at least 1). (A grid over it sets it per trial.)"""
        if "torch_threads" in self.overrides:
            return coerce(int | None, self.overrides["torch_threads"], "torch_threads")
        return max(1, int(self.cpus_per_trial))


@dataclass
class Trial:
    """One run of a sweep: its directory (relative to the sweep's), its grid values, its configs."""

    id: str  #: the run directory relative to the sweep directory, e.g. PointDetour/algd-ddpm/seed1
    algo: str
    env: str
    seed: int
    grid: dict[str, Any]  #: the grid values that apply to this trial's algorithm
    train: TrainConfig
    algo_cfg: Any
    imports: tuple[str, ...] = ()  #: modules the worker imports first (the sweep's ``imports``)

    def run_dir(self, out: Path | str) -> Path:
        return Path(out) / self.id


# -- reading a sweep --------------------------------------------------------------------------------
SWEEP_FIELDS = tuple(f.name for f in dataclasses.fields(SweepConfig))


def load_sweep_file(path: Path | str) -> dict[str, Any]:
    """Read a sweep YAML file: sweep keys (algos, seeds, grid, ...) and any config field."""
    path = Path(path)
    if path.suffix not in (".yaml", ".yml"):
        raise ConfigError(f"{path}: a sweep file is YAML (.yaml or .yml)")
    if not path.is_file():
        raise ConfigError(f"sweep file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must be a mapping of sweep keys and config fields")
    if not isinstance(data.get("grid", {}), dict):
        raise ConfigError(f"{path}: grid must be a mapping field → list of values")
    return data


def sweep_from_values(values: dict[str, Any]) -> SweepConfig:
    """Build a :class:`SweepConfig` from flat values: sweep keys, ``grid``, and config fields
    (anything else, with dashes read as underscores) as fixed overrides."""
    sweep_values: dict[str, Any] = {}
    overrides: dict[str, Any] = dict(values.get("overrides") or {})
    for key, value in values.items():
        name = key.replace("-", "_")
        if name in ("grid", "overrides"):
            continue
        if name in SWEEP_FIELDS:
            sweep_values[name] = value
        else:
            overrides[name] = value
    grid = {k.replace("-", "_"): v for k, v in (values.get("grid") or {}).items()}
    sweep = config_from_dict(SweepConfig, sweep_values)
    sweep.grid, sweep.overrides = grid, overrides
    if not sweep.out:  # a misspelt `out:` would otherwise be reported as a missing one
        from algd.algos.registry import algo_field_names

        known = set(SWEEP_FIELDS) | {f.name for f in dataclasses.fields(TrainConfig)} \
            | algo_field_names()
        unknown = sorted(set(overrides) - known)
        if unknown:
            close = difflib.get_close_matches("out", unknown, n=1)
            hint = f" (is {close[0]!r} meant to be 'out'?)" if close else ""
            raise ConfigError(f"unknown key(s) {', '.join(map(repr, unknown))}{hint}; a sweep "
                              "needs a directory: pass --out DIR (or `out:` in the file)")
    sweep.validate()
    return sweep


# -- trials -----------------------------------------------------------------------------------------
def expand_trials(sweep: SweepConfig) -> list[Trial]:
    """Every trial of ``sweep`` with validated configs, seed-major (all seed-0 trials first, so
    early results cover every configuration)."""
    from algd.algos.registry import algo_field_names, get_algo
    from algd.envs.registry import get_task

    sweep.validate()
    import_modules(sweep.imports)
    preset = dict(load_preset(sweep.preset).values) if sweep.preset else {}
    algos = sweep.algos or (str(preset.get("algo") or TrainConfig.algo),)
    envs = sweep.envs or (str(preset.get("env") or TrainConfig.env),)
    specs = {a: get_algo(a) for a in algos}  # unknown names: UnknownNameError, a ConfigError
    for env in envs:
        get_task(env)
    _check_workers_can_register(sweep.imports, algos, envs)

    train_types = resolved_types(TrainConfig)
    algo_types = {a: resolved_types(s.config_cls) for a, s in specs.items()}
    # as `algd train --preset`: a preset may size other algorithms too (e.g. `paper` sets SAC's
    # actor_hidden); fields of algorithms outside this sweep do not apply
    others = algo_field_names() - set(train_types).union(*map(set, algo_types.values()))
    preset = {k: v for k, v in preset.items() if k not in others}
    fixed = {k: v for k, v in {**preset, **sweep.overrides}.items() if k not in ("algo", "env")}

    def owner_types(name: str) -> dict[str, Any]:
        if name in train_types:
            return train_types
        for types_ in algo_types.values():
            if name in types_:
                return types_
        raise ConfigError(f"unknown field {name!r}: it is neither a training option nor an "
                          f"option of {', '.join(algos)} (see `algd train --algo NAME --help`)")

    for name in fixed:
        owner_types(name)
    grid = {name: _grid_values(name, owner_types(name)[name], values)
            for name, values in sweep.grid.items()}

    trials: list[Trial] = []
    for seed in sweep.seeds:
        for env in envs:
            for algo in algos:
                mine = {k: v for k, v in grid.items() if k in train_types or k in algo_types[algo]}
                for combo in itertools.product(*mine.values()):
                    point = dict(zip(mine, combo))
                    trials.append(_make_trial(sweep, algo, env, seed, point, fixed,
                                              specs[algo], train_types))
    return trials


def _grid_values(name: str, tp: Any, values: Any) -> list[Any]:
    """Parse one grid axis: a list, or a string "v1,v2" (tuple fields: "1,2;3,4")."""
    if isinstance(values, str):
        is_tuple = "tuple" in str(tp)
        values = [v for v in values.split(";" if is_tuple else ",") if v.strip() != ""]
    if not isinstance(values, (list, tuple)) or not values:
        raise ConfigError(f"grid {name} needs a list of values, e.g. --grid {name}=V1,V2")
    parsed = [coerce(tp, v, name) for v in values]
    if len({_path_value(v) for v in parsed}) != len(parsed):
        raise ConfigError(f"grid {name} lists a value twice: {values}")
    return parsed


def _make_trial(sweep: SweepConfig, algo: str, env: str, seed: int, point: dict[str, Any],
                fixed: dict[str, Any], spec: Any, train_types: dict[str, Any]) -> Trial:
    parts = [env, algo, *(f"{k}={_path_value(v)}" for k, v in point.items()), f"seed{seed}"]
    trial_id = "/".join(parts)
    values = {**fixed, **point}
    algo_names = {f.name for f in dataclasses.fields(spec.config_cls)}
    train_values = {k: v for k, v in values.items() if k in train_types}
    train_values.setdefault("torch_threads", sweep.torch_threads)
    train_values.update(algo=algo, env=env, seed=seed, out=str(Path(sweep.out or ".") / trial_id),
                        progress=False,  # a trial's output goes to its log: no bar there
                        imports=tuple(sweep.imports))  # eval/resume of the trial import them
    try:
        train = config_from_dict(TrainConfig, train_values)
        algo_cfg = spec.make_config({k: v for k, v in values.items() if k in algo_names})
        train.validate()
        algo_cfg.validate()
    except ConfigError as exc:
        raise ConfigError(f"trial {trial_id}: {exc}") from None
    return Trial(trial_id, algo, env, seed, point, train, algo_cfg, tuple(sweep.imports))


def _check_workers_can_register(imports: Sequence[str], algos: Sequence[str],
                                envs: Sequence[str]) -> None:
    """Refuse tasks and algorithms that a trial's fresh worker process would not know: those
    registered outside algd by a module the sweep does not import (above all a script's
    ``__main__``, which no worker runs)."""
    from algd.algos.registry import algo_origin
    from algd.envs.registry import task_origin

    for kind, name, origin in [*(("algorithm", a, algo_origin(a)) for a in algos),
                               *(("task", e, task_origin(e)) for e in envs)]:
        if imported_by(origin, imports):
            continue
        where = "this script (__main__)" if origin == "__main__" else f"module {origin!r}"
        raise ConfigError(
            f"{kind} {name!r} was registered by {where}, which the sweep's worker processes do "
            "not run, so every trial would fail with 'unknown "
            f"{kind}'. Register it in an importable module and name that module in imports "
            "(--imports MODULE, or imports=(...) in SweepConfig)"
        )


def _path_value(v: Any) -> str:
    """A grid value as a readable path component: 0.5, 16-16, true, vesde."""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (tuple, list)):
        return "-".join(_path_value(x) for x in v)
    return str(v).replace("/", "_").replace(" ", "_")


# -- what is on disk already ------------------------------------------------------------------------
def trial_state(trial: Trial, out: Path | str) -> TrialState:
    """What running ``trial`` means now: ``new`` (nothing there), ``done`` (finished with enough
    steps), ``resume`` (a checkpoint to continue from) or ``restart`` (killed before its first
    checkpoint: its files are cleared and it starts again).

    Raises :class:`ConfigError` when the directory holds something else: files that are not a
    run, a run with a different configuration, or a finished run that cannot be extended.
    """
    from algd.train.checkpoint import CHECKPOINT_NAME, read_config
    from algd.train.run_lock import LOCK_NAME

    run_dir = trial.run_dir(out)
    names = {p.name for p in run_dir.iterdir()} - {LOG_NAME, LOCK_NAME} if run_dir.is_dir() \
        else set()
    if not names:
        return "new"
    if "config.json" not in names:
        raise ConfigError(f"{run_dir} holds files but no algd run; move them away or choose "
                          "another --out")
    _check_same_run(trial, run_dir, read_config(run_dir))
    summary = _read_summary(run_dir)
    has_checkpoint = CHECKPOINT_NAME in names
    if summary is not None and summary.get("env_steps", 0) >= trial.train.steps:
        return "done"
    if has_checkpoint:
        return "resume"
    if summary is not None:
        raise ConfigError(f"{run_dir} finished at {summary.get('env_steps')} steps without a "
                          f"checkpoint, so it cannot be extended to {trial.train.steps}; choose "
                          "another --out")
    return "restart"


def _check_same_run(trial: Trial, run_dir: Path, config: dict[str, Any]) -> None:
    """Refuse to continue a run whose configuration differs from the trial's (a changed fixed
    value would otherwise mix two experiments in one directory)."""
    from algd.train.loop import config_difference

    diff = config_difference(config, trial.train, trial.algo_cfg)
    if diff is not None:
        key, saved, value = diff
        raise ConfigError(
            f"{run_dir} holds a run with {key}={saved!r}, but this sweep asks for "
            f"{key}={value!r}; choose another --out (or put {key} in a --grid)"
        )


def _read_summary(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "summary.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None  # torn by a crash: the run finishes again from its checkpoint
