"""Process settings that make the update's element-wise work cheap on a CPU.

An update at the paper's sizes streams tens of megabytes of activations through a few hundred
kernels; on a CPU the matrix multiplies run near the machine's peak, and what decides the rest is
memory traffic. Two process-wide settings matter, both measured with ``algd bench``:

* **the allocator**: glibc serves blocks above 128 KiB with ``mmap`` and gives them back on free,
  so every fresh activation tensor pays page faults and arrives cold. Raising the thresholds keeps
  freed blocks in the heap for reuse, which is what jemalloc/tcmalloc (PyTorch's CPU tuning guide)
  achieve through ``LD_PRELOAD``; here it is one ``mallopt`` call, no extra library;
* **denormals**: a SiLU of a large negative input produces subnormal floats, whose arithmetic takes
  a microcode assist (measured here: SiLU 5× slower; the whole ALGD update ~5 %). Flushing them
  to zero changes values below 1.2e-38 (float32) and 2.2e-308 (float64) only; the flag belongs
  to the thread, so it also applies to a simulator stepped in the same thread.

:func:`tune_cpu_runtime` applies both; :class:`algd.train.loop.Trainer` and ``algd bench`` call it
when they run on a CPU.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from dataclasses import dataclass

import numpy as np
import torch

# mallopt parameters (glibc <malloc.h>)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
#: largest M_MMAP_THRESHOLD glibc accepts on 64-bit systems
MMAP_THRESHOLD = 32 * 2**20
#: freed heap memory beyond this is returned to the OS
TRIM_THRESHOLD = 1 * 2**30
#: extra heap requested from the OS at each growth
TOP_PAD = 64 * 2**20


@dataclass(frozen=True)
class RuntimeSettings:
    """What :func:`tune_cpu_runtime` managed to set."""

    allocator: bool  #: glibc malloc thresholds raised
    flush_denormal: bool  #: subnormal floats flushed to zero


_applied: RuntimeSettings | None = None


def tune_cpu_runtime() -> RuntimeSettings:
    """Raise glibc's malloc thresholds and flush denormals to zero (idempotent, process-wide).

    Both are silently skipped where unsupported (not glibc, a CPU without FTZ/DAZ).
    """
    global _applied
    if _applied is None:
        # numpy measures its float limits on first use and warns when flushing hides the
        # subnormals: measure them now, while they still exist (numpy caches them)
        for dtype in (np.float16, np.float32, np.float64, np.longdouble):
            np.finfo(dtype)
        _applied = RuntimeSettings(_tune_glibc_malloc(), bool(torch.set_flush_denormal(True)))
    return _applied


def _tune_glibc_malloc() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(mallopt(param, value) == 1 for param, value in (
        (_M_MMAP_THRESHOLD, MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        (_M_TOP_PAD, TOP_PAD)))
