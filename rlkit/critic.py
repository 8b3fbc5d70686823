r"""The Gauss-Newton critic and the Fisher-pass losses of ACKTR.

Provides the losses a K-FAC Fisher pass differentiates (:func:`value_fisher_loss`,
:func:`categorical_fisher_loss`, :func:`gaussian_fisher_loss`, :func:`joint_fisher_loss`),
the output-Fisher square roots of the exact pass (``*_fisher_sqrt``, F_z = B Bᵀ per sample,
shape ``z.shape + (R,)``) and :class:`GaussNewtonCritic`, the critic's output model.

Conventions (docs/design.md; derivations in docs/derivations.md):

* The value V(s) is the mean of N(v; V(s), σ²), σ = 1 by default: Fisher E[JᵀJ]/σ², J = ∂V/∂θ.
* The openai/baselines loss −(V − sg(V + ε))², ε ~ N(0, 1), gives the block 4JᵀJ: it is
  σ = 0.5 (``style="baselines"``).
* A diagonal Gaussian policy's state-independent log-std has the exact Fisher block 2
  (``GAUSSIAN_LOG_STD_FISHER``): ``KFAC(..., exact_diagonal_blocks={log_std: 2.0})``.
* Shared trunk: p(a, v | s) = π(a|s) p(v|s), a and v sampled independently; the joint loss is
  the sum of the two losses. Separate actor and critic: two ``KFAC`` objects, one loss each.
* Every Fisher-pass loss is a SUM over the batch of per-sample negative log-likelihoods (what
  ``KFAC.update_stats`` expects by default); sampled quantities are detached.

References: Wu et al., "Scalable trust-region method for deep reinforcement learning using
Kronecker-factored approximation" (ACKTR), NeurIPS 2017; Martens, "New insights and
perspectives on the natural gradient method", JMLR 2020 (Gauss-Newton and Fisher).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "GAUSSIAN_LOG_STD_FISHER",
    "GaussNewtonCritic",
    "value_fisher_loss",
    "categorical_fisher_loss",
    "gaussian_fisher_loss",
    "joint_fisher_loss",
    "value_fisher_sqrt",
    "categorical_fisher_sqrt",
    "gaussian_fisher_sqrt",
]

#: Exact Fisher diagonal of a diagonal Gaussian's log-std per sample: E[(z²−1)²] = 2.
GAUSSIAN_LOG_STD_FISHER = 2.0

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
VALUE_STYLES = ("gaussian", "baselines")


def _check_sigma(sigma) -> float:
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not math.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"sigma must be a finite number > 0 (valid range (0, inf)); got {sigma!r}")
    return float(sigma)


def _randn_like(x: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)


def value_fisher_loss(
    value: Tensor,
    sigma: float | None = None,
    *,
    style: str = "gaussian",
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Fisher-pass loss of the Gauss-Newton critic, summed over the batch.

    ``style="gaussian"`` (σ defaults to 1): v̂ = sg(V + σε), loss = −Σ log N(v̂; V, σ²);
    Fisher block JᵀJ/σ².
    ``style="baselines"``: loss = −Σ (V − sg(V + ε))², the openai/baselines trick; its
    block is 4JᵀJ, equivalent to σ = 0.5 (``sigma`` must be left unset).
    """
    if style not in VALUE_STYLES:
        raise ValueError(f"style must be one of {list(VALUE_STYLES)}; got {style!r}")
    eps = _randn_like(value, generator)
    if style == "baselines":
        if sigma is not None:
            raise ValueError("style='baselines' fixes the block at 4JᵀJ (σ = 0.5); leave sigma unset")
        return -torch.sum((value - (value + eps).detach()) ** 2)
    s = _check_sigma(1.0 if sigma is None else sigma)
    v_hat = (value + s * eps).detach()
    return torch.sum((v_hat - value) ** 2 / (2 * s * s) + math.log(s) + _HALF_LOG_2PI)


def categorical_fisher_loss(logits: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """−Σ log π(a|s) with a ~ π(·|s) = softmax(logits) sampled (detached); logits (..., K)."""
    logp = torch.log_softmax(logits, dim=-1)
    flat = logp.detach().exp().reshape(-1, logits.shape[-1])
    actions = torch.multinomial(flat, 1, generator=generator)
    return -torch.sum(logp.reshape(-1, logits.shape[-1]).gather(1, actions))


def gaussian_fisher_loss(mean: Tensor, log_std: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """−Σ log N(a; μ, σ²) with a = sg(μ + σ z) sampled; σ = exp(log_std) broadcast to μ.

    The gradient at μ is −z/σ (block diag(1/σ²) on the mean output); at log σ it is
    1 − z² (exact block 2, see ``GAUSSIAN_LOG_STD_FISHER``).
    """
    log_std = log_std.expand_as(mean)
    std = log_std.exp()
    action = (mean + std * _randn_like(mean, generator)).detach()
    return torch.sum(((action - mean) / std) ** 2 / 2 + log_std + _HALF_LOG_2PI)


def joint_fisher_loss(policy_fisher_loss: Tensor, value_fisher_loss: Tensor) -> Tensor:
    """Fisher-pass loss of a shared trunk: −log p(a, v|s) = −log π(a|s) − log p(v|s).

    a and v must be sampled independently (each helper draws its own noise).
    """
    if policy_fisher_loss.numel() != 1 or value_fisher_loss.numel() != 1:
        raise ValueError("joint_fisher_loss expects two scalar losses")
    return policy_fisher_loss + value_fisher_loss


def value_fisher_sqrt(value: Tensor, sigma: float = 1.0) -> Tensor:
    """B = 1/σ, shape ``value.shape + (1,)``: the value output's Fisher 1/σ² = B Bᵀ."""
    s = _check_sigma(sigma)
    return torch.full((*value.shape, 1), 1.0 / s, dtype=value.dtype, device=value.device)


def categorical_fisher_sqrt(logits: Tensor) -> Tensor:
    """B = diag(√p) − p √pᵀ with B Bᵀ = diag(p) − p pᵀ, the Fisher of the logits."""
    p = torch.softmax(logits.detach(), dim=-1)
    r = p.sqrt()
    return torch.diag_embed(r) - p.unsqueeze(-1) * r.unsqueeze(-2)


def gaussian_fisher_sqrt(mean: Tensor, std: Tensor | float) -> Tensor:
    """B = diag(1/σ): the Fisher diag(1/σ²) of a diagonal Gaussian's mean output."""
    std = torch.as_tensor(std, dtype=mean.dtype, device=mean.device).detach().expand_as(mean)
    return torch.diag_embed(1.0 / std)


@dataclass(frozen=True)
class GaussNewtonCritic:
    """The critic's output model N(v; V(s), σ²), carried as one object.

    ``GaussNewtonCritic()`` is σ = 1 (plain Gauss-Newton, the ACKTR paper);
    ``GaussNewtonCritic(style="baselines")`` reproduces the openai/baselines loss
    (σ = 0.5, block 4JᵀJ).
    """

    sigma: float = 1.0
    style: str = "gaussian"

    def __post_init__(self):
        if self.style not in VALUE_STYLES:
            raise ValueError(f"style must be one of {list(VALUE_STYLES)}; got {self.style!r}")
        _check_sigma(self.sigma)
        if self.style == "baselines" and self.sigma != 1.0:
            raise ValueError("style='baselines' fixes σ = 0.5; leave sigma unset")

    @property
    def effective_sigma(self) -> float:
        return 0.5 if self.style == "baselines" else self.sigma

    @property
    def block_scale(self) -> float:
        """c in F_V = c·E[JᵀJ]: 1/σ² (4 for the baselines style)."""
        return 1.0 / self.effective_sigma**2

    def fisher_loss(self, value: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        if self.style == "baselines":
            return value_fisher_loss(value, style="baselines", generator=generator)
        return value_fisher_loss(value, self.sigma, generator=generator)

    def fisher_sqrt(self, value: Tensor) -> Tensor:
        return value_fisher_sqrt(value, self.effective_sigma)
