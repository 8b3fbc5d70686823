r"""Preconditioning by :class:`~rlkit.kfac.KFAC`: damped inverses on a schedule, then F̂⁻¹g.

Per covered layer the gradient matrix [∇W | ∇b] (PyTorch's (C_out, C_in) weight, bias as the
last column) is replaced by S⁻¹ [∇W | ∇b] A⁻¹ = vec⁻¹(F̂_ℓ⁻¹ vec(∇W)), damped as configured
(:mod:`rlkit.kfac.damping`); a declared exact diagonal block f gives g / (f + λ). The returned
quadratic form gᵀF̃⁻¹g = ΔᵀF̃Δ (Δ = F̃⁻¹g, F̃ the damped block-diagonal matrix actually
inverted) is the q of the trust-region step size (:mod:`rlkit.trust_region`). Inverses are
recomputed at steps 0, Tf, 2Tf, ... (Tf = ``inverse_every``), when a layer has none yet, or
when the damping changed. Derivations: docs/derivations.md.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence, Union

import torch
from torch import Tensor

from .blocks import Eigendecomposition, KFACLayer
from .damping import damping_shifts, eigen_inverse, factored_inverses

#: Gradients given to :meth:`Preconditioning.apply_inverse` / :meth:`Preconditioning.matvec`:
#: ``{parameter name: tensor}`` (names of ``model.named_parameters()``, e.g. a ``torch.func.grad``
#: result) or a sequence aligned with ``list(model.parameters())``; None entries: no gradient.
Gradients = Union[Mapping[str, Union[Tensor, None]], Sequence[Union[Tensor, None]]]


class Preconditioning:
    """Mixin of :class:`~rlkit.kfac.KFAC`: inverses and :meth:`precondition`.

    Uses the attributes that ``KFAC.__init__`` sets: ``layers``, ``damping``, ``damping_mode``,
    ``inverse_method``, ``eigenvalue_floor``, ``inverse_every``, ``exact_blocks``,
    ``uncovered_parameters``, ``uncovered_policy``, ``steps``, ``inverse_updates``, ``timings``.
    """

    # ---- inverses ---------------------------------------------------------------------

    def update_inverses(self) -> None:
        """Recompute the damped inverses (or eigenbases) of every layer with statistics."""
        t0 = self._clock()
        with torch.no_grad():
            for layer in self.layers.values():
                if layer.A is None:
                    continue
                A, S = layer.A, layer.S
                shifts = damping_shifts(A, S, self.damping, self.damping_mode)
                if self.damping_mode == "factored":
                    layer.pi = shifts.pi_correction
                    layer.A_inv, layer.S_inv = factored_inverses(
                        A, S, shifts, self.inverse_method, self.eigenvalue_floor, layer.name
                    )
                    bad = not (torch.isfinite(layer.A_inv).all() and torch.isfinite(layer.S_inv).all())
                else:
                    parts, layer._inv_damp_recip = eigen_inverse(
                        A, S, shifts, self.eigenvalue_floor, layer.name
                    )
                    layer.eigen = Eigendecomposition(*parts)
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
        _, QA, _, QS = layer.eigen
        V = QS.t() @ G @ QA
        V.mul_(layer._inv_damp_recip)
        return QS @ V @ QA.t()

    def _apply_block(self, layer: KFACLayer, G: Tensor, damped: bool) -> Tensor:
        """F̃_ℓ vec(G) (or F̂_ℓ with ``damped=False``) from the current factors, as a matrix."""
        A, S = layer.A, layer.S
        if not damped:
            return S @ G @ A
        shifts = damping_shifts(A, S, self.damping, self.damping_mode)
        out = (S @ G + shifts.shift_S * G) @ A + shifts.shift_A * (S @ G) + shifts.shift_S * shifts.shift_A * G
        if shifts.shift_kron:
            out = out + shifts.shift_kron * G
        return out

    def _missing_statistics(self, names: list[str]) -> RuntimeError:
        never = [n for n in names if self.layers[n].forward_calls == 0]
        if never:
            why = "; ".join(f"{n}: {self.unsupported_layers.get(n, 'never called as a module')}" for n in never)
            return RuntimeError(
                f"KFAC: layers {never} have gradients but were never called as modules (their weight is "
                f"used functionally, e.g. by a parent's forward: {why}), so K-FAC cannot see their inputs. "
                "Pass exclude=[those modules] (their parameters are then uncovered: uncovered='identity' "
                "or exact_diagonal_blocks)"
            )
        return RuntimeError(
            f"KFAC: no Fisher statistics for layers {names}; run update_stats (or a fisher_pass) "
            "whose Fisher loss reaches them before precondition()" + self._unseen_note()
        )

    def _solve(self, grad_of: Callable[[Tensor], Tensor | None], *, due: bool, inverse: bool = True,
               damped: bool = True):
        """F̃⁻¹g (or F̃g with ``inverse=False``) of the gradients ``grad_of(param)``.

        Returns ([(param, result)], quadratic form as a 0-d tensor or None, labels, quads) for
        the parameters with a gradient; uncovered parameters under the ``"zero"`` policy get zeros.
        """
        active = []
        for layer in self.layers.values():
            gw = grad_of(layer.weight)
            gb = grad_of(layer.bias) if layer.bias is not None else None
            G = layer._grad_matrix(gw, gb, from_grad=False)
            if G is not None:
                active.append((layer, G))
        missing = [layer.name for layer, _ in active if layer.A is None]
        if missing:
            raise self._missing_statistics(missing)
        if inverse and (due or any(not layer._inverse_valid for layer, _ in active)):
            self.update_inverses()
        damping = self.damping if damped else 0.0
        out, quads, labels = [], [], []
        with torch.no_grad():
            for layer, G in active:
                P = self._apply_inverse(layer, G) if inverse else self._apply_block(layer, G, damped)
                quads.append(torch.sum(G * P))
                labels.append(("layer", layer.name, layer.parameters))
                pw, pb = layer._split(P)
                out.append((layer.weight, pw))
                if pb is not None:
                    out.append((layer.bias, pb))
            for name, param, fisher in self.exact_blocks:
                g = grad_of(param)
                if g is None:
                    continue
                f = fisher(param) if callable(fisher) else fisher
                f = torch.as_tensor(f, dtype=g.dtype, device=g.device)
                denom = f + damping
                if not (torch.isfinite(denom).all() and (denom > 0 if inverse else denom >= 0).all()):
                    raise ValueError(f"exact_diagonal_blocks[{name!r}]: Fisher diagonal must be finite and > 0")
                P = g / denom if inverse else g * denom
                out.append((param, P))
                quads.append(torch.sum(g * P))
                labels.append(("parameter", name, [param]))
            for name, param in self.uncovered_parameters.items():
                g = grad_of(param)
                if g is None:
                    continue
                if self.uncovered_policy == "identity":
                    out.append((param, g.clone()))
                    quads.append(torch.sum(g * g))
                    labels.append(("parameter", name, [param]))
                else:
                    out.append((param, torch.zeros_like(g)))
        quad = torch.stack(quads).sum() if quads else None
        return out, quad, labels, quads

    def precondition(self, *, update_inverses: bool | None = None) -> float:
        """Replace each covered gradient by F̂⁻¹g (layer by layer) and return gᵀF̂⁻¹g.

        Per layer: ∇W ← S⁻¹ ∇W A⁻¹ (damped as configured; the bias is the last column);
        declared exact blocks: g ← g / (f + λ); uncovered parameters per ``uncovered``.
        The returned quadratic form is Σ ⟨g, F̂⁻¹g⟩ over all of them = Δᵀ F̂ Δ for
        Δ = F̂⁻¹g, the quantity of the trust-region step size. ``update_inverses``:
        None follows the schedule (steps multiple of ``inverse_every``, missing or
        stale inverses), True forces, False skips (unless an inverse is missing).
        Counts one step. Raises ``ValueError`` on a non-finite gradient and
        ``RuntimeError`` when no parameter of the model has a ``.grad`` (for gradients
        kept elsewhere, e.g. from ``torch.func``, use :meth:`apply_inverse`).
        """
        self._drop_edges()
        due = self.steps % self.inverse_every == 0 if update_inverses is None else update_inverses
        t0 = self._clock()
        out, quad_t, labels, quads = self._solve(lambda p: p.grad, due=due)
        if not out:
            raise RuntimeError(self._no_gradient_message())
        quad = self._checked_quad(quad_t, labels, quads, lambda p: p.grad)
        with torch.no_grad():
            for param, P in out:
                if param.grad is None:
                    param.grad = P.to(param.dtype, copy=True)
                else:
                    param.grad.copy_(P)
        self._foreign_forward = None
        self.steps += 1
        self.timings["precondition"] += self._clock() - t0
        return quad

    def _no_gradient_message(self) -> str:
        foreign = ""
        if self._foreign_forward is not None:
            foreign = (f" A forward called layer {self._foreign_forward!r} with a weight that is not the "
                       "model's own (torch.func.functional_call with other parameters): the gradient went "
                       "to those tensors.")
        return ("KFAC.precondition: no parameter of the model has a .grad, nothing to precondition "
                "(run loss.backward() first)." + foreign + " For gradients kept outside .grad "
                "(torch.func.grad, functional_call), use kfac.apply_inverse(grads).")

    def _checked_quad(self, quad_t, labels, quads, grad_of) -> float:
        quad = float(quad_t) if quad_t is not None else 0.0
        if not math.isfinite(quad):
            self._raise_non_finite(quads, labels, grad_of)
        return quad

    # ---- the functional surface -----------------------------------------------------------

    def _gradients(self, grads: Gradients, what: str):
        """(grad_of, rebuild): a lookup param -> tensor and a function that rebuilds ``grads``'s
        structure from {id(param): tensor}."""
        named = list(self.model.named_parameters())
        if isinstance(grads, Mapping):
            by_name = dict(named)
            unknown = [k for k in grads if k not in by_name]
            if unknown:
                raise ValueError(f"KFAC.{what}: {unknown} are not parameter names of the model "
                                 f"(names of model.named_parameters(), e.g. {[n for n, _ in named[:3]]})")
            table = {id(by_name[k]): g for k, g in grads.items() if g is not None}
            keys = list(grads)

            def rebuild(result):
                return {k: (None if grads[k] is None else result.get(id(by_name[k]), grads[k])) for k in keys}
        else:
            grads = list(grads)
            params = [p for _, p in named]
            if len(grads) != len(params):
                raise ValueError(f"KFAC.{what}: got {len(grads)} gradients for the model's {len(params)} "
                                 "parameters (a sequence must align with list(model.parameters()))")
            table = {id(p): g for p, g in zip(params, grads) if g is not None}

            def rebuild(result):
                return [None if g is None else result.get(id(p), g) for p, g in zip(params, grads)]
        for name, p in named:
            g = table.get(id(p))
            if g is not None and g.shape != p.shape:
                raise ValueError(f"KFAC.{what}: the gradient of {name!r} has shape {tuple(g.shape)}, "
                                 f"the parameter {tuple(p.shape)}")
        return (lambda p: table.get(id(p))), rebuild

    def apply_inverse(self, grads: Gradients, *, update_inverses: bool | None = False,
                      step: bool = False):
        """``(F̃⁻¹g, gᵀF̃⁻¹g)`` for gradients kept outside ``.grad``; ``.grad`` is untouched.

        ``grads``: ``{name: tensor}`` (``model.named_parameters()`` names, as ``torch.func.grad``
        of a ``functional_call`` returns) or a sequence aligned with ``list(model.parameters())``;
        the result has the same structure (entries of frozen or absent parameters passed
        through). The same blocks and damping as :meth:`precondition` (uncovered parameters per
        ``uncovered``). ``update_inverses``: False computes inverses only where missing or
        stale, True forces, None follows the ``inverse_every`` schedule. ``step=True`` counts a
        step as :meth:`precondition` does (then None is the natural ``update_inverses``).
        """
        grad_of, rebuild = self._gradients(grads, "apply_inverse")
        due = (self.steps % self.inverse_every == 0) if update_inverses is None else update_inverses
        t0 = self._clock()
        out, quad_t, labels, quads = self._solve(grad_of, due=due)
        quad = self._checked_quad(quad_t, labels, quads, grad_of)
        if step:
            self.steps += 1
        self.timings["precondition"] += self._clock() - t0
        return rebuild({id(p): P for p, P in out}), quad

    def matvec(self, v: Gradients, *, damped: bool = True):
        """F̃v (``damped=False``: F̂v), block by block from the current factors; same structure as ``v``.

        The operator that :meth:`apply_inverse` inverts (they agree after :meth:`update_inverses`;
        between inverse updates apply_inverse uses the last inverses). Uncovered parameters:
        identity (``"identity"``) or zero (``"zero"``, a singular direction).
        """
        grad_of, rebuild = self._gradients(v, "matvec")
        out, _, _, _ = self._solve(grad_of, due=False, inverse=False, damped=damped)
        return rebuild({id(p): P for p, P in out})

    def linear_operator(self, *, inverse: bool = False, damped: bool = True) -> "KFACOperator":
        """F̃ (or F̃⁻¹ with ``inverse=True``) as an operator on flat vectors over the trainable
        parameters in ``model.parameters()`` order: ``op @ v``, ``op.to_dense()`` (small models),
        ``op.to_scipy()`` (a ``scipy.sparse.linalg.LinearOperator``, if SciPy is installed)."""
        return KFACOperator(self, inverse=inverse, damped=damped)

    @staticmethod
    def _raise_non_finite(quads, labels, grad_of=lambda p: p.grad) -> None:
        for q, (kind, name, params) in zip(quads, labels):
            if torch.isfinite(q):
                continue
            for p in params:
                g = grad_of(p)
                if g is not None and not torch.isfinite(g).all():
                    raise ValueError(f"K-FAC: non-finite gradient in {kind} {name!r}")
            raise ValueError(f"K-FAC: non-finite preconditioned gradient in {kind} {name!r} (overflow)")
        raise ValueError("K-FAC: the quadratic form gᵀF̂⁻¹g overflowed")


class KFACOperator:
    """F̃ or F̃⁻¹ of a :class:`~rlkit.kfac.KFAC` on flat vectors (trainable parameters of
    ``model.parameters()``, each flattened, concatenated). For inspection and small models:
    ``to_dense`` forms an n × n matrix."""

    def __init__(self, kfac, *, inverse: bool, damped: bool):
        if inverse and not damped:
            raise ValueError("linear_operator: the inverse is of the damped matrix (damped=True)")
        self.kfac, self.inverse, self.damped = kfac, inverse, damped
        self.params = [p for p in kfac.model.parameters() if p.requires_grad]
        n = sum(p.numel() for p in self.params)
        self.shape = (n, n)
        self.dtype = self.params[0].dtype if self.params else torch.float32

    def _one(self, v: Tensor) -> Tensor:
        chunks, i = [], 0
        for p in self.params:
            chunks.append(v[i:i + p.numel()].reshape(p.shape).to(p.dtype))
            i += p.numel()
        all_params = list(self.kfac.model.parameters())
        by_id = {id(p): c for p, c in zip(self.params, chunks)}
        grads = [by_id.get(id(p)) for p in all_params]
        if self.inverse:
            res, _ = self.kfac.apply_inverse(grads)
        else:
            res = self.kfac.matvec(grads, damped=self.damped)
        res_by_id = {id(p): r for p, r in zip(all_params, res)}
        return torch.cat([res_by_id[id(p)].reshape(-1) for p in self.params])

    def __matmul__(self, v: Tensor) -> Tensor:
        if v.dim() == 1:
            return self._one(v)
        return torch.stack([self._one(v[:, j]) for j in range(v.shape[1])], dim=1)

    def to_dense(self) -> Tensor:
        """The n × n matrix (n columns applied: small models only)."""
        p0 = self.params[0]
        return self @ torch.eye(self.shape[0], dtype=self.dtype, device=p0.device)

    def to_scipy(self):
        """A ``scipy.sparse.linalg.LinearOperator`` (float64 NumPy vectors in and out)."""
        try:
            from scipy.sparse.linalg import LinearOperator
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError("KFACOperator.to_scipy needs SciPy (pip install scipy)") from err
        device = self.params[0].device

        def mv(x):
            t = torch.as_tensor(x, dtype=self.dtype, device=device).reshape(-1)
            return (self @ t).detach().cpu().double().numpy()

        import numpy as np
        return LinearOperator(self.shape, matvec=mv, rmatvec=mv, dtype=np.float64)
