r"""Fisher losses for :meth:`KFAC.update_stats <rlkit.kfac.KFAC.update_stats>`, for any model.

A Fisher pass needs −Σ_n log p(ŷ_n | x_n) with ŷ_n SAMPLED from the model's own predictive
distribution (not the data's labels: that gives the empirical Fisher), summed over the batch::

    from rlkit.kfac import KFAC
    from rlkit.kfac.losses import categorical_fisher_loss   # a classifier's logits

    logits = model(x)
    kfac.update_stats(categorical_fisher_loss(logits))       # not F.cross_entropy(logits, y)

* :func:`categorical_fisher_loss`: logits of a softmax (classifiers, discrete policies).
* :func:`gaussian_fisher_loss`: mean and log-std of a diagonal Gaussian (regression, continuous
  policies); :func:`value_fisher_loss`: a scalar regression head with fixed σ.
* :func:`joint_fisher_loss`: two independent heads on a shared trunk (policy and value).
* ``*_fisher_sqrt``: per-sample square roots B with F_z = B Bᵀ, for the exact expectation
  (:meth:`KFAC.update_stats_exact <rlkit.kfac.KFAC.update_stats_exact>`).

The same functions as in :mod:`rlkit.critic`, re-exported here for users outside RL.
"""

from ..critic import (
    categorical_fisher_loss,
    categorical_fisher_sqrt,
    gaussian_fisher_loss,
    gaussian_fisher_sqrt,
    joint_fisher_loss,
    value_fisher_loss,
    value_fisher_sqrt,
)

__all__ = [
    "categorical_fisher_loss",
    "categorical_fisher_sqrt",
    "gaussian_fisher_loss",
    "gaussian_fisher_sqrt",
    "joint_fisher_loss",
    "value_fisher_loss",
    "value_fisher_sqrt",
]
