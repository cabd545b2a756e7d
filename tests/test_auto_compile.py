"""`--compile auto` (the default): which runs compile their update, and what happens where
torch.compile cannot build it (a real failure: inductor pointed at a compiler that does not exist,
in a fresh process and cache): auto trains eagerly from that update on, exactly as an eager run,
and an explicit mode stops with an error that says what to pass."""

import json
import subprocess
import sys
import textwrap

import pytest
import torch

from algd.cli import resolve_train_args
from algd.config import TrainConfig
from algd.train.auto_compile import (
    AUTO_COMPILE_MIN_UPDATES,
    planned_updates,
    resolve_compile,
)

CPU = torch.device("cpu")


def test_planned_updates_is_utd_times_the_steps_after_warm_up():
    assert planned_updates(TrainConfig(steps=10_000, warmup_steps=1_000, utd=1.0)) == 9_000
    assert planned_updates(TrainConfig(steps=10_000, warmup_steps=1_000, utd=0.5)) == 4_500
    assert planned_updates(TrainConfig(steps=105_000, warmup_steps=5_000, utd=10)) == 1_000_000
    assert planned_updates(TrainConfig(steps=500, warmup_steps=1_000)) == 0  # all warm-up


@pytest.mark.parametrize("mode", ["none", "default", "reduce-overhead", "max-autotune"])
def test_an_explicit_mode_is_used_as_given(mode):
    for device in (CPU, torch.device("cuda")):  # a device object: no GPU needed
        short, long = TrainConfig(steps=2_000, compile=mode), TrainConfig(steps=10**6, compile=mode)
        assert resolve_compile(short, device)[0] == resolve_compile(long, device)[0] == mode


def test_auto_stays_eager_below_the_threshold_and_on_cuda():
    warm = TrainConfig().warmup_steps
    just_short = TrainConfig(steps=warm + AUTO_COMPILE_MIN_UPDATES - 1)
    mode, why = resolve_compile(just_short, CPU)
    assert mode == "none" and "too few" in why
    mode, why = resolve_compile(TrainConfig(steps=10**6), torch.device("cuda"))
    assert mode == "none" and "CUDA graphs" in why


def test_auto_compiles_a_long_cpu_run():
    at_threshold = TrainConfig(steps=TrainConfig().warmup_steps + AUTO_COMPILE_MIN_UPDATES)
    mode, why = resolve_compile(at_threshold, CPU)
    assert mode == "default" and "compiled" in why


def test_the_readme_demo_trains_eagerly_and_the_paper_presets_compile(tmp_path):
    demo, _ = resolve_train_args([])  # `make demo` is `algd train` with the defaults
    assert resolve_compile(demo, CPU)[0] == "none"
    paper, _ = resolve_train_args(["--preset", "paper-pointbutton1", "--out", str(tmp_path)])
    assert planned_updates(paper) >= 10 * 100_000
    assert resolve_compile(paper, CPU)[0] == "default"


# Four 60-update runs of the default algorithm in one process whose inductor has no C++ compiler:
# eager; auto (the threshold lowered to 10 updates), which fails at the first update (the critic
# modules compile there); --compile default, which must stop there; and auto again with no
# compiled modules, so that only the whole gradient step compiles and fails, at the second update.
COMPILER_MISSING = textwrap.dedent("""
    import json, sys
    import torch
    import torch._inductor.config as inductor
    inductor.cpp.cxx = ("/nonexistent/c++",)  # as on a machine without a C++ compiler
    import algd.train.auto_compile as auto_compile
    from algd.algos import get_algo
    from algd.algos.base import Agent
    from algd.config import TrainConfig
    from algd.train import Trainer

    auto_compile.AUTO_COMPILE_MIN_UPDATES = 10
    decompiled_at = []
    decompile = Agent.decompile
    def recording_decompile(self):
        decompiled_at.append(self.num_updates)
        decompile(self)
    Agent.decompile = recording_decompile

    def train(name, compile):
        cfg = TrainConfig(out=sys.argv[1] + "/" + name, steps=260, warmup_steps=200,
                          eval_every=10**6, eval_episodes=1, progress=False, plot=False,
                          compile=compile)
        trainer = Trainer(cfg, get_algo(cfg.algo).make_config({}))
        try:
            trainer.run()
        except Exception as exc:
            return {"error": type(exc).__name__, "message": str(exc)}, None
        config = json.load(open(trainer.run_dir / "config.json"))
        return ({"mode": trainer.compile_mode, "config": config["compile"],
                 "updates": trainer.agent.num_updates}, trainer.agent.state_dict())

    def same(a, b):
        return all(torch.equal(a[k], b[k]) for k in a if isinstance(a[k], torch.Tensor))

    out = {}
    out["eager"], eager = train("eager", "none")
    out["auto"], auto = train("auto", "auto")
    out["auto_same"] = same(auto, eager)
    out["explicit"], _ = train("explicit", "default")
    agent_cls = get_algo(TrainConfig().algo).agent_cls
    agent_cls.compile_targets = lambda self: []  # nothing compiles before the gradient step
    out["auto_step"], auto_step = train("auto-step", "auto")
    out["auto_step_same"] = same(auto_step, eager)
    out["decompiled_at"] = decompiled_at
    print(json.dumps(out))
""")


def test_where_torch_compile_fails_auto_trains_as_eager_and_an_explicit_mode_stops(tmp_path):
    env = {"TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor-cache"), "PATH": "/usr/bin:/bin",
           "ALGD_GEMM": "torch"}  # one GEMM for every run: bit-for-bit comparable
    res = subprocess.run([sys.executable, "-c", COMPILER_MISSING, str(tmp_path)],
                         capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["eager"] == {"mode": "none", "config": "none", "updates": 60}
    # auto: falls back where the failure happens, and the run is the eager run, bit for bit
    assert got["auto"] == got["auto_step"] == got["eager"]
    assert got["auto_same"] and got["auto_step_same"]
    assert got["decompiled_at"] == [0, 1]  # restored to before update 1, then update 2
    notes = [line for line in res.stderr.splitlines() if line.startswith("note: --compile auto")]
    assert len(notes) == 2 and all("InvalidCxxCompiler" in n and n.endswith("training eagerly")
                                   for n in notes)
    assert "Traceback" not in res.stderr
    # an explicit mode: a clear error, naming what to pass instead
    assert got["explicit"]["error"] == "CompileFailed"
    assert "--compile none" in got["explicit"]["message"]
    assert "InvalidCxxCompiler" in got["explicit"]["message"]
