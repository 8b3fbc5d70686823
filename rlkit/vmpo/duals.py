r"""V-MPO's dual variables: the temperature η and the M-step multipliers α (or α_μ, α_Σ).

:class:`DualVariables` keeps each one positive as floor + softplus(raw), raw clipped after every
optimizer step, and starts them at :data:`PAPER_INITIAL_DUALS` (V-MPO Table 1);
:func:`sample_eps_alpha` draws the bound ε_α log-uniformly. Derivations: docs/derivations.md.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .validation import _check_positive, _scalar_value

#: The paper's initial dual values (V-MPO Table 1; also ``data/vmpo_table1_common.csv``).
PAPER_INITIAL_DUALS = {
    "discrete": {"eta": 1.0, "alpha": 5.0},
    "continuous": {"eta": 1.0, "alpha_mu": 1.0, "alpha_sigma": 1.0},
}


def _inverse_softplus(y: float) -> float:
    """x with softplus(x) = y > 0, stably: log(e^y − 1) = y + log(1 − e^{−y})."""
    return y + math.log(-math.expm1(-y))


class DualVariables(nn.Module):
    r"""The Lagrange multipliers η and α (discrete) or η, α_μ, α_Σ (continuous), learnable and > 0.

    Positivity: each value is ``floor + softplus(raw)`` (floor 1e-8) with a learnable
    unconstrained ``raw``, positive by construction (softplus, as DeepMind's Acme for MPO).

    Projection: softplus's gradient underflows to exactly 0 for very negative ``raw``, where a
    dual would sit at the floor for good; so ``raw`` is clipped to ``raw_min`` (default −18, as
    in Acme) after every optimizer step: call :meth:`project_` after ``optimizer.step()``, or
    let :meth:`register_projection` do it. Forgetting it never makes a dual ≤ 0; it only risks
    that dead zone (docs/derivations.md).

    Initial values (V-MPO Table 1, :data:`PAPER_INITIAL_DUALS`): η = 1 and α = 5 (``"discrete"``);
    η = 1 and α_μ = α_Σ = 1 (``"continuous"``). Override with the keyword arguments.
    ``action_dim`` (continuous only): one α_μ and one α_Σ per action dimension, for the
    per-dimension constraint (vectors of shape (D,), use with ``GaussianKL.*_per_dim``).

    Give the duals their own optimizer and learning rate::

        duals = DualVariables("discrete")
        dual_opt = torch.optim.Adam(duals.parameters(), lr=1e-2)
        duals.register_projection(dual_opt)
        ... e_step(adv, duals.eta, eps_eta) ... kl_constraint_loss(kl, duals.alpha, eps_alpha) ...

    Read ``duals.eta`` etc. (tensors with gradient) to build the losses, ``duals.diagnostics()``
    to log them.
    """

    def __init__(
        self,
        kind: str = "discrete",
        *,
        eta: float | None = None,
        alpha: float | None = None,
        alpha_mu: float | None = None,
        alpha_sigma: float | None = None,
        action_dim: int | None = None,
        floor: float = 1e-8,
        raw_min: float = -18.0,
        dtype: torch.dtype | None = None,
    ):
        super().__init__()
        if kind not in PAPER_INITIAL_DUALS:
            raise ValueError(f"kind must be one of {tuple(PAPER_INITIAL_DUALS)}, got {kind!r}")
        self.kind = kind
        self.floor = _check_positive("floor", floor)
        raw_min = _scalar_value("raw_min", raw_min)
        if not (math.isfinite(raw_min) and -80.0 <= raw_min <= 0.0):
            raise ValueError(f"raw_min must be in [-80, 0] (softplus's gradient must not underflow), got {raw_min}")
        self.raw_min = raw_min
        #: the smallest value a dual takes once projected: floor + softplus(raw_min)
        self.min_value = self.floor + math.log1p(math.exp(raw_min))
        given = {"eta": eta, "alpha": alpha, "alpha_mu": alpha_mu, "alpha_sigma": alpha_sigma}
        defaults = PAPER_INITIAL_DUALS[kind]
        wrong = [n for n, v in given.items() if v is not None and n not in defaults]
        if wrong:
            raise ValueError(f"{wrong[0]} is not a dual of kind={kind!r} (its duals: {', '.join(defaults)})")
        if action_dim is not None:
            if kind != "continuous":
                raise ValueError("action_dim (per-dimension α_μ, α_Σ) needs kind='continuous'")
            if isinstance(action_dim, bool) or not isinstance(action_dim, int) or action_dim < 1:
                raise ValueError(f"action_dim must be an int >= 1 (valid range [1, inf)), got {action_dim!r}")
        self.action_dim = action_dim
        self.names = tuple(defaults)
        dtype = dtype or torch.get_default_dtype()
        for name in self.names:
            value = defaults[name] if given[name] is None else given[name]
            value = _check_positive(name, value)
            if value < self.min_value:
                raise ValueError(
                    f"initial {name} must be >= floor + softplus(raw_min) = {self.min_value:.3g} "
                    f"(valid range [{self.min_value:.3g}, inf)), got {value}"
                )
            shape = (action_dim,) if (action_dim is not None and name != "eta") else ()
            raw = torch.full(shape, _inverse_softplus(value - self.floor), dtype=torch.float64).to(dtype)
            self.register_parameter(f"raw_{name}", nn.Parameter(raw))

    @torch.no_grad()
    def project_(self) -> None:
        """Clip every raw parameter to ``raw_min`` (call after each optimizer step)."""
        for name in self.names:
            getattr(self, f"raw_{name}").clamp_(min=self.raw_min)

    def register_projection(self, optimizer: torch.optim.Optimizer):
        """Call :meth:`project_` after every ``optimizer.step()``; returns the hook's handle."""
        return optimizer.register_step_post_hook(lambda opt, args, kwargs: self.project_())

    def value(self, name: str) -> Tensor:
        """The dual ``name`` (one of ``self.names``): floor + softplus(raw), with gradient."""
        if name not in self.names:
            raise AttributeError(f"kind={self.kind!r} duals are {self.names}; there is no {name!r}")
        return self.floor + F.softplus(getattr(self, f"raw_{name}"))

    @property
    def eta(self) -> Tensor:
        """η, the E-step temperature (0-dim, > 0)."""
        return self.value("eta")

    @property
    def alpha(self) -> Tensor:
        """α, the M-step multiplier of a categorical policy (0-dim, > 0)."""
        return self.value("alpha")

    @property
    def alpha_mu(self) -> Tensor:
        """α_μ, the multiplier of the Gaussian mean part (0-dim, or (D,) with action_dim)."""
        return self.value("alpha_mu")

    @property
    def alpha_sigma(self) -> Tensor:
        """α_Σ, the multiplier of the Gaussian covariance part (0-dim, or (D,) with action_dim)."""
        return self.value("alpha_sigma")

    @torch.no_grad()
    def diagnostics(self) -> dict[str, float | list[float]]:
        """Current values for logging: floats (lists for per-dimension α)."""
        out = {}
        for name in self.names:
            v = self.value(name)
            out[name] = float(v) if v.dim() == 0 else [float(x) for x in v]
        return out

    def extra_repr(self) -> str:
        vals = ", ".join(f"{k}={v}" for k, v in self.diagnostics().items())
        return f"kind={self.kind!r}, {vals}, floor={self.floor}, raw_min={self.raw_min}"


def sample_eps_alpha(
    low: float,
    high: float,
    generator: torch.Generator | None = None,
    size: tuple[int, ...] | int | None = None,
) -> float | Tensor:
    r"""Draw ε_α log-uniformly from [low, high), as in the paper's tables (e.g. [0.001, 0.01)).

    log ε_α ~ U[log low, log high): ε_α = exp(log low + u (log high − log low)), u ~ U[0, 1) from
    ``generator`` (seed it for reproducibility), computed in float64 and kept inside [low, high)
    against rounding. ``size=None`` returns a float; otherwise a float64 tensor of that size
    (e.g. one ε per action dimension). When to draw (once per run, per update) is the caller's
    choice. Raises ValueError unless 0 < low < high < inf.
    """
    low_v = _check_positive("low", low)
    high_v = _check_positive("high", high)
    if not high_v > low_v:
        raise ValueError(f"high must be > low (valid range (low, inf)), got low={low_v}, high={high_v}")
    shape = () if size is None else ((size,) if isinstance(size, int) else tuple(size))
    u = torch.rand(shape, generator=generator, dtype=torch.float64)
    log_low, log_high = math.log(low_v), math.log(high_v)
    eps = torch.exp(log_low + u * (log_high - log_low))
    below_high = torch.nextafter(torch.tensor(high_v, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64))
    eps = eps.clamp(min=low_v).minimum(below_high)
    return float(eps) if size is None else eps
