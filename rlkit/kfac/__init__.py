r"""K-FAC: a Kronecker-factored natural-gradient preconditioner for any ``nn.Module``.

``KFAC(model)`` covers the model's ``nn.Linear`` and ``nn.Conv2d`` layers; a Fisher pass
(:meth:`KFAC.update_stats`, from a loss with *sampled* outputs) updates the factors, and
:meth:`KFAC.precondition` replaces the gradients by F̂⁻¹g and returns gᵀF̂⁻¹g.

Conventions (docs/design.md; derivations in docs/derivations.md):

* Layer s = W a, W of shape (C_out, C_in), the bias as the last column (a gets a trailing 1):
  A = E[a aᵀ], S = E[g gᵀ], g = ∇_s log p; F̂_ℓ = S ⊗ A for PyTorch's row-major vec, and
  F̂_ℓ⁻¹ vec(∇W) = vec(S⁻¹ ∇W A⁻¹) (two small products per layer, no Kronecker product).
* The Fisher is a batch mean: the Fisher loss is a SUM of per-sample negative
  log-likelihoods (or a mean with ``loss_reduction="mean"``); A and S are batch means.
* Convolutions (KFC): A is a mean over the output locations, S a sum over them.
* Damping λ: ``"factored"`` (A + κ√λ I) ⊗ (S + √λ/κ I), or ``"eigen"`` S ⊗ A + λI
  (what λ means in each mode and where to start: :class:`KFAC`'s docstring).

Beyond ``.grad``: :meth:`KFAC.apply_inverse` (F̃⁻¹g of a dict or list of gradients, e.g. a
``torch.func.grad`` result), :meth:`KFAC.matvec` (F̃v), :meth:`KFAC.linear_operator` (F̃ or
F̃⁻¹ on flat vectors), :meth:`KFAC.accumulate` (one statistic over several micro-batches).
Fisher losses for any model: :mod:`rlkit.kfac.losses`.

Modules: ``core`` (the KFAC class), ``blocks`` (one per layer type), ``capture`` and ``statistics``
(Fisher passes), ``damping``, ``precondition``, ``state`` (save and resume), ``options``, ``losses``.

References: Martens & Grosse, "Optimizing neural networks with Kronecker-factored approximate
curvature", ICML 2015; Grosse & Martens, "A Kronecker-factored approximate Fisher matrix for
convolution layers", ICML 2016; Wu et al., "Scalable trust-region method for deep reinforcement
learning using Kronecker-factored approximation" (ACKTR), NeurIPS 2017.
"""

from . import losses
from .blocks import Eigendecomposition, KFACConv2d, KFACLayer, KFACLinear
from .capture import subsample_rows
from .core import KFAC
from .losses import categorical_fisher_loss, gaussian_fisher_loss, joint_fisher_loss, value_fisher_loss
from .options import DAMPING_MODES, INVERSE_METHODS, LOSS_REDUCTIONS, UNCOVERED_POLICIES, FisherDiagonal
from .precondition import KFACOperator

__all__ = [
    "KFAC",
    "KFACLayer",
    "KFACOperator",
    "Eigendecomposition",
    "losses",
    "categorical_fisher_loss",
    "gaussian_fisher_loss",
    "joint_fisher_loss",
    "value_fisher_loss",
]
