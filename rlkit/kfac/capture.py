r"""What a Fisher pass reads: each covered layer's forward calls, and the pass that sums them.

Every forward with gradients enabled notes, per covered layer, a reference to its input a (no
copy: autograd keeps it anyway) and hooks its output s (:class:`_Capture`); the hook does
nothing unless a Fisher pass (:class:`_Pass`) is running, and then turns (a, g = ∇_s) into the
batch statistics Â and Ŝ of that layer. :func:`subsample_rows` picks the samples a pass with
``stats_subsample`` > 1 reads. Derivations: docs/derivations.md.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:  # pragma: no cover
    from .blocks import KFACLayer

_get_gradient_edge = getattr(torch.autograd.graph, "get_gradient_edge", None)


def _functorch_active() -> bool:
    peek = getattr(torch._C._functorch, "peek_interpreter_stack", None)
    return peek is not None and peek() is not None


class _Capture:
    """One forward call of a registered layer: its input a, hooked on its output s.

    Owned by the autograd graph (through the hook on s), so it lives exactly as long
    as that graph; the KFAC object only keeps a weak reference.
    """

    __slots__ = ("layer", "a", "version", "pass_id", "__weakref__")

    def __init__(self, layer: "KFACLayer", a: Tensor):
        self.layer = layer
        self.a = a
        self.version = a._version
        self.pass_id = -1

    def __call__(self, g: Tensor) -> None:
        layer = self.layer
        if layer.active and layer.owner._pass is not None:
            layer.owner._pass.add(self, g)
        return None


def _compiling() -> bool:
    is_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", None)
    return bool(is_compiling is not None and is_compiling())


def make_forward_hook(layer: "KFACLayer", captures: "weakref.WeakSet[_Capture]"):
    """The forward hook of ``layer``: notes a :class:`_Capture` of every call with gradients.

    Calls the hooks cannot turn into statistics are remembered on the owner, so that the
    errors of a Fisher pass or of :meth:`~rlkit.kfac.KFAC.precondition` can name them: a
    forward traced by ``torch.compile`` or run inside a ``torch.func`` transform (``vmap``,
    ``grad``, ...), and a call whose weight is not the layer's own tensor
    (``torch.func.functional_call`` with other parameters).
    """

    def hook(module, inputs, output):
        layer.forward_calls += 1
        if not layer.active or not torch.is_grad_enabled():
            return None
        owner = layer.owner
        if _compiling():
            owner._unseen_forward = ("torch.compile", layer.name)
            return None
        if _functorch_active():
            owner._unseen_forward = ("a torch.func transform (vmap, grad, jacrev, ...)", layer.name)
            return None
        if not isinstance(output, Tensor) or not output.requires_grad or not inputs:
            return None
        if module.weight is not layer.weight:
            owner._foreign_forward = layer.name
        cap = _Capture(layer, inputs[0])
        output.register_hook(cap)
        captures.add(cap)
        if not cap.a.requires_grad and _get_gradient_edge is not None:
            # A bottom layer (its input needs no gradient): differentiating w.r.t. its
            # output directly avoids computing its bias/weight gradient in the Fisher
            # pass. Kept until the next Fisher pass or precondition (one per layer).
            layer._edge = (weakref.ref(cap), _get_gradient_edge(output))
        return None

    return hook


def subsample_rows(batch_size: int, subsample: int, offset: int) -> slice:
    """Samples r, r + k, r + 2k, ... of a batch of N, r = offset mod k (k = ``subsample``); a batch
    smaller than k still keeps one sample (r mod N)."""
    start = offset % subsample
    if start >= batch_size:
        start %= batch_size
    return slice(start, None, subsample)


class _Pass:
    """Accumulates the batch statistics of one Fisher pass.

    With ``subsample`` = k > 1 only the samples offset, offset + k, offset + 2k, ... of each
    layer call enter the statistics (the same samples for A and S and for every layer).
    """

    _ids = 0

    def __init__(self, scale_by_batch: bool, subsample: int = 1, offset: int = 0):
        _Pass._ids += 1
        self.id = _Pass._ids
        self.scale_by_batch = scale_by_batch
        self.subsample = subsample
        self.offset = offset
        self.A: dict[KFACLayer, Tensor] = {}
        self.S: dict[KFACLayer, Tensor] = {}
        self.calls: dict[KFACLayer, int] = {}
        self.samples: dict[KFACLayer, int] = {}  # samples of the layer's first call in this pass
        # per capture: (the selected samples, or None for all; the call's batch size N; how many selected)
        self.batch: dict[_Capture, tuple[slice | None, int, int]] = {}

    def _select(self, layer: "KFACLayer", a: Tensor) -> tuple[slice | None, int, int]:
        n = layer._batch_size(a)
        if self.subsample == 1 or not layer._has_sample_dim(a):
            return None, n, n
        rows = subsample_rows(n, self.subsample, self.offset)
        return rows, n, len(range(n)[rows])

    def add(self, cap: _Capture, g: Tensor) -> None:
        layer = cap.layer
        with torch.no_grad():
            if cap.pass_id != self.id:
                if cap.a._version != cap.version:
                    raise RuntimeError(
                        f"K-FAC: the input of layer {layer.name!r} was modified in place after the forward pass"
                    )
                cap.pass_id = self.id
                rows, n, selected = self.batch[cap] = self._select(layer, cap.a)
                self.samples.setdefault(layer, selected)
                A = layer._input_stat(cap.a if rows is None else cap.a[rows])
                self.A[layer] = self.A[layer] + A if layer in self.A else A
                self.calls[layer] = self.calls.get(layer, 0) + 1
            rows, n, selected = self.batch[cap]
            # a mean-reduced Fisher loss divided every per-sample gradient by the whole batch size n
            S = layer._output_stat(g if rows is None else g[rows], selected, float(n) if self.scale_by_batch else 1.0)
            self.S[layer] = self.S[layer] + S if layer in self.S else S
