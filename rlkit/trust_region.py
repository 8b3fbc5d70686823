r"""The ACKTR trust-region step size, its predicted KL, and the KL a step actually reached.

With Δ = F̂⁻¹g (g the gradient, F̂ the approximate Fisher) and q = ΔᵀF̂Δ = gᵀF̂⁻¹g (what
``KFAC.precondition()`` returns), a step of size η has predicted KL ½η²q
(:func:`predicted_kl`); :func:`effective_step_size` picks η from the KL budget δ and
:func:`measured_kl` reads the KL a step actually reached.

Conventions (docs/design.md; derivations in docs/derivations.md):

* ``convention="paper"`` (ACKTR): η = min(η_max, sqrt(2δ / q)); the predicted KL is δ
  whenever the cap η_max is inactive.
* ``convention="baselines"`` (openai/baselines' "kl_clip"): η = min(η_max, sqrt(δ / q)), a
  factor sqrt(2) smaller: the predicted KL is δ/2, their kl_clip is twice the KL reached.
* The step is θ + ηΔ for ascent on an objective, θ − ηΔ for descent on a loss; the KL is the
  same to second order either way.

References: Wu et al., "Scalable trust-region method for deep reinforcement learning using
Kronecker-factored approximation" (ACKTR), NeurIPS 2017; Schulman et al., "Trust region policy
optimization", ICML 2015.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["CONVENTIONS", "effective_step_size", "predicted_kl", "measured_kl"]

CONVENTIONS = ("paper", "baselines")


def _as_float(name: str, value: float | Tensor) -> float:
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a scalar, got a tensor of shape {tuple(value.shape)}")
        return float(value.detach())
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    return float(value)


def _positive(name: str, value: float | Tensor) -> float:
    v = _as_float(name, value)
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be > 0 and finite, got {value!r}")
    return v


def _quadratic(value: float | Tensor) -> float:
    q = _as_float("quadratic", value)
    if not (math.isfinite(q) and q >= 0):
        # Negative or non-finite q means a non-PSD curvature estimate or non-finite gradients:
        # a step from it would be meaningless, so refuse rather than return nan.
        raise ValueError(f"quadratic (gᵀF̂⁻¹g) must be finite and >= 0, got {value!r}; check gradients and damping")
    return q


def effective_step_size(
    quadratic: float | Tensor, delta: float, eta_max: float, convention: str = "paper"
) -> float:
    r"""Step size η for the natural-gradient step, from the KL budget δ.

    paper:     η = min(η_max, sqrt(2δ / q))   (predicted KL ½η²q = δ when uncapped)
    baselines: η = min(η_max, sqrt(δ / q))    (predicted KL = δ/2: baselines' kl_clip is 2× the KL)

    ``quadratic`` is q = ΔᵀF̂Δ = gᵀF̂⁻¹g for Δ = F̂⁻¹g (what ``KFAC.precondition()`` returns).
    q = 0 means a zero gradient: no step is needed and any η is safe, so η_max is returned.
    Raises ValueError for δ <= 0, η_max <= 0, an unknown convention, or q negative / non-finite.
    """
    q = _quadratic(quadratic)
    delta = _positive("delta", delta)
    eta_max = _positive("eta_max", eta_max)
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    if q == 0:
        return eta_max
    budget = 2 * delta if convention == "paper" else delta
    return min(eta_max, math.sqrt(budget / q))


def predicted_kl(quadratic: float | Tensor, step_size: float) -> float:
    r"""The quadratic model of the KL after the step: ½ η² q, q = ΔᵀF̂Δ."""
    q = _quadratic(quadratic)
    eta = _as_float("step_size", step_size)
    if not (math.isfinite(eta) and eta >= 0):
        raise ValueError(f"step_size must be >= 0 and finite, got {step_size!r}")
    return 0.5 * eta**2 * q


def measured_kl(old: torch.distributions.Distribution, new: torch.distributions.Distribution) -> float:
    r"""Mean over the batch of KL(π_old ‖ π_new), computed with ``torch.distributions.kl_divergence``.

    ``old`` and ``new`` are the policy's distributions on the same batch of states, before and
    after the step, with equal ``batch_shape`` (one entry per state). The KL sums over the
    event dimensions and is averaged over all batch dimensions, so a diagonal Gaussian policy
    must be an ``Independent(Normal(mean, std), 1)`` (a bare ``Normal`` of shape (N, D) would
    average over action dimensions instead of summing). The fisher module's distributions give
    this via ``dist.torch_distribution(psi)``. Returns a float, computed without gradient; for
    a differentiable KL call ``kl_divergence`` directly.
    """
    if old.batch_shape != new.batch_shape:
        raise ValueError(
            f"old and new must have the same batch_shape, got {tuple(old.batch_shape)} and {tuple(new.batch_shape)}"
        )
    with torch.no_grad():
        return float(torch.distributions.kl_divergence(old, new).mean())
