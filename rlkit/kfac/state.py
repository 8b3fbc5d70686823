"""Saving and restoring :class:`~rlkit.kfac.KFAC`: factors, inverses and counters, so that a
resumed run continues exactly as an uninterrupted one."""

from __future__ import annotations

from torch import Tensor

from .options import _check_damping


class SavedState:
    """Mixin of :class:`~rlkit.kfac.KFAC`: :meth:`factors`, :meth:`state_dict`, :meth:`load_state_dict`."""

    def factors(self) -> dict[str, tuple[Tensor | None, Tensor | None]]:
        """``{layer name: (A, S)}``: the running factors of each covered layer (see :class:`KFACLayer`)."""
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
