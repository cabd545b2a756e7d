"""The ensembles' batched matrix products, run on whichever fp32 GEMM is faster on this CPU.

torch runs fp32 ``bmm`` through MKL, which takes its AVX2 kernels on AMD processors; oneDNN, which
torch's CPU builds also carry (``torch.ops.mkldnn._linear_pointwise``, the kernel inductor uses for
CPU linear layers), runs AVX-512 there. Measured on a 2-core AMD EPYC (Zen 5), one thread: the
critics' ``[1024, 256] @ [256, 256]`` products at ~80 GFLOP/s through ``torch.bmm`` and 160-180
through oneDNN, a 2048² product at 89 and 204. On Intel CPUs MKL is the fast one. Neither is
assumed: on the first product of a process, both run on a critic-sized product and the faster is
kept (:func:`gemm_backend`), unless ``ALGD_GEMM`` (``torch``, ``onednn`` or ``auto``) or
:func:`set_gemm_backend` says otherwise.

oneDNN's linear has no autograd formula, so it is used only where no graph is recorded: inside
:class:`algd.nets.ensemble._EnsembleAffine` (forward, and a first-order backward) and in
``no_grad`` evaluations. A backward that builds a graph of its own (``create_graph=True``, the
energy landscape's Hessian) runs on ``torch.bmm``, and so does code traced by ``torch.compile``
(inductor lowers oneDNN's linear only for frozen weights, and emits its own GEMM calls). Both
compute the same fp32 products up to summation order (tested).
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from typing import Iterator, Literal, cast

import torch
from torch import Tensor

GemmBackend = Literal["torch", "onednn"]
#: the environment variable that fixes the backend (``torch``, ``onednn``; ``auto`` measures)
ENV_VAR = "ALGD_GEMM"
_CHOICES = ("auto", "torch", "onednn")

_requested: str | None = None  #: set_gemm_backend's choice; None: the environment's
_resolved: GemmBackend | None = None


def onednn_available() -> bool:
    """Whether this torch build has oneDNN's dense fp32 linear (x86 and ARM CPU builds do)."""
    try:
        return bool(torch.backends.mkldnn.is_available()) and hasattr(
            torch.ops.mkldnn, "_linear_pointwise")
    except (AttributeError, RuntimeError):  # pragma: no cover - builds without the namespace
        return False


def set_gemm_backend(name: str) -> GemmBackend:
    """Choose the CPU GEMM for ensemble products: ``"torch"``, ``"onednn"`` or ``"auto"`` (measure
    both once, keep the faster); returns the backend now in use (process-wide)."""
    global _requested, _resolved
    if name not in _CHOICES:
        raise ValueError(f"unknown GEMM backend {name!r}; choose one of {', '.join(_CHOICES)}")
    if name == "onednn" and not onednn_available():
        raise RuntimeError("this torch build has no oneDNN linear kernel; use 'torch' or 'auto'")
    _requested, _resolved = name, None
    return gemm_backend()


@contextmanager
def use_gemm_backend(name: str) -> Iterator[GemmBackend]:
    """:func:`set_gemm_backend` inside a block; the previous choice is restored after."""
    global _requested, _resolved
    previous = _requested, _resolved
    try:
        yield set_gemm_backend(name)
    finally:
        _requested, _resolved = previous


def requested_backend() -> str:
    """The choice as asked for (``auto``, ``torch`` or ``onednn``): :func:`set_gemm_backend`'s,
    else ``ALGD_GEMM``'s; checked without measuring anything, so that a mistyped variable stops
    a run before it starts (:class:`algd.train.loop.Trainer` calls this first)."""
    name = _requested or os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if name not in _CHOICES:
        raise ValueError(f"{ENV_VAR}={name!r} is not one of {', '.join(_CHOICES)} "
                         f"(unset it to let algd measure which GEMM is faster)")
    if name == "onednn" and not onednn_available():
        raise ValueError(f"{ENV_VAR}=onednn, but this torch build has no oneDNN linear kernel; "
                         "use torch or auto")
    return name


def gemm_backend() -> GemmBackend:
    """The backend in use, measured on first call when the choice is ``auto`` (the default)."""
    global _resolved
    if _resolved is None:
        name = requested_backend()
        if name == "auto":
            times = measure_backends() if onednn_available() else {}
            # oneDNN only where it is clearly faster: MKL stays where the two are close
            name = "onednn" if times and times["onednn"] < 0.8 * times["torch"] else "torch"
        _resolved = cast(GemmBackend, name)
    return _resolved


def measure_backends(batch: int = 256, width: int = 256, repeats: int = 7,
                     warmup: int = 3) -> dict[str, float]:
    """Best-of-``repeats`` seconds of one ``[batch, width] @ [width, width]`` product per backend
    (a critic's hidden layer; ~10 ms in all on one core), the backends alternating round by round
    after ``warmup`` calls each.

    MKL's first products in a process can run 1.5× slower than its later ones (seen on a Xeon:
    with one warm-up call, 1 fresh process in 8 measured torch at 0.31 ms against oneDNN's 0.20,
    and ``auto`` took oneDNN, the slower backend there, for the whole run); warming both up
    several times and alternating them keeps a slow spell from deciding.

    The operands come from a generator of their own: the measurement runs lazily, often after a
    run has seeded torch, and must not shift the global random stream (a seeded run with the
    backend chosen by ``auto`` would otherwise differ from the same run with ``ALGD_GEMM`` set
    to the same backend)."""
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(batch, width, generator=gen), torch.randn(width, width, generator=gen)
    runs = {"torch": lambda: torch.mm(a, b),
            "onednn": lambda: onednn_matmul(a, b)}
    for fn in runs.values():
        for _ in range(warmup):  # oneDNN builds its kernel on first use; MKL warms up too
            fn()
    best = {name: float("inf") for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def onednn_matmul(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b`` for 2-D fp32 CPU tensors by oneDNN, whatever backend is chosen (no autograd)."""
    return _onednn_linear(a, b.t(), None)


def _onednn_linear(x: Tensor, weight_t: Tensor, bias: Tensor | None) -> Tensor:
    """``x @ weight_tᵀ + bias`` by oneDNN (``weight_t`` is ``[out, in]``, any strides)."""
    return cast(Tensor, torch.ops.mkldnn._linear_pointwise(x, weight_t, bias, "none", [], ""))


#: products smaller than this many multiply-adds per member stay on torch's GEMM: each oneDNN
#: call costs ~25 µs more than MKL's, which twice the throughput repays from ~2 M multiply-adds
#: (measured on the 2-core EPYC, 4 members: a [1024, 64] @ [64, 64] product 1.5x faster on oneDNN,
#: [256, 64] @ [64, 64] 1.7x slower; the built-in task's 64-wide critics stay on torch's)
ONEDNN_MIN_MACS = 2_000_000


def uses_onednn(*tensors: Tensor, macs: int) -> bool:
    """Whether a product of these operands, ``macs`` multiply-adds per member, runs on oneDNN:
    fp32 CPU tensors, no graph being recorded through them, large enough, and oneDNN the chosen
    backend."""
    if macs < ONEDNN_MIN_MACS:
        return False
    if any(t.device.type != "cpu" or t.dtype != torch.float32 for t in tensors):
        return False
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return False  # a graph is being recorded: oneDNN's linear has no derivative
    if torch.compiler.is_compiling():
        return False  # inductor lowers this op only for frozen (constant) weights
    return gemm_backend() == "onednn"


def bmm(a: Tensor, b: Tensor) -> Tensor:
    """``a[m] @ b[m]`` for ``a: [M, n, k]`` (or one ``[n, k]`` shared by every member) and
    ``b: [M, k, p]`` → ``[M, n, p]``; the values of ``torch.bmm``."""
    if not uses_onednn(a, b, macs=a.shape[-2] * a.shape[-1] * b.shape[-1]):
        return torch.bmm(a.unsqueeze(0).expand(b.shape[0], *a.shape) if a.dim() == 2 else a, b)
    return onednn_baddbmm(None, a, b)


def baddbmm(bias: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """``a[m] @ b[m] + bias[m]`` with ``bias: [M, 1, p]`` (see :func:`bmm`); the values of
    ``torch.baddbmm``."""
    if not uses_onednn(bias, a, b, macs=a.shape[-2] * a.shape[-1] * b.shape[-1]):
        return torch.baddbmm(bias, a.unsqueeze(0).expand(b.shape[0], *a.shape)
                             if a.dim() == 2 else a, b)
    return onednn_baddbmm(bias, a, b)


def bmm_nt(a: Tensor, b: Tensor) -> Tensor:
    """``a[m] @ b[m]ᵀ`` for ``a: [M, n, k]``, ``b: [M, p, k]`` → ``[M, n, p]`` (an input
    gradient ``G Wᵀ``)."""
    if not uses_onednn(a, b, macs=a.shape[-2] * a.shape[-1] * b.shape[-2]):
        return torch.bmm(a, b.transpose(1, 2))
    return onednn_bmm_nt(a, b)


def bmm_tn(a: Tensor, b: Tensor) -> Tensor:
    """``a[m]ᵀ @ b[m]`` for ``a: [M, k, n]`` (or one ``[k, n]`` shared) and ``b: [M, k, p]`` →
    ``[M, n, p]`` (a weight gradient ``Xᵀ G``)."""
    if not uses_onednn(a, b, macs=a.shape[-2] * a.shape[-1] * b.shape[-1]):
        am = a.unsqueeze(0).expand(b.shape[0], *a.shape) if a.dim() == 2 else a
        return torch.bmm(am.transpose(1, 2), b)
    return onednn_bmm_tn(a, b)


# The products on oneDNN without the checks of uses_onednn, for callers that made them already
# (one member at a time: oneDNN's linear has no batch dimension).

def onednn_baddbmm(bias: Tensor | None, a: Tensor, b: Tensor) -> Tensor:
    """:func:`baddbmm` (``bias=None``: :func:`bmm`) on oneDNN, unchecked."""
    return torch.stack([_onednn_linear(a if a.dim() == 2 else a[m], b[m].t(),
                                       None if bias is None else bias[m, 0])
                        for m in range(b.shape[0])])


def onednn_bmm_nt(a: Tensor, b: Tensor) -> Tensor:
    """:func:`bmm_nt` on oneDNN, unchecked."""
    return torch.stack([_onednn_linear(a[m], b[m], None) for m in range(b.shape[0])])


def onednn_bmm_tn(a: Tensor, b: Tensor) -> Tensor:
    """:func:`bmm_tn` on oneDNN, unchecked."""
    return torch.stack([_onednn_linear((a if a.dim() == 2 else a[m]).t(), b[m].t(), None)
                        for m in range(b.shape[0])])
