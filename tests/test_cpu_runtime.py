"""Process settings for CPU training (algd.train.cpu_runtime)."""

import subprocess
import sys

import pytest
import torch

from algd.train.cpu_runtime import tune_cpu_runtime


def test_tune_cpu_runtime_flushes_denormals_and_is_idempotent():
    settings = tune_cpu_runtime()
    assert tune_cpu_runtime() is settings
    if settings.flush_denormal:  # x86 with SSE3 and ARM: subnormals become zero
        assert torch.tensor([1e-40])[0].item() == 0.0
        assert torch.tensor([1e-30])[0].item() == pytest.approx(1e-30)  # normal floats kept
    if sys.platform.startswith("linux") and "glibc" in " ".join(
            __import__("platform").libc_ver()):
        assert settings.allocator
    # memory is still allocated and freed normally afterwards
    x = torch.randn(8 * 2**20)
    del x


def test_flushing_denormals_does_not_make_numpy_warn():
    """numpy warns 'smallest subnormal ... is zero' when it first measures float limits with
    flushing on; tune_cpu_runtime measures them first. A fresh interpreter, warnings as errors."""
    code = ("from algd.train.cpu_runtime import tune_cpu_runtime; tune_cpu_runtime(); "
            "import numpy as np; [np.finfo(t).tiny for t in (np.float16, np.float32, np.float64)]")
    out = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
