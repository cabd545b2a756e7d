"""`--compile auto` (the default): which runs compile their update, and the eager fallback where
torch.compile cannot build a kernel (a real failure: inductor pointed at a compiler that does not
exist, in a fresh process and cache)."""

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
    inductor_compiles,
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


def test_auto_compiles_a_long_cpu_run_where_inductor_works():
    ok, why = inductor_compiles()
    assert ok, f"torch.compile fails on this machine: {why}"  # the project's set-up has gcc
    at_threshold = TrainConfig(steps=TrainConfig().warmup_steps + AUTO_COMPILE_MIN_UPDATES)
    mode, why = resolve_compile(at_threshold, CPU)
    assert mode == "default" and "compiled" in why


def test_the_readme_demo_trains_eagerly_and_the_paper_presets_compile(tmp_path):
    demo, _ = resolve_train_args([])  # `make demo` is `algd train` with the defaults
    assert resolve_compile(demo, CPU)[0] == "none"
    paper, _ = resolve_train_args(["--preset", "paper-pointbutton1", "--out", str(tmp_path)])
    assert planned_updates(paper) >= 10 * 100_000
    assert resolve_compile(paper, CPU)[0] == "default"


PROBE_FAILS = textwrap.dedent("""
    import json, sys
    import torch._inductor.config as inductor
    inductor.cpp.cxx = ("/nonexistent/c++",)  # as on a machine without a C++ compiler
    from algd.algos import get_algo
    from algd.config import TrainConfig
    from algd.train import Trainer
    cfg = TrainConfig(out=sys.argv[1], steps=200 + {updates}, warmup_steps=200, progress=False,
                      plot=False)
    trainer = Trainer(cfg, get_algo(cfg.algo).make_config({{}}))
    trainer._say_compile()
    print(json.dumps({{"mode": trainer.compile_mode,
                       "resolved": trainer.resolved_config()["compile"]}}))
""")


def test_auto_trains_eagerly_with_a_note_where_torch_compile_fails(tmp_path):
    script = PROBE_FAILS.format(updates=AUTO_COMPILE_MIN_UPDATES)
    env = {"TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor-cache"), "PATH": "/usr/bin:/bin"}
    res = subprocess.run([sys.executable, "-c", script, str(tmp_path / "run")],
                         capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got == {"mode": "none", "resolved": "none"}
    assert "torch.compile does not work here" in res.stderr
    assert "training eagerly" in res.stderr and "Traceback" not in res.stderr
