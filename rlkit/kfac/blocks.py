r"""One K-FAC block per layer type: the factors of an ``nn.Linear`` or an ``nn.Conv2d``.

A block records one covered layer s = W a, W of shape (C_out, C_in) with the bias as its last
column: the running factors A = E[a aᵀ] (d_in × d_in, a with a trailing 1 when the layer has
a trainable bias) and S = E[g gᵀ] (d_out × d_out), their inverses, and the layout that maps
[∇W | ∇b] to a (d_out, d_in) matrix. :class:`KFACLinear` and :class:`KFACConv2d` differ only
in how a forward call's input and output gradient become the batch statistics (a Linear input
with extra leading dimensions and a convolution's output locations are weight-sharing
locations: A averages over them, S sums over them). Derivations: docs/derivations.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .damping import UNDAMPED, damping_shifts

if TYPE_CHECKING:  # pragma: no cover
    from .core import KFAC


class Eigendecomposition(NamedTuple):
    """The eigendecompositions of a block's two factors, in ``torch.linalg.eigh``'s order
    (eigenvalues, then eigenvectors), A's first: A = Q_A diag(evals_A) Q_Aᵀ, S likewise.

    Both :meth:`KFACLayer.eigendecomposition` and :attr:`KFACLayer.eigen` return one; unpack it
    as ``evals_A, Q_A, evals_S, Q_S = ...`` or read the fields by name.
    """

    evals_A: Tensor
    Q_A: Tensor
    evals_S: Tensor
    Q_S: Tensor


def _gram(cols: Tensor, alpha: float) -> Tensor:
    """alpha · cols colsᵀ in one GEMM (scaling inside the GEMM, no temporary)."""
    k = cols.shape[0]
    return torch.addmm(cols.new_empty(k, k), cols, cols.t(), beta=0, alpha=alpha)


class KFACLayer:
    """The K-FAC record of one ``nn.Linear`` or ``nn.Conv2d`` (see :func:`make_layer`).

    Attributes for notebooks (all ``None`` until computed):

    * ``A`` (d_in × d_in), ``S`` (d_out × d_out): the running factors, with
      d_in = fan-in (+1 if the layer has a trainable bias) and d_out = C_out
      (conv: S carries the factor T of the output locations; docs/derivations.md).
    * ``A_inv``, ``S_inv``: the damped inverses used by ``damping_mode="factored"``.
    * ``eigen``: the :class:`Eigendecomposition` ``(evals_A, Q_A, evals_S, Q_S)`` of the factors
      the last inverse used, in ``damping_mode="eigen"``.
    * ``pi``: the κ correction of the last factored-damping inverse.
    * ``num_updates``: how many Fisher passes have reached this layer.
    * ``modules``, ``module_names``: the modules whose calls feed this block: one, or several
      that share the same weight (and bias) tensors (tied weights: one block whose statistics
      sum over every use, as for a module called several times).
    """

    kind = ""  # "linear" or "conv2d", set by the subclass

    def __init__(self, owner: "KFAC", name: str, module: nn.Module):
        self.owner: KFAC = owner
        self.active = True  # False once KFAC.remove() was called
        self.name = name
        self.module = module
        self.modules: list[nn.Module] = [module]
        self.module_names: list[str] = [name]
        self.forward_calls = 0  # calls of any of the modules seen by the forward hook
        self.weight: Tensor = module.weight
        b = module.bias
        self.bias: Tensor | None = b if (b is not None and b.requires_grad) else None
        self.d_out = self.weight.shape[0]
        self.fan_in = self.weight[0].numel()
        self.d_in = self.fan_in + (1 if self.bias is not None else 0)
        #: dtype of the factors: the weight's, but at least float32 (half-precision models)
        self.dtype = torch.promote_types(self.weight.dtype, torch.float32)
        self.A: Tensor | None = None
        self.S: Tensor | None = None
        self.A_inv: Tensor | None = None
        self.S_inv: Tensor | None = None
        self.eigen: Eigendecomposition | None = None
        self.pi: float | None = None
        self.num_updates = 0
        self._weight_sum = 0.0  # Σ_j β^{k-j}: the bias-correction denominator
        self._inv_damp_recip: Tensor | None = None  # eigen mode: 1 / (λ_S λ_Aᵀ + λ), floored
        self._inverse_valid = False
        self._edge = None  # (weakref to the latest capture, GradientEdge of its output)

    def __repr__(self) -> str:
        tied = f", tied with {self.module_names[1:]}" if len(self.module_names) > 1 else ""
        return (f"KFACLayer({self.name!r}, {self.kind}, A: {self.d_in}x{self.d_in}, "
                f"S: {self.d_out}x{self.d_out}{tied})")

    @property
    def parameters(self) -> list[Tensor]:
        return [self.weight] + ([self.bias] if self.bias is not None else [])

    # ---- statistics of one forward call (the layer-type part is in the subclasses) ---------

    def _has_sample_dim(self, a: Tensor) -> bool:
        """Whether the input's first dimension indexes samples (not an unbatched call)."""
        raise NotImplementedError

    def _batch_size(self, a: Tensor) -> int:
        return a.shape[0] if self._has_sample_dim(a) else 1

    def _input_moments(self, a: Tensor) -> tuple[Tensor, Tensor | None, int]:
        """(1/count) Σ a aᵀ, Σ a (None when the Gram matrix is already complete) and the count."""
        raise NotImplementedError

    def _output_columns(self, g: Tensor) -> Tensor:
        """The output gradients as a (d_out, samples · locations) matrix."""
        raise NotImplementedError

    def _input_stat(self, a: Tensor) -> Tensor:
        """(1/(N·T)) Σ_{n,t} a aᵀ with the homogeneous coordinate, in ``self.dtype``."""
        gram, total, count = self._input_moments(a.detach().to(self.dtype))
        if total is None:
            return gram
        k = gram.shape[0]
        out = gram.new_empty(k + 1, k + 1)
        out[:k, :k] = gram
        out[:k, k] = total / count
        out[k, :k] = out[:k, k]
        out[k, k] = 1.0
        return out

    def _output_stat(self, g: Tensor, n: int, scale: float) -> Tensor:
        """(scale²/N) Σ_n Σ_t g gᵀ (sum over locations)."""
        return _gram(self._output_columns(g.detach().to(self.dtype)), scale * scale / n)

    # ---- gradients ----------------------------------------------------------------

    def _grad_matrix(self, gw: Tensor | None = None, gb: Tensor | None = None,
                     from_grad: bool = True) -> Tensor | None:
        """[∇W | ∇b] as a (d_out, d_in) matrix (row-major in W), or None if no gradient.

        Reads ``.grad`` unless ``from_grad`` is False (then ``gw``, ``gb`` are the gradients)."""
        if from_grad:
            gw = self.weight.grad
            gb = self.bias.grad if self.bias is not None else None
        if gw is None and gb is None:
            return None
        if gw is not None:
            Gw = gw.reshape(self.d_out, self.fan_in)
        else:
            Gw = self.weight.new_zeros(self.d_out, self.fan_in)
        if self.bias is not None:
            Gb = gb.reshape(self.d_out, 1) if gb is not None else Gw.new_zeros(self.d_out, 1)
            Gw = torch.cat([Gw, Gb.to(Gw.dtype)], dim=1)
        return Gw.to(self.dtype)

    def _split(self, P: Tensor) -> tuple[Tensor, Tensor | None]:
        """A (d_out, d_in) matrix back into (weight-shaped, bias-shaped or None) tensors."""
        pw = P[:, : self.fan_in].reshape(self.weight.shape)
        if pw.dtype != self.weight.dtype:
            pw = pw.to(self.weight.dtype)
        if self.bias is None:
            return pw, None
        pb = P[:, self.fan_in]
        if pb.dtype != self.bias.dtype:
            pb = pb.to(self.bias.dtype)
        return pw, pb

    def _write_grad(self, P: Tensor) -> None:
        pw = P[:, : self.fan_in].reshape(self.weight.shape)
        if self.weight.grad is None:
            self.weight.grad = pw.to(self.weight.dtype, copy=True)
        else:
            self.weight.grad.copy_(pw)
        if self.bias is not None:
            pb = P[:, self.fan_in].reshape(self.bias.shape)
            if self.bias.grad is None:
                self.bias.grad = pb.to(self.bias.dtype, copy=True)
            else:
                self.bias.grad.copy_(pb)

    # ---- views for notebooks ------------------------------------------------------------

    def eigendecomposition(self) -> Eigendecomposition:
        """``(evals_A, Q_A, evals_S, Q_S)`` of the current (undamped) factors, eigenvalues ascending.

        Computed on demand; the eigen damping mode keeps the one of its last inverse in
        :attr:`eigen`, in the same order.
        """
        if self.A is None:
            raise RuntimeError(f"layer {self.name!r} has no statistics yet")
        eA, QA = torch.linalg.eigh(self.A)
        eS, QS = torch.linalg.eigh(self.S)
        return Eigendecomposition(eA, QA, eS, QS)

    def _param_order(self) -> Tensor:
        """Permutation from the (i, j) row-major index of [W | b] to [W.reshape(-1), b]."""
        idx = torch.arange(self.d_out * self.d_in).view(self.d_out, self.d_in)
        order = [idx[:, : self.fan_in].reshape(-1)]
        if self.bias is not None:
            order.append(idx[:, self.fan_in])
        return torch.cat(order)

    def dense_block(self, damped: bool = False) -> Tensor:
        """The dense K-FAC block S ⊗ A in the order ``[W.reshape(-1), b]``.

        ``damped=True`` gives the matrix whose inverse :meth:`KFAC.precondition`
        applies: (S + √λ/κ I) ⊗ (A + κ√λ I) (factored) or S ⊗ A + λI (eigen).
        Forms a Kronecker product: for notebooks and tests on small layers only.
        """
        if self.A is None:
            raise RuntimeError(f"layer {self.name!r} has no statistics yet")
        owner = self.owner
        shifts = damping_shifts(self.A, self.S, owner.damping, owner.damping_mode) if damped else UNDAMPED
        K = shifts.dense(self.A, self.S)
        p = self._param_order().to(K.device)
        return K[p][:, p]


class KFACLinear(KFACLayer):
    """``nn.Linear`` on inputs (N, ..., C_in): the dimensions after the first are locations."""

    kind = "linear"

    def _has_sample_dim(self, a: Tensor) -> bool:
        return a.dim() >= 2

    def _input_moments(self, a: Tensor) -> tuple[Tensor, Tensor | None, int]:
        rows = a.reshape(-1, a.shape[-1])
        count = rows.shape[0]
        if self.bias is not None and count <= 8 * rows.shape[1]:  # few rows: append the 1s
            rows = torch.cat([rows, rows.new_ones(count, 1)], dim=1)
            return _gram(rows.t(), 1.0 / count), None, count
        return _gram(rows.t(), 1.0 / count), (rows.sum(0) if self.bias is not None else None), count

    def _output_columns(self, g: Tensor) -> Tensor:
        return g.reshape(-1, self.d_out).t()


class KFACConv2d(KFACLayer):
    """``nn.Conv2d`` (groups = 1, any stride, dilation, padding, padding mode): a is the
    unfolded input patch, channel-major like ``W.reshape(C_out, -1)``, at each output location."""

    kind = "conv2d"

    # patches of about this many elements are processed at a time (cache-friendly)
    _CHUNK_ELEMENTS = 1 << 22

    def __init__(self, owner: "KFAC", name: str, module: nn.Conv2d):
        super().__init__(owner, name, module)
        pad_is_explicit = not isinstance(module.padding, str) and module.padding_mode == "zeros"
        self._unfold_padding = module.padding if pad_is_explicit else 0
        self._pad = None if pad_is_explicit else tuple(module._reversed_padding_repeated_twice)
        self._pad_mode = "constant" if module.padding_mode == "zeros" else module.padding_mode

    def _has_sample_dim(self, a: Tensor) -> bool:
        return a.dim() == 4

    def _input_moments(self, a: Tensor) -> tuple[Tensor, Tensor | None, int]:
        """(1/count) Σ p pᵀ, Σ p and the count, over all samples and locations of the patches p.

        The patches are strided views of the (padded) input, copied chunk by chunk
        into a (C_in·kh·kw, rows) matrix, channel-major like ``W.reshape(C_out, -1)``.
        """
        m = self.module
        if a.dim() == 3:
            a = a.unsqueeze(0)
        if self._pad is not None:
            a = F.pad(a, self._pad, mode=self._pad_mode)
        elif any(self._unfold_padding):
            ph, pw = self._unfold_padding
            a = F.pad(a, (pw, pw, ph, ph))
        (kh, kw), (sh, sw), (dh, dw) = m.kernel_size, m.stride, m.dilation
        views = a.unfold(2, (kh - 1) * dh + 1, sh)[..., ::dh]
        views = views.unfold(3, (kw - 1) * dw + 1, sw)[..., ::dw]  # (N, C, Ho, Wo, kh, kw)
        n, c, ho, wo = views.shape[:4]
        k = c * kh * kw
        chunk = max(1, self._CHUNK_ELEMENTS // max(1, k * ho * wo))
        gram = total = None
        count = n * ho * wo
        for start in range(0, n, chunk):
            cols = views[start : start + chunk].permute(1, 4, 5, 0, 2, 3).reshape(k, -1)
            if gram is None:
                gram = _gram(cols, 1.0 / count)
            else:
                gram.addmm_(cols, cols.t(), alpha=1.0 / count)
            if self.bias is not None:
                t = cols.sum(1)
                total = t if total is None else total.add_(t)
        return gram, total, count

    def _output_columns(self, g: Tensor) -> Tensor:
        if g.dim() == 3:
            g = g.unsqueeze(0)
        return g.transpose(0, 1).reshape(self.d_out, -1)


def make_layer(owner: "KFAC", name: str, module: nn.Module) -> KFACLayer:
    """The block of ``module`` (an ``nn.Linear`` or a groups = 1 ``nn.Conv2d``)."""
    if isinstance(module, nn.Conv2d):
        return KFACConv2d(owner, name, module)
    return KFACLinear(owner, name, module)
