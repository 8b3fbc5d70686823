r"""V-MPO's EM pieces (Song et al., ICLR 2020): the E-step, the M-step losses, the KLs, the duals.

Tensors and one small ``nn.Module`` only. :mod:`~rlkit.vmpo.estep`: :func:`top_k_mask`,
:func:`e_step` (ψ and the temperature loss L_η). :mod:`~rlkit.vmpo.mstep`: :func:`policy_loss`
(L_π), :func:`kl_constraint_loss` (L_α), :func:`categorical_kl`, :func:`decoupled_gaussian_kl`.
:mod:`~rlkit.vmpo.duals`: :class:`DualVariables`, :func:`sample_eps_alpha`. Shared checks:
:mod:`~rlkit.vmpo.validation`. All losses are minimized; A are advantages under π_old.

Conventions (docs/design.md; derivations in docs/derivations.md):

* ψ = softmax(A/η) over 𝒟̃, the top half of the advantages among *valid* samples; 0 elsewhere.
* L_η = η ε_η + η log mean_𝒟̃ exp(A/η), so dL_η/dη = ε_η − KL(ψ ‖ uniform on 𝒟̃).
* L_π = −Σ ψ log π_θ(a|s) (a sum); L_α = α (ε_α − sg[KL]) + sg[α] KL, KL = KL(π_old ‖ π_θ).
* Gaussian policies: decoupled KL (mean part, covariance part), each with its own α and ε.

Pitfalls of public ports, each avoided here: advantages not detached; ψ or the mask carrying
gradient; no max-shift in exp(A/η); ψ normalized over all samples; a mean instead of a sum in
L_π; σ where σ² belongs; the KL direction reversed; padding or reset steps in the top-k.

References: Song et al., "V-MPO: on-policy maximum a posteriori policy optimization for
discrete and continuous control", ICLR 2020; Abdolmaleki et al., "Maximum a posteriori policy
optimisation" (MPO), ICLR 2018.
"""

from .duals import PAPER_INITIAL_DUALS, DualVariables, sample_eps_alpha
from .estep import EStep, _temperature_loss, e_step, top_k_mask
from .mstep import (
    GaussianKL,
    KLConstraintLoss,
    categorical_kl,
    decoupled_gaussian_kl,
    kl_constraint_loss,
    policy_loss,
)

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
