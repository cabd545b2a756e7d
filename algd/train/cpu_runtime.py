"""Settings that make the update's element-wise work cheap on a CPU.

An update at the paper's sizes streams tens of megabytes of activations through a few hundred
kernels; on a CPU the matrix multiplies run near the machine's peak, and what decides the rest is
memory traffic. Two settings matter, both measured with ``algd bench``:

* **the allocator** (:func:`tune_glibc_malloc`, process-wide): glibc serves blocks above 128 KiB
  with ``mmap`` and gives them back on free, so every fresh activation tensor pays page faults and
  arrives cold. Raising the thresholds keeps freed blocks in the heap for reuse, which is what
  jemalloc/tcmalloc (PyTorch's CPU tuning guide) achieve through ``LD_PRELOAD``; here it is one
  ``mallopt`` call, no extra library (10–15 % on the ALGD update);
* **denormals** (:func:`flush_denormals`, a scope): a SiLU of a large negative input produces
  subnormal floats, whose arithmetic takes a microcode assist (measured here: SiLU 5× slower; the
  whole ALGD update ~5 %). Flushing them to zero changes values below 1.2e-38 (float32) and
  2.2e-308 (float64) only. The mode belongs to the thread and also affects numpy and any
  simulator stepped inside the scope, so it is restored when the scope ends (libraries such as
  hypothesis refuse to run while it is on).

:class:`algd.train.loop.Trainer` and ``algd bench`` use both when they run on a CPU.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from contextlib import contextmanager
from typing import Iterator

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


_malloc_tuned: bool | None = None


def tune_glibc_malloc() -> bool:
    """Raise glibc's mmap and trim thresholds (idempotent, process-wide). False where the C
    library is not glibc (macOS, musl, Windows): nothing is changed there."""
    global _malloc_tuned
    if _malloc_tuned is None:
        _malloc_tuned = _tune_glibc_malloc()
    return _malloc_tuned


def denormals_flushed() -> bool:
    """Whether this thread currently flushes subnormal floats to zero."""
    return torch.tensor([1e-40], dtype=torch.float32)[0].item() == 0.0


@contextmanager
def flush_denormals(enabled: bool = True) -> Iterator[bool]:
    """Flush subnormal floats to zero inside the block; the previous mode is restored after.

    Yields whether flushing is active (False when ``enabled`` is False or the CPU cannot).
    """
    if not enabled:
        yield False
        return
    # numpy measures its float limits on first use and warns when flushing hides the
    # subnormals: measure them now, while they still exist (numpy caches them)
    for dtype in (np.float16, np.float32, np.float64, np.longdouble):
        np.finfo(dtype)
    previous = denormals_flushed()
    active = bool(torch.set_flush_denormal(True))
    try:
        yield active
    finally:
        if active and not previous:
            torch.set_flush_denormal(False)


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
