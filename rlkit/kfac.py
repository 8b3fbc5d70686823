r"""K-FAC: a Kronecker-factored natural-gradient preconditioner for any ``nn.Module``.

The mathematics (conventions shared with the whole kit, see DESIGN.md)
======================================================================

For a model with output distribution p(y|x, θ) the Fisher is
F = E_x E_{y~p(y|x,θ)}[∇log p ∇log pᵀ]. K-FAC keeps one block per layer and
drops the blocks between layers. For a layer s = W a with W of shape
(C_out, C_in) — the bias is folded in as the last column of W by giving a a
trailing 1 (homogeneous coordinate) — the per-sample weight gradient is
∇_W log p = g aᵀ with g = ∇_s log p, and

    F_ℓ = E[vec(g aᵀ) vec(g aᵀ)ᵀ] ≈ A ⊗ S   (column-major vec),
    A = E[a aᵀ],  S = E[g gᵀ].

PyTorch stores W row-major; for the row-major vec (``W.reshape(-1)``) the same
approximation reads S ⊗ A. In either layout the preconditioned gradient is

    F̂_ℓ⁻¹ vec(∇W) = vec(S⁻¹ ∇W A⁻¹),

which is what :meth:`KFAC.precondition` computes: two small matrix products per
layer, never a Kronecker product. (The ACKTR paper prints vec(A⁻¹ ∇W S⁻¹) with
(P⊗Q)vec(T) = PTQᵀ, which mixes the two layouts.) :meth:`KFACLayer.dense_block`
returns the dense block in the parameter order ``[W.reshape(-1), b]`` for
notebooks and tests on small layers.

Convolutions (Grosse & Martens 2016, "KFC"): a is the unfolded input patch
(channel-major, the order of ``W.reshape(C_out, -1)``, plus the trailing 1) at
each of the T = H_out·W_out output locations and g the output gradient at that
location. The per-sample gradient is Σ_t g_t a_tᵀ; under the KFC assumptions
(independence of activations and derivatives, spatial homogeneity, spatially
uncorrelated derivatives) its second moment is Ω ⊗ Γ with Ω = E[Σ_t a_t a_tᵀ] and
Γ = E[(1/T) Σ_t g_t g_tᵀ]. This module stores

    A = E_n[(1/T) Σ_t a_t a_tᵀ]   (a mean over locations: A is a second moment, its
                                  homogeneous corner is exactly 1, as for Linear),
    S = E_n[Σ_t g_t g_tᵀ]         (a SUM over locations: S carries the factor T),

so A = Ω/T, S = T·Γ and A ⊗ S = Ω ⊗ Γ. Only the product and the damped inverse
(both invariant to moving the scalar T between the factors, thanks to the π
correction) are used. A ``nn.Linear`` applied to an input with extra leading
dimensions (N, ..., C_in) is treated the same way: the first dimension indexes
samples, the others are weight-sharing locations; a 1×1 convolution therefore
equals the equivalent linear layer exactly. A registered module called k times
in one Fisher pass (weight sharing across calls) is treated as k more locations
(KFAC-expand): A averages over calls, S sums over them.

The Fisher pass
===============

Statistics come only from a designated *Fisher pass*: the gradient of a loss
built with *sampled* outputs (sampled actions, sampled values), never the
ordinary loss. The forward pass is shared with the ordinary loss: every forward
with gradients enabled notes, per registered layer, a reference to its input a
(no copy — autograd keeps it anyway) and hooks the output s; the hook does
nothing unless a Fisher pass is running. Two ways to run one:

* ``kfac.update_stats(fisher_loss)`` (recommended): differentiates the Fisher loss
  with respect to the layer outputs only — no weight gradients are computed
  (cheaper) and no ``.grad`` is touched; the graph is retained for the ordinary
  backward that follows.
* ``with kfac.fisher_pass(): fisher_loss.backward(retain_graph=True)``: the same
  statistics, but the backward also accumulates the Fisher loss's gradient into
  the parameters' ``.grad`` — zero them before the ordinary backward.

The Fisher loss must be a SUM over the batch of per-sample negative
log-likelihoods, −Σ_n log p(ŷ_n|x_n) (the helpers in :mod:`rlkit.critic` return
exactly this), so that the gradient at s_n is the per-sample g_n = ∇_{s_n} log p
(the sign does not matter). If it is a MEAN, pass ``loss_reduction="mean"``: g
is then rescaled by the batch size N (the first dimension of each layer input).
With per-sample g, A = (1/N) Σ_n a_n a_nᵀ and S = (1/N) Σ_n g_n g_nᵀ.

:meth:`KFAC.update_stats_exact` replaces the sampled ŷ by the exact expectation
over the output distribution: given the model output z (logits, Gaussian mean,
value) and a square root B of the output Fisher, F_z = B Bᵀ (per sample, shape
``z.shape + (R,)``), it backpropagates each column of B and sums the outer
products, so S = E_n[J_sᵀ F_z J_s] exactly (J_s = ∂z/∂s). Square roots for the
categorical, Gaussian and value outputs are in :mod:`rlkit.critic`.

Running averages, periods, damping, inverses
============================================

Each pass gives batch statistics (Â, Ŝ); the stored factors are
bias-corrected exponential averages with decay β = ``stats_decay`` in [0, 1):
after k passes A_k = Σ_j β^{k-j} Â_j / Σ_j β^{k-j}, i.e. the first pass takes Â_1
exactly (warm-up) and the weight of the newest pass tends to 1−β. Statistics are
taken at steps 0, Ts, 2Ts, ... (Ts = ``stats_every``; a step is one
:meth:`KFAC.precondition` call; on other steps the Fisher pass methods return False
at once — check :attr:`KFAC.stats_due` to skip building the Fisher loss) and inverses
recomputed at steps 0, Tf, 2Tf, ...
(Tf = ``inverse_every``) or when a layer has none yet or the damping changed.

Statistics on part of the batch: with k = ``stats_subsample`` > 1 a pass takes its
(Â, Ŝ) from the samples r, r + k, r + 2k, ... of the batch only (the first dimension of
each layer input; the same samples for every layer), r = (pass count) mod k, so that k
passes in a row see every sample once. Â and Ŝ are then the means over those ⌈N/k⌉
samples. The Gram matrices, most of a pass's cost for convolutions and wide inputs,
shrink k-fold; the backward to the layer outputs does not when the pass shares the loss's
forward (it runs on the whole batch). A caller can instead forward only those samples,
``x[kfac.stats_rows(len(x))]``, and pass ``presampled=True``: the same statistics, with a
forward and a backward of N/k samples instead of a backward of N (ACKTR does this when
k > 1). Martens & Grosse (2015) estimate their statistics on 1/8 of each minibatch. Rollout
batches are strongly correlated in time, so a strided subset loses less than its size
suggests: ACKTR with k = 8 reached CartPole's, InvertedPendulum's and Reacher's thresholds in
0.92, 1.04 and 0.98 times the env steps of full-batch statistics (medians of 3 paired seeds,
``data/benchmarks/stats_subsample.txt``), while
the Nature CNN's update at batch 640 fell from 3.6 to 1.75 times a first-order one
with each pass on its own forward of the rows (``data/benchmarks/kfac_overhead.txt``).

Damping λ = ``damping`` >= 0, two modes (``damping_mode``):

* ``"factored"`` (Tikhonov with the π correction, Martens & Grosse 2015 §6.3):
  π = sqrt((tr A / dim A) / (tr S / dim S)) (π = 1 if a trace is 0),
  F̂ + λI is replaced by (A + π√λ I) ⊗ (S + √λ/π I) (π balances the two factors;
  the product is invariant to rescaling A by c and S by 1/c); inverted with Cholesky
  (``inverse_method="cholesky"``) or ``torch.linalg.eigh``.
* ``"eigen"`` (exact damping in the eigenbasis): A = Q_A Λ_A Q_Aᵀ,
  S = Q_S Λ_S Q_Sᵀ, (A ⊗ S + λI)⁻¹ applied as
  Q_S [(Q_Sᵀ ∇W Q_A) ⊘ (λ_S λ_Aᵀ + λ)] Q_Aᵀ (elementwise division); needs eigh.

The quadratic form returned by :meth:`KFAC.precondition` is gᵀ F̃⁻¹ g for the damped
block-diagonal F̃ actually inverted (K-FAC blocks as above, declared exact blocks
f + λ, identity for ``uncovered="identity"``): with Δ = F̃⁻¹g it equals Δᵀ F̃ Δ,
the quantity of the ACKTR step size η = min(η_max, sqrt(2δ / ΔᵀF̂Δ)).

If a factorization fails (singular factor, zero damping) it is retried in float64
and then by eigh with an eigenvalue floor: eigenvalues are clamped below at
``floor·λ_max`` (floor = ``eigenvalue_floor`` or, by default, dim·eps of the
dtype; 1 if the factor is 0) — results are always finite, never silently NaN.
Non-finite statistics or gradients raise ``ValueError`` naming the layer.

Where K-FAC is exact (tested in tests/test_kfac.py)
===================================================

* Batch size 1 and Linear layers, any nonlinearity: a is fixed, so the exact block
  E_y[(a aᵀ) ⊗ (g gᵀ)] = a aᵀ ⊗ E_y[g gᵀ] = A ⊗ S (exact-expectation pass).
* Deep linear networks (biases allowed) with a Gaussian output of fixed covariance,
  any batch: J_s = ∂f/∂s = W_L⋯W_{ℓ+1} and the output Fisher do not depend on x, so
  S is the same for every sample and the batch mean factorizes: the K-FAC blocks equal
  the exact block diagonal of the Gauss-Newton matrix (= Fisher for that model).
* A 1×1 convolution equals the linear layer applied at every location.

Cost and memory
===============

A Fisher pass costs one backward without weight gradients (layers whose input needs
no gradient are not backpropagated through at all) plus, per layer, two Gram
matrices: N·T·d_in² and N·T·d_out² multiply-adds (N/k samples with ``stats_subsample``
k), in chunks for convolutions (the patches are strided views copied a chunk at a time). Preconditioning costs
d_out²·d_in + d_out·d_in² per layer and step; an inverse O(d³) per factor every Tf
steps. The forward keeps a reference to each layer input (autograd keeps it anyway)
and, for layers whose input needs no gradient, the autograd edge of the output until
the next Fisher pass or ``precondition()``. Models in float16/bfloat16 keep their
factors in float32.

What is covered
===============

``nn.Linear`` and ``nn.Conv2d`` (groups = 1, any stride, dilation, padding and
padding mode) whose weight requires grad. Any other trainable parameter is
*uncovered* (listed in :attr:`KFAC.uncovered_parameters`) unless declared in
``exact_diagonal_blocks={param: fisher_diagonal}``, which gives it the diagonal
Fisher block you state (a number, a tensor of its shape, or a callable
param -> tensor), preconditioned as g / (f + λ). For a diagonal Gaussian policy
with a state-independent log-std, ∂log p/∂log σ_i = z_i² − 1, so the block is
E[(z²−1)²] = 2: ``exact_diagonal_blocks={log_std: 2.0}``. The ``uncovered``
policy says what happens to the rest: ``"error"`` (default) refuses to build,
``"identity"`` leaves their gradient unchanged (identity block, included in the
quadratic form), ``"zero"`` zeroes their gradient (they are not updated).
"""

from __future__ import annotations

import math
import time
import weakref
from contextlib import contextmanager
from numbers import Integral, Real
from typing import Callable, Iterable, Iterator, Mapping, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = ["KFAC", "KFACLayer"]

DAMPING_MODES = ("factored", "eigen")
INVERSE_METHODS = ("cholesky", "eigh")
UNCOVERED_POLICIES = ("error", "identity", "zero")
LOSS_REDUCTIONS = ("sum", "mean")

FisherDiagonal = Union[float, Tensor, Callable[[Tensor], Tensor]]


# --------------------------------------------------------------------------- validation


def _check_damping(value) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value < 0:
        raise ValueError(f"damping must be a finite number >= 0 (valid range [0, inf)); got {value!r}")
    return float(value)


def _check_decay(value) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not (0.0 <= value < 1.0):
        raise ValueError(f"stats_decay must be in [0, 1) (0: no averaging); got {value!r}")
    return float(value)


def _check_period(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1 (valid range [1, inf)); got {value!r}")
    return int(value)


def _check_choice(name: str, value, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}; got {value!r}")
    return value


_get_gradient_edge = getattr(torch.autograd.graph, "get_gradient_edge", None)


def _functorch_active() -> bool:
    peek = getattr(torch._C._functorch, "peek_interpreter_stack", None)
    return peek is not None and peek() is not None


# --------------------------------------------------------------------------- inverses


def _floor_value(evals: Tensor, rel: float | None, dim: int) -> Tensor:
    """The eigenvalue floor: rel·λ_max (rel defaults to dim·eps), or 1 if λ_max = 0."""
    if rel is None:
        rel = dim * torch.finfo(evals.dtype).eps
    top = evals.max()
    return torch.where(top > 0, top * rel, torch.ones_like(top))


def _eigh_robust(M: Tensor, what: str) -> tuple[Tensor, Tensor]:
    """eigh, retried in float64 and then with a tiny diagonal jitter; eigenvalues clamped >= 0."""
    attempts = [M, M.double()]
    for X in attempts:
        try:
            e, Q = torch.linalg.eigh(X)
        except RuntimeError:  # torch.linalg.LinAlgError is a RuntimeError
            continue
        if torch.isfinite(e).all() and torch.isfinite(Q).all():
            return e.clamp_min(0), Q
    X = M.double()
    jitter = (X.diagonal().abs().mean() + 1.0) * 1e-10
    try:
        e, Q = torch.linalg.eigh(X + jitter * torch.eye(X.shape[0], dtype=X.dtype, device=X.device))
    except RuntimeError as err:
        raise ValueError(f"eigendecomposition of {what} failed even in float64 with jitter") from err
    return e.clamp_min(0), Q


def _spd_inverse(M: Tensor, shift: Tensor, method: str, floor_rel: float | None, what: str) -> Tensor:
    """(M + shift·I)⁻¹ for a PSD M, never non-finite (float64 retry, then eigenvalue floor)."""
    n = M.shape[0]
    if method == "cholesky":
        for X in (M, M.double()):
            Md = X.clone()
            Md.diagonal().add_(shift.to(X.dtype))
            L, info = torch.linalg.cholesky_ex(Md)
            if int(info) == 0:
                inv = torch.cholesky_inverse(L)
                if torch.isfinite(inv).all():
                    return inv.to(M.dtype)
    # eigh path (also the fallback of the Cholesky path): floor the damped eigenvalues.
    e, Q = _eigh_robust(M, what)
    d = e + shift.to(e.dtype)
    d = d.clamp_min(_floor_value(d, floor_rel, n))
    inv = (Q / d) @ Q.T
    return inv.to(M.dtype)


# --------------------------------------------------------------------------- layers


def _gram(cols: Tensor, alpha: float) -> Tensor:
    """alpha · cols colsᵀ in one GEMM (scaling inside the GEMM, no temporary)."""
    k = cols.shape[0]
    return torch.addmm(cols.new_empty(k, k), cols, cols.t(), beta=0, alpha=alpha)


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


class KFACLayer:
    """The K-FAC record of one ``nn.Linear`` or ``nn.Conv2d``.

    Attributes for notebooks (all ``None`` until computed):

    * ``A`` (d_in × d_in), ``S`` (d_out × d_out): the running factors, with
      d_in = fan-in (+1 if the layer has a trainable bias) and d_out = C_out; see the
      module docstring for their exact definition (conv: S carries the factor T).
    * ``A_inv``, ``S_inv``: the damped inverses used by ``damping_mode="factored"``.
    * ``eigen``: ``(Q_A, λ_A, Q_S, λ_S)`` in ``damping_mode="eigen"``.
    * ``pi``: the π of the last factored-damping inverse.
    * ``num_updates``: how many Fisher passes have reached this layer.
    """

    def __init__(self, owner: "KFAC", name: str, module: nn.Module):
        self.owner: KFAC = owner
        self.active = True  # False once KFAC.remove() was called
        self.name = name
        self.module = module
        self.kind = "conv2d" if isinstance(module, nn.Conv2d) else "linear"
        self.weight: Tensor = module.weight
        b = module.bias
        self.bias: Tensor | None = b if (b is not None and b.requires_grad) else None
        self.d_out = self.weight.shape[0]
        self.fan_in = self.weight[0].numel()
        self.d_in = self.fan_in + (1 if self.bias is not None else 0)
        #: dtype of the factors: the weight's, but at least float32 (half-precision models)
        self.dtype = torch.promote_types(self.weight.dtype, torch.float32)
        if self.kind == "conv2d":
            pad_is_explicit = not isinstance(module.padding, str) and module.padding_mode == "zeros"
            self._unfold_padding = module.padding if pad_is_explicit else 0
            self._pad = None if pad_is_explicit else tuple(module._reversed_padding_repeated_twice)
            self._pad_mode = "constant" if module.padding_mode == "zeros" else module.padding_mode
        self.A: Tensor | None = None
        self.S: Tensor | None = None
        self.A_inv: Tensor | None = None
        self.S_inv: Tensor | None = None
        self.eigen: tuple[Tensor, Tensor, Tensor, Tensor] | None = None
        self.pi: float | None = None
        self.num_updates = 0
        self._weight_sum = 0.0  # Σ_j β^{k-j}: the bias-correction denominator
        self._inv_damp_recip: Tensor | None = None  # eigen mode: 1 / (λ_S λ_Aᵀ + λ), floored
        self._inverse_valid = False
        self._edge = None  # (weakref to the latest capture, GradientEdge of its output)

    def __repr__(self) -> str:
        return f"KFACLayer({self.name!r}, {self.kind}, A: {self.d_in}x{self.d_in}, S: {self.d_out}x{self.d_out})"

    @property
    def parameters(self) -> list[Tensor]:
        return [self.weight] + ([self.bias] if self.bias is not None else [])

    # ---- statistics of one forward call ---------------------------------------------

    def _has_sample_dim(self, a: Tensor) -> bool:
        """Whether the input's first dimension indexes samples (not an unbatched call)."""
        return a.dim() == 4 if self.kind == "conv2d" else a.dim() >= 2

    def _batch_size(self, a: Tensor) -> int:
        return a.shape[0] if self._has_sample_dim(a) else 1

    def _input_stat(self, a: Tensor) -> Tensor:
        """(1/(N·T)) Σ_{n,t} a aᵀ with the homogeneous coordinate, in ``self.dtype``."""
        a = a.detach().to(self.dtype)
        if self.kind == "linear":
            rows = a.reshape(-1, a.shape[-1])
            count = rows.shape[0]
            if self.bias is not None and count <= 8 * rows.shape[1]:  # few rows: append the 1s
                rows = torch.cat([rows, rows.new_ones(count, 1)], dim=1)
                return _gram(rows.t(), 1.0 / count)
            gram, total = _gram(rows.t(), 1.0 / count), (rows.sum(0) if self.bias is not None else None)
        else:
            gram, total, count = self._patch_moments(a)
        if self.bias is None:
            return gram
        k = gram.shape[0]
        out = gram.new_empty(k + 1, k + 1)
        out[:k, :k] = gram
        out[:k, k] = total / count
        out[k, :k] = out[:k, k]
        out[k, k] = 1.0
        return out

    # patches of about this many elements are processed at a time (cache-friendly)
    _CHUNK_ELEMENTS = 1 << 22

    def _patch_moments(self, a: Tensor) -> tuple[Tensor, Tensor, int]:
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

    def _output_stat(self, g: Tensor, n: int, scale: float) -> Tensor:
        """(scale²/N) Σ_n Σ_t g gᵀ (sum over locations)."""
        g = g.detach().to(self.dtype)
        if self.kind == "conv2d":
            if g.dim() == 3:
                g = g.unsqueeze(0)
            return _gram(g.transpose(0, 1).reshape(self.d_out, -1), scale * scale / n)
        return _gram(g.reshape(-1, self.d_out).t(), scale * scale / n)

    # ---- gradients ----------------------------------------------------------------

    def _grad_matrix(self) -> Tensor | None:
        """[∇W | ∇b] as a (d_out, d_in) matrix (row-major in W), or None if no gradient."""
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

    def eigendecomposition(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(λ_A, Q_A, λ_S, Q_S) of the current (undamped) factors, eigenvalues ascending.

        Computed on demand (the eigen damping mode keeps its own copy in ``eigen``).
        """
        if self.A is None:
            raise RuntimeError(f"layer {self.name!r} has no statistics yet")
        eA, QA = torch.linalg.eigh(self.A)
        eS, QS = torch.linalg.eigh(self.S)
        return eA, QA, eS, QS

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
        applies: (S + √λ/π I) ⊗ (A + π√λ I) (factored) or S ⊗ A + λI (eigen).
        Forms a Kronecker product: for notebooks and tests on small layers only.
        """
        if self.A is None:
            raise RuntimeError(f"layer {self.name!r} has no statistics yet")
        A, S = self.A, self.S
        if damped:
            owner = self.owner
            lam = owner.damping
            if owner.damping_mode == "factored":
                pi = _pi(A, S)
                A = A + pi * math.sqrt(lam) * torch.eye(self.d_in, dtype=A.dtype, device=A.device)
                S = S + math.sqrt(lam) / pi * torch.eye(self.d_out, dtype=S.dtype, device=S.device)
                K = torch.kron(S, A)
            else:
                K = torch.kron(S, A) + lam * torch.eye(self.d_out * self.d_in, dtype=A.dtype, device=A.device)
        else:
            K = torch.kron(S, A)
        p = self._param_order().to(K.device)
        return K[p][:, p]


def _pi(A: Tensor, S: Tensor) -> float:
    ta = float(torch.trace(A)) / A.shape[0]
    ts = float(torch.trace(S)) / S.shape[0]
    if ta > 0 and ts > 0 and math.isfinite(ta) and math.isfinite(ts):
        return math.sqrt(ta / ts)
    return 1.0


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
                A = layer._input_stat(cap.a if rows is None else cap.a[rows])
                self.A[layer] = self.A[layer] + A if layer in self.A else A
                self.calls[layer] = self.calls.get(layer, 0) + 1
            rows, n, selected = self.batch[cap]
            # a mean-reduced Fisher loss divided every per-sample gradient by the whole batch size n
            S = layer._output_stat(g if rows is None else g[rows], selected, float(n) if self.scale_by_batch else 1.0)
            self.S[layer] = self.S[layer] + S if layer in self.S else S


# --------------------------------------------------------------------------- KFAC


class KFAC:
    r"""K-FAC preconditioner for the ``nn.Linear`` and ``nn.Conv2d`` layers of ``model``.

    Typical ACKTR update (one forward shared by the Fisher pass and the loss)::

        kfac = KFAC(model, damping=1e-2, stats_decay=0.95, inverse_every=10)
        logits, value = model(obs)
        if kfac.stats_due:
            kfac.update_stats(joint_fisher_loss(categorical_fisher_loss(logits),
                                                value_fisher_loss(value)))
        optimizer.zero_grad()
        loss.backward()
        quad = kfac.precondition()          # .grad <- F̂⁻¹ g; quad = gᵀ F̂⁻¹ g
        eta = min(eta_max, (2 * delta / quad) ** 0.5)
        ...                                  # scale the step by eta, optimizer.step()

    Args:
        model: any module; its Linear/Conv2d layers (weight requiring grad, groups=1)
            are covered.
        damping: λ >= 0 (see the module docstring for the two modes).
        damping_mode: ``"factored"`` (π-corrected Tikhonov) or ``"eigen"`` (exact
            damping in the Kronecker eigenbasis).
        stats_decay: β in [0, 1) of the bias-corrected exponential averages.
        stats_every: Ts >= 1, statistics at steps that are multiples of Ts.
        stats_subsample: k >= 1, statistics from every k-th sample of the batch (the offset
            cycles through 0..k−1 over the passes); 1: every sample.
        inverse_every: Tf >= 1, inverses at steps that are multiples of Tf.
        inverse_method: ``"cholesky"`` (default) or ``"eigh"`` for the factored mode;
            the eigen mode needs (and defaults to) ``"eigh"``.
        exact_diagonal_blocks: ``{param: fisher_diagonal}`` for parameters no layer
            owns (a number, a tensor broadcastable to the parameter, or a callable
            ``param -> tensor``), all entries > 0.
        uncovered: ``"error"``, ``"identity"`` or ``"zero"``: what happens to the other
            trainable parameters (see the module docstring).
        exclude: modules not to cover (their parameters become uncovered).
        eigenvalue_floor: relative eigenvalue floor of the fallback path (default
            dim·eps of the dtype).
        timing_sync: call ``torch.cuda.synchronize()`` before reading the clock so
            that :attr:`timings` are device times on CUDA (slower).

    Attributes:
        layers: ``{module name: KFACLayer}`` — factors ``A``, ``S``, inverses, dense views.
        uncovered_parameters: ``{name: parameter}`` not owned by a layer nor declared.
        unsupported_layers: ``{module name: reason}`` (e.g. grouped convolutions).
        exact_blocks: the declared ``(name, parameter, fisher_diagonal)``.
        steps, stats_updates, inverse_updates: counters (a step is a ``precondition()``).
        timings: cumulative seconds in ``"stats"`` (Fisher passes), ``"inverse"`` and
            ``"precondition"``; host time on CUDA unless ``timing_sync``.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        damping: float = 1e-2,
        damping_mode: str = "factored",
        stats_decay: float = 0.95,
        stats_every: int = 1,
        stats_subsample: int = 1,
        inverse_every: int = 10,
        inverse_method: str | None = None,
        exact_diagonal_blocks: Mapping[Tensor, FisherDiagonal] | None = None,
        uncovered: str = "error",
        exclude: Iterable[nn.Module] = (),
        eigenvalue_floor: float | None = None,
        timing_sync: bool = False,
    ):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
        self._damping = _check_damping(damping)
        self.damping_mode = _check_choice("damping_mode", damping_mode, DAMPING_MODES)
        self.stats_decay = _check_decay(stats_decay)
        self.stats_every = _check_period("stats_every", stats_every)
        self.stats_subsample = _check_period("stats_subsample", stats_subsample)
        self.inverse_every = _check_period("inverse_every", inverse_every)
        if inverse_method is None:
            inverse_method = "eigh" if damping_mode == "eigen" else "cholesky"
        self.inverse_method = _check_choice("inverse_method", inverse_method, INVERSE_METHODS)
        if self.damping_mode == "eigen" and self.inverse_method != "eigh":
            raise ValueError("inverse_method must be 'eigh' with damping_mode='eigen' (it needs the eigenbases)")
        self.uncovered_policy = _check_choice("uncovered", uncovered, UNCOVERED_POLICIES)
        if eigenvalue_floor is not None and not (isinstance(eigenvalue_floor, Real) and 0 < eigenvalue_floor < 1):
            raise ValueError(f"eigenvalue_floor must be in (0, 1) or None; got {eigenvalue_floor!r}")
        self.eigenvalue_floor = eigenvalue_floor
        self.timing_sync = bool(timing_sync)

        self.model = model
        self._pass: _Pass | None = None
        self._captures: "weakref.WeakSet[_Capture]" = weakref.WeakSet()
        excluded = {id(m) for m in exclude}
        self.layers: dict[str, KFACLayer] = {}
        self.unsupported_layers: dict[str, str] = {}
        self._handles = []
        for name, module in model.named_modules():
            if not isinstance(module, (nn.Linear, nn.Conv2d)) or id(module) in excluded:
                continue
            if not module.weight.requires_grad:
                continue
            if isinstance(module, nn.Conv2d) and module.groups != 1:
                self.unsupported_layers[name] = "grouped convolution (groups != 1)"
                continue
            layer = KFACLayer(self, name, module)
            self.layers[name] = layer
        self._register_hooks()

        owned = {id(p) for layer in self.layers.values() for p in layer.parameters}
        names = {id(p): n for n, p in model.named_parameters()}
        self.exact_blocks: list[tuple[str, Tensor, FisherDiagonal]] = []
        for param, fisher in (exact_diagonal_blocks or {}).items():
            if id(param) not in names:
                raise ValueError("exact_diagonal_blocks: every key must be a parameter of the model")
            if id(param) in owned:
                raise ValueError(
                    f"exact_diagonal_blocks: parameter {names[id(param)]!r} belongs to a covered layer"
                )
            if not callable(fisher):
                f = torch.as_tensor(fisher)
                if not (torch.isfinite(f).all() and (f > 0).all()):
                    raise ValueError(
                        f"exact_diagonal_blocks[{names[id(param)]!r}] must be finite and > 0; got {fisher!r}"
                    )
            self.exact_blocks.append((names[id(param)], param, fisher))
        declared = owned | {id(p) for _, p, _ in self.exact_blocks}
        #: trainable parameters neither owned by a layer nor declared; see ``uncovered``.
        self.uncovered_parameters: dict[str, Tensor] = {
            n: p for n, p in model.named_parameters() if p.requires_grad and id(p) not in declared
        }
        if not self.layers and not self.exact_blocks:
            raise ValueError("KFAC: the model has no nn.Linear or nn.Conv2d layer to cover")
        if self.uncovered_parameters and self.uncovered_policy == "error":
            detail = "".join(f"; {n}: {why}" for n, why in self.unsupported_layers.items())
            raise ValueError(
                "KFAC: trainable parameters not covered by any Linear/Conv2d layer: "
                f"{sorted(self.uncovered_parameters)}{detail}. Declare their exact Fisher block with "
                "exact_diagonal_blocks={param: fisher_diagonal} (a diagonal Gaussian's log-std: 2.0), "
                "or pass uncovered='identity' (gradient unchanged) or uncovered='zero' (not updated)."
            )

        self.steps = 0
        self.stats_updates = 0
        self.inverse_updates = 0
        self.timings = {"stats": 0.0, "inverse": 0.0, "precondition": 0.0}

    # ---- hyperparameters that invalidate the inverses ------------------------------------

    @property
    def damping(self) -> float:
        """λ >= 0; setting it marks the inverses for recomputation at the next step."""
        return self._damping

    @damping.setter
    def damping(self, value: float) -> None:
        self._damping = _check_damping(value)
        for layer in self.layers.values():
            layer._inverse_valid = False

    def __repr__(self) -> str:
        return (
            f"KFAC({len(self.layers)} layers, damping={self.damping}, damping_mode={self.damping_mode!r}, "
            f"stats_decay={self.stats_decay}, stats_every={self.stats_every}, "
            f"stats_subsample={self.stats_subsample}, "
            f"inverse_every={self.inverse_every}, steps={self.steps})"
        )

    # ---- capture ---------------------------------------------------------------------

    def _make_forward_hook(self, layer: KFACLayer):
        captures = self._captures

        def hook(module, inputs, output):
            if (
                not layer.active
                or not torch.is_grad_enabled()
                or not isinstance(output, Tensor)
                or not output.requires_grad
                or not inputs
                or _functorch_active()
            ):
                return None
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

    def _register_hooks(self) -> None:
        self._handles = [layer.module.register_forward_hook(self._make_forward_hook(layer))
                         for layer in self.layers.values()]

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Context without K-FAC's forward hooks: for acting and evaluation, where nothing is captured.

        A module with a forward hook takes PyTorch's slower call path on every call, even under
        ``torch.no_grad`` where the hook returns at once: a few µs per layer (ACKTR acting on
        HalfCheetah, 64-64 actor and critic, one env step per call: ≈ 178 → 165 µs per call). Forwards inside the context are
        not captured (a Fisher pass needs a forward from outside it); the hooks are back on exit.
        Does nothing after :meth:`remove`.
        """
        if not self._handles:
            yield
            return
        for handle in self._handles:
            handle.remove()
        self._handles = []
        try:
            yield
        finally:
            if self.layers and next(iter(self.layers.values())).active:
                self._register_hooks()

    def remove(self) -> None:
        """Remove the hooks; this object stops capturing (its factors stay readable)."""
        for h in self._handles:
            h.remove()
        self._handles = []
        self._drop_edges()
        for layer in self.layers.values():
            layer.active = False

    def _clock(self) -> float:
        if self.timing_sync and torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter()

    @property
    def stats_due(self) -> bool:
        """Whether this step (``steps % stats_every == 0``) takes statistics."""
        return self.steps % self.stats_every == 0

    def stats_rows(self, batch_size: int) -> slice:
        """The samples of a batch of ``batch_size`` the next Fisher pass takes its statistics from.

        Every ``stats_subsample``-th (k), from r = (passes so far) mod k: ``slice(r, None, k)``;
        all samples when k = 1. A caller that runs its Fisher pass on a separate forward of
        ``x[kfac.stats_rows(len(x))]`` and passes ``presampled=True`` pays 1/k of the pass's
        forward and backward too, not only of its Gram matrices (same statistics).
        """
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1; got {batch_size!r}")
        return subsample_rows(batch_size, self.stats_subsample, self.stats_updates)

    @contextmanager
    def fisher_pass(self, *, loss_reduction: str = "sum", force: bool = False,
                    presampled: bool = False) -> Iterator[bool]:
        """Context in which a backward of the Fisher loss updates the statistics.

        Yields whether statistics are taken (``stats_due`` or ``force``); if not, the
        context does nothing. ``fisher_loss.backward()`` inside it also accumulates the
        Fisher loss's gradient into ``.grad``: zero the gradients afterwards (or use
        :meth:`update_stats`, which does not touch ``.grad`` and is cheaper).
        ``presampled``: the forward was already run on :meth:`stats_rows` only; every
        sample it saw enters the statistics (the subsample's offset still advances).
        """
        _check_choice("loss_reduction", loss_reduction, LOSS_REDUCTIONS)
        if self._pass is not None:
            raise RuntimeError("KFAC: Fisher passes cannot be nested")
        if not self.layers or not (force or self.stats_due):
            yield False
            return
        if not next(iter(self.layers.values())).active:
            raise RuntimeError("KFAC: hooks were removed (remove() was called)")
        t0 = self._clock()
        # the subsample's offset cycles with the pass count (saved with the state: resumes exactly)
        self._pass = _Pass(scale_by_batch=(loss_reduction == "mean"),
                           subsample=1 if presampled else self.stats_subsample, offset=self.stats_updates)
        try:
            yield True
            p = self._pass
            self._pass = None
            self._finish_pass(p)
        finally:
            self._pass = None
            self._drop_edges()
            self.timings["stats"] += self._clock() - t0

    def _drop_edges(self) -> None:
        for layer in self.layers.values():
            layer._edge = None

    def _grad_inputs(self) -> list[Tensor]:
        """Tensors whose gradients force the layer-output hooks to fire, without weight grads."""
        inputs, seen = [], set()
        for cap in list(self._captures):
            layer = cap.layer
            edge = layer._edge
            if cap.a.requires_grad:
                t, key = cap.a, id(cap.a)
            elif edge is not None and edge[0]() is cap:
                t, key = edge[1], ("edge", id(cap))
            else:  # correct but dearer: the bias (or weight) gradient of a bottom layer
                t = layer.bias if layer.bias is not None else layer.weight
                key = id(t)
            if key not in seen:
                seen.add(key)
                inputs.append(t)
        if not inputs:
            raise RuntimeError(
                "KFAC: no forward pass of a covered layer with gradients enabled is alive; run the "
                "forward (not under torch.no_grad) after creating KFAC and before the Fisher pass"
            )
        return inputs

    def update_stats(
        self,
        fisher_loss: Tensor,
        *,
        loss_reduction: str = "sum",
        retain_graph: bool = True,
        force: bool = False,
        presampled: bool = False,
    ) -> bool:
        """Fisher pass from a sampled-output loss; returns whether statistics were taken.

        ``fisher_loss`` = −Σ_n log p(ŷ_n | x_n) with ŷ sampled from the model (a sum over
        the batch, or a mean with ``loss_reduction="mean"``). Only the gradients with
        respect to the covered layers' outputs are computed; ``.grad`` is untouched and
        the graph is kept (``retain_graph``) for the ordinary backward. Skipped (returns
        False) unless ``stats_due`` or ``force``. ``presampled``: the loss comes from a
        forward of :meth:`stats_rows` only (see :meth:`fisher_pass`).
        """
        if not (force or self.stats_due):
            return False
        if not isinstance(fisher_loss, Tensor) or fisher_loss.numel() != 1:
            raise ValueError("fisher_loss must be a scalar tensor (a sum of per-sample negative log-likelihoods)")
        inputs = self._grad_inputs()
        with self.fisher_pass(loss_reduction=loss_reduction, force=True, presampled=presampled):
            torch.autograd.grad(fisher_loss, inputs, retain_graph=retain_graph, allow_unused=True)
        return True

    def update_stats_exact(
        self,
        outputs_and_sqrts: Sequence[tuple[Tensor, Tensor]],
        *,
        retain_graph: bool = True,
        force: bool = False,
        presampled: bool = False,
    ) -> bool:
        """Fisher pass with the exact expectation over the output distribution.

        ``outputs_and_sqrts``: pairs ``(z, B)`` with B of shape ``z.shape + (R,)`` and
        F_z = B Bᵀ per sample (e.g. :func:`rlkit.critic.categorical_fisher_sqrt`); the
        output distributions of different pairs are independent (their Fisher is block
        diagonal, as for p(a, v|s) = π(a|s) p(v|s)). Each column of each B is
        backpropagated and the outer products summed: S = E_n[Σ J_sᵀ F_z J_s].
        ``presampled`` as in :meth:`update_stats`.
        """
        if not (force or self.stats_due):
            return False
        pairs = list(outputs_and_sqrts)
        for z, B in pairs:
            if B.shape[:-1] != z.shape:
                raise ValueError(f"square root of shape {tuple(B.shape)} does not match output {tuple(z.shape)} + (R,)")
        inputs = self._grad_inputs()
        jobs = [(z, B[..., r].detach()) for z, B in pairs for r in range(B.shape[-1])]
        with self.fisher_pass(loss_reduction="sum", force=True, presampled=presampled):
            for i, (z, col) in enumerate(jobs):
                keep = retain_graph or i < len(jobs) - 1
                torch.autograd.grad(z, inputs, grad_outputs=col, retain_graph=keep, allow_unused=True)
        return True

    def _finish_pass(self, p: _Pass) -> None:
        if not p.S:
            raise RuntimeError(
                "KFAC: the Fisher loss reached none of the covered layers (was the forward run under "
                "torch.no_grad, or before KFAC was created?)"
            )
        batch = {}
        with torch.no_grad():
            for layer, S in p.S.items():
                A = p.A[layer]
                if p.calls[layer] > 1:
                    A = A / p.calls[layer]
                batch[layer] = (A, S)
            total = torch.stack([A.sum() + S.sum() for A, S in batch.values()]).sum()
            if not math.isfinite(float(total)):
                for layer, (A, S) in batch.items():
                    for which, X in (("A (activations)", A), ("S (Fisher-pass output gradients)", S)):
                        if not torch.isfinite(X).all():
                            raise ValueError(f"K-FAC: non-finite statistics {which} in layer {layer.name!r}")
            beta = self.stats_decay
            for layer, (A, S) in batch.items():
                layer._weight_sum = beta * layer._weight_sum + 1.0
                rate = 1.0 / layer._weight_sum
                if layer.A is None:
                    layer.A, layer.S = A.clone(), S.clone()
                else:
                    layer.A.lerp_(A, rate)
                    layer.S.lerp_(S, rate)
                layer.num_updates += 1
        self.stats_updates += 1

    # ---- inverses ---------------------------------------------------------------------

    def update_inverses(self) -> None:
        """Recompute the damped inverses (or eigenbases) of every layer with statistics."""
        t0 = self._clock()
        lam = self.damping
        sqrt_lam = math.sqrt(lam)
        with torch.no_grad():
            for layer in self.layers.values():
                if layer.A is None:
                    continue
                A, S = layer.A, layer.S
                if self.damping_mode == "factored":
                    pi = _pi(A, S)
                    layer.pi = pi
                    shift_a = A.new_tensor(pi * sqrt_lam)
                    shift_s = S.new_tensor(sqrt_lam / pi)
                    method, floor = self.inverse_method, self.eigenvalue_floor
                    layer.A_inv = _spd_inverse(A, shift_a, method, floor, f"A of {layer.name!r}")
                    layer.S_inv = _spd_inverse(S, shift_s, method, floor, f"S of {layer.name!r}")
                    bad = not (torch.isfinite(layer.A_inv).all() and torch.isfinite(layer.S_inv).all())
                else:
                    eA, QA = _eigh_robust(A, f"A of {layer.name!r}")
                    eS, QS = _eigh_robust(S, f"S of {layer.name!r}")
                    denom = torch.outer(eS, eA) + lam
                    floor = self.eigenvalue_floor
                    if floor is None:
                        floor = max(layer.d_in, layer.d_out) * torch.finfo(denom.dtype).eps
                    denom = denom.clamp_min(_floor_value(denom, floor, 1))
                    dt = A.dtype
                    layer.eigen = (QA.to(dt), eA.to(dt), QS.to(dt), eS.to(dt))
                    layer._inv_damp_recip = denom.reciprocal().to(dt)
                    bad = not torch.isfinite(layer._inv_damp_recip).all()
                if bad:  # cannot happen with finite statistics; never let it pass silently
                    raise ValueError(f"K-FAC: non-finite inverse in layer {layer.name!r}")
                layer._inverse_valid = True
        self.inverse_updates += 1
        self.timings["inverse"] += self._clock() - t0

    # ---- preconditioning --------------------------------------------------------------

    def _apply_inverse(self, layer: KFACLayer, G: Tensor) -> Tensor:
        if self.damping_mode == "factored":
            return layer.S_inv @ G @ layer.A_inv
        QA, _, QS, _ = layer.eigen
        V = QS.t() @ G @ QA
        V.mul_(layer._inv_damp_recip)
        return QS @ V @ QA.t()

    def precondition(self, *, update_inverses: bool | None = None) -> float:
        """Replace each covered gradient by F̂⁻¹g (layer by layer) and return gᵀF̂⁻¹g.

        Per layer: ∇W ← S⁻¹ ∇W A⁻¹ (damped as configured; the bias is the last column);
        declared exact blocks: g ← g / (f + λ); uncovered parameters per ``uncovered``.
        The returned quadratic form is Σ ⟨g, F̂⁻¹g⟩ over all of them = Δᵀ F̂ Δ for
        Δ = F̂⁻¹g, the quantity of the trust-region step size. ``update_inverses``:
        None follows the schedule (steps multiple of ``inverse_every``, missing or
        stale inverses), True forces, False skips (unless an inverse is missing).
        Counts one step. Raises ``ValueError`` on a non-finite gradient.
        """
        self._drop_edges()
        due = self.steps % self.inverse_every == 0 if update_inverses is None else update_inverses
        active = [(layer, G) for layer in self.layers.values() if (G := layer._grad_matrix()) is not None]
        missing = [layer.name for layer, _ in active if layer.A is None]
        if missing:
            raise RuntimeError(
                f"KFAC: no Fisher statistics for layers {missing}; run update_stats (or a fisher_pass) "
                "whose Fisher loss reaches them before precondition()"
            )
        if due or any(not layer._inverse_valid for layer, _ in active):
            self.update_inverses()
        t0 = self._clock()
        lam = self.damping
        with torch.no_grad():
            results, quads, labels = [], [], []
            for layer, G in active:
                P = self._apply_inverse(layer, G)
                results.append((layer, P))
                quads.append(torch.sum(G * P))
                labels.append(("layer", layer.name, layer.parameters))
            exact = []
            for name, param, fisher in self.exact_blocks:
                if param.grad is None:
                    continue
                f = fisher(param) if callable(fisher) else fisher
                f = torch.as_tensor(f, dtype=param.dtype, device=param.device)
                denom = f + lam
                if not (torch.isfinite(denom).all() and (denom > 0).all()):
                    raise ValueError(f"exact_diagonal_blocks[{name!r}]: Fisher diagonal must be finite and > 0")
                P = param.grad / denom
                exact.append((param, P))
                quads.append(torch.sum(param.grad * P))
                labels.append(("parameter", name, [param]))
            if self.uncovered_policy == "identity":
                for name, param in self.uncovered_parameters.items():
                    if param.grad is not None:
                        quads.append(torch.sum(param.grad * param.grad))
                        labels.append(("parameter", name, [param]))
            quad = float(torch.stack(quads).sum()) if quads else 0.0
            if not math.isfinite(quad):
                self._raise_non_finite(quads, labels)
            for layer, P in results:
                layer._write_grad(P)
            for param, P in exact:
                param.grad.copy_(P)
            if self.uncovered_policy == "zero":
                for param in self.uncovered_parameters.values():
                    if param.grad is not None:
                        param.grad.zero_()
        self.steps += 1
        self.timings["precondition"] += self._clock() - t0
        return quad

    @staticmethod
    def _raise_non_finite(quads, labels) -> None:
        for q, (kind, name, params) in zip(quads, labels):
            if torch.isfinite(q):
                continue
            for p in params:
                if p.grad is not None and not torch.isfinite(p.grad).all():
                    raise ValueError(f"K-FAC: non-finite gradient in {kind} {name!r}")
            raise ValueError(f"K-FAC: non-finite preconditioned gradient in {kind} {name!r} (overflow)")
        raise ValueError("K-FAC: the quadratic form gᵀF̂⁻¹g overflowed")

    # ---- views and state ----------------------------------------------------------------

    def factors(self) -> dict[str, tuple[Tensor | None, Tensor | None]]:
        """``{layer name: (A, S)}`` (see the module docstring for the definitions)."""
        return {name: (layer.A, layer.S) for name, layer in self.layers.items()}

    def state_dict(self) -> dict:
        """Factors, inverses and counters (for resuming a run exactly)."""
        layers = {}
        for name, layer in self.layers.items():
            layers[name] = {
                "A": layer.A, "S": layer.S, "A_inv": layer.A_inv, "S_inv": layer.S_inv,
                "eigen": layer.eigen, "inv_damp_recip": layer._inv_damp_recip, "pi": layer.pi,
                "num_updates": layer.num_updates, "weight_sum": layer._weight_sum,
                "inverse_valid": layer._inverse_valid,
            }
        return {
            "steps": self.steps, "stats_updates": self.stats_updates, "inverse_updates": self.inverse_updates,
            "damping": self.damping, "layers": layers,
        }

    def load_state_dict(self, state: dict) -> None:
        if set(state["layers"]) != set(self.layers):
            raise ValueError("KFAC.load_state_dict: the layers do not match this model")
        self.steps, self.stats_updates = state["steps"], state["stats_updates"]
        self.inverse_updates = state["inverse_updates"]
        self._damping = _check_damping(state["damping"])
        for name, s in state["layers"].items():
            layer = self.layers[name]
            clone = lambda t: None if t is None else t.detach().clone().to(layer.weight.device)  # noqa: E731
            layer.A, layer.S = clone(s["A"]), clone(s["S"])
            layer.A_inv, layer.S_inv = clone(s["A_inv"]), clone(s["S_inv"])
            layer.eigen = None if s["eigen"] is None else tuple(clone(t) for t in s["eigen"])
            layer._inv_damp_recip = clone(s["inv_damp_recip"])
            layer.pi, layer.num_updates = s["pi"], s["num_updates"]
            layer._weight_sum, layer._inverse_valid = s["weight_sum"], s["inverse_valid"]
