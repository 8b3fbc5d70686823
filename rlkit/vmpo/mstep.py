r"""V-MPO's M-step: the weighted maximum likelihood L_π, the KL constraint L_α, and the KLs.

:func:`policy_loss` is L_π = −Σ ψ log π_θ(a|s), a sum, with ψ a constant;
:func:`kl_constraint_loss` splits L_α = α (ε_α − sg[KL]) + sg[α] KL into the term that trains
the policy and the term that trains α. Every KL is KL(π_old ‖ π_θ), a mean over the valid
states: :func:`categorical_kl` for logits, :func:`decoupled_gaussian_kl` (a mean part and a
covariance part) for diagonal Gaussians given by their standard deviations.
Derivations: docs/derivations.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from .validation import _check_pair, _check_positive, _check_tensor, _check_valid


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
    old_logits, new_logits = _check_pair("old_logits", old_logits, "new_logits", new_logits, "C")
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

    (the paper's decoupled KL): the mean part moves only the mean, with the old covariance; the
    covariance part only the covariance, at the old mean. With Σ_θ = Σ_old the mean part is the
    whole KL; in general the full KL is KL_Σ + ½ Δμᵀ Σ_θ⁻¹ Δμ, not KL_Σ + KL_μ
    (docs/derivations.md).

    KL_Σ is computed as ½ Σ_d (expm1(−x) + x), x = 2 (log σ_θ − log σ_old), which keeps its tiny
    values (ε_α_Σ is small) accurate in float32 where r − 1 − log r would cancel.

    Shapes: means (..., D), leading dimensions are the batch of states; each std broadcasts to the
    mean's shape ((D,) for a state-independent std). The old pair is detached (π_old is fixed).
    Every part is the mean over (``valid``) states of the per-state sum over dimensions. Returns a
    :class:`GaussianKL`. Raises ValueError for mismatched shapes or a std that is not finite and > 0.
    """
    old_mean, new_mean = _check_pair("old_mean", old_mean, "new_mean", new_mean, "D")
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
