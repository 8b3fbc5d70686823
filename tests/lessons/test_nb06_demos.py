"""rlkit.lessons.nb06_gauss_newton_critic.demos (notebook 06) against independent numbers: hand-built JᵀJ, the
closed-form Gauss-Newton step of a linear critic, closed-form least squares, the σ scaling laws, and the run readers
on a hand-written episodes.csv."""
import math

import numpy as np
import pytest
import torch

from rlkit.lessons.nb06_gauss_newton_critic.demos import (
    dense_jtj, final_return, kfac_critic_step, linear_least_squares, mlp_fit, regression_batch, sampled_fisher_pass,
    sigma_scaling, steps_to_threshold, update_column, value_net)


def test_dense_jtj_of_a_linear_model_is_phi_t_phi():
    torch.manual_seed(0)
    lin = torch.nn.Sequential(torch.nn.Linear(3, 1).double(), torch.nn.Flatten(0))
    x = torch.randn(10, 3, dtype=torch.float64)
    phi = torch.cat([x, torch.ones(10, 1, dtype=torch.float64)], 1)  # weight then bias, as named_parameters
    assert torch.allclose(dense_jtj(lin, x), phi.T @ phi / 10, atol=1e-12)


def test_sampled_fisher_pass_estimates_jtj_over_sigma_squared():
    model, (x, _) = value_net(hidden=4), regression_batch(n=16)
    estimate = sampled_fisher_pass(model, x, sigma=0.5, draws=3000)
    ref = dense_jtj(model, x) * 4.0
    assert float((estimate - ref).norm() / ref.norm()) < 0.1  # unbiased, 3000 draws
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("sigma, damping, delta, eta_max", [(1.0, 0.01, 0.5, 1.0), (0.5, 0.1, 0.02, 1.0)])
def test_kfac_critic_step_of_a_linear_critic_is_the_closed_form_gauss_newton_step(sigma, damping, delta, eta_max):
    torch.manual_seed(3)
    critic = torch.nn.Sequential(torch.nn.Linear(3, 1), torch.nn.Flatten(0)).double()
    x, r = regression_batch(n=32)
    before = [p.detach().clone() for p in critic.parameters()]
    step, q, eta = kfac_critic_step(critic, x, r, sigma, damping, delta, eta_max)
    phi = torch.cat([x, torch.ones(32, 1, dtype=torch.float64)], 1)  # weight then bias
    theta = torch.cat([critic[0].weight.detach().reshape(-1), critic[0].bias.detach()])
    g = phi.T @ (phi @ theta - r) / 32  # ∇ ½ mean (V − R)²
    direction = torch.linalg.solve(phi.T @ phi / (32 * sigma**2) + damping * torch.eye(4, dtype=torch.float64), g)
    assert q == pytest.approx(float(g @ direction), rel=1e-12)
    assert eta == pytest.approx(min(eta_max, math.sqrt(2 * delta / float(g @ direction))), rel=1e-12)
    torch.testing.assert_close(step, -eta * direction, rtol=1e-10, atol=1e-13)
    assert all(torch.equal(a, b) for a, b in zip(before, critic.parameters()))  # the model is unchanged
    assert all(p.grad is None for p in critic.parameters())
    assert not critic[0]._forward_hooks  # K-FAC's hooks are gone


def test_kfac_critic_step_of_an_mlp_is_an_approximation():
    critic, (x, r) = value_net(), regression_batch()
    step, _, _ = kfac_critic_step(critic, x, r, 1.0, 0.01, 0.5, 1.0)
    assert step.shape == (sum(p.numel() for p in critic.parameters()),) and torch.isfinite(step).all()


def test_one_gauss_newton_step_solves_linear_least_squares():
    res = linear_least_squares(iterations=20)
    assert res["gn_distance_to_optimum"] < 1e-9
    assert res["gauss_newton"][1] == pytest.approx(res["loss_optimum"], abs=1e-12)
    assert res["gradient_descent"][-1] > res["loss_optimum"] + 1e-3  # first order: not there after 20 steps
    assert np.all(np.diff(res["gradient_descent"]) <= 1e-15)  # lr = 1/λ_max: monotone


def test_mlp_gauss_newton_beats_adam():
    curves = mlp_fit(iterations=20)
    assert curves["gauss_newton"][-1] < 0.1 * curves["adam"][-1]


def test_sigma_scaling_laws():
    uncapped = sigma_scaling(delta=1e-3, eta_max=10.0)
    one, half = uncapped[1.0], uncapped[0.5]
    assert half["cosine"] == pytest.approx(1.0, abs=1e-12)
    assert half["delta_norm"] / one["delta_norm"] == pytest.approx(0.25, rel=1e-9)
    assert half["q"] / one["q"] == pytest.approx(0.25, rel=1e-9)
    assert half["step_norm"] / one["step_norm"] == pytest.approx(0.5, rel=1e-9)
    assert one["eta"] == pytest.approx(math.sqrt(2e-3 / one["q"]), rel=1e-12)
    capped = sigma_scaling(delta=10.0, eta_max=1.0)
    assert capped[1.0]["capped"] and capped[0.5]["capped"]
    assert capped[0.5]["step_norm"] / capped[1.0]["step_norm"] == pytest.approx(0.25, rel=1e-9)


def test_run_readers(tmp_path):
    (tmp_path / "episodes.csv").write_text(
        "env_steps,wall_time_s,episode_return,episode_length,update\n"
        + "".join(f"{100 * (i + 1)},0.0,{r},{int(r)},{i + 1}\n" for i, r in enumerate([10, 20, 30, 40, 50])))
    (tmp_path / "updates.csv").write_text("update,env_steps,value_loss\n1,256,3.5\n2,512,1.25\n")
    assert steps_to_threshold(tmp_path, 25, window=2) == 300  # means 15, 25 → reached at the 3rd episode
    assert steps_to_threshold(tmp_path, 100, window=2) is None
    assert final_return(tmp_path, window=2) == 45.0
    steps, values = update_column(tmp_path, "value_loss")
    assert steps.tolist() == [256, 512] and values.tolist() == [3.5, 1.25]
