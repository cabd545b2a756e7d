"""``algd bench``: how fast the update runs, measured against this machine's own limit.

Everything is measured in the same run, so ratios are meaningful even on a noisy machine:

* **peak**: fp32 matrix-multiply throughput (a large square GEMM) on the chosen device/threads,
  timed in the same interleaved rounds as the updates (see :func:`interleaved_median_times`);
  on a CPU both torch's GEMM (MKL) and oneDNN's are timed and the faster is the peak
  (:mod:`algd.nets.gemm`: on AMD CPUs oneDNN's is ~2x faster);
* **updates**: per algorithm and size preset, gradient updates/s, FLOPs per update (counted by
  intercepting every aten op with torch's FLOP formulas) and efficiency = achieved FLOP/s ÷ peak;
  the ratio of each algorithm's update time to SAC-Lag's (when registered) at the same sizes;
* **act**: action-selection latency at batch 1 and batch = num_envs, for several K;
* **end to end**: environment steps/s of a short training run at UTD 1 and 10 (the built-in task,
  plus a MuJoCo task when installed);
* **mm-only**: the update's matrix products replayed alone (:func:`record_matmuls`), timed in
  the same rounds: the efficiency the update would reach if everything else were free;
* eager vs ``torch.compile`` when ``--compile`` is given.

Every timing is the median of ``repeats`` blocks after warm-up. Run ``python -m algd.bench`` or
``algd bench``; ``--json FILE`` writes the numbers (``peak_gflops`` and per algorithm
``updates_per_s``, ``gflop_per_update``, ``efficiency``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, ContextManager, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from algd.algos.base import EnvInfo
from algd.algos.registry import get_algo, list_algos
from algd.buffers.replay import ReplayBuffer
from algd.config import load_preset
from algd.nets import gemm
from algd.train.cpu_runtime import flush_denormals, tune_glibc_malloc
from algd.train.cuda_graph import GraphedUpdate
from algd.train.seeding import resolve_device

#: size presets: name → (preset file or None for dataclass defaults, batch size)
SIZES = {"builtin": (None, 128), "paper": ("paper", 256)}
#: a HalfCheetah-like problem for the update benchmark (obs 17, act 6)
OBS_DIM, ACT_DIM = 17, 6


def _linear_flops(x: Any, weight: Any, *args: Any, **kwargs: Any) -> int:
    """oneDNN's ``_linear_pointwise(x, W[out, in], ...)``: ``2 · rows(x) · in · out``."""
    return 2 * x.numel() * weight.shape[0]


#: FLOP formulas of the matmul ops torch's registry lacks (the oneDNN GEMM of algd.nets.gemm)
_EXTRA_FLOPS: dict[Any, Callable[..., int]] = {}
if gemm.onednn_available():
    _EXTRA_FLOPS[torch.ops.mkldnn._linear_pointwise] = _linear_flops


def _op_flops(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> int | None:
    """FLOPs of one aten call, None for ops without a formula (everything but products)."""
    packet = func._overloadpacket
    if packet in flop_registry:
        return int(flop_registry[packet](*args, **kwargs, out_val=out))
    if packet in _EXTRA_FLOPS:
        return int(_EXTRA_FLOPS[packet](*args, **kwargs))
    return None


class FlopCounter(TorchDispatchMode):
    """Counts the FLOPs of every aten op that torch has a formula for (matmuls, convolutions),
    and of oneDNN's linear (:mod:`algd.nets.gemm`).

    Unlike ``torch.utils.flop_counter.FlopCounterMode`` it installs no module hooks, so it works
    around ``torch.autograd.grad`` calls on leaf tensors.
    """

    def __init__(self) -> None:
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        self.flops += _op_flops(func, args, kwargs, out) or 0
        return out


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of the matrix products ``fn()`` runs (torch's flop formulas, counted under a dispatch
    mode; element-wise work is not counted): the numerator of every efficiency."""
    with FlopCounter() as counter:
        fn()
    return counter.flops


class MatmulRecorder(TorchDispatchMode):
    """Records every matrix product (every op with a FLOP formula) a function runs, with its
    operands, so that :meth:`replay` can run the products alone, in the same order."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[Any, tuple[Any, ...], dict[str, Any]]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if _op_flops(func, args, kwargs, out) is not None:
            operands = tuple(a.detach() if isinstance(a, torch.Tensor) else a for a in args)
            self.calls.append((func, operands, dict(kwargs)))
        return out

    def replay(self) -> None:
        for func, args, kwargs in self.calls:
            func(*args, **kwargs)


def record_matmuls(fn: Callable[[], Any]) -> MatmulRecorder:
    """Run ``fn`` once and return its matrix products, ready to :meth:`~MatmulRecorder.replay`.

    The replay is the update's *matmul ceiling*: the same products on the same operand shapes and
    strides in the same order, without anything else. FLOPs ÷ its time ÷ peak is the efficiency
    the update would reach if everything but its matrix products were free.
    """
    with MatmulRecorder() as recorder:
        fn()
    return recorder


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved_median_times(fns: dict[str, Callable[[], Any]], device: torch.device, *,
                             warmup: int = 3, repeats: int = 5,
                             min_block_s: float = 0.2) -> dict[str, float]:
    """Median seconds per call of each function, timed in interleaved rounds.

    Each round times one block (≥ ``min_block_s``) of every function in turn, so a slowdown of a
    shared machine that lasts a few seconds hits all of them alike instead of one; ratios between
    the functions (efficiency against the peak, ALGD ÷ SAC-Lag) stay meaningful.
    """
    calls = {}
    for key, fn in fns.items():
        for _ in range(warmup):
            fn()
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        calls[key] = max(1, int(min_block_s / max(time.perf_counter() - t0, 1e-6)))
    times: dict[str, list[float]] = {key: [] for key in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(calls[key]):
                fn()
            _sync(device)
            times[key].append((time.perf_counter() - t0) / calls[key])
    return {key: statistics.median(t) for key, t in times.items()}


def median_time(fn: Callable[[], Any], device: torch.device, *, warmup: int = 3,
                repeats: int = 5, min_block_s: float = 0.2) -> float:
    """Median seconds per call over ``repeats`` blocks (each block ≥ ``min_block_s``)."""
    return interleaved_median_times({"fn": fn}, device, warmup=warmup, repeats=repeats,
                                    min_block_s=min_block_s)["fn"]


def peak_matmul(device: torch.device, n: int | None = None,
                backend: str = "torch") -> tuple[Callable[[], Any], int]:
    """An ``n × n`` fp32 GEMM and its FLOPs: the machine's practical peak.

    ``n`` defaults to 2048 on a CPU and 8192 on a GPU (smaller products leave a GPU idle).
    ``backend``: ``"torch"`` (``a @ b``, at the precision torch is set to use) or ``"onednn"``
    (CPU only, :mod:`algd.nets.gemm`).
    """
    n = n or (8192 if device.type == "cuda" else 2048)
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    if backend == "onednn":
        return (lambda: gemm.onednn_matmul(a, b)), 2 * n**3
    return (lambda: a @ b), 2 * n**3


def peak_backends(device: torch.device) -> list[str]:
    """The GEMMs the peak is measured with: torch's, and oneDNN's on a CPU that has it. The
    peak is the faster: efficiency is measured against what the machine can do, whichever
    library gets there."""
    return ["torch", "onednn"] if device.type == "cpu" and gemm.onednn_available() else ["torch"]


#: the pseudo compile mode of whole-update CUDA graphs (``--cuda-graph``)
GRAPH_MODE = "cuda-graph"

#: SAC-Lag with ALGD's critic bank (E = 4 cost critics, UCB k = 1): the "same critic sizes"
#: baseline of the ALGD ÷ SAC-Lag ratio
SAME_CRITICS = ("sac-lag", {"cost_ensemble_size": 4, "ucb_k": 1.0}, "sac-lag[E=4]")


def _algo_config(algo: str, size: str, compile_mode: str,
                 overrides: dict[str, Any] | None = None) -> tuple[Any, int]:
    preset, batch = SIZES[size]
    spec = get_algo(algo)
    names = {f for f in spec.config_cls.__dataclass_fields__}
    values = {}
    if preset is not None:
        values = {k: v for k, v in load_preset(preset).values.items() if k in names}
    cfg = spec.make_config({**values, **(overrides or {})})
    return cfg, batch


def _make_agent(algo: str, cfg: Any, device: torch.device, compile_mode: str,
                obs_dim: int = OBS_DIM):
    info = EnvInfo(obs_dim, ACT_DIM, -np.ones(ACT_DIM, np.float32), np.ones(ACT_DIM, np.float32),
                   cost_threshold=10.0)
    agent = get_algo(algo).agent_cls(info, cfg, device)
    if compile_mode not in ("none", GRAPH_MODE):
        agent.compile_modules(compile_mode)
    return agent


def _filled_buffer(device: torch.device, n: int = 4096, obs_dim: int = OBS_DIM) -> ReplayBuffer:
    rng = np.random.default_rng(0)
    buf = ReplayBuffer(n, obs_dim, ACT_DIM, device, seed=0)
    buf.add(rng.normal(size=(n, obs_dim)), rng.uniform(-1, 1, (n, ACT_DIM)), rng.normal(size=n),
            rng.uniform(size=n), rng.normal(size=(n, obs_dim)), np.zeros(n))
    return buf


@dataclass
class UpdateResult:
    """One timed update: an algorithm at one size preset and compile mode."""

    algo: str
    size: str
    compile: str
    updates_per_s: float
    gflop_per_update: float
    efficiency: float  #: achieved FLOP/s ÷ measured peak
    ms_per_update: float
    #: efficiency of the update's matrix products replayed alone (None: not measured)
    matmul_ceiling: float | None = None


@dataclass
class UpdateCase:
    """One timed update: an agent warmed up (and compiled or captured) on a fixed batch."""

    label: str
    size: str
    compile: str
    run: Callable[[], Any]
    flops: int
    matmuls: MatmulRecorder | None = None  #: the products alone (eager cases)
    agent: Any = None  #: the agent whose update ``run`` times

    def result(self, seconds: float, peak_gflops: float,
               matmul_seconds: float | None = None) -> UpdateResult:
        gflop = self.flops / 1e9
        ceiling = None if matmul_seconds is None else gflop / matmul_seconds / peak_gflops
        return UpdateResult(self.label, self.size, self.compile, 1.0 / seconds, gflop,
                            gflop / seconds / peak_gflops, seconds * 1e3, ceiling)


def prepare_update(algo: str, size: str, device: torch.device, compile_mode: str = "none",
                   overrides: dict[str, Any] | None = None,
                   label: str | None = None, obs_dim: int = OBS_DIM) -> UpdateCase:
    """Build, warm up and FLOP-count one algorithm's update (raises if compilation fails);
    ``obs_dim`` is the observation size (default: HalfCheetah's 17; the action is 6-wide)."""
    torch.manual_seed(0)
    cfg, batch_size = _algo_config(algo, size, compile_mode, overrides)
    # compiled only after the FLOPs are counted: counting runs the update under a dispatch mode,
    # and a compiled function once called under one stays slow (measured: torch 2.13, CPU)
    agent = _make_agent(algo, cfg, device, "none", obs_dim)
    buf = _filled_buffer(device, obs_dim=obs_dim)
    batch = buf.sample(batch_size)
    agent.update(batch)  # warm-up
    flops = count_flops(lambda: agent.update(batch))  # eager: a replayed graph hides its ops
    matmuls = record_matmuls(lambda: agent.update(batch)) if compile_mode == "none" else None
    if compile_mode not in ("none", GRAPH_MODE):
        agent.compile_modules(compile_mode)
        for _ in range(3):  # compilation
            agent.update(batch)
    update: Callable[[Any], Any] = agent.update
    if compile_mode == GRAPH_MODE:
        graphed = GraphedUpdate(agent)
        for _ in range(graphed.warmup + graphed.period):  # warm up, then capture every phase
            graphed(batch)
        update = graphed
    return UpdateCase(label or algo, size, compile_mode, lambda: update(batch), flops, matmuls,
                      agent)


def bench_act(device: torch.device, steps_list=(1, 5, 10), batches=(1, 16),
              repeats: int = 5) -> list[dict[str, Any]]:
    """Latency of one action draw (stochastic chain) of ALGD-VESDE at paper policy size.

    Timed under ``torch.inference_mode``, as the trainer and ``act_np`` draw actions."""
    out = []
    for k in steps_list:
        cfg, _ = _algo_config("algd-vesde", "paper", "none")
        cfg.diffusion_steps = k
        agent = _make_agent("algd-vesde", cfg, device, "none")

        def draw(obs: torch.Tensor, agent: Any = agent) -> torch.Tensor:
            with torch.inference_mode():
                return agent.act(obs)

        for b in batches:
            obs = torch.randn(b, OBS_DIM, device=device)
            t = median_time(partial(draw, obs), device, repeats=repeats, min_block_s=0.1)
            out.append({"K": k, "batch": b, "ms": t * 1e3})
    return out


def bench_env(num_envs_list=(1, 16, 256), steps: int = 2000) -> list[dict[str, Any]]:
    """Raw PointDetour throughput with random actions (environment steps per second)."""
    from algd.envs.point_detour import PointDetourVec

    out = []
    for n in num_envs_list:
        env = PointDetourVec(n)
        env.reset(seed=0)
        actions = np.random.default_rng(0).uniform(-1, 1, (n, 2))
        t = median_time(partial(env.step, actions), torch.device("cpu"), repeats=3,
                        min_block_s=0.1)
        out.append({"env": "PointDetour", "num_envs": n, "steps_per_s": n / t})
    return out


def bench_end_to_end(env: str, algo: str, utd: float, steps: int, device: str,
                     threads: int | None) -> float | None:
    """Environment steps/s of a short real training run after warm-up (None if unavailable)."""
    import tempfile

    from algd.config import TrainConfig
    from algd.envs.registry import get_task
    from algd.train.loop import Trainer

    try:
        get_task(env)
    except KeyError:
        return None
    warm = 300
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(algo=algo, env=env, steps=warm + steps, warmup_steps=warm,
                          batch_size=128, utd=utd, eval_every=10**9, eval_episodes=1,
                          progress=False, plot=False, checkpoint=False, device=device,
                          torch_threads=threads, out=f"{tmp}/run")
        try:
            trainer = Trainer(cfg, get_algo(algo).make_config())
            trainer.run()
        except Exception:  # noqa: BLE001 - a missing simulator: report as unavailable
            return None
    rows = trainer.rows
    # the last row covers the post-warm-up steps (one row at step 0, one at the end)
    return float(rows[-1]["env_steps_per_s"]) if len(rows) > 1 else None


@dataclass
class BenchReport:
    """Everything one ``algd bench`` run measured: the peak, the updates, action latency and
    environment throughput (:meth:`table` prints it, :meth:`to_json` is ``--json``)."""

    device: str
    threads: int
    torch: str
    machine: str
    peak_gflops: float  #: the best of peak_by_gemm
    updates: list[UpdateResult] = field(default_factory=list)
    act: list[dict[str, Any]] = field(default_factory=list)
    env: list[dict[str, Any]] = field(default_factory=list)
    end_to_end: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  #: compiled paths that did not build
    #: the large square GEMM's GFLOP/s per library (torch's; oneDNN's on a CPU)
    peak_by_gemm: dict[str, float] = field(default_factory=dict)
    gemm: str = "torch"  #: the GEMM the ensembles' products ran on (algd.nets.gemm)
    obs_dim: int = OBS_DIM  #: observation width of the timed updates' batches (action: ACT_DIM)

    def ratio_to(self, baseline: str) -> dict[tuple[str, str, str], float]:
        """Update time over ``baseline``'s at the same size and compile mode, per
        ``(algo, size, compile)``."""
        base = {(u.size, u.compile): u.ms_per_update for u in self.updates if u.algo == baseline}
        return {(u.algo, u.size, u.compile): u.ms_per_update / base[(u.size, u.compile)]
                for u in self.updates if (u.size, u.compile) in base}

    def to_json(self) -> dict[str, Any]:
        """The report as ``--json`` writes it: ``peak_gflops`` and, per algorithm,
        ``updates_per_s``, ``gflop_per_update`` and ``efficiency`` (issue 7's fields), among
        others."""
        algos: dict[str, Any] = {}
        for u in self.updates:
            algos.setdefault(u.algo, {})[f"{u.size}/{u.compile}"] = {
                "updates_per_s": u.updates_per_s, "gflop_per_update": u.gflop_per_update,
                "efficiency": u.efficiency, "ms_per_update": u.ms_per_update,
                "matmul_ceiling": u.matmul_ceiling,
            }
        # flat summary at the paper size, eager: the numbers the issue asks for
        summary = {u.algo: {"updates_per_s": u.updates_per_s,
                            "gflop_per_update": u.gflop_per_update, "efficiency": u.efficiency,
                            "matmul_ceiling": u.matmul_ceiling}
                   for u in self.updates if u.size == "paper" and u.compile == "none"}
        return {"device": self.device, "threads": self.threads, "torch": self.torch,
                "machine": self.machine, "peak_gflops": self.peak_gflops,
                "peak_gflops_by_gemm": self.peak_by_gemm, "gemm": self.gemm,
                "obs_dim": self.obs_dim, "act_dim": ACT_DIM, "algorithms": summary,
                "updates": algos, "act": self.act, "env": self.env,
                "end_to_end": self.end_to_end, "failures": self.failures}

    def _peak_line(self) -> str:
        line = f"fp32 matmul peak: {self.peak_gflops:.1f} GFLOP/s"
        if len(self.peak_by_gemm) > 1:
            line += " (best of " + ", ".join(f"{name} {v:.1f}" for name, v in
                                             self.peak_by_gemm.items()) + ")"
        return line + f"; ensemble products on {self.gemm}"

    def table(self) -> str:
        """The human-readable report ``algd bench`` prints."""
        lines = [f"device {self.device}, {self.threads} threads, torch {self.torch}, "
                 f"{self.machine}", self._peak_line(),
                 f"updates on batches of {self.obs_dim}-wide observations and "
                 f"{ACT_DIM}-wide actions", "",
                 f"{'algorithm':12s} {'size':8s} {'compile':15s} {'ms/update':>10s} "
                 f"{'updates/s':>10s} {'GFLOP/upd':>10s} {'GFLOP/s':>9s} {'eff.':>6s} "
                 f"{'mm-only':>7s} {'÷SAC-Lag':>8s}"]
        names = {u.algo for u in self.updates}
        baseline = SAME_CRITICS[2] if SAME_CRITICS[2] in names else "sac-lag"
        ratios = self.ratio_to(baseline)
        for u in self.updates:
            r = ratios.get((u.algo, u.size, u.compile))
            lines.append(
                f"{u.algo:12s} {u.size:8s} {u.compile:15s} {u.ms_per_update:10.2f} "
                f"{u.updates_per_s:10.1f} {u.gflop_per_update:10.3f} "
                f"{u.gflop_per_update * u.updates_per_s:9.1f} {u.efficiency:6.1%} "
                f"{(f'{u.matmul_ceiling:.1%}' if u.matmul_ceiling else '-'):>7s} "
                f"{(f'{r:.2f}x' if r else '-'):>8s}")
        if self.failures:
            lines += ["", "not measured:"] + [f"  {f}" for f in self.failures]
        if self.act:
            lines += ["", "action selection (ALGD-VESDE, paper policy size, stochastic chain, "
                          "inference mode):"]
            lines += [f"  K={a['K']:2d} batch={a['batch']:3d}: {a['ms']:.3f} ms" for a in self.act]
        if self.env:
            lines += ["", "built-in task, random actions:"]
            lines += [f"  PointDetour num_envs={e['num_envs']:4d}: {e['steps_per_s']:12,.0f} steps/s"
                      for e in self.env]
        if self.end_to_end:
            lines += ["", "end to end (env steps/s after warm-up, batch 128):"]
            for e in self.end_to_end:
                v = e["env_steps_per_s"]
                lines.append(f"  {e['env']:22s} {e['algo']:11s} utd {e['utd']:>4g}: "
                             + (f"{v:8.1f}" if v is not None else "unavailable"))
        what = ("SAC-Lag with ALGD's 4-member cost ensemble and UCB k = 1"
                if baseline != "sac-lag" else "SAC-Lag's own single cost critic")
        lines += ["", f"÷SAC-Lag: update time over {baseline} at the same sizes ({what})",
                  "mm-only: efficiency of the update's matrix products replayed alone (same "
                  "shapes, order and operands): the ceiling if everything else were free"]
        return "\n".join(lines)


def run_bench(algos: list[str] | None = None, sizes: list[str] | None = None,
              device: str = "cpu", threads: int | None = None, compile_modes=("none",),
              repeats: int = 5, act: bool = True, end_to_end: bool = True,
              e2e_steps: int = 500, progress: bool = True,
              obs_dim: int = OBS_DIM) -> BenchReport:
    """Measure the peak and every requested update in interleaved rounds, then action latency
    and end-to-end throughput; ``None`` for ``algos``/``sizes`` means all registered algorithms
    and every size preset; ``obs_dim`` is the updates' observation width (default HalfCheetah's
    17; Safety-Gymnasium's Point tasks have 60). What ``algd bench`` runs (:func:`main` parses
    its options)."""
    if threads is not None:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    if dev.type == "cpu":
        tune_glibc_malloc()  # as the trainer does
    with flush_denormals(dev.type == "cpu"):  # as the trainer's loop does
        return _run_bench(dev, algos, sizes, threads, compile_modes, repeats, act, end_to_end,
                          e2e_steps, progress, obs_dim)


def _run_bench(dev: torch.device, algos: list[str] | None, sizes: list[str] | None,
               threads: int | None, compile_modes, repeats: int, act: bool, end_to_end: bool,
               e2e_steps: int, progress: bool, obs_dim: int) -> BenchReport:
    device = str(dev)
    algos = algos or [a.name for a in list_algos()]
    sizes = sizes or list(SIZES)
    say = print if progress else (lambda *a, **k: None)
    cases: list[UpdateCase] = []
    failures: list[str] = []  #: compiled paths that did not build

    def prepare(algo: str, size: str, mode: str, overrides: dict[str, Any] | None = None,
                label: str | None = None) -> None:
        say(f"update: {label or algo} at {size} sizes ({mode}): build and warm up ...", flush=True)
        try:
            cases.append(prepare_update(algo, size, dev, mode, overrides, label, obs_dim))
        except Exception as exc:  # noqa: BLE001 - a compiler failure is a finding
            if mode == "none":
                raise
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            failures.append(f"{label or algo} at {size} sizes, compile {mode}: "
                            f"{type(exc).__name__}: {first}")
            say(f"  compile {mode} failed: {failures[-1]}", flush=True)

    for size in sizes:
        for algo in algos:
            for mode in compile_modes:
                prepare(algo, size, mode)
        if SAME_CRITICS[0] in algos:  # the ratio's baseline, in every mode timed above
            algo, overrides, label = SAME_CRITICS
            for mode in compile_modes:
                prepare(algo, size, mode, overrides, label)
    gemm_in_use = gemm.gemm_backend() if dev.type == "cpu" else "torch"
    peaks = {name: peak_matmul(dev, backend=name) for name in peak_backends(dev)}
    fns = {**{f"peak-{name}": fn for name, (fn, _) in peaks.items()},
           **{str(i): c.run for i, c in enumerate(cases)},
           **{f"mm{i}": c.matmuls.replay for i, c in enumerate(cases) if c.matmuls is not None}}
    say(f"timing the peak and {len(cases)} updates (and their matrix products alone) in "
        f"{repeats} interleaved rounds ...", flush=True)
    times = interleaved_median_times(fns, dev, repeats=repeats)
    report = BenchReport(str(dev), torch.get_num_threads(), str(torch.__version__),
                         f"{platform.machine()} {platform.processor() or ''}".strip(),
                         0.0, failures=failures, gemm=gemm_in_use, obs_dim=obs_dim,
                         peak_by_gemm={name: flops / times[f"peak-{name}"] / 1e9
                                       for name, (_, flops) in peaks.items()})
    report.peak_gflops = max(report.peak_by_gemm.values())
    report.updates = [c.result(times[str(i)], report.peak_gflops, times.get(f"mm{i}"))
                      for i, c in enumerate(cases)]
    if act:
        say("action latency ...", flush=True)
        report.act = bench_act(dev, repeats=repeats)
        report.env = bench_env()
    if end_to_end:
        for env in ("PointDetour", "HalfCheetahVelocity"):
            for utd in (1, 10):
                say(f"end to end: {env} utd {utd} ...", flush=True)
                report.end_to_end.append({
                    "env": env, "algo": "algd-vesde", "utd": utd,
                    "env_steps_per_s": bench_end_to_end(env, "algd-vesde", utd,
                                                        e2e_steps // utd, device, threads)})
    return report


def gradient_difference(switch: Callable[[bool], ContextManager[Any]],
                        values: Callable[[Tensor], Sequence[Tensor]], act: Tensor) -> float:
    """Largest difference, relative to the largest entry, between the action gradients of
    ``values(act)`` (critic outputs) computed inside ``switch(True)`` and ``switch(False)``: the
    check an A/B script prints next to its timings. The outputs are summed with fixed weights
    that differ per entry, so a gradient wrong for one member or row shows."""
    grads = []
    for enabled in (True, False):
        with switch(enabled):
            a = act.detach().requires_grad_(True)
            flat = torch.cat([v.flatten() for v in values(a)])
            total = (flat * torch.linspace(-1, 1, flat.numel())).sum()
            grads.append(torch.autograd.grad(total, a)[0])
    return ((grads[0] - grads[1]).abs().max() / grads[1].abs().max()).item()


def switched(switch: Callable[[bool], ContextManager[Any]], enabled: bool,
             fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` run inside ``switch(enabled)`` on every call: an A/B variant of one update for
    :func:`interleaved_median_times` (e.g. ``switched(frozen_fast_path, False, case.run)``)."""
    def run() -> Any:
        with switch(enabled):
            return fn()
    return run


def add_ab_variants(fns: dict[str, Callable[[], Any]], key: str,
                    switch: Callable[[bool], ContextManager[Any]], names: tuple[str, str], *,
                    run: Callable[[], Any] | None = None,
                    build: Callable[[], UpdateCase] | None = None) -> None:
    """Add the two variants of one update to ``fns`` (for :func:`interleaved_median_times`) as
    ``f"{key}/{names[0]}"`` (switch off) and ``f"{key}/{names[1]}"`` (on); every call of a timed
    function runs inside the switch, and each is called once here.

    Give ``run`` (one eager agent's update, timed both ways) or ``build`` (called inside
    ``switch(enabled)`` for each variant: an agent compiled with the switch in that position)."""
    if (run is None) == (build is None):
        raise ValueError("give exactly one of run and build")
    for enabled, name in zip((False, True), names):
        with switch(enabled):
            update = build().run if build is not None else run
        assert update is not None
        timed = switched(switch, enabled, update)
        timed()
        fns[f"{key}/{name}"] = timed


def add_bench_options(parser: argparse.ArgumentParser, *, algos: str | None, sizes: str,
                      threads: int | None, repeats: int) -> None:
    """Add the options every benchmark takes (``--algos``, ``--sizes``, ``--threads``,
    ``--repeats``) with the given defaults; :func:`check_bench_options` validates them."""
    parser.add_argument("--algos", default=algos,
                        help="comma-separated algorithms (default: "
                             f"{algos or 'all registered'})")
    parser.add_argument("--sizes", default=sizes, help=f"size presets (default: {sizes})")
    default_threads = threads if threads is not None else "torch's, usually one per core"
    parser.add_argument("--threads", type=int, default=threads,
                        help=f"torch CPU threads (default: {default_threads})")
    parser.add_argument("--repeats", type=int, default=repeats,
                        help="timed blocks (or interleaved rounds) per measurement; each timing "
                             f"is their median (default: {repeats})")


def check_bench_options(parser: argparse.ArgumentParser, algos: str | None, sizes: str,
                        repeats: int, threads: int | None) -> tuple[list[str] | None, list[str]]:
    """Validate the options every benchmark takes, before anything is built: a typo ends the
    program with a one-line usage error (``parser.error``, exit status 2), not a traceback after
    the warm-up. Returns the algorithm names (None: all registered) and the size presets."""
    size_list = [s for s in sizes.split(",") if s]
    unknown = set(size_list) - set(SIZES)
    if unknown or not size_list:
        what = f"unknown size preset(s) {sorted(unknown)}" if unknown else "no size preset given"
        parser.error(f"{what}; choose from {sorted(SIZES)}")
    try:
        names = [get_algo(a).name for a in algos.split(",")] if algos else None
    except (KeyError, ValueError) as exc:
        parser.error(str(exc))
    if repeats < 1:
        parser.error(f"--repeats must be >= 1, got {repeats}")
    if threads is not None and threads < 1:
        parser.error(f"--threads must be >= 1, got {threads}")
    return names, size_list


def parse_ab_options(parser: argparse.ArgumentParser,
                     argv: list[str] | None = None) -> tuple[argparse.Namespace,
                                                             list[str] | None, list[str]]:
    """Parse and check a ``bench/`` A/B script's options (:func:`add_bench_options`), then set
    its torch threads and glibc's malloc thresholds as the trainer does. Returns the parsed
    options, the algorithm names (None: all registered) and the size presets."""
    args = parser.parse_args(argv)
    algos, sizes = check_bench_options(parser, args.algos, args.sizes, args.repeats, args.threads)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    tune_glibc_malloc()
    return args, algos, sizes


def main(argv: list[str] | None = None) -> int:
    """``algd bench`` (also ``python -m algd.bench``): parse the options, run, print the table
    and write ``--json``. Returns the exit status."""
    from algd.cli import ArgParser  # errors as one line, as every algd command gives them

    p = ArgParser(
        prog="algd bench",
        description="How fast each algorithm's update runs, measured against this machine's own "
        "fp32 matmul peak in the same run; also action latency and environment steps/s.")
    add_bench_options(p, algos=None, sizes="builtin,paper", threads=None, repeats=5)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default: cpu)")
    p.add_argument("--compile", action="store_true", help="also time the torch.compile path")
    p.add_argument("--compile-mode", default="default",
                   help="comma-separated torch.compile modes timed by --compile: default, "
                        "reduce-overhead (CUDA graphs), max-autotune (default: default)")
    p.add_argument("--cuda-graph", action="store_true",
                   help="also time the update replayed as CUDA graphs (CUDA devices only)")
    p.add_argument("--no-end-to-end", action="store_true",
                   help="skip the end-to-end training throughput (the slowest part)")
    p.add_argument("--obs-dim", type=int, default=OBS_DIM,
                   help=f"observation width of the timed updates (default {OBS_DIM}, "
                        "HalfCheetah's; 60: Safety-Gymnasium's Point tasks; actions are "
                        f"{ACT_DIM}-wide)")
    p.add_argument("--json", metavar="FILE", help="write the numbers as JSON")
    args = p.parse_args(argv)
    if args.obs_dim < 1:
        p.error(f"--obs-dim must be >= 1, got {args.obs_dim}")
    algos, sizes = check_bench_options(p, args.algos, args.sizes, args.repeats, args.threads)
    try:  # checked before anything is built: a typo fails at once, not after the warm-up
        device = str(resolve_device(args.device))
    except (KeyError, ValueError) as exc:
        p.error(str(exc))
    if args.cuda_graph and not device.startswith("cuda"):
        p.error("--cuda-graph needs --device cuda")
    modes = [m for m in args.compile_mode.split(",") if m]
    bad = set(modes) - {"default", "reduce-overhead", "max-autotune"}
    if bad or not modes:
        p.error(f"unknown --compile-mode {sorted(bad)}; choose from default, reduce-overhead, "
                "max-autotune")
    if args.json:  # a path that cannot be written fails now, not after the whole benchmark
        parent = Path(args.json).resolve().parent
        if not parent.is_dir():
            p.error(f"--json {args.json}: directory {parent} does not exist")
        if not os.access(parent, os.W_OK):
            p.error(f"--json {args.json}: directory {parent} is not writable")
    report = run_bench(
        algos=algos, sizes=sizes, device=device,
        threads=args.threads, compile_modes=("none", *(modes if args.compile else ()),
                       *((GRAPH_MODE,) if args.cuda_graph else ())),
        repeats=args.repeats, end_to_end=not args.no_end_to_end, obs_dim=args.obs_dim,
    )
    print()
    print(report.table())
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report.to_json(), f, indent=2)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
