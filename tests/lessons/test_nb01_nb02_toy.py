"""rlkit.toy: the toy problems behind notebooks 01 and 02, against closed forms and rlkit.fisher."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from rlkit.fisher import (
    Categorical,
    DiagonalGaussian,
    conjugate_gradient,
    fisher_matrix,
    fisher_vector_product,
    parameter_names,
)
from rlkit.lessons.nb01_natural_gradient.toy import (ONE_INPUT, PARAMETRIZATIONS, GaussianFit, descent_path, fisher_ellipse, fit_loss, gaussian_kl, path_gap)
from rlkit.lessons.nb02_fisher_matrices.demos import cg_curve, dense_fisher_bytes

DTYPE = torch.float64
START, TARGET = (2.0, 2.0), (0.0, 0.5)


def closed_form_fisher(parametrization, sigma):
    second = {"log_std": 2.0, "std": 2.0 / sigma**2, "variance": 1.0 / (2.0 * sigma**4)}[parametrization]
    return torch.tensor([[1.0 / sigma**2, 0.0], [0.0, second]], dtype=DTYPE)


def closed_form_loss(mu, sigma, target):
    mu_t, sigma_t = target
    return math.log(sigma / sigma_t) + (sigma_t**2 + (mu - mu_t) ** 2) / (2 * sigma**2) - 0.5


# ---------------------------------------------------------------- the Gaussian fit


@pytest.mark.parametrize("parametrization", PARAMETRIZATIONS)
def test_gaussian_fit_outputs_mean_and_log_std_and_names_its_coordinates(parametrization):
    model = GaussianFit(1.5, 0.7, parametrization)
    assert parameter_names(model) == ["mu", parametrization]
    out = model(torch.zeros(3, 1, dtype=DTYPE))
    assert out.shape == (3, 2)
    assert torch.allclose(out, torch.tensor([[1.5, math.log(0.7)]] * 3, dtype=DTYPE), rtol=0, atol=1e-15)
    assert model.mean_std() == pytest.approx((1.5, 0.7), abs=1e-15)


@pytest.mark.parametrize("parametrization", PARAMETRIZATIONS)
@pytest.mark.parametrize("sigma", [0.3, 1.0, 2.0])
def test_fisher_of_each_parametrization_matches_the_closed_form(parametrization, sigma):
    model = GaussianFit(-0.4, sigma, parametrization)
    F = fisher_matrix(model, ONE_INPUT, DiagonalGaussian())
    assert torch.allclose(F, closed_form_fisher(parametrization, sigma), rtol=1e-12, atol=1e-14)


def test_fisher_transforms_as_jacobian_sandwich_between_coordinates():
    sigma = 1.7
    F_log = fisher_matrix(GaussianFit(0.2, sigma, "log_std"), ONE_INPUT, DiagonalGaussian())
    F_std = fisher_matrix(GaussianFit(0.2, sigma, "std"), ONE_INPUT, DiagonalGaussian())
    J = torch.diag(torch.tensor([1.0, 1.0 / sigma], dtype=DTYPE))  # ∂(μ, log σ)/∂(μ, σ)
    assert torch.allclose(J.T @ F_log @ J, F_std, rtol=1e-12, atol=0)


def test_gaussian_fit_rejects_unknown_parametrization_and_bad_sigma():
    with pytest.raises(ValueError, match="parametrization"):
        GaussianFit(0.0, 1.0, "precision")
    with pytest.raises(ValueError, match="sigma"):
        GaussianFit(0.0, -1.0, "std")


@pytest.mark.parametrize("parametrization", PARAMETRIZATIONS)
def test_fit_loss_is_the_closed_form_kl_and_the_same_in_every_coordinate_system(parametrization):
    model = GaussianFit(1.2, 0.8, parametrization)
    assert fit_loss(model, TARGET).item() == pytest.approx(closed_form_loss(1.2, 0.8, TARGET), rel=1e-12)


def test_gaussian_kl_matches_the_closed_form_and_broadcasts():
    mu = np.array([[0.0, 1.0], [2.0, -1.0]])
    sigma = np.array([[0.5, 1.0], [2.0, 0.3]])
    kl = gaussian_kl(TARGET[0], TARGET[1], mu, sigma)
    expected = np.vectorize(lambda m, s: closed_form_loss(m, s, TARGET))(mu, sigma)
    assert kl.shape == (2, 2)
    np.testing.assert_allclose(kl, expected, rtol=1e-12)
    assert gaussian_kl(1.0, 2.0, 1.0, 2.0) == 0.0


# ---------------------------------------------------------------- the Fisher's ellipse


def test_fisher_ellipse_lies_on_the_quadratic_level_set():
    F = torch.tensor([[4.0, 1.0], [1.0, 2.0]], dtype=DTYPE)
    d = torch.as_tensor(fisher_ellipse(F, 0.05, n_points=50))
    assert d.shape == (50, 2)
    assert torch.allclose(0.5 * torch.einsum("ni,ij,nj->n", d, F, d), torch.full((50,), 0.05, dtype=DTYPE), rtol=1e-12)
    with pytest.raises(ValueError):
        fisher_ellipse(torch.eye(3), 0.05)


# ---------------------------------------------------------------- paths


@pytest.mark.parametrize("parametrization", ["log_std", "std"])
def test_first_gradient_step_is_the_closed_form(parametrization):
    lr = 0.1
    path = descent_path(parametrization, "gradient", START, TARGET, lr, 1)
    mu, sigma = START
    dL_dmu = (mu - TARGET[0]) / sigma**2
    dL_dsigma = 1 / sigma - (TARGET[1] ** 2 + (mu - TARGET[0]) ** 2) / sigma**3
    if parametrization == "std":
        expected = (mu - lr * dL_dmu, sigma - lr * dL_dsigma)
    else:  # ∂L/∂log σ = σ ∂L/∂σ, and the step is taken in log σ
        expected = (mu - lr * dL_dmu, sigma * math.exp(-lr * sigma * dL_dsigma))
    assert path.shape == (2, 2)
    np.testing.assert_allclose(path[0], START)
    np.testing.assert_allclose(path[1], expected, rtol=1e-12)


@pytest.mark.parametrize("parametrization", ["log_std", "std"])
def test_first_natural_gradient_step_is_the_closed_form(parametrization):
    lr = 0.5
    path = descent_path(parametrization, "natural", (0.0, 2.0), TARGET, lr, 1)
    a = 1 - TARGET[1] ** 2 / 4.0  # ∂L/∂log σ at μ = μ*, σ = 2; F_logσ = 2
    expected_sigma = 2.0 * math.exp(-lr * a / 2) if parametrization == "log_std" else 2.0 * (1 - lr * a / 2)
    np.testing.assert_allclose(path[1], (0.0, expected_sigma), rtol=1e-12, atol=1e-15)


def test_natural_gradient_moves_the_mean_by_eta_times_the_error_in_every_coordinate_system():
    # F⁻¹∇L has μ-component μ − μ*, independent of σ and of the coordinates of σ
    for parametrization in PARAMETRIZATIONS:
        path = descent_path(parametrization, "natural", START, TARGET, 0.1, 5)
        np.testing.assert_allclose(path[:, 0], START[0] * 0.9 ** np.arange(6), rtol=1e-12)


def test_natural_paths_differ_at_second_order_per_step_and_first_order_per_path():
    T = 2.0
    one_step, whole = [], []
    for lr in [0.2, 0.1, 0.05]:
        a = descent_path("log_std", "natural", START, TARGET, lr, round(T / lr))
        b = descent_path("std", "natural", START, TARGET, lr, round(T / lr))
        one_step.append(np.linalg.norm(a[1] - b[1]))
        whole.append(path_gap(a, b))
    assert one_step[0] / one_step[1] == pytest.approx(4.0, rel=0.05)
    assert one_step[1] / one_step[2] == pytest.approx(4.0, rel=0.05)
    assert whole[0] / whole[1] == pytest.approx(2.0, rel=0.2)
    assert whole[1] / whole[2] == pytest.approx(2.0, rel=0.1)


def test_gradient_paths_do_not_converge_to_each_other_as_the_step_shrinks():
    T = 2.0
    gaps = [
        path_gap(
            descent_path("log_std", "gradient", START, TARGET, lr, round(T / lr)),
            descent_path("std", "gradient", START, TARGET, lr, round(T / lr)),
        )
        for lr in [0.1, 0.05, 0.025]
    ]
    assert min(gaps) > 0.2
    assert gaps[0] / gaps[2] < 1.1


def test_descent_path_refuses_a_step_that_leaves_the_domain_and_bad_arguments():
    with pytest.raises(ValueError, match="smaller lr"):
        descent_path("std", "gradient", (0.0, 3.0), TARGET, 20.0, 3)
    with pytest.raises(ValueError, match="method"):
        descent_path("std", "newton", START, TARGET, 0.1, 3)
    with pytest.raises(ValueError, match="steps"):
        descent_path("std", "natural", START, TARGET, 0.1, -1)
    with pytest.raises(ValueError, match="shape"):
        path_gap(np.zeros((3, 2)), np.zeros((4, 2)))


def test_descent_path_is_deterministic():
    a = descent_path("variance", "natural", START, TARGET, 0.1, 20)
    b = descent_path("variance", "natural", START, TARGET, 0.1, 20)
    assert np.array_equal(a, b)


# ---------------------------------------------------------------- cost and CG


def test_dense_fisher_bytes():
    assert dense_fisher_bytes(1000) == 4_000_000
    assert dense_fisher_bytes(1000, 8) == 8_000_000
    with pytest.raises(ValueError):
        dense_fisher_bytes(0)


def _softmax_problem(damping):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).to(DTYPE)
    x = torch.randn(20, 4, dtype=DTYPE)
    F = fisher_matrix(net, x, Categorical()) + damping * torch.eye(sum(p.numel() for p in net.parameters()), dtype=DTYPE)
    b = torch.randn(F.shape[0], dtype=DTYPE)
    return net, x, F, b


def test_cg_curve_matches_separate_cg_runs_and_the_true_residual():
    net, x, F, b = _softmax_problem(0.05)
    calls = []

    def fvp(v):
        calls.append(1)
        return fisher_vector_product(net, x, Categorical(), v, 0.05)

    solution = torch.linalg.solve(F, b)
    curve = cg_curve(fvp, b, 12, solution=solution)
    assert len(calls) <= 2 * 12 + 1  # products replayed, not recomputed
    assert curve["iterations"].tolist() == list(range(13))
    assert curve["residual"][0] == 1.0 and curve["error"][0] == 1.0
    for k in [1, 5, 12]:
        x_k = conjugate_gradient(lambda v: F @ v, b, max_iters=k, tol=0.0)
        residual = float(torch.linalg.vector_norm(b - F @ x_k) / torch.linalg.vector_norm(b))
        error = float(torch.linalg.vector_norm(x_k - solution) / torch.linalg.vector_norm(solution))
        assert curve["residual"][k] == pytest.approx(residual, rel=1e-6)
        assert curve["error"][k] == pytest.approx(error, rel=1e-6)


def test_cg_curve_reaches_the_dense_solution():
    net, x, F, b = _softmax_problem(0.1)
    curve = cg_curve(lambda v: F @ v, b, 60, solution=torch.linalg.solve(F, b))
    assert curve["residual"][-1] < 1e-10
    assert curve["error"][-1] < 1e-9
    assert "error" not in cg_curve(lambda v: F @ v, b, 3)
