"""rlkit.fisher against hand-derived closed forms and the Fisher's definition itself."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rlkit.fisher import (
    Categorical,
    DiagonalGaussian,
    GaussianValue,
    conjugate_gradient,
    empirical_fisher,
    fisher_matrix,
    fisher_vector_product,
    flat_grad,
    flatten,
    gauss_newton_matrix,
    monte_carlo_fisher,
    natural_gradient,
    parameter_names,
    unflatten,
)

DTYPE = torch.float64
TOL = dict(rtol=1e-10, atol=1e-12)


def seeded(seed):
    torch.manual_seed(seed)


def inputs(n, d, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=DTYPE)


def mlp(d_in, d_out, seed=0):
    seeded(seed)
    return nn.Sequential(nn.Linear(d_in, 6), nn.Tanh(), nn.Linear(6, d_out)).to(DTYPE)


class MeanPolicy(nn.Module):
    """Gaussian policy with a state-independent log-std parameter.

    named_parameters() lists a module's own parameters before its children's, so log_std comes
    first in the Fisher's layout although it is assigned last.
    """

    def __init__(self, d_in, d_act, hidden=None):
        super().__init__()
        self.mean = nn.Linear(d_in, d_act).to(DTYPE) if hidden is None else mlp(d_in, d_act)
        self.log_std = nn.Parameter(torch.linspace(-0.5, 0.3, d_act, dtype=DTYPE))

    def forward(self, x):
        return self.mean(x)


def linear_block(x, middle):
    """Fisher of a linear model s = W x + b in the [vec_row(W), b] layout, from per-sample kron.

    ∂s/∂vec_row(W) = I ⊗ xᵀ, ∂s/∂b = I, so J_i = I ⊗ [x_iᵀ, 1] in homogeneous coordinates and
    J_iᵀ M_i J_i = M_i ⊗ x̃_i x̃_iᵀ; then permute the homogeneous layout (bias interleaved per
    output row) to PyTorch's (all of W, then b).
    """
    n, d = x.shape
    k = middle.shape[-1]
    x_tilde = torch.cat([x, torch.ones(n, 1, dtype=DTYPE)], dim=1)
    homog = sum(torch.kron(middle[i], torch.outer(x_tilde[i], x_tilde[i])) for i in range(n)) / n
    w_idx = [r * (d + 1) + j for r in range(k) for j in range(d)]
    b_idx = [r * (d + 1) + d for r in range(k)]
    order = torch.tensor(w_idx + b_idx)
    return homog[order][:, order]


# ---------------------------------------------------------------- layout helpers


def test_flatten_follows_named_parameters_row_major_and_round_trips():
    model = MeanPolicy(3, 2)
    assert parameter_names(model) == ["log_std", "mean.weight", "mean.bias"]
    vec = flatten(dict(model.named_parameters()))
    assert vec.shape == (2 + 3 * 2 + 2,)
    assert vec[2 + 1] == model.mean.weight[0, 1]  # row-major: W[0, 1] is entry 1 of vec(W)
    assert vec[2 + 3] == model.mean.weight[1, 0]
    back = unflatten(vec, model)
    for name, p in model.named_parameters():
        assert torch.equal(back[name], p)
    with pytest.raises(ValueError, match="vector must be 1-D with 10 entries"):
        unflatten(vec[:-1], model)


def test_flat_grad_matches_backward_and_fills_missing_with_zeros():
    model = MeanPolicy(3, 2)
    model.mean(inputs(4, 3)).sum().backward()  # log_std gets no grad
    g = flat_grad(model)
    assert torch.equal(g[2:8], model.mean.weight.grad.reshape(-1))
    assert torch.equal(g[:2], torch.zeros(2, dtype=DTYPE))


def test_frozen_parameters_are_left_out():
    model = MeanPolicy(3, 2)
    model.mean.bias.requires_grad_(False)
    F_ = fisher_matrix(model, inputs(5, 3), DiagonalGaussian(model.log_std))
    assert parameter_names(model) == ["log_std", "mean.weight"]
    assert F_.shape == (8, 8)


# ---------------------------------------------------------------- exact Fisher, closed forms


def test_categorical_linear_fisher_equals_hand_derived_kronecker_form():
    # F = E[(diag p − ppᵀ) ⊗ x̃x̃ᵀ] for logits = W x + b.
    seeded(1)
    model = nn.Linear(3, 4).to(DTYPE)
    x = inputs(9, 3)
    with torch.no_grad():
        p = torch.softmax(model(x), dim=1)
    expected = linear_block(x, torch.diag_embed(p) - p[:, :, None] * p[:, None, :])
    torch.testing.assert_close(fisher_matrix(model, x, Categorical()), expected, **TOL)


def test_categorical_mlp_fisher_equals_definition_by_enumerating_labels():
    # The definition itself: Σ_y p(y|x) ∇log p(y|x) ∇log p(y|x)ᵀ, by autograd, no torch.func.
    model = mlp(3, 4, seed=2)
    x = inputs(6, 3, seed=2)
    expected = 0
    for xi in x:
        log_p = torch.log_softmax(model(xi), dim=0)
        for y in range(4):
            g = torch.cat([t.reshape(-1) for t in torch.autograd.grad(log_p[y], model.parameters(), retain_graph=True)])
            expected = expected + log_p[y].exp().detach() * torch.outer(g, g)
    torch.testing.assert_close(fisher_matrix(model, x, Categorical()), expected / len(x), **TOL)


def test_gaussian_linear_fisher_with_state_independent_log_std():
    # Log-std block 2·I; mean block diag(1/σ²) ⊗ E[x̃x̃ᵀ] (row-major W, then b); no coupling.
    seeded(3)
    model = MeanPolicy(3, 2)
    x = inputs(8, 3, seed=3)
    sigma2 = torch.exp(2 * model.log_std.detach())
    mean_block = linear_block(x, torch.diag(1 / sigma2).expand(len(x), 2, 2))
    expected = torch.block_diag(2 * torch.eye(2, dtype=DTYPE), mean_block)
    got = fisher_matrix(model, x, DiagonalGaussian(log_std=model.log_std))
    torch.testing.assert_close(got, expected, **TOL)
    # Naming the parameter by string is the same distribution.
    torch.testing.assert_close(fisher_matrix(model, x, DiagonalGaussian("log_std")), got, **TOL)


def test_gaussian_linear_fisher_with_state_dependent_log_std():
    # The model outputs [μ, log σ](x) = W x + b: F = E[diag(1/σ(x)², 2) ⊗ x̃x̃ᵀ]; the log-std rows
    # of W (second half) get the block I ⊗ 2E[x̃x̃ᵀ], whatever σ(x) is.
    seeded(4)
    model = nn.Linear(3, 4).to(DTYPE)
    x = inputs(8, 3, seed=4)
    with torch.no_grad():
        log_std = model(x)[:, 2:]
    middle = torch.diag_embed(torch.cat([torch.exp(-2 * log_std), torch.full_like(log_std, 2.0)], dim=1))
    got = fisher_matrix(model, x, DiagonalGaussian())
    torch.testing.assert_close(got, linear_block(x, middle), **TOL)
    x_tilde = torch.cat([x, torch.ones(8, 1, dtype=DTYPE)], dim=1)
    second_moment = x_tilde.T @ x_tilde / len(x)
    log_std_rows = [6, 7, 8, 9, 10, 11, 14, 15]  # W[2:, :] row-major, then b[2:]
    idx = torch.tensor(log_std_rows)
    expected = linear_block(x, torch.diag(torch.tensor([0, 0, 2.0, 2.0], dtype=DTYPE)).expand(8, 4, 4))[idx][:, idx]
    torch.testing.assert_close(got[idx][:, idx], expected, **TOL)
    torch.testing.assert_close(got[6:9, 6:9], 2 * second_moment[:3, :3], **TOL)


def test_state_dependent_gaussian_accepts_a_tuple_output():
    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Linear(3, 4).to(DTYPE)

        def forward(self, x):
            out = self.body(x)
            return out[:, :2], out[:, 2:]

    seeded(5)
    model = TwoHeads()
    x = inputs(5, 3)
    torch.testing.assert_close(
        fisher_matrix(model, x, DiagonalGaussian()), fisher_matrix(model.body, x, DiagonalGaussian()), **TOL
    )


@pytest.mark.parametrize("sigma", [1.0, 0.5])
def test_gaussian_value_fisher_is_jtj_over_sigma_squared(sigma):
    model = mlp(3, 1, seed=6)
    x = inputs(7, 3, seed=6)
    params = tuple(model.parameters())
    rows = []
    for xi in x:  # J_i by plain autograd, one row per sample (scalar output)
        rows.append(flatten(torch.autograd.grad(model(xi).squeeze(), params)))
    jac = torch.stack(rows)
    got = fisher_matrix(model, x, GaussianValue(sigma))
    torch.testing.assert_close(got, jac.T @ jac / len(x) / sigma**2, **TOL)
    if sigma == 0.5:  # the baselines critic loss: block 4JᵀJ
        torch.testing.assert_close(got, 4 * jac.T @ jac / len(x), **TOL)


def test_fisher_is_a_batch_mean():
    model = mlp(3, 4, seed=7)
    x = inputs(5, 3)
    torch.testing.assert_close(
        fisher_matrix(model, x.repeat(3, 1), Categorical()), fisher_matrix(model, x, Categorical()), **TOL
    )


def test_chunked_jacobians_give_the_same_matrix(monkeypatch):
    import rlkit.fisher as fisher

    model = mlp(3, 4, seed=8)
    x = inputs(10, 3)
    whole = fisher_matrix(model, x, Categorical())
    monkeypatch.setattr(fisher, "_MAX_JACOBIAN_ELEMENTS", 1)  # one sample per chunk
    torch.testing.assert_close(fisher_matrix(model, x, Categorical()), whole, **TOL)


# ---------------------------------------------------------------- Monte-Carlo and empirical Fisher


@pytest.mark.parametrize(
    "make",
    [
        lambda: (mlp(3, 4, seed=9), Categorical()),
        lambda: (MeanPolicy(3, 2, hidden=True), None),
    ],
    ids=["categorical", "gaussian"],
)
def test_monte_carlo_fisher_converges_like_one_over_sqrt_n(make):
    model, dist = make()
    dist = dist or DiagonalGaussian(model.log_std)
    x = inputs(20, 3, seed=9)
    exact = fisher_matrix(model, x, dist)

    def error(n_samples, seed):
        mc = monte_carlo_fisher(model, x, dist, n_samples, torch.Generator().manual_seed(seed))
        return float((mc - exact).norm() / exact.norm())

    # Average a few seeds so the ratio is about the rate, not one lucky draw. 100× samples → 10× less error.
    small = sum(error(20, s) for s in range(3)) / 3
    large = sum(error(2000, s) for s in range(3)) / 3
    assert 5 < small / large < 20
    assert large < 0.03


def test_monte_carlo_fisher_is_the_empirical_fisher_of_sampled_labels():
    model = mlp(3, 4, seed=10)
    x = inputs(12, 3)
    dist = Categorical()
    with torch.no_grad():
        y = dist.sample(model(x), torch.Generator().manual_seed(0))
    mc = monte_carlo_fisher(model, x, dist, 1, torch.Generator().manual_seed(0))
    torch.testing.assert_close(mc, empirical_fisher(model, x, dist, y), **TOL)


def test_empirical_fisher_equals_sum_of_per_sample_gradient_outer_products():
    model = MeanPolicy(3, 2, hidden=True)
    x = inputs(5, 3)
    y = inputs(5, 2, seed=1)
    dist = DiagonalGaussian(model.log_std)
    expected = 0
    for xi, yi in zip(x, y):
        log_p = torch.distributions.Normal(model(xi), model.log_std.exp()).log_prob(yi).sum()
        g = flatten(torch.autograd.grad(log_p, tuple(model.parameters())))
        expected = expected + torch.outer(g, g)
    torch.testing.assert_close(empirical_fisher(model, x, dist, y), expected / 5, **TOL)


def test_empirical_fisher_differs_on_a_miscalibrated_model_but_not_with_model_labels():
    model = mlp(3, 4, seed=11)
    dist = Categorical()
    x = inputs(40, 3, seed=11)
    exact = fisher_matrix(model, x, dist)

    def rel(m):
        return float((m - exact).norm() / exact.norm())

    # Miscalibrated: the data always says class 0, whatever the model predicts.
    wrong = rel(empirical_fisher(model, x, dist, torch.zeros(40, dtype=torch.long)))
    # Labels drawn from the model: many draws per input, the empirical Fisher's expectation is F.
    reps = 500
    x_rep = x.repeat(reps, 1)
    with torch.no_grad():
        y = dist.sample(model(x_rep), torch.Generator().manual_seed(1))
    right = rel(empirical_fisher(model, x_rep, dist, y))
    assert wrong > 0.5
    assert right < 0.03


# ---------------------------------------------------------------- Gauss-Newton


def test_gauss_newton_of_squared_loss_equals_gaussian_fisher_and_jtj():
    sigma = 0.7
    model = mlp(3, 2, seed=12)
    x = inputs(6, 3)
    targets = inputs(6, 2, seed=5)
    gn = gauss_newton_matrix(model, x, lambda out, t: ((out - t) ** 2).sum() / (2 * sigma**2), targets)
    torch.testing.assert_close(gn, fisher_matrix(model, x, GaussianValue(sigma)), **TOL)
    jac = torch.autograd.functional.jacobian(lambda *p: _call_with(model, p, x), tuple(model.parameters()))
    jac = torch.cat([j.reshape(12, -1) for j in jac], dim=1)  # (N·K, P), samples stacked
    torch.testing.assert_close(gn, jac.T @ jac / 6 / sigma**2, **TOL)


def _call_with(model, params, x):
    named = dict(zip((n for n, _ in model.named_parameters()), params))
    return torch.func.functional_call(model, named, (x,)).reshape(-1)


def test_gauss_newton_of_cross_entropy_equals_categorical_fisher():
    model = mlp(3, 4, seed=13)
    x = inputs(6, 3)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    gn = gauss_newton_matrix(model, x, lambda out, t: F.cross_entropy(out, t), labels)
    torch.testing.assert_close(gn, fisher_matrix(model, x, Categorical()), **TOL)


def test_gauss_newton_without_targets():
    model = mlp(3, 2, seed=14)
    x = inputs(6, 3)
    gn = gauss_newton_matrix(model, x, lambda out: 0.5 * (out**2).sum())
    torch.testing.assert_close(gn, fisher_matrix(model, x, GaussianValue(1.0)), **TOL)


# ---------------------------------------------------------------- matrix-free products and solvers


@pytest.mark.parametrize("kind", ["categorical", "gaussian-independent", "gaussian-dependent", "value"])
def test_fisher_vector_product_equals_dense_product(kind):
    if kind == "categorical":
        model, dist = mlp(3, 4, seed=15), Categorical()
    elif kind == "gaussian-independent":
        model = MeanPolicy(3, 2, hidden=True)
        dist = DiagonalGaussian(model.log_std)
    elif kind == "gaussian-dependent":
        model, dist = mlp(3, 4, seed=15), DiagonalGaussian()
    else:
        model, dist = mlp(3, 1, seed=15), GaussianValue(0.5)
    x = inputs(7, 3)
    dense = fisher_matrix(model, x, dist)
    v = torch.randn(dense.shape[0], generator=torch.Generator().manual_seed(2), dtype=DTYPE)
    torch.testing.assert_close(fisher_vector_product(model, x, dist, v), dense @ v, **TOL)
    torch.testing.assert_close(fisher_vector_product(model, x, dist, v, damping=0.1), dense @ v + 0.1 * v, **TOL)


def test_conjugate_gradient_matches_linalg_solve():
    gen = torch.Generator().manual_seed(3)
    a = torch.randn(30, 30, generator=gen, dtype=DTYPE)
    spd = a @ a.T + 0.5 * torch.eye(30, dtype=DTYPE)
    b = torch.randn(30, generator=gen, dtype=DTYPE)
    x, info = conjugate_gradient(lambda v: spd @ v, b, max_iters=200, tol=1e-12, return_info=True)
    torch.testing.assert_close(x, torch.linalg.solve(spd, b), rtol=1e-9, atol=1e-10)
    assert info["converged"] and info["iterations"] <= 200
    assert info["residual_norm"] <= 1e-12 * float(b.norm())
    # A budget of 3 iterations stops early and says so.
    _, short = conjugate_gradient(lambda v: spd @ v, b, max_iters=3, return_info=True)
    assert short["iterations"] == 3 and not short["converged"]


def test_conjugate_gradient_on_a_zero_right_hand_side():
    x = conjugate_gradient(lambda v: 2 * v, torch.zeros(4, dtype=DTYPE))
    assert torch.equal(x, torch.zeros(4, dtype=DTYPE))


def test_natural_gradient_dense_equals_cg_and_an_explicit_solve():
    model = mlp(3, 4, seed=16)
    x = inputs(30, 3)
    dist = Categorical()
    g = torch.randn(len(flatten(model.parameters())), generator=torch.Generator().manual_seed(4), dtype=DTYPE)
    damping = 0.05
    dense = natural_gradient(model, x, dist, g, damping=damping)
    cg = natural_gradient(model, x, dist, g, damping=damping, method="cg", max_iters=300, tol=1e-13)
    fisher = fisher_matrix(model, x, dist)
    explicit = torch.linalg.solve(fisher + damping * torch.eye(len(g), dtype=DTYPE), g)
    torch.testing.assert_close(dense, explicit, **TOL)
    torch.testing.assert_close(cg, explicit, rtol=1e-8, atol=1e-9)


def test_undamped_natural_gradient_is_the_minimum_norm_solution():
    # Softmax ignores a common shift of the logits, so F is singular; for g in F's range the
    # pseudo-inverse solution solves F Δ = g and has no component in the null space.
    model = nn.Linear(3, 4).to(DTYPE)
    x = inputs(20, 3)
    dist = Categorical()
    fisher = fisher_matrix(model, x, dist)
    g = fisher @ torch.randn(len(fisher), generator=torch.Generator().manual_seed(5), dtype=DTYPE)
    delta = natural_gradient(model, x, dist, g)
    torch.testing.assert_close(fisher @ delta, g, rtol=1e-8, atol=1e-10)
    shift = flatten([torch.zeros(4, 3, dtype=DTYPE), torch.ones(4, dtype=DTYPE)])  # add 1 to every bias
    torch.testing.assert_close(fisher @ shift, torch.zeros_like(shift), rtol=0, atol=1e-12)
    assert abs(float(delta @ shift)) < 1e-10


# ---------------------------------------------------------------- bad input


def test_bad_inputs_raise_value_errors_naming_the_parameter():
    model = mlp(3, 4)
    x = inputs(5, 3)
    dist = Categorical()
    g = torch.zeros(len(flatten(model.parameters())), dtype=DTYPE)
    with pytest.raises(ValueError, match="damping must be a finite number >= 0, got -1"):
        natural_gradient(model, x, dist, g, damping=-1)
    with pytest.raises(ValueError, match="damping"):
        fisher_vector_product(model, x, dist, g, damping=math.nan)
    with pytest.raises(ValueError, match="gradient must be finite"):
        natural_gradient(model, x, dist, torch.full_like(g, math.inf))
    with pytest.raises(ValueError, match="method must be 'dense' or 'cg'"):
        natural_gradient(model, x, dist, g, damping=1.0, method="lu")
    with pytest.raises(ValueError, match="n_samples must be an integer >= 1, got 0"):
        monte_carlo_fisher(model, x, dist, 0)
    with pytest.raises(ValueError, match="sigma must be a finite number > 0"):
        GaussianValue(0.0)
    with pytest.raises(ValueError, match="y must have one row per input"):
        empirical_fisher(model, x, dist, torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="max_iters must be an integer >= 1"):
        conjugate_gradient(lambda v: v, g + 1, max_iters=0)
    with pytest.raises(ValueError, match="tol must be a number >= 0"):
        conjugate_gradient(lambda v: v, g + 1, tol=-1.0)
    with pytest.raises(ValueError, match="b must be finite"):
        conjugate_gradient(lambda v: v, g + math.nan)
    with pytest.raises(ValueError, match="log_std must be an nn.Parameter registered in the model"):
        fisher_matrix(model, x, DiagonalGaussian(nn.Parameter(torch.zeros(2))))
    with pytest.raises(ValueError, match="even output size"):
        fisher_matrix(mlp(3, 3), x, DiagonalGaussian())


# ---------------------------------------------------------------- the Fisher is the KL's curvature


def _kl_hessian(model, x, dist):
    """Hessian at d = 0 of d ↦ mean KL(p(·|x, θ) ‖ p(·|x, θ + d)), by second-order autograd through
    torch.distributions.kl_divergence: no Fisher formula inside, so an independent reference."""
    from rlkit.fisher import unflatten
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    with torch.no_grad():
        old = dist.torch_distribution(dist.outputs(model, params, x))

    def kl(d):
        moved = {n: params[n] + v for n, v in unflatten(d, params).items()}
        return torch.distributions.kl_divergence(old, dist.torch_distribution(dist.outputs(model, moved, x))).mean()

    zero = torch.zeros(sum(p.numel() for p in params.values()), dtype=next(iter(params.values())).dtype)
    return torch.autograd.functional.hessian(kl, zero)


def test_the_fisher_is_the_hessian_of_the_kl_for_a_softmax_network():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 4)).double()
    x = torch.randn(12, 3, dtype=torch.float64)
    assert torch.allclose(_kl_hessian(net, x, Categorical()), fisher_matrix(net, x, Categorical()),
                          rtol=1e-10, atol=1e-12)


def test_the_fisher_is_the_hessian_of_the_kl_for_a_gaussian_policy():
    class Policy(nn.Module):
        def __init__(self):
            super().__init__()
            self.mean = nn.Linear(3, 2).double()
            self.log_std = nn.Parameter(torch.tensor([-0.3, 0.2], dtype=torch.float64))

        def forward(self, x):
            return self.mean(x)

    torch.manual_seed(1)
    policy = Policy()
    x = torch.randn(7, 3, dtype=torch.float64)
    dist = DiagonalGaussian(log_std=policy.log_std)
    assert torch.allclose(_kl_hessian(policy, x, dist), fisher_matrix(policy, x, dist), rtol=1e-10, atol=1e-12)
