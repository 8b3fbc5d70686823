"""Saving and restoring :class:`~rlkit.kfac.KFAC`: factors, inverses and counters, so that a
resumed run continues exactly as an uninterrupted one.

:meth:`SavedState.load_state_dict` validates before it changes anything (layer names, factor
shapes, damping mode) and converts dtype and device to this KFAC's, as ``nn.Module.load_state_dict``
does; a mismatch is a ``ValueError`` that says which.
"""

from __future__ import annotations

from numbers import Real

from torch import Tensor

from .blocks import Eigendecomposition
from .options import _check_damping

_TENSORS = ("A", "S", "A_inv", "S_inv", "inv_damp_recip")


class SavedState:
    """Mixin of :class:`~rlkit.kfac.KFAC`: :meth:`factors`, :meth:`state_dict`, :meth:`load_state_dict`."""

    def factors(self) -> dict[str, tuple[Tensor | None, Tensor | None]]:
        """``{layer name: (A, S)}``: the running factors of each covered layer (see :class:`KFACLayer`)."""
        return {name: (layer.A, layer.S) for name, layer in self.layers.items()}

    def state_dict(self) -> dict:
        """Factors, inverses and counters (for resuming a run exactly); plain tensors, numbers
        and tuples only (loadable with ``torch.load(..., weights_only=True)``)."""
        layers = {}
        for name, layer in self.layers.items():
            layers[name] = {
                "A": layer.A, "S": layer.S, "A_inv": layer.A_inv, "S_inv": layer.S_inv,
                "eigen": None if layer.eigen is None else tuple(layer.eigen),
                "inv_damp_recip": layer._inv_damp_recip, "pi": layer.pi,
                "num_updates": layer.num_updates, "weight_sum": layer._weight_sum,
                "inverse_valid": layer._inverse_valid,
            }
        return {
            "steps": self.steps, "stats_updates": self.stats_updates, "inverse_updates": self.inverse_updates,
            "damping": self.damping, "damping_mode": self.damping_mode, "eigen_order": "evals_A,Q_A,evals_S,Q_S",
            "layers": layers,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`'s output. Checked first (nothing changes on a mismatch):
        the keys, the layer names, the factor and inverse shapes, the damping mode; tensors are
        converted to each layer's factor dtype and device. Raises ``ValueError`` naming the mismatch."""
        prefix = "KFAC.load_state_dict: "
        if not isinstance(state, dict):
            raise ValueError(prefix + f"expected the dict of KFAC.state_dict(); got {type(state).__name__}")
        missing = [k for k in ("steps", "stats_updates", "inverse_updates", "damping", "layers") if k not in state]
        if missing:
            raise ValueError(prefix + f"missing keys {missing} (not a KFAC.state_dict()?)")
        saved, mine = set(state["layers"]), set(self.layers)
        if saved != mine:
            raise ValueError(
                prefix + "the layers do not match this model: "
                f"missing {sorted(mine - saved)}, unexpected {sorted(saved - mine)}"
            )
        damping = state["damping"]
        try:
            damping = _check_damping(damping)
        except ValueError as err:
            raise ValueError(prefix + str(err)) from None
        mode = state.get("damping_mode")
        new_order = state.get("eigen_order") is not None
        restored = {}
        for name, s in state["layers"].items():
            layer = self.layers[name]
            where = f"layer {name!r}: "
            eigen = s.get("eigen")
            has_factored = s.get("A_inv") is not None
            if mode is None:  # an older state: infer the mode from what it holds
                mode_here = "eigen" if eigen is not None else ("factored" if has_factored else None)
            else:
                mode_here = mode
            if mode_here is not None and mode_here != self.damping_mode:
                raise ValueError(
                    prefix + f"{where}the state was saved with damping_mode={mode_here!r}, this KFAC has "
                    f"damping_mode={self.damping_mode!r}; build KFAC with damping_mode={mode_here!r} to resume"
                )
            shapes = {"A": (layer.d_in, layer.d_in), "S": (layer.d_out, layer.d_out),
                      "A_inv": (layer.d_in, layer.d_in), "S_inv": (layer.d_out, layer.d_out),
                      "inv_damp_recip": (layer.d_out, layer.d_in)}
            out = {}
            for key in _TENSORS:
                t = s.get(key)
                if t is not None and not isinstance(t, Tensor):
                    raise ValueError(prefix + f"{where}{key} must be a tensor or None; got {type(t).__name__}")
                if t is not None and tuple(t.shape) != shapes[key]:
                    raise ValueError(
                        prefix + f"{where}{key} has shape {tuple(t.shape)}, this layer needs {shapes[key]} "
                        f"(d_in = {layer.d_in} with the bias column, d_out = {layer.d_out})"
                    )
                out[key] = self._converted(t, layer)
            if (out["A"] is None) != (out["S"] is None):
                raise ValueError(prefix + f"{where}A and S must both be present or both None")
            if eigen is not None:
                parts = tuple(eigen)
                if len(parts) != 4 or not all(isinstance(t, Tensor) for t in parts):
                    raise ValueError(prefix + f"{where}eigen must be 4 tensors (evals_A, Q_A, evals_S, Q_S)")
                if not new_order and parts[0].dim() == 2:  # older states: (Q_A, λ_A, Q_S, λ_S)
                    parts = (parts[1], parts[0], parts[3], parts[2])
                want = [(layer.d_in,), (layer.d_in, layer.d_in), (layer.d_out,), (layer.d_out, layer.d_out)]
                for field, t, shape in zip(Eigendecomposition._fields, parts, want):
                    if tuple(t.shape) != shape:
                        raise ValueError(prefix + f"{where}eigen.{field} has shape {tuple(t.shape)}, needs {shape}")
                out["eigen"] = Eigendecomposition(*(self._converted(t, layer) for t in parts))
            else:
                out["eigen"] = None
            if s.get("inverse_valid"):
                needs = ("A_inv", "S_inv") if self.damping_mode == "factored" else ("eigen", "inv_damp_recip")
                absent = [k for k in needs if out[k] is None]
                if absent:
                    raise ValueError(prefix + f"{where}marked as having inverses but {absent} are missing")
            for key in ("num_updates", "weight_sum"):
                if not isinstance(s.get(key), Real):
                    raise ValueError(prefix + f"{where}{key} must be a number; got {s.get(key)!r}")
            out["pi"], out["num_updates"] = s.get("pi"), int(s["num_updates"])
            out["weight_sum"], out["inverse_valid"] = float(s["weight_sum"]), bool(s.get("inverse_valid"))
            restored[name] = out
        # everything checked: apply
        self.steps, self.stats_updates = int(state["steps"]), int(state["stats_updates"])
        self.inverse_updates = int(state["inverse_updates"])
        self._damping = damping
        for name, out in restored.items():
            layer = self.layers[name]
            layer.A, layer.S = out["A"], out["S"]
            layer.A_inv, layer.S_inv = out["A_inv"], out["S_inv"]
            layer.eigen, layer._inv_damp_recip = out["eigen"], out["inv_damp_recip"]
            layer.pi, layer.num_updates = out["pi"], out["num_updates"]
            layer._weight_sum, layer._inverse_valid = out["weight_sum"], out["inverse_valid"]

    @staticmethod
    def _converted(t: Tensor | None, layer) -> Tensor | None:
        if t is None:
            return None
        if not t.is_floating_point():
            raise ValueError(f"KFAC.load_state_dict: layer {layer.name!r}: a factor of dtype {t.dtype}")
        return t.detach().to(device=layer.weight.device, dtype=layer.dtype, copy=True)
