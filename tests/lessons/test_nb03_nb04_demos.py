"""rlkit.kfac_demos: the numbers behind notebooks 03 and 04, against independent computations.

The K-FAC pieces are checked against dense references built here (explicit Kronecker products,
per-sample factors, eigendecompositions), and the claims the notebooks make are asserted as
the mathematics says (exact where theory says exact, the direction of an effect elsewhere).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from rlkit.lessons.nb03_kronecker_factors import demos as nb03
from rlkit.lessons.nb04_kfac_in_practice import demos as nb04
from rlkit.fisher import Categorical, GaussianValue, fisher_matrix, flat_grad, parameter_names
from rlkit.kfac import KFAC
from rlkit.nets import NatureCNN, mlp

DT = torch.float64


def inputs(n, d, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=DT)


# ---------------------------------------------------------------------------- small helpers


def test_seeded_mlp_is_reproducible_and_leaves_the_global_stream_alone():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a, b = nb03.seeded_mlp([3, 4, 2], seed=5), nb03.seeded_mlp([3, 4, 2], seed=5)
    assert torch.equal(torch.random.get_rng_state(), before)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q) and p.dtype == DT
    c = nb03.seeded_mlp([3, 4, 2], seed=6)
    assert not torch.equal(a[0].weight, c[0].weight)
    assert any(isinstance(m, nn.Tanh) for m in a)


def test_seeded_mlp_linear_network_and_bias_option():
    lin = nb03.seeded_mlp([3, 4, 2], seed=0, activation=None, bias=False)
    assert all(isinstance(m, nn.Linear) and m.bias is None for m in lin)
    with pytest.raises(ValueError, match="bias=False"):
        nb03.seeded_mlp([3, 4, 2], seed=0, bias=False)


def test_relative_error_and_cosine():
    u = torch.tensor([3.0, 4.0], dtype=DT)
    assert nb03.relative_error(u * 1.1, u) == pytest.approx(0.1)
    assert nb03.cosine(u, 2 * u) == pytest.approx(1.0)
    assert nb03.cosine(u, torch.tensor([-4.0, 3.0], dtype=DT)) == pytest.approx(0.0)


def test_unknown_output_raises():
    with pytest.raises(ValueError, match="output must be one of"):
        nb03.output_distribution("poisson")
    with pytest.raises(ValueError, match="output must be one of"):
        nb03.mean_loss(nb03.seeded_mlp([2, 2], seed=0), inputs(3, 2), inputs(3, 2), "poisson")


def test_mean_loss_is_cross_entropy_or_half_squared_error():
    net = nb03.seeded_mlp([3, 5, 2], seed=0)
    x = inputs(7, 3)
    labels = torch.tensor([0, 1, 1, 0, 1, 0, 0])
    logp = torch.log_softmax(net(x), -1).detach()
    assert nb03.mean_loss(net, x, labels) == pytest.approx(-logp[torch.arange(7), labels].mean().item())
    targets = inputs(7, 2, seed=1)
    expected = 0.5 * ((net(x) - targets) ** 2).sum(1).mean().item()
    assert nb03.mean_loss(net, x, targets, "gaussian") == pytest.approx(expected)


def test_layer_slices_follow_the_fisher_parameter_order():
    net = nb03.seeded_mlp([3, 4, 2], seed=0)
    kfac = KFAC(net)
    kfac.remove()
    slices = nb03.layer_slices(net, kfac)
    assert parameter_names(net) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert slices == {"0": slice(0, 16), "2": slice(16, 26)}


# ---------------------------------------------------------------------------- K-FAC views


def test_exact_kfac_factors_match_independent_formulas_and_hooks_are_removed():
    """A = mean of homogeneous aaᵀ; S = mean of J_sᵀ F_out J_s with J_s = ∂logits/∂s (last layer: I)."""
    net = nb03.seeded_mlp([3, 4, 3], seed=1)
    x = inputs(5, 3)
    kfac = nb03.exact_kfac(net, x)
    a = torch.cat([x, torch.ones(5, 1, dtype=DT)], 1)
    torch.testing.assert_close(kfac.layers["0"].A, a.T @ a / 5, rtol=1e-12, atol=1e-14)
    p = torch.softmax(net(x), -1).detach()
    F_out = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
    torch.testing.assert_close(kfac.layers["2"].S, F_out.mean(0), rtol=1e-12, atol=1e-14)
    assert kfac.stats_decay == 0.0
    updates = kfac.stats_updates
    net(x).sum().backward()  # hooks removed: nothing is captured any more
    assert kfac.stats_updates == updates and not kfac._captures


def test_kfac_blocks_are_the_exact_diagonal_blocks_and_s_kron_a():
    net = nb03.seeded_mlp([3, 4, 2], seed=2, activation=None, bias=False)
    x = inputs(6, 3)
    F, blocks, slices = nb03.kfac_blocks(net, x, "gaussian")
    torch.testing.assert_close(F, fisher_matrix(net, x, GaussianValue(1.0)))
    kfac = nb03.exact_kfac(net, x, "gaussian")
    for name, (exact, approx) in blocks.items():
        torch.testing.assert_close(exact, F[slices[name], slices[name]])
        layer = kfac.layers[name]
        torch.testing.assert_close(approx, torch.kron(layer.S, layer.A))  # no bias: plain row-major S ⊗ A


def test_block_error_is_the_covariance_of_the_two_factors_across_inputs():
    """F_ℓ − A⊗S = (1/N) Σ_n (a_n a_nᵀ − A) ⊗ (S_n − S) for a linear layer (notebook 03, section 4)."""
    net = nb03.seeded_mlp([3, 4, 3], seed=3)
    x = inputs(4, 3, seed=3)
    _, blocks, _ = nb03.kfac_blocks(net, x)
    exact, approx = blocks["0"]
    a = torch.cat([x, torch.ones(4, 1, dtype=DT)], 1)
    A = a.T @ a / 4
    S_n = [nb03.exact_kfac(net, x[i : i + 1]).layers["0"].S for i in range(4)]
    S = sum(S_n) / 4
    cov = sum(torch.kron(S_n[i] - S, torch.outer(a[i], a[i]) - A) for i in range(4)) / 4  # row-major
    order = [i * 4 + j for i in range(4) for j in range(3)] + [i * 4 + 3 for i in range(4)]  # [W.reshape(-1), b]
    torch.testing.assert_close(exact - approx, cov[order][:, order], rtol=1e-9, atol=1e-13)


@pytest.mark.parametrize(
    "activation, output, n, exact_layers",
    [
        (nn.Tanh, "categorical", 1, [0, 1, 2]),  # batch size 1
        (None, "gaussian", 64, [0, 1, 2]),  # deep linear network, Gaussian output
        (None, "categorical", 64, []),  # softmax output: no longer exact
        (nn.Tanh, "gaussian", 64, [2]),  # nonlinear: only the last layer of a Gaussian output
    ],
)
def test_where_kfac_is_exact(activation, output, n, exact_layers):
    net = nb03.seeded_mlp([4, 5, 5, 3], seed=0, activation=activation)
    errors = list(nb03.kfac_block_errors(net, inputs(n, 4), output).values())
    for i, e in enumerate(errors):
        if i in exact_layers:
            assert e < 1e-10
        else:
            assert e > 1e-3


def test_kfac_direction_equals_block_diagonal_dense_solve():
    net = nb03.seeded_mlp([3, 5, 2], seed=4)
    x = inputs(9, 3)
    kfac = nb03.exact_kfac(net, x, damping=0.05)
    g = torch.randn(sum(p.numel() for p in net.parameters()), generator=torch.Generator().manual_seed(1), dtype=DT)
    d = nb03.kfac_direction(net, kfac, g)
    for name, sl in nb03.layer_slices(net, kfac).items():
        expected = torch.linalg.solve(kfac.layers[name].dense_block(damped=True), g[sl])
        torch.testing.assert_close(d[sl], expected, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(flat_grad(net), d)


def test_kfac_cost_table_counts_factor_and_block_sizes():
    rows = nb03.kfac_cost_table(mlp([17, 64, 64, 6]))
    assert [(r["d_in"], r["d_out"]) for r in rows] == [(18, 64), (65, 64), (65, 6)]
    r = rows[1]
    assert r["params"] == 65 * 64 and r["factor_entries"] == 65**2 + 64**2
    assert r["block_entries"] == (65 * 64) ** 2 and r["block_inverse_flops"] == (65 * 64) ** 3
    assert r["factor_inverse_flops"] == 65**3 + 64**3
    cnn = nb03.kfac_cost_table(NatureCNN())
    assert [(r["kind"], r["d_in"], r["d_out"]) for r in cnn] == [
        ("conv2d", 257, 32), ("conv2d", 513, 64), ("conv2d", 577, 64), ("linear", 3137, 512)
    ]


def test_kfac_cost_table_accepts_uncovered_parameters():
    class WithLogStd(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Linear(3, 2)
            self.log_std = nn.Parameter(torch.zeros(2))

    assert len(nb03.kfac_cost_table(WithLogStd())) == 1


def test_nb03_panels_draw_the_blocks_and_the_block_diagonal():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rlkit.lessons.nb03_kronecker_factors import panels as nb03_panels

    net = nb03.seeded_mlp([3, 4, 2], seed=0)
    F, blocks, slices = nb03.kfac_blocks(net, inputs(10, 3))
    fig = nb03_panels.block_heatmaps([("a", *blocks["0"]), ("b", *blocks["0"])], fan_in=3, d_out=4)
    assert len(fig.axes) == 2 * 3 + 2  # three heatmaps and a colour bar per row
    plt.close(fig)
    fig = nb03_panels.fisher_heatmaps(F, {name: approx for name, (_, approx) in blocks.items()}, slices)
    image = fig.axes[1].images[0].get_array()
    assert image.shape == tuple(F.shape)
    off = slice(slices["0"].stop, None), slices["0"]  # the block between the two layers: zero in K-FAC's matrix
    assert float(image[off].max()) == pytest.approx(float(image.min()))
    plt.close(fig)


# ---------------------------------------------------------------------------- problems


def test_teacher_classification_is_seeded():
    x1, y1, _ = nb03.teacher_classification(n=64, seed=3)
    x2, y2, _ = nb03.teacher_classification(n=64, seed=3)
    x3, _, _ = nb03.teacher_classification(n=64, seed=4)
    assert torch.equal(x1, x2) and torch.equal(y1, y2) and not torch.equal(x1, x3)
    assert x1.shape == (64, 4) and y1.dtype == torch.int64 and set(y1.tolist()) <= {0, 1, 2}


def test_teacher_regression_inputs_and_targets():
    x, y, teacher = nb03.teacher_regression(n=8192, condition=30.0, offset=3.0, seed=0)
    assert x.shape == (8192, 8) and y.shape == (8192, 4)
    torch.testing.assert_close(teacher(x).detach(), y)
    torch.testing.assert_close(y.std(0), torch.ones(4, dtype=DT), rtol=1e-9, atol=1e-9)
    assert (x.mean(0) - 3.0).abs().max() < 0.05
    s = torch.linalg.svdvals((x - x.mean(0)) / 8192**0.5)
    assert 20 < (s[0] / s[-1]).item() < 45  # condition 30, up to sampling
    x2, y2, _ = nb03.teacher_regression(n=8192, seed=0)
    assert torch.equal(x, x2) and torch.equal(y, y2)


# ---------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def regression():
    x, y, _ = nb03.teacher_regression(n=1024, seed=0)
    return x, y


@pytest.mark.parametrize("method", nb03.METHODS)
def test_train_is_deterministic_and_records_evaluations(method, regression):
    x, y = regression
    calls = []
    runs = [
        nb03.train(nb03.seeded_mlp([8, 16, 4], seed=0), x, y, method, 0.01, 25, output="gaussian",
                    eval_every=10, callback=lambda step, model: calls.append(step))
        for _ in range(2)
    ]
    assert list(runs[0]["step"]) == [0, 10, 20, 25] and calls == [0, 10, 20, 25] * 2
    np.testing.assert_array_equal(runs[0]["loss"], runs[1]["loss"])
    assert np.all(np.diff(runs[0]["wall"]) >= 0) and not runs[0]["diverged"]
    assert (runs[0]["kfac_timings"] is not None) == (method == "kfac")
    assert runs[0]["loss"][-1] < runs[0]["loss"][0]


def test_train_stops_and_flags_a_divergent_run(regression):
    x, y = regression
    run = nb03.train(nb03.seeded_mlp([8, 16, 4], seed=0), x, y, "sgd", 50.0, 100, output="gaussian")
    assert run["diverged"] and run["step"][-1] < 100


def test_train_rejects_unknown_method(regression):
    x, y = regression
    with pytest.raises(ValueError, match="method must be one of"):
        nb03.train(nb03.seeded_mlp([8, 4], seed=0), x, y, "lbfgs", 0.1, 1)


def test_lr_search_prefers_the_lowest_late_loss_and_never_a_divergent_run(regression):
    x, y = regression
    best, runs = nb04.lr_search(lambda: nb03.seeded_mlp([8, 16, 4], seed=0), x, y, "sgd", [50.0, 1e-4, 0.03], 40,
                                 output="gaussian")
    assert runs[50.0]["diverged"]
    assert best == 0.03 and runs[0.03]["loss"][-1] < runs[1e-4]["loss"][-1]


def test_kfac_beats_first_order_methods_per_iteration_on_the_badly_conditioned_problem():
    """The claim of notebook 04, section 5, at a smaller scale (150 steps, best of small grids)."""
    x, y, _ = nb03.teacher_regression(n=2048, seed=0)
    make = lambda: nb03.seeded_mlp([8, 32, 32, 4], seed=0)  # noqa: E731
    final = {}
    for method, lrs in {"sgd": [0.01, 0.03], "adam": [0.003, 0.01], "kfac": [0.1]}.items():
        best, runs = nb04.lr_search(make, x, y, method, lrs, 150, output="gaussian")
        final[method] = runs[best]["loss"][-1]
    assert final["kfac"] < 0.3 * min(final["sgd"], final["adam"])


def test_stale_inverses_from_initialization_diverge_but_not_later(regression):
    """Notebook 04, section 3: inverse_every = 10 from the initial network blows up; after warm-up it is fine."""
    x, y = regression
    settings = dict(output="gaussian", damping=1e-3, stats_decay=0.95)
    cold = nb03.train(nb03.seeded_mlp([8, 32, 32, 4], seed=0), x, y, "kfac", 0.1, 60, inverse_every=10, **settings)
    warm_net = nb03.seeded_mlp([8, 32, 32, 4], seed=0)
    nb03.train(warm_net, x, y, "kfac", 0.1, 100, inverse_every=1, seed=100, **settings)
    warm = nb03.train(warm_net, x, y, "kfac", 0.1, 60, inverse_every=10, **settings)
    assert cold["diverged"] or cold["loss"][-1] > cold["loss"][0]
    assert not warm["diverged"] and warm["loss"][-1] <= warm["loss"][0]


# ---------------------------------------------------------------------------- damping


def test_damping_sweep_limits_and_exactness_for_a_single_linear_layer():
    """One linear layer with a Gaussian output: K-FAC is the exact Fisher, so the eigen mode equals
    (F + λI)⁻¹g at every λ; every mode tends to the gradient direction as λ → ∞."""
    net = nb03.seeded_mlp([3, 2], seed=0, activation=None)
    x, y = inputs(20, 3), inputs(20, 2, seed=1)
    dampings = [1e-4, 1e-2, 1.0, 1e8]
    sweep = nb04.damping_sweep(net, x, y, dampings, output="gaussian")
    np.testing.assert_allclose(sweep["eigen"]["cos_natural"], 1.0, atol=1e-9)
    for mode in ("factored", "eigen"):
        assert sweep[mode]["cos_gradient"][-1] > 1 - 1e-9
        assert np.all(np.diff(sweep[mode]["norm"]) < 0)  # more damping, shorter steps
    assert sweep["natural_cos_gradient"][-1] > 1 - 1e-9
    assert all(p.grad is None or not p.grad.any() for p in net.parameters())


def test_damping_sweep_natural_gradient_matches_a_dense_solve():
    net = nb03.seeded_mlp([3, 4, 2], seed=1)
    x, labels = inputs(16, 3), torch.randint(0, 2, (16,), generator=torch.Generator().manual_seed(0))
    sweep = nb04.damping_sweep(net, x, labels, [0.1])
    net.zero_grad()
    nn.functional.cross_entropy(net(x), labels).backward()
    g = flat_grad(net).clone()
    F = fisher_matrix(net, x, Categorical())
    natural = torch.linalg.solve(F + 0.1 * torch.eye(F.shape[0], dtype=DT), g)
    assert sweep["natural_cos_gradient"][0] == pytest.approx(nb03.cosine(natural, g), abs=1e-10)
    kfac = nb03.exact_kfac(net, x, damping=0.1, damping_mode="eigen")
    assert sweep["eigen"]["cos_natural"][0] == pytest.approx(nb03.cosine(nb03.kfac_direction(net, kfac, g), natural), abs=1e-10)


def test_kfac_spectrum_matches_the_dense_blocks():
    net = nb03.seeded_mlp([3, 4, 2], seed=5)
    kfac = nb03.exact_kfac(net, inputs(30, 3))
    spec = nb04.kfac_spectrum(kfac, 0.01)
    undamped = torch.cat([torch.linalg.eigvalsh(layer.dense_block()) for layer in kfac.layers.values()])
    damped = torch.cat([torch.linalg.eigvalsh(layer.dense_block(damped=True)) for layer in kfac.layers.values()])
    np.testing.assert_allclose(spec["undamped"], np.sort(undamped.clamp_min(0).numpy())[::-1], atol=1e-10)
    np.testing.assert_allclose(spec["factored"], np.sort(damped.numpy())[::-1], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(spec["eigen"], spec["undamped"] + 0.01)
    assert np.all(spec["factored"] >= spec["eigen"] - 1e-12)  # factored damping adds at least λ
    with pytest.raises(ValueError, match="factored"):
        nb04.kfac_spectrum(nb03.exact_kfac(net, inputs(30, 3), damping_mode="eigen"), 0.01)


# ---------------------------------------------------------------------------- running averages


def test_factor_error_equals_the_explicit_kronecker_computation():
    net = nb03.seeded_mlp([3, 4, 2], seed=6)
    k1, k2 = nb03.exact_kfac(net, inputs(10, 3)), nb03.exact_kfac(net, inputs(10, 3, seed=9))
    num = sum(((l1.dense_block() - l2.dense_block()) ** 2).sum() for l1, l2 in zip(k1.layers.values(), k2.layers.values()))
    den = sum((l2.dense_block() ** 2).sum() for l2 in k2.layers.values())
    assert nb04.factor_error(k1, k2) == pytest.approx(math.sqrt(num / den), rel=1e-9)
    assert nb04.factor_error(k1, k1) < 1e-6


def test_running_average_errors_noise_and_lag():
    x, _, _ = nb03.teacher_regression(n=1024, seed=0)
    start = nb03.seeded_mlp([8, 16, 4], seed=0)
    later = copy.deepcopy(start)
    with torch.no_grad():
        for p in later.parameters():
            p.mul_(3.0)
    before = [p.clone() for p in start.parameters()]
    errs = nb04.running_average_errors(start, x, [0.0, 0.9], 120, 128, output="gaussian", change_at=61,
                                        change=lambda net: net.load_state_dict(later.state_dict()))
    assert all(torch.equal(p, q) for p, q in zip(start.parameters(), before))  # the caller's model is untouched
    assert errs[0.0][0] == pytest.approx(errs[0.9][0])  # bias correction: the first pass is taken as it is
    assert errs[0.9][30:60].mean() < 0.6 * errs[0.0][30:60].mean()  # averaging reduces noise
    assert errs[0.9][60] > 2 * errs[0.0][60:70].mean()  # ... and lags behind a change
    assert errs[0.9][100:].mean() < 0.6 * errs[0.0][100:].mean()  # until it has forgotten the old weights
    with pytest.raises(ValueError, match="change_at"):
        nb04.running_average_errors(start, x, [0.0], 3, 8, change_at=2)


def test_inverse_time_is_a_positive_number_of_seconds():
    t = nb04.inverse_time(17, "cholesky", repeats=2)
    assert 0 < t < 5
    assert nb04.inverse_time(17, "eigh", damping_mode="eigen", repeats=1) > 0


def test_damping_panel_data_moves_as_the_slider_says():
    """Notebook 04's damping slider redraws kfac_spectrum(kfac, λ): a larger λ lifts every damped
    eigenvalue, the eigen mode's floor is λ, and more undamped eigenvalues fall below λ."""
    net = nb03.seeded_mlp([3, 6, 2], seed=7)
    kfac = nb03.exact_kfac(net, inputs(40, 3))
    small, large = nb04.kfac_spectrum(kfac, 1e-4), nb04.kfac_spectrum(kfac, 1e-1)
    assert kfac.damping == 1e-1
    np.testing.assert_array_equal(small["undamped"], large["undamped"])
    assert np.all(large["factored"] > small["factored"]) and np.all(large["eigen"] > small["eigen"])
    assert large["eigen"].min() >= 1e-1 and small["eigen"].min() >= 1e-4
    assert np.mean(large["undamped"] < 1e-1) > np.mean(small["undamped"] < 1e-4)
