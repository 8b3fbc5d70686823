"""Exercise checks for notebook 01 (natural gradient).

Numeric exercises (1–3): each check takes the student's answer (``None`` while the exercise is
not done: the check then says so and returns False, it does not raise), compares it with rlkit's
own computation and prints ✓ or ✗ with a hint; it accepts the answer rounded as the notebook
prints it. The problem data are module constants, so the notebook's text and the check read the
same numbers. Implementation exercise (4): :func:`check_natural_gradient_step` runs the student's
``natural_gradient_step`` against ``rlkit.fisher.natural_gradient`` on seeded Gaussian fits and
names the typical mistakes.
"""
from __future__ import annotations

import copy
import math

import torch

from rlkit.fisher import DiagonalGaussian, fisher_matrix, flat_grad, flatten, natural_gradient
from rlkit.lessons.checks import NOT_DONE, check_implementation, close, report
from rlkit.lessons.nb01_natural_gradient.toy import (
    ONE_INPUT,
    GaussianFit,
    descent_path,
    fit_loss,
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
    "natural_step_cases",
    "check_natural_gradient_step",
]


#: Exercise 1: the Fisher in the (μ, v = σ²) coordinates at this (μ, σ).
VARIANCE_POINT = (1.0, 2.0)
#: Exercise 2: the step d = (Δμ, Δlog σ) taken in the (μ, log σ) coordinates from (μ, σ).
KL_POINT = (1.0, 0.5)
KL_STEP = (0.1, -0.2)
#: Exercise 3: one natural-gradient step with learning rate lr in the (μ, log σ) coordinates.
STEP_START = (0.0, 2.0)
STEP_TARGET = (0.0, 0.5)
STEP_LR = 0.5

#: The numeric answers are accepted rounded: exercise 1 to three decimals, exercise 3 to two
#: (the wrong answers the checks name are further away than that).
FISHER_ATOL = 5e-4
SIGMA_ATOL = 5e-3


def _fisher(point, parametrization: str) -> torch.Tensor:
    return fisher_matrix(GaussianFit(point[0], point[1], parametrization), ONE_INPUT, DiagonalGaussian())


def check_variance_fisher(answer) -> bool:
    """Exercise 1: the 2×2 Fisher of N(μ, v) in the coordinates (μ, v), v = σ², at VARIANCE_POINT."""
    what = f"Fisher in the (μ, σ²) coordinates at μ = {VARIANCE_POINT[0]}, σ = {VARIANCE_POINT[1]}"
    if answer is None:
        return report(False, what, NOT_DONE)
    expected = _fisher(VARIANCE_POINT, "variance")
    ok, hint = close(answer, expected, rtol=0.0, atol=FISHER_ATOL)
    if not ok and close(answer, _fisher(VARIANCE_POINT, "std"))[0]:
        hint = ("that is the Fisher in the (μ, σ) coordinates; change variables with F_var = Jᵀ F_std J, "
                "J = ∂(μ, σ)/∂(μ, σ²)")
    elif not ok:
        hint += "; hint: dσ/d(σ²) = 1/(2σ)"
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
    """Exercise 3: σ after one natural-gradient step with learning rate STEP_LR in the (μ, log σ)
    coordinates; accepted rounded to two decimals or finer (the notebook prints 1.5821)."""
    what = f"σ after one natural-gradient step (lr = {STEP_LR}) in the (μ, log σ) coordinates"
    if answer is None:
        return report(False, what, NOT_DONE)
    path = descent_path("log_std", "natural", STEP_START, STEP_TARGET, STEP_LR, 1)
    ok, hint = close(answer, path[1, 1], rtol=0.0, atol=SIGMA_ATOL)
    if not ok:
        std_path = descent_path("std", "natural", STEP_START, STEP_TARGET, STEP_LR, 1)
        gd_path = descent_path("log_std", "gradient", STEP_START, STEP_TARGET, STEP_LR, 1)
        if close(answer, std_path[1, 1])[0]:
            hint = ("that is the step taken in the (μ, σ) coordinates: equal to first order in lr, "
                    "but a straight step in log σ is not a straight step in σ")
        elif close(answer, gd_path[1, 1])[0]:
            hint = "that is the plain gradient step; divide by the Fisher (F_logσ,logσ = 2) first"
    return report(ok, what, hint)


# ---------------------------------------------------------------- exercise 4: natural_gradient_step


def natural_step_cases() -> list[dict]:
    """Seeded inputs for ``natural_gradient_step(model, target, lr, damping)``: Gaussian fits in the
    (μ, log σ) and (μ, σ) coordinates, σ away from 1 (so the two coordinates' Fishers differ) and
    λ > 0 (so a forgotten damping shows)."""
    gen = torch.Generator().manual_seed(1)
    cases = []
    for k, parametrization in enumerate(["log_std", "std", "log_std", "std"]):
        u = torch.rand(6, generator=gen, dtype=torch.float64).tolist()
        sigma = 0.3 + 0.4 * u[0] if k % 2 else 1.5 + u[0]
        model = GaussianFit(4 * u[1] - 2, sigma, parametrization)
        target = (2 * u[2] - 1, 0.3 + 1.2 * u[3])
        cases.append(dict(model=model, target=target, lr=0.05 + 0.45 * u[4], damping=0.05 + 0.25 * u[5]))
    return cases


def _loss_gradient(model, target) -> torch.Tensor:
    model = copy.deepcopy(model)
    model.zero_grad()
    fit_loss(model, target).backward()
    return flat_grad(model)


def _theta(model) -> torch.Tensor:
    return flatten(p.detach() for p in model.parameters())


def _reference_step(model, target, lr, damping):
    """θ + lr Δ, Δ = (F + λI)⁻¹ g, g = −∇_θL, with ``rlkit.fisher.natural_gradient`` (dense Fisher)."""
    delta = natural_gradient(model, ONE_INPUT, DiagonalGaussian(), -_loss_gradient(model, target), damping)
    return _theta(model) + lr * delta


def _closed_form_step(model, target, lr, damping, *, scale_entry, solve=True, sign=1.0, damped=True):
    """A step with the diagonal matrix diag(1/σ², scale_entry(σ)) in place of the model's Fisher,
    solved (or multiplied) with it, with the given sign: the planted mistakes."""
    sigma = model.mean_std()[1]
    matrix = torch.diag(torch.tensor([1 / sigma**2, scale_entry(sigma)], dtype=torch.float64))
    if damped:
        matrix = matrix + damping * torch.eye(2, dtype=torch.float64)
    g = -_loss_gradient(model, target)
    direction = torch.linalg.solve(matrix, g) if solve else matrix @ g
    return _theta(model) + sign * lr * direction


def _right_entry(model):
    return (lambda s: 2.0) if model.parametrization == "log_std" else (lambda s: 2.0 / s**2)


def _other_coordinates_entry(model):
    return (lambda s: 2.0 / s**2) if model.parametrization == "log_std" else (lambda s: 2.0)


def _jacobian_reversed_entry(model):
    return (lambda s: 2.0 / s**4) if model.parametrization == "log_std" else (lambda s: 2.0 * s**2)


_NATURAL_STEP_MISTAKES = [
    (lambda model, target, lr, damping: _theta(model) - lr * _loss_gradient(model, target),
     "this is the plain gradient step θ − lr ∇L: solve with the Fisher first, Δ = (F + λI)⁻¹ g, g = −∇L"),
    (lambda model, target, lr, damping: _closed_form_step(model, target, lr, damping,
                                                          scale_entry=_right_entry(model), solve=False),
     "the gradient was multiplied by F + λI: the natural gradient solves (F + λI) Δ = g, it applies F⁻¹"),
    (lambda model, target, lr, damping: _closed_form_step(model, target, lr, damping,
                                                          scale_entry=_right_entry(model), sign=-1.0),
     "a step up the loss: with g = −∇L the step is θ + lr Δ (or θ − lr (F + λI)⁻¹ ∇L)"),
    (lambda model, target, lr, damping: _closed_form_step(model, target, lr, damping,
                                                          scale_entry=_other_coordinates_entry(model)),
     "the Fisher of the other coordinates: its log σ entry is 2, its σ entry 2/σ² "
     "(F_std = Jᵀ F_log std J with J = ∂(μ, log σ)/∂(μ, σ) = diag(1, 1/σ)); use the model's own"),
    (lambda model, target, lr, damping: _closed_form_step(model, target, lr, damping,
                                                          scale_entry=_jacobian_reversed_entry(model)),
     "the change of coordinates went the wrong way (a factor σ² too many or too few in the scale entry): "
     "in (μ, log σ) the entry is 2, in (μ, σ) it is 2/σ²"),
    (lambda model, target, lr, damping: _closed_form_step(model, target, lr, damping,
                                                          scale_entry=_right_entry(model), damped=False),
     "the damping is missing: solve with F + λI, not F"),
]


def check_natural_gradient_step(natural_gradient_step) -> bool:
    """Exercise 4: ``natural_gradient_step(model, target, lr, damping)`` returns θ + lr Δ,
    Δ = (F + λI)⁻¹ g, g = −∇_θ KL(p* ‖ p_θ), in the model's coordinates, checked against
    ``rlkit.fisher.natural_gradient`` on seeded Gaussian fits (the function gets a copy of each
    model, so changing it in place does no harm)."""
    def on_a_copy(model, **arguments):
        return natural_gradient_step(model=copy.deepcopy(model), **arguments)

    return check_implementation(on_a_copy, _reference_step, natural_step_cases(), what="natural_gradient_step",
                                mistakes=_NATURAL_STEP_MISTAKES, rtol=1e-6, atol=1e-9)
