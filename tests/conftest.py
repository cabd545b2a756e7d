import os

import pytest
import torch
from helpers import BACKENDS

from algd.nets import gemm

# Tests are small: one torch thread avoids oversubscribing CI's 2 cores and keeps runs repeatable.
torch.set_num_threads(1)
os.environ.setdefault("MPLBACKEND", "Agg")
# The CPU GEMM is chosen by measurement once per process (algd.nets.gemm); subprocesses the
# tests start (CLI runs) take this process's choice, so runs compared across processes use the
# same products.
os.environ.setdefault(gemm.ENV_VAR, gemm.gemm_backend())


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(1234)


@pytest.fixture(params=BACKENDS)
def backend(request, monkeypatch):
    """Run a test once per GEMM backend (the process's choice is restored after); on oneDNN
    every product goes there, however small (tests use small networks)."""
    if request.param == "onednn":
        monkeypatch.setattr(gemm, "ONEDNN_MIN_MACS", 0)
    with gemm.use_gemm_backend(request.param) as name:
        yield name
