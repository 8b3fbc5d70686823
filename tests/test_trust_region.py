"""rlkit.trust_region: the step size hits its KL budget, against torch.distributions.kl."""

import math

import pytest
import torch
from torch import nn

from rlkit.fisher import Categorical, DiagonalGaussian, fisher_matrix, flatten, natural_gradient, unflatten
from rlkit.trust_region import effective_step_size, measured_kl, predicted_kl

DTYPE = torch.float64


@pytest.fixture(scope="module", params=["mlp", "linear"])
def policy_step(request):
    """A small categorical policy, its policy gradient g, Δ = (F + λI)⁻¹g with the exact F, q = ΔᵀFΔ."""
    torch.manual_seed(0)
    if request.param == "mlp":
        model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 4)).to(DTYPE)
        # The MLP's Fisher has eigenvalues ~1e-7 beside its exact null space; undamped, Δ points
        # along them and the KL stops being quadratic long before δ = 1e-5. Damping, as in ACKTR.
        damping = 1e-2
    else:
        model = nn.Linear(3, 4).to(DTYPE)
        damping = 0.0  # well conditioned: the exact (pseudo-inverse) natural gradient
    gen = torch.Generator().manual_seed(0)
    states = torch.randn(64, 3, generator=gen, dtype=DTYPE)
    advantages = torch.randn(64, generator=gen, dtype=DTYPE)
    dist = Categorical()
    logits = model(states)
    actions = dist.sample(logits.detach(), gen)
    objective = (advantages * dist.log_prob(logits, actions)).mean()
    g = flatten(torch.autograd.grad(objective, tuple(model.parameters())))
    fisher = fisher_matrix(model, states, dist)
    direction = natural_gradient(model, states, dist, g, damping=damping)
    quadratic = float(direction @ fisher @ direction)  # undamped F: the Hessian of the KL
    return model, states, dist, direction, quadratic


def kl_after_step(model, states, dist, direction, eta):
    """Mean KL(π_old ‖ π_new) after the ascent step θ + ηΔ."""
    params = {n: p.detach() for n, p in model.named_parameters()}
    stepped = {n: params[n] + eta * d for n, d in unflatten(direction, params).items()}
    old = dist.outputs(model, params, states)
    new = dist.outputs(model, stepped, states)
    return measured_kl(dist.torch_distribution(old), dist.torch_distribution(new))


def test_measured_kl_over_delta_tends_to_one(policy_step):
    model, states, dist, direction, q = policy_step
    errors = []
    for delta in (1e-2, 1e-3, 1e-4):
        eta = effective_step_size(q, delta, eta_max=1e6)
        assert predicted_kl(q, eta) == pytest.approx(delta, rel=1e-12)
        ratio = kl_after_step(model, states, dist, direction, eta) / delta
        errors.append(abs(ratio - 1))
    # The KL's cubic term makes |ratio − 1| = O(η) = O(sqrt δ): it must shrink at every step.
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.02


def test_baselines_convention_reaches_half_the_budget(policy_step):
    model, states, dist, direction, q = policy_step
    delta = 1e-4
    eta = effective_step_size(q, delta, eta_max=1e6, convention="baselines")
    assert kl_after_step(model, states, dist, direction, eta) / (delta / 2) == pytest.approx(1, abs=0.02)


@pytest.mark.parametrize("q", [1e-3, 0.37, 25.0])
@pytest.mark.parametrize("delta", [1e-3, 0.01])
def test_conventions_differ_by_sqrt2_in_eta_and_2_in_predicted_kl(q, delta):
    paper = effective_step_size(q, delta, eta_max=1e9)
    baselines = effective_step_size(q, delta, eta_max=1e9, convention="baselines")
    assert paper == pytest.approx(math.sqrt(2 * delta / q), rel=1e-15)
    assert paper / baselines == pytest.approx(math.sqrt(2), rel=1e-15)
    assert predicted_kl(q, paper) / predicted_kl(q, baselines) == pytest.approx(2, rel=1e-15)
    assert predicted_kl(q, paper) == pytest.approx(delta, rel=1e-15)


def test_eta_max_caps_the_step(policy_step):
    model, states, dist, direction, q = policy_step
    delta = 1e-2
    uncapped = effective_step_size(q, delta, eta_max=1e6)
    capped = effective_step_size(q, delta, eta_max=uncapped / 4)
    assert capped == uncapped / 4
    # A quarter of the step: about a sixteenth of the KL, well inside the budget.
    assert predicted_kl(q, capped) == pytest.approx(delta / 16, rel=1e-12)
    assert kl_after_step(model, states, dist, direction, capped) < delta / 10
    for convention in ("paper", "baselines"):
        assert effective_step_size(q, delta, eta_max=1e-9, convention=convention) == 1e-9


def test_zero_quadratic_means_no_step_is_needed():
    assert effective_step_size(0.0, 1e-3, eta_max=0.25) == 0.25
    assert effective_step_size(torch.tensor(0.0), 1e-3, eta_max=0.25, convention="baselines") == 0.25
    assert predicted_kl(0.0, 0.25) == 0.0


def test_tensor_quadratic_is_accepted():
    q = torch.tensor(0.5, dtype=DTYPE)
    assert effective_step_size(q, 0.01, 1.0) == pytest.approx(math.sqrt(0.04), rel=1e-15)
    assert predicted_kl(q, 0.2) == pytest.approx(0.01, rel=1e-15)


def test_measured_kl_matches_closed_forms():
    gen = torch.Generator().manual_seed(1)
    p_logits, q_logits = torch.randn(2, 5, 3, generator=gen, dtype=DTYPE)
    p, q = torch.softmax(p_logits, 1), torch.softmax(q_logits, 1)
    expected = float((p * (p.log() - q.log())).sum(1).mean())
    cat = Categorical()
    assert measured_kl(cat.torch_distribution(p_logits), cat.torch_distribution(q_logits)) == pytest.approx(
        expected, rel=1e-12
    )
    # Diagonal Gaussians: KL sums over action dimensions, averages over states.
    m0, m1, s0, s1 = torch.randn(4, 5, 2, generator=gen, dtype=DTYPE)
    v0, v1 = torch.exp(2 * s0), torch.exp(2 * s1)
    per_dim = s1 - s0 + (v0 + (m0 - m1) ** 2) / (2 * v1) - 0.5
    gauss = DiagonalGaussian()
    old = gauss.torch_distribution(torch.cat([m0, s0], 1))
    new = gauss.torch_distribution(torch.cat([m1, s1], 1))
    assert measured_kl(old, new) == pytest.approx(float(per_dim.sum(1).mean()), rel=1e-12)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(delta=-1), "delta must be > 0 and finite, got -1"),
        (dict(delta=0.0), "delta must be > 0"),
        (dict(delta=math.nan), "delta must be > 0"),
        (dict(eta_max=0), "eta_max must be > 0 and finite, got 0"),
        (dict(eta_max=-0.5), "eta_max must be > 0"),
        (dict(eta_max=math.inf), "eta_max must be > 0"),
        (dict(convention="kl_clip"), r"convention must be one of \('paper', 'baselines'\), got 'kl_clip'"),
        (dict(quadratic=-1e-3), "quadratic .* must be finite and >= 0"),
        (dict(quadratic=math.nan), "quadratic .* must be finite and >= 0"),
        (dict(quadratic=torch.tensor(math.inf)), "quadratic .* must be finite and >= 0"),
        (dict(quadratic=torch.ones(2)), "quadratic must be a scalar"),
    ],
)
def test_bad_inputs_raise_value_errors_naming_the_parameter(kwargs, message):
    args = dict(quadratic=1.0, delta=1e-3, eta_max=1.0) | kwargs
    with pytest.raises(ValueError, match=message):
        effective_step_size(**args)


def test_predicted_kl_and_measured_kl_reject_bad_inputs():
    with pytest.raises(ValueError, match="step_size must be >= 0"):
        predicted_kl(1.0, -0.1)
    with pytest.raises(ValueError, match="quadratic"):
        predicted_kl(math.inf, 0.1)
    cat = Categorical()
    with pytest.raises(ValueError, match="same batch_shape"):
        measured_kl(cat.torch_distribution(torch.zeros(3, 2)), cat.torch_distribution(torch.zeros(4, 2)))
