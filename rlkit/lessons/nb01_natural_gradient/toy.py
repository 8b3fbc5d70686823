"""The toy model of notebook 01: a one-input Gaussian fitted by gradient and natural-gradient descent
in three parametrizations, its KL and the Fisher's ellipse.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from rlkit.fisher import (
    DiagonalGaussian,
    flat_grad,
    flatten,
    natural_gradient,
    unflatten,
)

DTYPE = torch.float64


PARAMETRIZATIONS = ("log_std", "std", "variance")


METHODS = ("gradient", "natural")


#: The single (ignored) input row that :class:`GaussianFit` is evaluated on.
ONE_INPUT = torch.zeros(1, 1, dtype=DTYPE)


def _check_parametrization(parametrization: str) -> str:
    if parametrization not in PARAMETRIZATIONS:
        raise ValueError(f"parametrization must be one of {PARAMETRIZATIONS}, got {parametrization!r}")
    return parametrization


def _positive_finite(name: str, value: float) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return value


class GaussianFit(nn.Module):
    r"""N(μ, σ²) with parameters ``mu`` and one scale parameter named after the parametrization.

    ``parametrization="log_std"``: parameters (mu, log_std); ``"std"``: (mu, std);
    ``"variance"``: (mu, variance). ``forward(x)`` returns z = [μ, log σ] (the parameters of the
    output distribution) for every row of x, shape (N, 2), so the model's distribution is
    ``rlkit.fisher.DiagonalGaussian()``.
    Everything is float64.
    """

    def __init__(self, mu: float, sigma: float, parametrization: str = "log_std"):
        super().__init__()
        self.parametrization = _check_parametrization(parametrization)
        sigma = _positive_finite("sigma", sigma)
        self.mu = nn.Parameter(torch.tensor(float(mu), dtype=DTYPE))
        scale = {"log_std": math.log(sigma), "std": sigma, "variance": sigma**2}[parametrization]
        self.register_parameter(parametrization, nn.Parameter(torch.tensor(scale, dtype=DTYPE)))

    def log_sigma(self) -> Tensor:
        scale = getattr(self, self.parametrization)
        if self.parametrization == "log_std":
            return scale
        if self.parametrization == "std":
            return torch.log(scale)
        return 0.5 * torch.log(scale)

    def forward(self, x: Tensor) -> Tensor:
        return torch.stack([self.mu, self.log_sigma()]).expand(x.shape[0], 2)

    def mean_std(self) -> tuple[float, float]:
        """(μ, σ) as plain floats, whatever the coordinates."""
        with torch.no_grad():
            return float(self.mu), float(torch.exp(self.log_sigma()))


def gaussian_kl(mu_p, sigma_p, mu_q, sigma_q) -> np.ndarray:
    """KL(N(μ_p, σ_p²) ‖ N(μ_q, σ_q²)), elementwise over broadcast arrays (for contour plots).

    Computed by ``torch.distributions.kl_divergence`` in float64; returns a numpy array.
    """
    as_t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64))  # noqa: E731
    p = torch.distributions.Normal(as_t(mu_p), as_t(sigma_p))
    q = torch.distributions.Normal(as_t(mu_q), as_t(sigma_q))
    return torch.distributions.kl_divergence(p, q).numpy()


def fit_loss(model: GaussianFit, target: Sequence[float]) -> Tensor:
    r"""L(θ) = KL(p* ‖ p_θ) for the target p* = N(μ*, σ*²) given as ``target = (μ*, σ*)``.

    A differentiable scalar (``torch.distributions.kl_divergence`` between the target and the
    model's ``DiagonalGaussian().torch_distribution``).
    """
    mu_t, sigma_t = float(target[0]), _positive_finite("target sigma", target[1])
    model_dist = DiagonalGaussian().torch_distribution(model(ONE_INPUT))
    target_dist = torch.distributions.Independent(
        torch.distributions.Normal(torch.full((1, 1), mu_t, dtype=DTYPE), torch.full((1, 1), sigma_t, dtype=DTYPE)),
        1,
    )
    return torch.distributions.kl_divergence(target_dist, model_dist).mean()


def descent_path(
    parametrization: str,
    method: str,
    start: Sequence[float],
    target: Sequence[float],
    lr: float,
    steps: int,
) -> np.ndarray:
    r"""The (μ, σ) visited by ``steps`` descent steps on L = KL(p* ‖ p_θ), shape (steps + 1, 2).

    ``method="gradient"``: θ ← θ − lr ∇_θL; ``method="natural"``: θ ← θ + lr Δ, Δ = F(θ)⁻¹ g with
    g = −∇_θL, the direction from ``rlkit.fisher.natural_gradient`` (dense, exact Fisher). θ are
    the coordinates of ``parametrization``; ``start`` and ``target`` are (μ, σ) pairs.
    Raises ValueError if a step leaves the domain (σ <= 0 or σ² <= 0 in the ``std`` or
    ``variance`` coordinates): the step size is too large for that path.
    """
    _check_parametrization(parametrization)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    lr = _positive_finite("lr", lr)
    if not (isinstance(steps, int) and steps >= 0):
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
    model = GaussianFit(start[0], start[1], parametrization)
    params = list(model.parameters())
    path = [model.mean_std()]
    for k in range(steps):
        model.zero_grad()
        fit_loss(model, target).backward()
        g = -flat_grad(model)  # the kit's g: the gradient of the objective the step improves
        if method == "natural":
            g = natural_gradient(model, ONE_INPUT, DiagonalGaussian(), g)  # Δ = F⁻¹ g
        new = flatten(p.detach() for p in params) + lr * g
        if parametrization != "log_std" and not new[1] > 0:
            raise ValueError(
                f"step {k + 1} of {method} descent in the {parametrization} coordinates left the domain "
                f"({parametrization} = {float(new[1]):.3g} <= 0): use a smaller lr"
            )
        with torch.no_grad():
            for p, value in zip(params, unflatten(new, model).values()):
                p.copy_(value)
        path.append(model.mean_std())
    return np.array(path)


def path_gap(path_a: np.ndarray, path_b: np.ndarray) -> float:
    """Largest Euclidean distance in the (μ, σ) plane between two paths at equal step index."""
    path_a, path_b = np.asarray(path_a), np.asarray(path_b)
    if path_a.shape != path_b.shape:
        raise ValueError(f"paths must have the same shape, got {path_a.shape} and {path_b.shape}")
    return float(np.linalg.norm(path_a - path_b, axis=-1).max())


def fisher_ellipse(fisher: Tensor, level: float, n_points: int = 200) -> np.ndarray:
    r"""Points d with ½ dᵀ F d = ``level`` (the quadratic model of KL = level), shape (n_points, 2).

    F is a 2×2 positive-definite Fisher; the points are offsets from the centre where F was
    evaluated, in the same coordinates as F.
    """
    fisher = torch.as_tensor(fisher, dtype=DTYPE)
    if fisher.shape != (2, 2):
        raise ValueError(f"fisher must be 2×2, got shape {tuple(fisher.shape)}")
    level = _positive_finite("level", level)
    chol = torch.linalg.cholesky(fisher)  # F = L Lᵀ, so d = sqrt(2·level) L⁻ᵀ u with |u| = 1
    angle = torch.linspace(0, 2 * math.pi, n_points, dtype=DTYPE)
    circle = torch.stack([torch.cos(angle), torch.sin(angle)])
    d = math.sqrt(2 * level) * torch.linalg.solve_triangular(chol.T, circle, upper=True)
    return d.T.numpy()
