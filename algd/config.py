"""Typed configuration: the training-run dataclass, field documentation, parsing and presets.

Every configuration is a dataclass whose fields carry a docstring (the string literal right after
the field), which becomes the ``--help`` text of the matching command-line flag. Configs round-trip
through plain dicts (``config.json``) and are checked by ``validate()`` before anything runs.

Presets are YAML files in ``algd/presets/`` (data, not code): a description, optionally an
algorithm and a task, optionally ``extends: OTHER`` (start from another preset's values), and flat
overrides of any training or algorithm field.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import importlib.util
import inspect
import math
import textwrap
import types
import typing
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Sequence, TypeVar, Union, get_args, get_origin

import yaml

T = TypeVar("T")


MAX_UTD = 1_000.0
"""largest accepted update-to-data ratio: beyond it a run would do nothing but update (and a float
like 1e30 would never drain the update credit, so the run would hang)"""

#: TrainConfig fields a resumed run may change (everything else must match the run's config.json:
#: anything else would make it another run)
RESUMABLE_OVERRIDES = ("steps", "progress", "device", "torch_threads", "plot", "checkpoint_every",
                       "compile", "cuda_graph")


class ConfigError(ValueError):
    """A configuration value is invalid; the message says which and what to do."""


class UnknownNameError(ConfigError, KeyError):
    """A name that is not registered (algorithm, task): a :class:`ConfigError` like every other
    bad configuration, and a ``KeyError`` for code that looks names up."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


@dataclass
class TrainConfig:
    """How a training run is set up: task, budget, data collection, evaluation and logging."""

    algo: str = "algd-vesde"
    """algorithm to train (`algd algos` lists them)"""
    env: str = "PointDetour"
    """task to train on (`algd envs` lists them)"""
    seed: int = 0
    """master seed: every random stream (envs, networks, sampling, replay) derives from it"""
    steps: int = 8_000
    """total environment steps, warm-up included"""
    out: str | None = None
    """run directory (default: runs/<env>/<algo>/seed<seed>-<time>)"""
    device: str = "auto"
    """auto (CUDA when present, else CPU), cpu, cuda or cuda:N"""
    num_envs: int = 1
    """parallel training environments (one vectorised step collects num_envs transitions)"""
    warmup_steps: int = 1_000
    """environment steps collected before the first gradient update"""
    warmup_policy: Literal["policy", "uniform"] = "policy"
    """warm-up actions: the untrained policy's sampler (reference) or uniform random"""
    utd: float = 1.0
    """gradient updates per environment step (update-to-data ratio; the paper uses 10)"""
    batch_size: int = 128
    """transitions per gradient update"""
    buffer_size: int = 1_000_000
    """replay capacity (FIFO)"""
    eval_every: int = 1_000
    """environment steps between evaluations (one metrics.csv row each)"""
    eval_episodes: int = 20
    """episodes per evaluation, run on a separate environment"""
    eval_deterministic: bool = False
    """evaluate with the deterministic sampler (zero start, no injected noise) instead of the
    stochastic one the losses train (the reference's choice; see docs/reference_differences.md)"""
    cost_limit: float | None = None
    """override the task's cost budget (per episode, or discounted for discounted tasks)"""
    torch_threads: int | None = 1
    """CPU threads for torch (none: torch's default). One is fastest for the built-in sizes and
    immune to the slowdown of spinning threads on a busy machine; try 2+ for paper-size networks
    on an otherwise idle machine (`algd bench --threads N` measures it)"""
    compile: Literal["auto", "none", "default", "reduce-overhead", "max-autotune"] = "auto"
    """torch.compile the critics and, on a CPU, each update's whole gradient step as one graph
    (reduce-overhead = CUDA graphs on GPU); ~30 s of compilation (~5 s once inductor's disk cache
    has it), then ALGD updates ~3x faster at the built-in sizes and ~1.5x at paper sizes on a
    2-core CPU; `algd bench --compile` measures it on your machine. auto: default on a CPU for
    runs of 20,000 updates or more where torch.compile works, none otherwise (on CUDA the
    update replays as CUDA graphs instead)"""
    cuda_graph: bool = True
    """on a CUDA device, replay each gradient update as a CUDA graph instead of launching its
    hundreds of small kernels one by one: same numbers, ~6x faster updates on an H200 (ignored on
    CPU and with --compile; `algd bench --device cuda --cuda-graph` measures it)"""
    tensorboard: bool = False
    """also write TensorBoard event files (needs `pip install tensorboard`)"""
    progress: bool = True
    """show a progress bar"""
    checkpoint: bool = True
    """write checkpoint.pt (every checkpoint_every steps, on SIGINT/SIGTERM, and at the end)"""
    checkpoint_every: int = 10_000
    """environment steps between periodic checkpoints (0: only on signals and at the end)"""
    keep_best: bool = True
    """also keep best.pt: the policy of the evaluation with the highest return among those whose
    mean cost met the limit, rewritten whenever a later evaluation beats it (`algd eval RUN
    --checkpoint best` re-evaluates it on fresh episodes)"""
    imports: tuple[str, ...] = ()
    """Python modules imported before the run is built: where your own tasks and algorithms are
    registered (saved in config.json, so eval, resume and load_run import them too)"""
    plot: bool = True
    """draw learning curves (and, on 2-D tasks, sampled paths of the final policy) to curves.png"""

    def validate(self) -> None:
        """Raise :class:`ConfigError` for values that cannot work."""
        _positive(self, "steps", "num_envs", "batch_size", "buffer_size", "eval_every",
                  "eval_episodes")
        _non_negative(self, "warmup_steps", "utd", "checkpoint_every")
        if self.utd > MAX_UTD:
            raise ConfigError(
                f"utd must be <= {MAX_UTD:g} gradient updates per environment step, got {self.utd:g} "
                "(the paper uses 10); lower --utd"
            )
        if self.torch_threads is not None and self.torch_threads < 1:
            raise ConfigError(f"torch_threads must be >= 1, got {self.torch_threads}")
        if self.cost_limit is not None and not (0 <= self.cost_limit < math.inf):
            raise ConfigError(f"cost_limit must be >= 0 and finite, got {self.cost_limit}")
        if self.batch_size > self.buffer_size:
            raise ConfigError(
                f"batch_size ({self.batch_size}) is larger than buffer_size ({self.buffer_size}); "
                "lower --batch-size or raise --buffer-size"
            )
        if self.tensorboard and importlib.util.find_spec("tensorboard") is None:
            raise ConfigError("--tensorboard needs the tensorboard package: pip install "
                              "'algd[tensorboard]' (or pip install tensorboard)")
        if self.utd > 0 and max(self.warmup_steps, self.num_envs) < self.batch_size:
            raise ConfigError(
                f"warmup_steps ({self.warmup_steps}) must collect at least batch_size "
                f"({self.batch_size}) transitions before updates start; raise --warmup-steps"
            )


def import_modules(names: Sequence[str]) -> None:
    """Import ``names`` (``imports``: modules that register tasks or algorithms); a module that
    cannot be imported is a :class:`ConfigError`."""
    import importlib

    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            missing = exc.name if isinstance(exc, ModuleNotFoundError) else None
            if missing and not (name == missing or name.startswith(missing + ".")):
                # the module was found: something it imports is missing
                raise ConfigError(f"importing {name!r} (--imports) failed: {exc}, which "
                                  f"{name!r} imports; install it") from None
            raise ConfigError(f"cannot import {name!r} (--imports): {exc}; it must be importable "
                              "(installed, or on PYTHONPATH: for a module in the current "
                              "directory, prefix the command with PYTHONPATH=.)") from None


def imported_by(module: str, imports: Sequence[str]) -> bool:
    """Whether importing ``imports`` (in a fresh process) imports ``module``: algd itself, one of
    them, or a submodule of one."""
    return module.split(".")[0] == "algd" or any(
        module == m or module.startswith(m + ".") for m in imports)


# -- validation helpers ---------------------------------------------------------------------------
def _positive(cfg: Any, *names: str) -> None:
    """Raise :class:`ConfigError` unless every field ``names`` of ``cfg`` is finite and > 0
    (for a config's ``validate()``)."""
    for n in names:
        v = getattr(cfg, n)
        if not (v > 0 and math.isfinite(v)):
            raise ConfigError(f"{n} must be > 0 and finite, got {v}")


def _non_negative(cfg: Any, *names: str) -> None:
    """Raise :class:`ConfigError` unless every field ``names`` of ``cfg`` is finite and >= 0."""
    for n in names:
        v = getattr(cfg, n)
        if not (v >= 0 and math.isfinite(v)):
            raise ConfigError(f"{n} must be >= 0 and finite, got {v}")


def _in_range(cfg: Any, name: str, low: float, high: float, *, low_open: bool = False,
              high_open: bool = False) -> None:
    """Raise :class:`ConfigError` unless field ``name`` of ``cfg`` lies in [low, high] (an end
    excluded where ``low_open`` / ``high_open``)."""
    v = getattr(cfg, name)
    ok_low = v > low if low_open else v >= low
    ok_high = v < high if high_open else v <= high
    if not (ok_low and ok_high):
        lb, hb = ("(" if low_open else "["), (")" if high_open else "]")
        raise ConfigError(f"{name} must be in {lb}{low}, {high}{hb}, got {v}")


positive, non_negative, in_range = _positive, _non_negative, _in_range


# -- field documentation and typing ---------------------------------------------------------------
@lru_cache(maxsize=None)
def field_docs(cls: type) -> dict[str, str]:
    """Map field name → the docstring written under it in the class body."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):  # pragma: no cover - source unavailable
            continue
        body = tree.body[0].body  # type: ignore[attr-defined]
        for node, nxt in zip(body, body[1:]):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def documented(cls: type[T]) -> type[T]:
    """List a config dataclass's fields, defaults and docstrings in its ``__doc__`` (under the
    ``@dataclass``), so ``help(cls)`` and a notebook's ``cls?`` show every option."""
    docs = field_docs(cls)  # type: ignore[arg-type]  # (lru_cache sees a non-Hashable T)
    lines = []
    for f in fields(cls):  # type: ignore[arg-type]
        default = (f.default if f.default is not dataclasses.MISSING else
                   f.default_factory() if f.default_factory is not dataclasses.MISSING else "")
        lines.append(f"    {f.name} = {default!r}\n        {docs.get(f.name, '')}")
    cls.__doc__ = f"{(cls.__doc__ or '').rstrip()}\n\nFields (= default):\n" + "\n".join(lines)
    return cls


documented(TrainConfig)


def resolved_types(cls: type) -> dict[str, Any]:
    """Field name → type of the dataclass ``cls``, with string annotations resolved."""
    return typing.get_type_hints(cls)


def _is_optional(tp: Any) -> tuple[bool, Any]:
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return True, args[0]
    return False, tp


def parse_bool(text: str | bool) -> bool:
    """``true/false``, ``yes/no`` (``y/n``), ``on/off`` or ``1/0``, any case, as a bool; else a
    ValueError."""
    if isinstance(text, bool):
        return text
    t = str(text).strip().lower()
    if t in ("1", "true", "yes", "on", "y"):
        return True
    if t in ("0", "false", "no", "off", "n"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def coerce(tp: Any, value: Any, name: str = "value") -> Any:
    """Convert ``value`` (from YAML, JSON or the command line) to the annotated type ``tp``."""
    optional, inner = _is_optional(tp)
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null")):
        if optional:
            return None
        raise ConfigError(f"{name} cannot be empty")
    try:
        if get_origin(inner) is Literal:
            choices = get_args(inner)
            if value not in choices:
                raise ConfigError(
                    f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}"
                )
            return value
        if get_origin(inner) is tuple:
            items = value if isinstance(value, (list, tuple)) else str(value).split(",")
            (elem, *_rest) = get_args(inner)
            return tuple(coerce(elem, v, name) for v in items if str(v).strip() != "")
        if inner is bool:
            return parse_bool(value)
        if inner is int:
            if isinstance(value, bool):
                raise ValueError("not an integer")
            number = value
            if isinstance(value, str):
                try:
                    return int(value.replace("_", ""))
                except ValueError:
                    pass  # accept "1e5"-style integers below
                try:
                    number = float(value.replace("_", ""))
                except ValueError:
                    raise ValueError("not a number") from None
            if float(number) != int(float(number)):
                raise ValueError("not an integer")
            return int(float(number))
        if inner is float:
            try:
                return float(value)
            except ValueError:
                raise ValueError("not a number") from None
        if inner is str:
            return str(value)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name}: cannot read {value!r} as {getattr(inner, '__name__', inner)} "
                          f"({exc})") from None
    return value


def config_from_dict(cls: type[T], values: dict[str, Any], *, strict: bool = True) -> T:
    """Build a ``cls`` instance from defaults updated with ``values`` (typed, checked names)."""
    hints = resolved_types(cls)
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = set(values) - names
    if unknown and strict:
        hints_ = [f"{k!r}: did you mean {close[0]!r}?" for k in sorted(unknown)
                  if (close := difflib.get_close_matches(k, sorted(names), n=1))]
        raise ConfigError(
            f"unknown {cls.__name__} field(s): {', '.join(sorted(unknown))}"
            + (f" ({'; '.join(hints_)})" if hints_ else "")
        )
    kwargs = {k: coerce(hints[k], v, k) for k, v in values.items() if k in names}
    return cls(**kwargs)


def typed_copy(cfg: T) -> T:
    """A copy of the config dataclass ``cfg`` with every value converted to its annotated type,
    as the command line does: from Python, ``steps="300"`` becomes 300, ``out=Path(...)`` a
    string, a list a tuple; ``steps=300.7`` or ``seed="one"`` is a :class:`ConfigError` naming
    the field instead of a failure deep inside the run."""
    return config_from_dict(type(cfg), {f.name: getattr(cfg, f.name)  # type: ignore[arg-type]
                                        for f in fields(cfg)})  # type: ignore[arg-type]


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """The config dataclass ``cfg`` as a JSON-ready dict (tuples as lists)."""
    out = dataclasses.asdict(cfg)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


# -- presets --------------------------------------------------------------------------------------
PRESET_DIR = Path(__file__).parent / "presets"


@dataclass(frozen=True)
class Preset:
    """A named set of config values in ``algd/presets/NAME.yaml`` (``algd presets``)."""

    name: str
    description: str
    values: dict[str, Any]  #: flat overrides (training and algorithm fields; may set algo/env)
    path: Path


def list_presets() -> list[Preset]:
    """Every preset shipped with algd, by name."""
    return [load_preset(p.stem) for p in sorted(PRESET_DIR.glob("*.yaml"))]


def load_preset(name: str) -> Preset:
    """The preset ``name``; an unknown name is a :class:`ConfigError` that lists the presets."""
    path = PRESET_DIR / f"{name}.yaml"
    if not path.exists():
        known = ", ".join(p.stem for p in sorted(PRESET_DIR.glob("*.yaml")))
        raise ConfigError(f"unknown preset {name!r}; known presets: {known} (`algd presets`)")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"preset {path} must be a mapping")
    description = str(data.pop("description", "")).strip()
    base = data.pop("extends", None)  # another preset whose values this one starts from
    if base is not None:
        if base == name:
            raise ConfigError(f"preset {name!r} extends itself")
        data = {**load_preset(str(base)).values, **data}
    return Preset(name, description, data, path)
