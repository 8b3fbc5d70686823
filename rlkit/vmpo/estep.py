r"""V-MPO's E-step: the top-k selection 𝒟̃, the weights ψ and the temperature loss L_η.

:func:`top_k_mask` picks 𝒟̃, the top fraction of the advantages among the valid samples;
:func:`e_step` returns ψ = softmax(A/η) on 𝒟̃ (no gradient) and L_η = η ε_η + η log mean_𝒟̃
exp(A/η), max-shifted by the largest selected advantage, on detached advantages so that L_η
trains η only. Derivations: docs/derivations.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .validation import _check_positive, _check_tensor, _check_valid

# fraction · n within this relative distance of an integer counts as that integer
# (0.3 · 10 = 3.0000000000000004 in floating point must give k = 3, not 4).
_K_REL_TOL = 1e-9


def _check_fraction(name: str, fraction) -> float:
    if isinstance(fraction, Tensor) or isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        raise ValueError(f"{name} must be a real number in (0, 1], got {fraction!r}")
    f = float(fraction)
    if not (0.0 < f <= 1.0):  # also rejects nan
        raise ValueError(f"{name} must be in (0, 1] (valid range (0, 1]), got {fraction!r}")
    return f


def _top_k_count(fraction: float, n_valid: int) -> int:
    """k = ⌈fraction · n_valid⌉ (with a 1e-9 relative tolerance), clamped to [1, n_valid]."""
    x = fraction * n_valid
    nearest = round(x)
    k = nearest if abs(x - nearest) <= _K_REL_TOL * max(1.0, x) else math.ceil(x)
    return min(max(int(k), 1), n_valid)


def _top_k_mask(advantages: Tensor, fraction: float, valid: Tensor | None, fraction_name: str) -> Tensor:
    advantages = _check_tensor("advantages", advantages)
    fraction = _check_fraction(fraction_name, fraction)
    valid = _check_valid(valid, advantages.shape, "advantages")
    flat = advantages.detach().reshape(-1)
    if valid is None:
        idx = torch.arange(flat.numel(), device=flat.device)
    else:
        idx = torch.nonzero(valid.reshape(-1).to(flat.device), as_tuple=False).reshape(-1)  # ascending
    n_valid = idx.numel()
    if n_valid == 0:
        raise ValueError(
            f"no valid sample: the top-k needs at least one (advantages has {flat.numel()} entries, "
            f"valid marks none of them; valid range: at least one True)"
        )
    values = flat[idx]
    if not bool(torch.isfinite(values).all()):
        raise ValueError("advantages must be finite at every valid sample (mark padding as invalid instead)")
    k = _top_k_count(fraction, n_valid)
    # A stable descending sort keeps equal values in index order: ties go to the earlier flat index.
    order = torch.sort(values, descending=True, stable=True).indices[:k]
    mask = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    mask[idx[order]] = True
    return mask.reshape(advantages.shape)


def top_k_mask(advantages: Tensor, fraction: float = 0.5, valid: Tensor | None = None) -> Tensor:
    r"""The E-step's sample selection 𝒟̃: the top ``fraction`` of the advantages among valid samples.

    Rule (any shape; the tensor is flattened in row-major order, e.g. [T, B] rollouts time-major):

    * only samples with ``valid`` True are ranked (``valid=None``: all). Mark False every sample
      that is not a real transition — padding, and reset steps (e.g. the step after an episode's
      end in gymnasium's next-step autoreset, whose action the vector env ignores): they are never
      selected, whatever their advantage, and their value is never read (it may be NaN);
    * k = ⌈fraction · n_valid⌉, at least 1: fraction = ½ gives 3 of 5, 1 of 1, 2 of 4. A product
      fraction · n_valid within 1e-9 (relative) of an integer counts as that integer, so that
      0.3 · 10 (= 3.0000000000000004 in floating point) selects 3, not 4;
    * the k largest advantages are taken; ties at the boundary go to the smaller flat index
      (earlier in row-major order), so exactly k samples are selected and the result is
      deterministic.

    Returns a bool tensor of the shape of ``advantages``, without gradient. Raises ValueError
    for ``fraction`` outside (0, 1], a ``valid`` that is not a bool tensor of the same shape,
    no valid sample, or a non-finite advantage at a valid sample.
    """
    return _top_k_mask(advantages, fraction, valid, "fraction")


@dataclass(frozen=True)
class EStep:
    r"""What :func:`e_step` returns.

    loss:         L_η = η ε_η + η log mean_{𝒟̃} exp(A/η), a 0-dim tensor; its only gradient is to η.
    weights:      ψ, the shape of the advantages: softmax(A/η) on the selected samples, 0 elsewhere;
                  sums to 1; no gradient.
    mask:         the selection 𝒟̃ (bool, shape of the advantages; see :func:`top_k_mask`).
    kl:           KL(ψ ‖ U_𝒟̃) = Σ ψ log(k ψ), in [0, log k]; the dual drives it to ε_η (diagnostic).
    max_weight:   max ψ, in [1/k, 1] (diagnostic: near 1 means one sample dominates the M-step).
    num_selected: k.
    """

    loss: Tensor
    weights: Tensor
    mask: Tensor
    kl: Tensor
    max_weight: Tensor
    num_selected: int


def _temperature_loss(selected: Tensor, eta: Tensor, eps_eta: float) -> Tensor:
    r"""L_η on the selected advantages (1-D), max-shifted in advantage space:

        L_η = η ε_η + A_max + η log[(1/k) Σ exp((A − A_max)/η)]      (= η ε_η + η log mean exp(A/η))

    Shifting by A_max (not by max(A/η) inside a log-sum-exp) also keeps ∂L_η/∂η accurate: autograd
    then never subtracts two numbers of size A_max/η (10⁴ for A = 1000, η = 0.1), which in float32
    loses the O(1) result ε_η − KL entirely.

    The bare formula: it does not detach. ∂L_η/∂A_i = ψ_i (so = 1 for a single sample, where
    L_η = η ε_η + A) and ∂L_η/∂η = ε_η − KL(ψ ‖ U). :func:`e_step` calls it on detached advantages.
    """
    k = selected.numel()
    a_max = selected.max()
    return eta * eps_eta + a_max + eta * (torch.logsumexp((selected - a_max) / eta, dim=0) - math.log(k))


def e_step(
    advantages: Tensor,
    eta: Tensor | float,
    eps_eta: float,
    top_k_fraction: float = 0.5,
    valid: Tensor | None = None,
) -> EStep:
    r"""V-MPO's E-step: select the top advantages, weight them, and the temperature loss.

    With 𝒟̃ = ``top_k_mask(advantages, top_k_fraction, valid)`` and k = |𝒟̃|:

        ψ_i = exp(A_i/η) / Σ_{j∈𝒟̃} exp(A_j/η)   for i ∈ 𝒟̃,   ψ_i = 0 otherwise
        L_η = η ε_η + η log[(1/k) Σ_{j∈𝒟̃} exp(A_j/η)]
        ∂L_η/∂η = ε_η − KL(ψ ‖ U_𝒟̃),   KL(ψ ‖ U_𝒟̃) = Σ ψ log(k ψ)

    (the paper's temperature loss with p_old uniform on 𝒟̃). Both are computed with the max shift
    A − A_max: L_η = η ε_η + A_max + η log mean exp((A − A_max)/η), so A/η = 10⁴ neither
    overflows nor, in float32, ruins ∂L_η/∂η by cancellation.

    Gradients — decided here, not left to the caller:

    * the advantages are **detached inside** ``e_step``: A = G − V_φ(s) depends on the critic,
      and L_η's gradient with respect to A_i is ψ_i (for one selected sample L_η = η ε_η + A,
      slope 1), so without the detach L_η would train the value function. L_η trains η only;
    * ψ and the mask carry no gradient (ψ uses a detached η), so L_π = −Σψ log π reaches
      neither η nor the critic.

    ``eta`` is a positive number or a one-element tensor (e.g. ``DualVariables.eta``, with
    gradient). ``eps_eta`` is ε_η > 0. ``valid``: bool, shape of ``advantages``, False for
    padding and reset steps (see :func:`top_k_mask`). Returns an :class:`EStep`. Raises
    ValueError (naming the parameter and its valid range) for ε_η <= 0, η <= 0 or non-finite,
    ``top_k_fraction`` outside (0, 1], a mis-shaped ``valid``, or no valid sample.
    """
    advantages = _check_tensor("advantages", advantages)
    eps_eta = _check_positive("eps_eta", eps_eta)
    _check_positive("eta", eta)
    mask = _top_k_mask(advantages, top_k_fraction, valid, "top_k_fraction")
    eta_t = eta.reshape(()) if isinstance(eta, Tensor) else torch.tensor(float(eta), dtype=advantages.dtype)
    eta_t = eta_t.to(advantages.device)

    selected = advantages.detach()[mask]  # 1-D, in row-major order; padding never read
    k = selected.numel()
    loss = _temperature_loss(selected, eta_t, eps_eta)

    with torch.no_grad():
        z = (selected - selected.max()) / eta_t.detach()  # ≤ 0; softmax is shift-invariant
        log_psi = torch.log_softmax(z, dim=0)
        psi = log_psi.exp()
        weights = torch.zeros_like(advantages, memory_format=torch.contiguous_format).detach()
        weights[mask] = psi.to(weights.dtype)
        kl = ((psi * log_psi).sum() + math.log(k)).clamp_min(0.0)  # ≥ 0 up to rounding
        max_weight = psi.max()
    return EStep(loss=loss, weights=weights, mask=mask, kl=kl, max_weight=max_weight, num_selected=k)
