"""Exercise checks for notebook 01 (natural gradient).

Each check takes the student's answer (``None`` while the exercise is not done: the check
then says so and returns False, it does not raise), compares it with rlkit's own
computation and prints ✓ or ✗ with a hint. The problem data are module constants, so the
notebook's text and the check read the same numbers.
"""
from __future__ import annotations

import math

import torch

from rlkit.fisher import DiagonalGaussian, fisher_matrix
from rlkit.lessons.checks import NOT_DONE, close, report
from rlkit.lessons.nb01_natural_gradient.toy import (
    ONE_INPUT,
    GaussianFit,
    descent_path,
    gaussian_kl,
)
from rlkit.trust_region import predicted_kl

__all__ = [
    "VARIANCE_POINT",
    "KL_POINT",
    "KL_STEP",
    "STEP_START",
    "STEP_TARGET",
    "STEP_LR",
    "check_variance_fisher",
    "check_predicted_kl",
    "check_sigma_after_step",
]


#: Exercise 1: the Fisher in the (μ, v = σ²) coordinates at this (μ, σ).
VARIANCE_POINT = (1.0, 2.0)
#: Exercise 2: the step d = (Δμ, Δlog σ) taken in the (μ, log σ) coordinates from (μ, σ).
KL_POINT = (1.0, 0.5)
KL_STEP = (0.1, -0.2)
#: Exercise 3: one natural-gradient step of size η in the (μ, log σ) coordinates.
STEP_START = (0.0, 2.0)
STEP_TARGET = (0.0, 0.5)
STEP_LR = 0.5



def _fisher(point, parametrization: str) -> torch.Tensor:
    return fisher_matrix(GaussianFit(point[0], point[1], parametrization), ONE_INPUT, DiagonalGaussian())


def check_variance_fisher(answer) -> bool:
    """Exercise 1: the 2×2 Fisher of N(μ, v) in the coordinates (μ, v), v = σ², at VARIANCE_POINT."""
    what = f"Fisher in the (μ, σ²) coordinates at μ = {VARIANCE_POINT[0]}, σ = {VARIANCE_POINT[1]}"
    if answer is None:
        return report(False, what, NOT_DONE)
    expected = _fisher(VARIANCE_POINT, "variance")
    ok, hint = close(answer, expected)
    if not ok and close(answer, _fisher(VARIANCE_POINT, "std"))[0]:
        hint = "that is the Fisher in the (μ, σ) coordinates; change variables with F_v = Jᵀ F_σ J, J = ∂(μ, σ)/∂(μ, v)"
    elif not ok:
        hint += "; hint: dσ/dv = 1/(2σ)"
    return report(ok, what, hint)


def check_predicted_kl(answer) -> bool:
    """Exercise 2: the quadratic model ½ dᵀF d of the KL for the step KL_STEP at KL_POINT (log-std coordinates)."""
    what = f"predicted KL ½ dᵀF d for d = {KL_STEP} from (μ, σ) = {KL_POINT}"
    if answer is None:
        return report(False, what, NOT_DONE)
    d = torch.tensor(KL_STEP, dtype=torch.float64)
    quadratic = d @ _fisher(KL_POINT, "log_std") @ d
    expected = predicted_kl(quadratic, 1.0)
    ok, hint = close(answer, expected)
    if not ok and close(answer, 2 * expected)[0]:
        hint = "that is dᵀF d; the KL's Taylor expansion has a ½ in front"
    verdict = report(ok, what, hint)
    if ok:
        mu, sigma = KL_POINT
        exact = float(gaussian_kl(mu, sigma, mu + KL_STEP[0], sigma * math.exp(KL_STEP[1])))
        print(f"  (the exact KL of that step is {exact:.4f}: the quadratic model drops third-order terms)")
    return verdict


def check_sigma_after_step(answer) -> bool:
    """Exercise 3: σ after one natural-gradient step of size STEP_LR in the (μ, log σ) coordinates."""
    what = f"σ after one natural-gradient step (η = {STEP_LR}) in the (μ, log σ) coordinates"
    if answer is None:
        return report(False, what, NOT_DONE)
    path = descent_path("log_std", "natural", STEP_START, STEP_TARGET, STEP_LR, 1)
    ok, hint = close(answer, path[1, 1])
    if not ok:
        std_path = descent_path("std", "natural", STEP_START, STEP_TARGET, STEP_LR, 1)
        gd_path = descent_path("log_std", "gradient", STEP_START, STEP_TARGET, STEP_LR, 1)
        if close(answer, std_path[1, 1])[0]:
            hint = ("that is the step taken in the (μ, σ) coordinates: equal to first order in η, "
                    "but a straight step in log σ is not a straight step in σ")
        elif close(answer, gd_path[1, 1])[0]:
            hint = "that is the plain gradient step; divide by the Fisher (F_logσ,logσ = 2) first"
    return report(ok, what, hint)
