"""Batched ensembles of MLPs: ``M`` networks evaluated with one batched matmul per layer.

The weights of all members are stacked (``[M, in, out]``), so an ensemble costs the same number of
kernel launches as a single network. Members may form *groups* with their own activation and
initialisation: :class:`algd.nets.critics.CriticBank` uses this to run the twin reward critic
(ReLU, Xavier init) and the cost-critic ensemble (SiLU, truncated-normal init) as one module,
one batched matmul per group and layer.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Literal, Sequence, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from algd.nets import gemm

Activation = Literal["relu", "silu", "tanh", "elu"]
Init = Literal["xavier_uniform", "trunc_normal"]

_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,
    "silu": F.silu,
    "tanh": torch.tanh,
    "elu": F.elu,
}
#: in-place versions, used where autograd does not need the pre-activation (no gradient taken,
#: or an activation whose backward reads its output): one memory pass less per layer
_ACTIVATIONS_INPLACE: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": torch.relu_,
    "silu": lambda x: F.silu(x, inplace=True),
    "tanh": torch.tanh_,
    "elu": lambda x: F.elu(x, inplace=True),
}
#: activations whose backward reads only their output, so autograd allows them in place
_OUTPUT_BACKWARD = frozenset({"relu", "tanh"})


def _needs_grad(*tensors: Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


@dataclass(frozen=True)
class MemberGroup:
    """A contiguous block of ``size`` ensemble members sharing activation and initialisation."""

    size: int
    activation: Activation = "relu"
    init: Init = "xavier_uniform"


def _init_weight_(w: Tensor, init: Init) -> None:
    """Initialise one member's weight ``[in, out]`` in place.

    ``trunc_normal``: N(0, (1/(2√fan_in))²) truncated at ±2σ — what the reference cost ensemble
    intended (its truncation is a no-op through a reassignment bug, spec §3.2).
    """
    fan_in, fan_out = w.shape
    if init == "xavier_uniform":
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        nn.init.uniform_(w, -bound, bound)
    elif init == "trunc_normal":
        std = 1.0 / (2.0 * math.sqrt(fan_in))
        nn.init.trunc_normal_(w, 0.0, std, -2.0 * std, 2.0 * std)
    else:  # pragma: no cover - guarded by the Literal type
        raise ValueError(f"unknown init {init!r}")


#: an input at most this wide counts as *thin*: its input gradient ``G @ Wᵀ`` is computed as
#: ``(W @ Gᵀ)ᵀ`` (MKL is ~1.4-1.9× faster with the thin side as the product's rows; measured on
#: a 2-core EPYC and Xeon for the critics' 23-wide first layer, batches 256-1024)
_THIN = 32


class _EnsembleAffine(torch.autograd.Function):
    """``y[m] = x[m] @ W[m] + b[m]`` with each of its products laid out the way the CPU's GEMM
    runs fastest; the values are those of ``torch.baddbmm(b, x, W)`` and its autograd.

    torch's ``bmm`` runs a 1-wide product (a critic's output layer, ``N = 1``) as a general GEMM
    at ~2 % of the machine's matmul peak: 1.4 ms for ``[4, 1024, 256] @ [4, 256, 1]`` on one
    EPYC core, where the same numbers as a row-vector product (``(Wᵀ @ xᵀ)ᵀ``, ``M = 1``) take
    0.13-0.2 ms, and its two gradients (an outer product and a ``xᵀ @ g``) 1.2 and 2.1 ms where a
    broadcast multiply and a row-vector product take 0.1 ms each. Together these 1-wide products
    were ~13 % of an ALGD update at paper sizes (``algd bench``; see the README, *Performance*).

    A shared input ``x: [B, in]`` (an ensemble's first layer) goes in as it is and gets its
    gradient summed over the members inside, on a contiguous product: summed by autograd
    through a stride-0 ``expand`` it was a strided reduction ~15× slower.

    Products of at least :data:`algd.nets.gemm.ONEDNN_MIN_MACS` multiply-adds per member run on
    oneDNN where :mod:`algd.nets.gemm` measured it faster than torch's GEMM (AVX-512 on AMD CPUs,
    where MKL takes AVX2), in the forward pass and in a first-order backward.

    The backward pass is written with differentiable torch ops (torch's ``bmm`` whenever a graph
    is recorded), so higher-order gradients (the energy landscape's Hessian,
    :mod:`algd.analysis.landscape`) work through it.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:  # noqa: D102
        ctx.save_for_backward(x, weight)
        return _affine(x, weight, bias)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:  # noqa: D102
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        shared = x.dim() == 2  # one input [B, in] for every member: its gradient sums over them
        xm = _members(x, weight)
        grad_x = grad_w = grad_b = None
        if weight.shape[2] == 1:  # 1-wide output: outer product and row-vector product
            if need_x:  # [M, B, 1] * [M, 1, in]; grad may arrive transposed or expanded:
                # made contiguous (M·B numbers) so that the product is laid out row-major
                grad_x = grad.contiguous() * weight.transpose(1, 2)
                if shared:
                    grad_x = grad_x.sum(0)
            if need_w:
                grad_w = torch.bmm(grad.transpose(1, 2), xm).transpose(1, 2)  # [M, in, 1]
        else:
            if need_x:
                if gemm.uses_onednn(grad, weight, macs=_macs(x, weight)):
                    grad_x = gemm.onednn_bmm_nt(grad, weight)
                    if shared:
                        grad_x = grad_x.sum(0)
                elif weight.shape[1] <= _THIN:  # (W Gᵀ)ᵀ, summed over members while contiguous
                    grad_x = torch.bmm(weight, grad.transpose(1, 2))
                    grad_x = grad_x.sum(0).t() if shared else grad_x.transpose(1, 2)
                else:
                    grad_x = torch.bmm(grad, weight.transpose(1, 2))
                    if shared:
                        grad_x = grad_x.sum(0)
            if need_w:
                grad_w = gemm.bmm_tn(x, grad)
        if need_b:
            grad_b = grad.sum(1, keepdim=True)
        return grad_x, grad_w, grad_b


def _macs(x: Tensor, weight: Tensor) -> int:
    """Multiply-adds per member of ``x @ W`` (and of each of its two gradient products)."""
    return x.shape[-2] * weight.shape[1] * weight.shape[2]


def _members(x: Tensor, weight: Tensor) -> Tensor:
    """``x`` as ``[M, B, in]``: a shared input ``[B, in]`` as a stride-0 view (no copy)."""
    return x.unsqueeze(0).expand(weight.shape[0], *x.shape) if x.dim() == 2 else x


def _affine(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """``x @ W + b`` batched over members (``x`` is ``[M, B, in]`` or a shared ``[B, in]``),
    without autograd bookkeeping of its own. ``b`` is a bias ``[M, 1, out]``, or, for a first
    layer split at fixed states, per-state offsets ``[M, S, out]`` in the bias's place
    (:func:`_offset_affine`; :meth:`EnsembleMLP.first_layer_offsets`)."""
    if bias.shape[1] != 1:
        return _offset_affine(x, weight, bias)
    if gemm.uses_onednn(x, weight, bias, macs=_macs(x, weight)):
        return gemm.onednn_baddbmm(bias, x, weight)
    return _torch_affine(x, weight, bias)


def _torch_affine(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """:func:`_affine` on torch's GEMM."""
    x = _members(x, weight)
    if _compiled_fusion and torch.compiler.is_compiling():
        # written for inductor to fuse: it adds the bias in the loop of the next op (the
        # activation) instead of baddbmm copying the broadcast bias into the output for the GEMM
        # to read back, and computes a 1-wide layer as a sum in the loop that makes its input
        if weight.shape[2] == 1:
            return (x * weight.transpose(1, 2)).sum(-1, keepdim=True) + bias
        return torch.bmm(x, weight) + bias
    if weight.shape[2] == 1:  # 1-wide output as a row-vector product: [M, 1, in] @ [M, in, B]
        return torch.baddbmm(bias, weight.transpose(1, 2), x.transpose(1, 2)).transpose(1, 2)
    return torch.baddbmm(bias, x, weight)


_compiled_fusion = True


@contextmanager
def compiled_fusion(enabled: bool) -> Iterator[None]:
    """Switch the compiled critics' fusable layer forms on or off inside the block (on by
    default; off, compiled code calls the ``baddbmm`` products eager code calls).

    On, under ``torch.compile`` a layer ``x W + b`` is ``bmm(x, W) + b`` and a 1-wide layer is
    ``Σ_k x_k w_k + b``, so inductor adds the bias, and sums a 1-wide output, inside the loops that
    apply the activations and their derivatives (one memory pass over ``[M, N·B, H]`` fewer per
    layer), and a frozen SiLU group (:class:`_FrozenMLP`) takes its value and its derivative from
    one sigmoid (eager torch computes it twice, in ``silu`` and ``silu_backward``); measured in
    ``bench/compiled_fusion.py``. ``torch.compile`` guards on the switch: code
    traced with it on is traced again when it is off. Both compute the same values to float
    rounding (tested)."""
    global _compiled_fusion
    previous, _compiled_fusion = _compiled_fusion, enabled
    try:
        yield
    finally:
        _compiled_fusion = previous


def _offset_affine(x: Tensor, weight: Tensor, offset: Tensor) -> Tensor:
    """``x @ W`` plus per-state offsets: row ``r = k·S + s`` of ``x`` (``[M, kS, in]`` or a
    shared ``[kS, in]``) gets ``offset[:, s]`` (``[M, S, out]``), the other half of a first layer
    whose state half was computed once (:meth:`EnsembleMLP.first_layer_offsets`).

    Compiled, the thin product (``in`` = the action size) is written as a sum over ``in`` that
    inductor fuses with the offset and the activation into one loop over the output; eager, it is
    a ``bmm`` and an in-place broadcast add."""
    members, states, out = offset.shape
    rows, width = x.shape[-2], x.shape[-1]
    x4 = x.reshape(-1, rows // states, states, width, 1)
    if torch.compiler.is_compiling() and _compiled_fusion:
        z = (x4 * weight.view(members, 1, 1, width, out)).sum(-2) + offset.unsqueeze(1)
        return z.view(members, rows, out)
    z = torch.bmm(_members(x, weight), weight)
    z.view(members, rows // states, states, out).add_(offset.unsqueeze(1))
    return z


def _reference_affine(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """:func:`_affine` with recorded torch ops only (for double-backward)."""
    if bias.shape[1] == 1:
        return torch.baddbmm(bias, _members(x, weight), weight)
    members, states, out = bias.shape
    z = torch.bmm(_members(x, weight), weight)
    return (z.view(members, -1, states, out) + bias.unsqueeze(1)).view(z.shape)


def _affine_inference(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """:func:`_affine` where no graph is recorded: the bias is added in place instead of being
    broadcast into the output first (``baddbmm``'s copy), one memory pass less."""
    if bias.shape[1] != 1:
        return _offset_affine(x, weight, bias)
    if gemm.uses_onednn(x, weight, bias, macs=_macs(x, weight)):
        return gemm.onednn_baddbmm(bias, x, weight)
    if weight.shape[2] == 1:
        return _torch_affine(x, weight, bias)
    return torch.bmm(_members(x, weight), weight).add_(bias)


#: activations whose derivative :class:`_FrozenMLP` applies with one fused ATen kernel, given
#: the tensor it saved (the pre-activation for SiLU, the output for ReLU and tanh)
_FROZEN_BACKWARD: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "relu": lambda g, out: torch.ops.aten.threshold_backward(g, out, 0),
    "silu": lambda g, pre: torch.ops.aten.silu_backward(g, pre),
    "tanh": lambda g, out: torch.ops.aten.tanh_backward(g, out),
}


_frozen_fast_path = True


@contextmanager
def frozen_fast_path(enabled: bool) -> Iterator[None]:
    """Switch :class:`_FrozenMLP` on or off inside the block (on by default; off, a frozen group
    records its layers for autograd as an unfrozen one does). For same-run A/B measurements
    (``bench/frozen_critics.py``) and tests; both compute the same values and gradients."""
    global _frozen_fast_path
    previous, _frozen_fast_path = _frozen_fast_path, enabled
    try:
        yield
    finally:
        _frozen_fast_path = previous


class _FrozenMLP(torch.autograd.Function):
    """One member group with its weights held fixed, ``q[m] = f_m(x)`` with a 1-wide output,
    differentiable in ``x`` only: what the actor energy and the Monte-Carlo score target
    (spec §2.5, §2.6) take through the critics.

    Its input gradient needs no ``[M, B, H]`` tensor for the output layer's gradient. The
    gradient of a scalar output is a row scaling of the member's Jacobian, and row scalings
    commute with right products:

        ∂L/∂x[m, r] = g[m, r] · ∇f_m(x_r),   ∇f_m = ((w_Lᵀ ⊙ σ'(z_L)) W_{L-1}ᵀ ⊙ … ⊙ σ'(z_1)) W_1ᵀ,

    so the backward pass starts from the output weight broadcast over the rows (``w_Lᵀ``, no
    ``g ⊗ w_L`` outer product to write and read back), applies ``g`` to the thin ``[M, B, in]``
    result, and runs each activation's derivative as one ATen kernel. The forward pass keeps
    only what those derivatives read (SiLU's pre-activations; ReLU's and tanh's outputs, computed
    in place). The forward pass runs the recorded path's ops, so values agree bit for bit (and
    with them every ReLU mask); gradients agree to float rounding (tested). A double-backward
    (``create_graph=True``) recomputes the group with differentiable ops.
    """

    @staticmethod
    def forward(ctx: Any, activation: str, x: Tensor, *params: Tensor) -> Tensor:  # noqa: D102
        weights, biases = params[0::2], params[1::2]
        saved = []
        h = x
        # compiled: SiLU's value z·s and derivative s·(1 + z(1 − s)) from one sigmoid s, in the
        # loop that adds the bias (eager runs torch's silu and, backward, silu_backward, which
        # each compute the sigmoid: one exp and one division per element more)
        derivative = (activation == "silu" and _compiled_fusion
                      and torch.compiler.is_compiling())
        for w, b in zip(weights[:-1], biases[:-1]):
            z = _affine(h, w, b)  # as the recorded path computes it: the same values, bit for bit
            if activation in _OUTPUT_BACKWARD:
                h = _ACTIVATIONS_INPLACE[activation](z)
                saved.append(h)
            elif derivative:
                s = torch.sigmoid(z)
                h = z * s
                saved.append(s * (1 + z * (1 - s)))
            else:
                h = _ACTIVATIONS[activation](z)
                saved.append(z)
        ctx.activation, ctx.saved_derivative = activation, derivative
        ctx.save_for_backward(x, *params, *saved)
        return _affine(h, weights[-1], biases[-1])

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:  # noqa: D102
        x, *rest = ctx.saved_tensors
        n = 2 * ((len(rest) + 1) // 3)  # weight and bias per layer, then one per hidden layer
        params, saved = rest[:n], rest[n:]
        weights = params[0::2]
        none = (None,) * (1 + len(params))
        if not ctx.needs_input_grad[1]:
            return (None, *none)
        if torch.is_grad_enabled():  # create_graph: differentiate a recorded recomputation
            with torch.enable_grad():
                out = _frozen_group_reference(ctx.activation, x, params)
                (gx,) = torch.autograd.grad(out, x, grad, create_graph=True)
            return (None, gx, *none[1:])
        act_backward = torch.mul if ctx.saved_derivative else _FROZEN_BACKWARD[ctx.activation]
        w_out = weights[-1]  # [M, H, 1]
        members, rows = w_out.shape[0], x.shape[-2]
        t = act_backward(w_out.transpose(1, 2).expand(members, rows, w_out.shape[1]), saved[-1])
        for w, s in zip(reversed(weights[1:-1]), reversed(saved[:-1])):
            t = act_backward(gemm.bmm_nt(t, w), s)
        w_in = weights[0]  # [M, in, H]
        g = grad.expand(members, rows, 1)
        if w_in.shape[1] <= _THIN:  # (W Gᵀ)ᵀ with the thin side as the product's rows
            gx = torch.bmm(w_in, t.transpose(1, 2)).mul_(g.transpose(1, 2))  # [M, in, B]
            gx = gx.sum(0).t() if x.dim() == 2 else gx.transpose(1, 2)
        else:
            gx = gemm.bmm_nt(t, w_in).mul_(g)
            if x.dim() == 2:
                gx = gx.sum(0)
        return (None, gx, *none[1:])


def _frozen_group_reference(activation: str, x: Tensor, params: Sequence[Tensor]) -> Tensor:
    """:class:`_FrozenMLP`'s function with recorded torch ops (for double-backward)."""
    h = x
    weights, biases = params[0::2], params[1::2]
    for i, (w, b) in enumerate(zip(weights, biases)):
        h = _reference_affine(h, w, b)
        if i < len(weights) - 1:
            h = _ACTIVATIONS[activation](h)
    return h


class EnsembleLinear(nn.Module):
    """``M`` independent affine maps: ``y[m] = x[m] @ W[m] + b[m]`` for ``x`` of shape [M, B, in].

    A 2-D input ``[B, in]`` is shared by all members (first layer of an ensemble).
    """

    def __init__(self, members: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.members, self.in_features, self.out_features = members, in_features, out_features
        self.weight = nn.Parameter(torch.empty(members, in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(members, 1, out_features))

    def forward(self, x: Tensor, frozen: bool = False) -> Tensor:
        """``x @ W + b``; ``frozen=True`` treats the weights as constants (see
        :meth:`EnsembleMLP.forward`)."""
        weight, bias = (self.weight.detach(), self.bias.detach()) if frozen else (self.weight,
                                                                                 self.bias)
        if _needs_grad(x, weight, bias):  # a shared input [B, in] goes in as it is
            return cast(Tensor, _EnsembleAffine.apply(x, weight, bias))
        return _affine_inference(x, weight, bias)

    def extra_repr(self) -> str:
        return f"members={self.members}, in={self.in_features}, out={self.out_features}"


def _group_layers(block: nn.Module) -> Sequence[EnsembleLinear]:
    """One group's layers (an ``nn.ModuleList``, which type checkers see as plain modules)."""
    return cast("Sequence[EnsembleLinear]", block)


class EnsembleMLP(nn.Module):
    """``M`` MLPs of identical shape evaluated together; output ``[M, B, out]``.

    Members form groups (activation and initialisation per group). Each group stores its layers'
    weights stacked (``[size, in, out]``) and runs as one batched matmul per layer, so the cost
    is that of ``len(groups)`` networks however many members there are.

    Args:
        in_dim: input features (the input may be ``[B, in]`` shared, or ``[M, B, in]``).
        out_dim: output features per member.
        hidden: hidden widths.
        groups: member groups; members = sum of sizes, in group order.
    """

    def __init__(
        self, in_dim: int, out_dim: int, hidden: Sequence[int], groups: Sequence[MemberGroup]
    ) -> None:
        super().__init__()
        if not groups or any(g.size < 1 for g in groups):
            raise ValueError("an ensemble needs at least one group of at least one member")
        self.groups = tuple(groups)
        self.members = sum(g.size for g in groups)
        dims = [in_dim, *hidden, out_dim]
        self.blocks = nn.ModuleList(
            nn.ModuleList(EnsembleLinear(g.size, a, b) for a, b in zip(dims[:-1], dims[1:]))
            for g in self.groups
        )
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        for g, block in zip(self.groups, self.blocks):
            for layer in _group_layers(block):
                for w in layer.weight:
                    _init_weight_(w, g.init)
                layer.bias.zero_()

    def member_layers(self, m: int) -> list[tuple[Tensor, Tensor, Activation]]:
        """(weight [in, out], bias [out], activation) of every layer of member ``m``."""
        for g, block in zip(self.groups, self.blocks):
            if m < g.size:
                return [(layer.weight[m], layer.bias[m, 0], g.activation)
                        for layer in _group_layers(block)]
            m -= g.size
        raise IndexError(f"member {m} out of range")

    def first_layer_offsets(self, head: Tensor) -> tuple[Tensor, ...]:
        """The first layer applied to the leading ``d = head.shape[-1]`` input features, its bias
        included, with the weights as constants: per group ``[size, S, H1]`` for ``head``
        ``[S, d]``.

        For inputs that share their leading features (the critics' state at many actions: the
        actor's action and the N Monte-Carlo samples of ALGD's score target, spec §2.5), pass these
        as ``offsets`` to :meth:`forward` with only the trailing features: the state half of the
        first layer is then computed once per state instead of once per action, and the input
        gradient is taken through the trailing features only. ``head`` must not require grad."""
        if head.dim() != 2:
            raise ValueError(f"head must be [S, d], got shape {tuple(head.shape)}")
        if _needs_grad(head):
            raise ValueError("first-layer offsets are constants: their input must not require "
                             "grad (evaluate the full input instead)")
        d = head.shape[-1]
        offsets = []
        for block in self.blocks:
            first = _group_layers(block)[0]
            offsets.append(_affine_inference(head, first.weight.detach()[:, :d],
                                             first.bias.detach()))
        return tuple(offsets)

    def group_forward(self, x: Tensor, group: int, frozen: bool = False,
                      offsets: Tensor | None = None) -> Tensor:
        """Members of group ``group`` only: ``[size, B, out]`` (``x`` is ``[B, in]`` or that
        group's ``[size, B, in]``).

        With ``offsets`` (the group's entry of :meth:`first_layer_offsets`, ``[size, S, H1]``), ``x``
        holds only the trailing input features, ``B = k·S`` rows of which row ``k'·S + s`` belongs
        to state ``s``; the group is evaluated frozen (differentiable in ``x`` only)."""
        g, layers = self.groups[group], _group_layers(self.blocks[group])
        if offsets is not None:
            return self._offset_group_forward(x, g, layers, offsets)
        if (frozen and _frozen_fast_path and _needs_grad(x) and g.activation in _FROZEN_BACKWARD
                and len(layers) > 1 and layers[-1].out_features == 1):
            params = [p.detach() for layer in layers for p in (layer.weight, layer.bias)]
            return cast(Tensor, _FrozenMLP.apply(g.activation, x, *params))
        h = x
        for layer in layers[:-1]:
            h = layer(h, frozen)  # a fresh tensor: the activation may overwrite it when allowed
            if g.activation in _OUTPUT_BACKWARD or not _needs_grad(h):
                h = _ACTIVATIONS_INPLACE[g.activation](h)
            else:
                h = _ACTIVATIONS[g.activation](h)
        return layers[-1](h, frozen)

    def _offset_group_forward(self, x: Tensor, g: MemberGroup,
                              layers: Sequence[EnsembleLinear], offsets: Tensor) -> Tensor:
        """:meth:`group_forward` with ``offsets``: the first layer's trailing ``width`` input rows
        of the weight on ``x``, the offsets in place of its bias, every weight detached."""
        width, first = x.shape[-1], layers[0]
        rows, states = x.shape[-2], offsets.shape[1]
        if rows % states or first.in_features < width:
            raise ValueError(f"{rows} rows of {width} features do not split over {states} "
                             f"states of a {first.in_features}-wide first layer")
        params = [first.weight.detach()[:, first.in_features - width:], offsets]
        params += [p.detach() for layer in layers[1:] for p in (layer.weight, layer.bias)]
        if (_frozen_fast_path and _needs_grad(x) and g.activation in _FROZEN_BACKWARD
                and len(layers) > 1 and layers[-1].out_features == 1):
            return cast(Tensor, _FrozenMLP.apply(g.activation, x, *params))
        if not _needs_grad(x):
            h = x
            for i, (w, b) in enumerate(zip(params[0::2], params[1::2])):
                h = _affine_inference(h, w, b)
                if i < len(layers) - 1:
                    h = _ACTIVATIONS_INPLACE[g.activation](h)
            return h
        return _frozen_group_reference(g.activation, x, params)

    def forward(self, x: Tensor, frozen: bool = False,
                offsets: Sequence[Tensor] | None = None) -> Tensor:
        """All members, ``[M, B, out]``.

        ``frozen=True`` evaluates the network as a fixed function of its input: gradients flow
        to ``x`` only, never to the weights. Pass it when only input gradients are wanted (an
        actor loss through the critics, a score target): autograd would skip the weight
        gradients of built-in ops by itself, but not those of the custom batched product.
        ``offsets`` (:meth:`first_layer_offsets`): ``x`` holds the trailing features only, and
        every group is evaluated frozen.
        """
        outputs = []
        start = 0
        for i, g in enumerate(self.groups):
            xi = x if x.dim() == 2 else x[start : start + g.size]
            outputs.append(self.group_forward(xi, i, frozen,
                                              None if offsets is None else offsets[i]))
            start += g.size
        return outputs[0] if len(outputs) == 1 else torch.cat(outputs, 0)


class MLP(nn.Module):
    """A plain MLP (ReLU by default, Xavier-uniform weights, zero biases)."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden: Sequence[int],
        activation: Activation = "relu",
    ) -> None:
        super().__init__()
        dims = [in_dim, *hidden, out_dim]
        linears = [nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:])]
        self._act = _ACTIVATIONS[activation]
        for lin in linears:
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)
        self.linears = nn.ModuleList(linears)

    def forward(self, x: Tensor) -> Tensor:
        for lin in self.linears[:-1]:
            x = self._act(lin(x))
        return self.linears[-1](x)
