r"""V-MPO's EM pieces (Song et al., ICLR 2020): the E-step, the M-step losses, the KLs, the duals.

The mathematics layer only: tensors and one small ``nn.Module``; no environment, no agent.

One V-MPO update, in the paper's notation (A = advantages under the old policy π_old,
the target network; all losses are minimized; ``sg`` is stop-gradient):

E-step (non-parametric; :func:`top_k_mask`, :func:`e_step`)
    Select 𝒟̃, the top fraction (default ½) of the advantages among the *valid* samples,
    k = |𝒟̃|. On 𝒟̃ the weights and the temperature (dual) loss are

        ψ(s,a) = exp(A/η) / Σ_{𝒟̃} exp(A/η)                          (0 outside 𝒟̃)
        L_η(η) = η ε_η + η log[ (1/k) Σ_{𝒟̃} exp(A/η) ]

    and ∂L_η/∂η = ε_η − KL(ψ ‖ U_𝒟̃), U_𝒟̃ the uniform distribution on 𝒟̃: minimizing
    L_η over η drives the E-step KL to ε_η (more KL than ε_η: η grows, ψ flattens).

M-step (parametric; :func:`policy_loss`, :func:`kl_constraint_loss`)
    L_π(θ) = −Σ_{𝒟̃} ψ(s,a) log π_θ(a|s)                       (a SUM: Σψ = 1)
    L_α(θ, α) = α (ε_α − sg[KL]) + sg[α] KL,   KL = E_s[KL(π_old(·|s) ‖ π_θ(·|s))]

    For a diagonal Gaussian policy the KL is decoupled (:func:`decoupled_gaussian_kl`)
    into a mean part and a covariance part, each with its own α and ε:
    L = L_π + L_η + L_{α_μ} + L_{α_Σ}.

Duals (:class:`DualVariables`)
    η, α (or α_μ, α_Σ) are learnable, kept positive as ``floor + softplus(raw)`` with ``raw``
    clipped to ≥ −18 after each step (Acme's choice), start at
    the paper's values (η = 1; α = 5 discrete; α_μ = α_Σ = 1 continuous) and are meant for
    their own optimizer. ε_α may be drawn log-uniformly on [low, high) with
    :func:`sample_eps_alpha`.

Pitfalls seen in public ports, and where this module avoids them:

* advantages not detached (L_η then trains the critic): :func:`e_step` detaches them;
* ψ or the mask carrying gradient (L_π then trains η): both are computed without gradient,
  and :func:`policy_loss` detaches its weights again;
* no max-shift in exp(A/η) (overflow for A/η ≳ 88 in float32): everything is shifted by the
  largest selected advantage, in advantage space (see :func:`e_step`);
* ψ normalized over all samples instead of the selected ones: the softmax runs over 𝒟̃ only;
* mean instead of sum in L_π (the M-step then shrinks by 1/k): :func:`policy_loss` sums;
* σ where σ² belongs in the Gaussian KL: the KLs square the standard deviations you pass;
* KL direction reversed: every KL here is KL(π_old ‖ π_θ), old first;
* padding or reset steps entering the top-k: pass ``valid``; invalid samples are never
  ranked, never weighted, and may even hold NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "PAPER_INITIAL_DUALS",
    "EStep",
    "KLConstraintLoss",
    "GaussianKL",
    "top_k_mask",
    "e_step",
    "policy_loss",
    "kl_constraint_loss",
    "categorical_kl",
    "decoupled_gaussian_kl",
    "DualVariables",
    "sample_eps_alpha",
]

#: The paper's initial dual values (V-MPO Table 1; also ``data/vmpo_table1_common.csv``).
PAPER_INITIAL_DUALS = {
    "discrete": {"eta": 1.0, "alpha": 5.0},
    "continuous": {"eta": 1.0, "alpha_mu": 1.0, "alpha_sigma": 1.0},
}

# fraction · n within this relative distance of an integer counts as that integer
# (0.3 · 10 = 3.0000000000000004 in floating point must give k = 3, not 4).
_K_REL_TOL = 1e-9


# --------------------------------------------------------------------------- validation


def _check_tensor(name: str, x, floating: bool = True) -> Tensor:
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if floating and not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    return x


def _scalar_value(name: str, x) -> float:
    """The float value of a Python number or one-element tensor (no gradient, no graph)."""
    if isinstance(x, Tensor):
        if x.numel() != 1:
            raise ValueError(f"{name} must be a scalar, got a tensor of shape {tuple(x.shape)}")
        return float(x.detach())
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise ValueError(f"{name} must be a real number or a one-element tensor, got {x!r}")
    return float(x)


def _check_positive(name: str, x) -> float:
    v = _scalar_value(name, x)
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be finite and > 0 (valid range (0, inf)), got {v!r}")
    return v


def _check_fraction(name: str, fraction) -> float:
    if isinstance(fraction, Tensor) or isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        raise ValueError(f"{name} must be a real number in (0, 1], got {fraction!r}")
    f = float(fraction)
    if not (0.0 < f <= 1.0):  # also rejects nan
        raise ValueError(f"{name} must be in (0, 1] (valid range (0, 1]), got {fraction!r}")
    return f


def _check_valid(valid, shape: torch.Size, what: str) -> Tensor | None:
    if valid is None:
        return None
    if not isinstance(valid, Tensor) or valid.dtype != torch.bool:
        got = valid.dtype if isinstance(valid, Tensor) else type(valid).__name__
        raise ValueError(
            f"valid must be a bool tensor (True = a real sample; pass e.g. `mask.bool()`), got {got}"
        )
    if valid.shape != shape:
        raise ValueError(f"valid must have the shape of {what} {tuple(shape)}, got {tuple(valid.shape)}")
    return valid


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


# --------------------------------------------------------------------------- E-step


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

    (the seed's eq. (8) with p_old uniform on 𝒟̃). Both are computed with the max shift
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


# --------------------------------------------------------------------------- M-step


def policy_loss(log_probs: Tensor, weights: Tensor) -> Tensor:
    r"""The M-step's weighted maximum likelihood: L_π(θ) = −Σ_i ψ_i log π_θ(a_i|s_i).

    A **sum** over the selected samples (ψ sums to 1 there), not a mean: a mean would divide the
    policy's step by k. ``weights`` is ψ from :func:`e_step` (same shape as ``log_probs``,
    0 outside the selection); it is treated as a constant (detached here), so ∂L_π/∂log π = −ψ and
    no gradient reaches η or the critic through ψ. Only entries with ψ ≠ 0 are read, so padding
    log-probabilities (even ±inf or NaN) neither enter the value nor the gradient.

    Raises ValueError for shapes that differ, or weights that are negative or non-finite.
    """
    log_probs = _check_tensor("log_probs", log_probs)
    weights = _check_tensor("weights", weights)
    if log_probs.shape != weights.shape:
        raise ValueError(
            f"log_probs and weights must have the same shape, got {tuple(log_probs.shape)} and {tuple(weights.shape)}"
        )
    w = weights.detach()
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
        raise ValueError("weights must be finite and >= 0 (valid range [0, inf); ψ from e_step)")
    used = w != 0
    return -(w[used].to(log_probs.dtype) * log_probs[used]).sum()


class KLConstraintLoss(NamedTuple):
    r"""The two terms of L_α (see :func:`kl_constraint_loss`); ``total`` is their sum."""

    kl_term: Tensor  #: Σ sg[α]·KL — trains the policy only
    dual_term: Tensor  #: Σ α·(ε_α − sg[KL]) — trains α only

    @property
    def total(self) -> Tensor:
        return self.kl_term + self.dual_term


def kl_constraint_loss(kl: Tensor, alpha: Tensor | float, eps_alpha: Tensor | float) -> KLConstraintLoss:
    r"""The M-step's KL trust region, split by what each part trains:

        L_α(θ, α) = α (ε_α − sg[KL]) + sg[α] KL,   KL = E_s[KL(π_old ‖ π_θ)]

    returned as ``(kl_term, dual_term)`` = (sg[α]·KL, α·(ε_α − sg[KL])). ``kl_term`` gives the
    policy the penalty gradient α ∂KL/∂θ and α none; ``dual_term`` gives α the gradient ε_α − KL
    (KL above ε_α: α grows) and the policy none. Minimize their sum (``.total``).

    Scalar use: ``kl``, ``alpha`` 0-dim (or one α for the categorical KL). Per-dimension variant
    (decoupled Gaussian, e.g. one α_μ per action dimension with ``mean_per_dim``): ``kl`` and
    ``alpha`` are tensors of the same shape, ``eps_alpha`` a number or a tensor of that shape;
    each entry is its own constraint and the terms are summed over entries.
    ``kl`` is the batch mean over states (what :func:`categorical_kl` and
    :func:`decoupled_gaussian_kl` return). Raises ValueError for ε_α <= 0, α <= 0 or non-finite,
    a non-finite KL, or shapes that differ.
    """
    kl = _check_tensor("kl", kl)
    if not bool(torch.isfinite(kl.detach()).all()):
        raise ValueError("kl must be finite")
    if isinstance(alpha, Tensor):
        if alpha.shape != kl.shape:
            raise ValueError(f"alpha must have the shape of kl {tuple(kl.shape)}, got {tuple(alpha.shape)}")
        a = alpha.detach()
        if not (bool(torch.isfinite(a).all()) and bool((a > 0).all())):
            raise ValueError("alpha must be finite and > 0 (valid range (0, inf)) in every entry")
    else:
        if kl.dim() != 0:
            raise ValueError(f"a per-dimension kl of shape {tuple(kl.shape)} needs a tensor alpha of that shape")
        _check_positive("alpha", alpha)
        alpha = torch.tensor(float(alpha), dtype=kl.dtype, device=kl.device)
    if isinstance(eps_alpha, Tensor):
        if eps_alpha.dim() != 0 and eps_alpha.shape != kl.shape:
            raise ValueError(
                f"eps_alpha must be a number or have the shape of kl {tuple(kl.shape)}, got {tuple(eps_alpha.shape)}"
            )
        e = eps_alpha.detach()
        if not (bool(torch.isfinite(e).all()) and bool((e > 0).all())):
            raise ValueError("eps_alpha must be finite and > 0 (valid range (0, inf)) in every entry")
        eps_alpha = e
    else:
        eps_alpha = _check_positive("eps_alpha", eps_alpha)
    kl_term = (alpha.detach() * kl).sum()
    dual_term = (alpha * (eps_alpha - kl.detach())).sum()
    return KLConstraintLoss(kl_term, dual_term)


# --------------------------------------------------------------------------- KLs


def _mean_over_states(x: Tensor, batch_shape: torch.Size, valid: Tensor | None) -> Tensor:
    """x has shape batch_shape + rest; the mean over the (valid) states, shape rest."""
    flat = x.reshape(-1, *x.shape[len(batch_shape):])
    if valid is not None:
        flat = flat[valid.reshape(-1).to(flat.device)]
    return flat.mean(0)


def _check_kl_valid(valid, batch_shape: torch.Size) -> Tensor | None:
    valid = _check_valid(valid, batch_shape, "the batch (all dimensions but the last)")
    n = math.prod(batch_shape)
    if n == 0 or (valid is not None and not bool(valid.any())):
        raise ValueError("no valid state: the KL's batch mean needs at least one (valid range: at least one True)")
    return valid


def categorical_kl(old_logits: Tensor, new_logits: Tensor, valid: Tensor | None = None) -> Tensor:
    r"""E_s[KL(π_old(·|s) ‖ π_θ(·|s))] for categorical policies given by logits, shape (..., C).

        KL(π_old ‖ π_θ) = Σ_a π_old(a|s) [log π_old(a|s) − log π_θ(a|s)]

    Direction: old (target network) first — the expectation is under π_old, as in the paper's
    L_α; KL(π_θ ‖ π_old) is a different quantity. ``old_logits`` are detached here (π_old is
    fixed); the gradient flows to ``new_logits``. Actions with π_old = 0 (logit −inf) contribute 0.
    The mean runs over all leading (batch) dimensions, restricted to ``valid`` (bool, shape
    ``logits.shape[:-1]``) when given. Returns a 0-dim tensor.
    """
    old_logits = _check_tensor("old_logits", old_logits)
    new_logits = _check_tensor("new_logits", new_logits)
    if old_logits.shape != new_logits.shape or old_logits.dim() < 1:
        raise ValueError(
            f"old_logits and new_logits must have the same shape (..., C), got "
            f"{tuple(old_logits.shape)} and {tuple(new_logits.shape)}"
        )
    batch_shape = old_logits.shape[:-1]
    valid = _check_kl_valid(valid, batch_shape)
    log_old = torch.log_softmax(old_logits.detach(), dim=-1)
    log_new = torch.log_softmax(new_logits, dim=-1)
    p_old = log_old.exp()
    terms = torch.where(p_old > 0, p_old * (log_old - log_new), torch.zeros_like(log_new))
    return _mean_over_states(terms.sum(-1), batch_shape, valid)


@dataclass(frozen=True)
class GaussianKL:
    r"""The decoupled KL of a diagonal Gaussian policy (see :func:`decoupled_gaussian_kl`).

    mean:               E_s[KL(N(μ_old, Σ_old) ‖ N(μ_θ, Σ_old))], 0-dim (constrained with α_μ, ε_α_μ)
    covariance:         E_s[KL(N(μ_old, Σ_old) ‖ N(μ_old, Σ_θ))], 0-dim (constrained with α_Σ, ε_α_Σ)
    mean_per_dim:       the mean part per action dimension, shape (D,), summing to ``mean``
    covariance_per_dim: the covariance part per action dimension, shape (D,), summing to ``covariance``
    """

    mean: Tensor
    covariance: Tensor
    mean_per_dim: Tensor
    covariance_per_dim: Tensor


def _check_std(name: str, std: Tensor, mean_shape: torch.Size) -> Tensor:
    std = _check_tensor(name, std)
    try:
        ok = torch.broadcast_shapes(std.shape, mean_shape) == mean_shape
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(
            f"{name} must broadcast to the mean's shape {tuple(mean_shape)} (e.g. (D,) for a "
            f"state-independent std), got {tuple(std.shape)}"
        )
    s = std.detach()
    if not (bool(torch.isfinite(s).all()) and bool((s > 0).all())):
        raise ValueError(f"{name} must be finite and > 0 (valid range (0, inf)); it is σ, not log σ or σ²")
    return std


def decoupled_gaussian_kl(
    old_mean: Tensor,
    old_std: Tensor,
    new_mean: Tensor,
    new_std: Tensor,
    valid: Tensor | None = None,
) -> GaussianKL:
    r"""The decoupled KL(π_old ‖ π_θ) of diagonal Gaussian policies (V-MPO's continuous control).

    With Σ = diag(σ²) (variances: the *standard deviations* σ are passed and squared here),
    μ_old, σ_old from the target network and μ_θ, σ_θ from the online one, per state:

        mean part        KL_μ = KL(N(μ_old, Σ_old) ‖ N(μ_θ, Σ_old))
                              = ½ (μ_θ − μ_old)ᵀ Σ_old⁻¹ (μ_θ − μ_old) = ½ Σ_d (μ_θ,d − μ_old,d)² / σ²_old,d
        covariance part  KL_Σ = KL(N(μ_old, Σ_old) ‖ N(μ_old, Σ_θ))
                              = ½ [Tr(Σ_θ⁻¹ Σ_old) − D + log |Σ_θ| / |Σ_old|]
                              = ½ Σ_d (r_d − 1 − log r_d),   r_d = σ²_old,d / σ²_θ,d

    (the seed's eqs. (10), (11)): the mean part moves only the mean, with the old covariance;
    the covariance part only the covariance, at the old mean. With Σ_θ = Σ_old the mean part is
    the whole KL. In general the full KL is KL_Σ + ½ Δμᵀ Σ_θ⁻¹ Δμ (the new covariance in the
    quadratic term), not KL_Σ + KL_μ. (The seed's eq. (9) prints Σ₁⁻¹ in that quadratic term; the
    correct general formula has Σ₂⁻¹ — the decoupled parts are unaffected.)

    KL_Σ is computed as ½ Σ_d (expm1(−x) + x), x = 2 (log σ_θ − log σ_old), which keeps its tiny
    values (ε_α_Σ is small) accurate in float32 where r − 1 − log r would cancel.

    Shapes: means (..., D), leading dimensions are the batch of states; each std broadcasts to the
    mean's shape ((D,) for a state-independent std). The old pair is detached (π_old is fixed).
    Every part is the mean over (``valid``) states of the per-state sum over dimensions. Returns a
    :class:`GaussianKL`. Raises ValueError for mismatched shapes or a std that is not finite and > 0.
    """
    old_mean = _check_tensor("old_mean", old_mean)
    new_mean = _check_tensor("new_mean", new_mean)
    if old_mean.shape != new_mean.shape or old_mean.dim() < 1:
        raise ValueError(
            f"old_mean and new_mean must have the same shape (..., D), got "
            f"{tuple(old_mean.shape)} and {tuple(new_mean.shape)}"
        )
    shape = old_mean.shape
    old_std = _check_std("old_std", old_std, shape)
    new_std = _check_std("new_std", new_std, shape)
    batch_shape = shape[:-1]
    valid = _check_kl_valid(valid, batch_shape)

    old_mean, old_std = old_mean.detach(), old_std.detach()
    old_var = old_std.square()  # σ², not σ
    mean_terms = 0.5 * (new_mean - old_mean).square() / old_var
    x = 2.0 * (torch.log(new_std) - torch.log(old_std))  # log(σ²_θ / σ²_old) = −log r
    cov_terms = (0.5 * (torch.expm1(-x) + x)).expand(shape)
    mean_per_dim = _mean_over_states(mean_terms, batch_shape, valid)
    cov_per_dim = _mean_over_states(cov_terms, batch_shape, valid)
    return GaussianKL(
        mean=mean_per_dim.sum(),
        covariance=cov_per_dim.sum(),
        mean_per_dim=mean_per_dim,
        covariance_per_dim=cov_per_dim,
    )


# --------------------------------------------------------------------------- duals


def _inverse_softplus(y: float) -> float:
    """x with softplus(x) = y > 0, stably: log(e^y − 1) = y + log(1 − e^{−y})."""
    return y + math.log(-math.expm1(-y))


class DualVariables(nn.Module):
    r"""The Lagrange multipliers η and α (discrete) or η, α_μ, α_Σ (continuous), learnable and > 0.

    Positivity: each value is ``floor + softplus(raw)`` (floor 1e-8) with a learnable
    unconstrained ``raw`` — positive by construction, whatever the optimizer does. Softplus
    rather than exp(raw): it is ≈ linear above ~1, so the learning rate acts in the dual's own
    units there, and it is what DeepMind's Acme uses for MPO's duals.

    Projection: softplus flattens for raw → −∞ and its gradient σ(raw) underflows to exactly 0
    (below raw ≈ −104 in float32): a dual pushed down long enough (α while the KL stays under
    ε_α, η while the advantages are all equal) would sit at the floor with zero gradient and never
    come back. So ``raw`` is clipped to ``raw_min`` (default −18, as in Acme; softplus(−18) ≈ 1.5e-8)
    after every optimizer step: call :meth:`project_` after ``optimizer.step()``, or let
    :meth:`register_projection` do it for you. Forgetting it never makes a dual ≤ 0; it only
    risks that dead zone. Near the bottom the parametrization is logarithmic: an Adam step of
    size lr changes the dual by a factor ≈ e^lr.

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
