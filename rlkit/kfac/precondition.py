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

import torch
from torch import Tensor

from .blocks import KFACLayer
from .damping import damping_shifts, eigen_inverse, factored_inverses


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
                    layer.eigen, layer._inv_damp_recip = eigen_inverse(
                        A, S, shifts, self.eigenvalue_floor, layer.name
                    )
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
        damping = self.damping
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
                denom = f + damping
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
