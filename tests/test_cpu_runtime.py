"""CPU settings for training (algd.train.cpu_runtime)."""

import platform
import subprocess
import sys

import pytest
import torch

from algd.config import TrainConfig
from algd.train.cpu_runtime import denormals_flushed, flush_denormals, tune_glibc_malloc


def test_malloc_tuning_is_idempotent_and_applies_on_glibc():
    tuned = tune_glibc_malloc()
    assert tune_glibc_malloc() is tuned
    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        assert tuned
    x = torch.randn(8 * 2**20)  # memory is still allocated and freed normally afterwards
    del x


def test_flush_denormals_is_scoped():
    assert not denormals_flushed()
    with flush_denormals() as active:
        if active:  # x86 with SSE3, ARM: subnormals become zero, normal floats are kept
            assert denormals_flushed()
            assert torch.tensor([1e-40])[0].item() == 0.0
            assert torch.tensor([1e-30])[0].item() == pytest.approx(1e-30)
            with flush_denormals():  # nested: the outer scope keeps flushing
                pass
            assert denormals_flushed()
    assert not denormals_flushed()  # restored: other code (numpy, hypothesis) sees IEEE floats
    with flush_denormals(enabled=False) as active:
        assert not active and not denormals_flushed()
    with pytest.raises(RuntimeError), flush_denormals():
        raise RuntimeError("restored on errors too")
    assert not denormals_flushed()


def test_training_leaves_the_float_mode_as_it_found_it(tmp_path):
    from algd.algos.registry import get_algo
    from algd.train.loop import Trainer

    cfg = TrainConfig(algo="sac-lag", steps=300, warmup_steps=200, batch_size=32, eval_every=300,
                      eval_episodes=1, progress=False, plot=False, checkpoint=False,
                      out=str(tmp_path / "run"))
    Trainer(cfg, get_algo("sac-lag").make_config()).run()
    assert not denormals_flushed()


def test_flushing_denormals_does_not_make_numpy_warn():
    """numpy warns 'smallest subnormal ... is zero' when it first measures float limits with
    flushing on; flush_denormals measures them first. A fresh interpreter, warnings as errors."""
    code = ("from algd.train.cpu_runtime import flush_denormals\n"
            "import numpy as np\n"
            "with flush_denormals():\n"
            "    [np.finfo(t).tiny for t in (np.float16, np.float32, np.float64)]\n")
    out = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
