"""Exercise checks of notebooks 01 and 02: the right answer passes, typical wrong answers and the
notebooks' placeholder (None) fail without raising, and the facts the checks rely on hold in rlkit.
The implementation exercises (notebook 01's natural_gradient_step, notebook 02's empirical Fisher):
a correct function passes, the stub is "not done", and each planted typical mistake is named."""

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.func import functional_call, grad, jacrev, vmap

from rlkit.fisher import GaussianValue
from rlkit.fisher import empirical_fisher as rlkit_empirical_fisher
from rlkit.lessons.checks import NOT_IMPLEMENTED
from rlkit.lessons.nb02_fisher_matrices import exercises as ex02
from rlkit.lessons.nb01_natural_gradient import exercises as ex01
from rlkit.lessons.nb01_natural_gradient.toy import GaussianFit, descent_path, fit_loss

ROOT = Path(__file__).resolve().parents[2]

# ---------------------------------------------------------------- notebook 01

RIGHT_01 = {
    ex01.check_variance_fisher: [[0.25, 0.0], [0.0, 1 / 32]],
    ex01.check_predicted_kl: 0.06,
    ex01.check_sigma_after_step: 2 * math.exp(-0.234375),
}
#: The answers rounded as the notebook prints them (or as a student would): still right.
ROUNDED_01 = [
    (ex01.check_variance_fisher, [[0.25, 0.0], [0.0, 0.031]]),
    (ex01.check_variance_fisher, [[0.25, 0.0], [0.0, 0.0313]]),
    (ex01.check_sigma_after_step, 1.5821),
    (ex01.check_sigma_after_step, 1.582),
    (ex01.check_sigma_after_step, 1.58),
]
WRONG_01 = {
    ex01.check_variance_fisher: [
        [[0.25, 0.0], [0.0, 0.5]],  # the (μ, σ) Fisher
        [[0.25, 0.0], [0.0, 2.0]],  # the (μ, log σ) Fisher
        [[0.25, 0.0], [0.0, 1 / 16]],  # forgot the ½ of 1/(2v²)
        [0.25, 1 / 32],  # the diagonal only: wrong shape
    ],
    ex01.check_predicted_kl: [0.12, 0.0757],  # dᵀFd without ½; the exact KL
    ex01.check_sigma_after_step: [1.53125, 2 * math.exp(-0.46875), 2.0, 1.57],  # step in σ; gradient step; no step; off
}
RIGHT_02 = {
    ex02.check_empirical_fisher_factor: 4.0,
    ex02.check_fisher_memory_gib: 100_000**2 * 4 / 2**30,
    ex02.check_cg_iterations: 8,
}
WRONG_02 = {
    ex02.check_empirical_fisher_factor: [2.0, 0.25, 1.0],
    ex02.check_fisher_memory_gib: [100_000**2 * 8 / 2**30, 40.0, 100_000 * 4 / 2**30],
    ex02.check_cg_iterations: [9, 12, 13, 59],
}
ALL_RIGHT = {**RIGHT_01, **RIGHT_02}
ALL_WRONG = {**WRONG_01, **WRONG_02}


@pytest.mark.parametrize("check", list(ALL_RIGHT), ids=lambda c: c.__name__)
def test_right_answer_passes(check, capsys):
    assert check(ALL_RIGHT[check]) is True
    assert capsys.readouterr().out.startswith("✓")


@pytest.mark.parametrize(
    "check, answer", [(c, a) for c, answers in ALL_WRONG.items() for a in answers], ids=lambda v: getattr(v, "__name__", repr(v))
)
def test_typical_wrong_answer_fails_with_a_hint(check, answer, capsys):
    assert check(answer) is False
    out = capsys.readouterr().out
    assert out.startswith("✗") and " — " in out


@pytest.mark.parametrize("check", list(ALL_RIGHT), ids=lambda c: c.__name__)
@pytest.mark.parametrize("placeholder", [None, "my answer", [1.0, float("nan")]])
def test_placeholder_or_unreadable_answer_fails_without_raising(check, placeholder, capsys):
    assert check(placeholder) is False
    assert capsys.readouterr().out.startswith("✗")


@pytest.mark.parametrize("check, answer", ROUNDED_01, ids=lambda v: getattr(v, "__name__", repr(v)))
def test_notebook_01_checks_accept_rounded_answers(check, answer, capsys):
    assert check(answer) is True
    assert capsys.readouterr().out.startswith("✓")


def test_notebook_01_exercise_3_check_accepts_the_value_its_solution_prints():
    notebook = json.loads((ROOT / "notebooks" / "01_natural_gradient.ipynb").read_text())
    solutions = ["".join(c["source"]) for c in notebook["cells"] if "solution" in c["metadata"].get("tags", [])]
    printed = [float(v) for text in solutions for v in re.findall(r"\\sigma = 2e\^\{-0\.234375\} \\approx ([0-9.]+)", text)]
    assert printed, "the solution of exercise 3 no longer prints σ ≈ …"
    assert all(ex01.check_sigma_after_step(value) for value in printed)


def test_right_answers_accept_tensors_and_numpy():
    assert ex01.check_variance_fisher(torch.tensor([[0.25, 0.0], [0.0, 1 / 32]]))
    assert ex01.check_predicted_kl(np.float64(0.06))
    assert ex02.check_cg_iterations(np.int64(8))


# ---------------------------------------------------------------- the facts behind the checks


def test_exercise_01_3_natural_steps_in_log_std_and_std_agree_to_first_order_only():
    a = descent_path("log_std", "natural", ex01.STEP_START, ex01.STEP_TARGET, ex01.STEP_LR, 1)
    b = descent_path("std", "natural", ex01.STEP_START, ex01.STEP_TARGET, ex01.STEP_LR, 1)
    assert a[1, 1] == pytest.approx(2 * math.exp(-0.234375), rel=1e-12)
    assert b[1, 1] == pytest.approx(1.53125, rel=1e-12)


def test_exercise_02_1_empirical_fisher_is_variance_ratio_times_fisher():
    assert ex02.empirical_fisher_ratio(n_samples=20_000) == pytest.approx(4.0, rel=0.05)


def test_exercise_02_3_cg_converges_in_n_times_k_minus_one_iterations_on_seeded_examples():
    expected = ex02.CG_INPUTS * (ex02.CG_CLASSES - 1)
    for seed in range(3):
        assert ex02.cg_iterations_on_example(seed) <= expected


# ---------------------------------------------------------------- notebook 01's implementation exercise


def _step(model, target, lr, damping, scale_entry=None, solve=True, sign=1.0, damped=True):
    """θ + sign·lr·M⁻¹g (or M g when solve=False), g = −∇_θ L by autograd on the closed-form loss,
    M = diag(1/σ², scale_entry(σ)) + λI; scale_entry defaults to the model's own Fisher entry."""
    mu, scale = model.mu, getattr(model, model.parametrization)
    log_std = model.parametrization == "log_std"
    sigma = scale.exp() if log_std else scale
    mu_t, sigma_t = target
    loss = torch.log(sigma / sigma_t) + (sigma_t**2 + (mu - mu_t) ** 2) / (2 * sigma**2) - 0.5
    g = -torch.stack(torch.autograd.grad(loss, [mu, scale]))
    s = sigma.item()
    if scale_entry is None:
        scale_entry = (lambda s: 2.0) if log_std else (lambda s: 2.0 / s**2)
    M = torch.diag(torch.tensor([1 / s**2, scale_entry(s)], dtype=torch.float64))
    if damped:
        M = M + damping * torch.eye(2, dtype=torch.float64)
    direction = torch.linalg.solve(M, g) if solve else M @ g
    return torch.stack([mu, scale]).detach() + sign * lr * direction


def right_natural_step(model, target, lr, damping):
    return _step(model, target, lr, damping)


def in_place_natural_step(model, target, lr, damping):  # right, but moves the model's parameters and leaves .grad set
    new = _step(model, target, lr, damping)
    fit_loss(model, target).backward()
    with torch.no_grad():
        for p, value in zip(model.parameters(), new):
            p.copy_(value)
    return new


def plain_gradient_step(model, target, lr, damping):
    model.zero_grad()
    fit_loss(model, target).backward()
    return torch.stack([p.detach() - lr * p.grad for p in model.parameters()])


def fisher_multiplied(model, target, lr, damping):
    return _step(model, target, lr, damping, solve=False)


def step_up_the_loss(model, target, lr, damping):
    return _step(model, target, lr, damping, sign=-1.0)


def other_coordinates_fisher(model, target, lr, damping):
    entry = (lambda s: 2.0 / s**2) if model.parametrization == "log_std" else (lambda s: 2.0)
    return _step(model, target, lr, damping, scale_entry=entry)


def jacobian_the_wrong_way(model, target, lr, damping):
    entry = (lambda s: 2.0 / s**4) if model.parametrization == "log_std" else (lambda s: 2.0 * s**2)
    return _step(model, target, lr, damping, scale_entry=entry)


def damping_forgotten(model, target, lr, damping):
    return _step(model, target, lr, damping, damped=False)


NATURAL_STEP_MISTAKES = [
    (plain_gradient_step, "the plain gradient step"),
    (fisher_multiplied, "multiplied by F + λI"),
    (step_up_the_loss, "a step up the loss"),
    (other_coordinates_fisher, "the Fisher of the other coordinates"),
    (jacobian_the_wrong_way, "the change of coordinates went the wrong way"),
    (damping_forgotten, "the damping is missing"),
]


@pytest.mark.parametrize("implementation", [right_natural_step, in_place_natural_step], ids=lambda f: f.__name__)
def test_natural_step_exercise_accepts_a_correct_implementation(implementation, capsys):
    assert ex01.check_natural_gradient_step(implementation) is True
    assert capsys.readouterr().out.startswith("✓ natural_gradient_step: agrees with rlkit on 4 random inputs")


def test_natural_step_exercise_says_not_done_for_the_stub(capsys):
    def stub(model, target, lr, damping):
        raise NotImplementedError

    assert ex01.check_natural_gradient_step(stub) is False
    assert NOT_IMPLEMENTED in capsys.readouterr().out


@pytest.mark.parametrize("mistake, words", NATURAL_STEP_MISTAKES, ids=lambda v: getattr(v, "__name__", None))
def test_natural_step_exercise_names_each_typical_mistake(mistake, words, capsys):
    assert ex01.check_natural_gradient_step(mistake) is False
    out = capsys.readouterr().out
    assert out.startswith("✗ natural_gradient_step — case ") and words in out


def test_natural_step_exercise_reports_an_unknown_error_and_an_exception(capsys):
    assert not ex01.check_natural_gradient_step(lambda **case: 1.01 * right_natural_step(**case))
    assert "largest absolute error" in capsys.readouterr().out
    assert not ex01.check_natural_gradient_step(lambda model, target, lr, damping: model.nope)
    assert "raised AttributeError" in capsys.readouterr().out


def test_natural_step_cases_tell_the_mistakes_apart_and_cover_both_coordinates():
    cases = ex01.natural_step_cases()
    assert {c["model"].parametrization for c in cases} == {"log_std", "std"}
    for case in cases:
        sigma = case["model"].mean_std()[1]
        assert abs(sigma - 1) > 0.2 and case["damping"] > 0.01
        reference = ex01._reference_step(**case)
        torch.testing.assert_close(right_natural_step(**case), reference, rtol=1e-12, atol=1e-14)
        for mistake, _ in NATURAL_STEP_MISTAKES:
            assert not torch.allclose(mistake(**case), reference, rtol=1e-3, atol=1e-6), mistake.__name__


def test_natural_step_exercise_3_is_one_step_of_the_function():
    new = right_natural_step(GaussianFit(*ex01.STEP_START), ex01.STEP_TARGET, ex01.STEP_LR, 0.0)
    assert math.exp(new[1].item()) == pytest.approx(2 * math.exp(-0.234375), rel=1e-12)


def test_notebook_01_checks_leave_the_global_random_stream_alone():
    torch.manual_seed(123)
    reference = torch.rand(3)
    torch.manual_seed(123)
    ex01.check_natural_gradient_step(right_natural_step)
    ex01.check_sigma_after_step(1.58)
    assert torch.equal(torch.rand(3), reference)


# ---------------------------------------------------------------- notebook 02's implementation exercise


def _scores(model, x, y, sigma, sigma_power=2):
    """Per-sample scores ∇_θ log N(y_i; f(x_i), σ² I), (N, P); sigma_power 1 or 0 plants a slip in the score."""
    params = {n: p.detach() for n, p in model.named_parameters()}

    def log_p(params, xi, yi):
        return -0.5 * ((yi - functional_call(model, params, (xi,))) ** 2).sum() / sigma**sigma_power

    scores = vmap(grad(log_p), in_dims=(None, 0, 0))(params, x, y)
    return torch.cat([s.reshape(len(x), -1) for s in scores.values()], dim=1)


def right_empirical_fisher(model, x, y, sigma):
    g = _scores(model, x, y, sigma)
    return g.T @ g / len(x)


def squared_batch_gradient(model, x, y, sigma):
    g_mean = _scores(model, x, y, sigma).mean(0)
    return torch.outer(g_mean, g_mean)


def summed_over_the_batch(model, x, y, sigma):
    g = _scores(model, x, y, sigma)
    return g.T @ g


def model_targets_instead_of_observed(model, x, y, sigma):  # E over y ~ N(f, σ²): JᵀJ/σ², the exact Fisher
    params = {n: p.detach() for n, p in model.named_parameters()}
    jac = vmap(jacrev(lambda p, xi: functional_call(model, p, (xi,))), in_dims=(None, 0))(params, x)
    J = torch.cat([j.reshape(len(x), j.shape[1], -1) for j in jac.values()], dim=2)
    return torch.einsum("nkp,nkq->pq", J, J) / (len(x) * sigma**2)


def centred(model, x, y, sigma):
    g = _scores(model, x, y, sigma)
    g = g - g.mean(0)
    return g.T @ g / len(x)


def sigma_squared_missing(model, x, y, sigma):
    g = _scores(model, x, y, sigma, sigma_power=0)
    return g.T @ g / len(x)


def sigma_for_sigma_squared(model, x, y, sigma):
    g = _scores(model, x, y, sigma, sigma_power=1)
    return g.T @ g / len(x)


def test_empirical_fisher_exercise_accepts_a_correct_implementation(capsys):
    assert ex02.check_empirical_fisher_gaussian(right_empirical_fisher) is True
    assert capsys.readouterr().out.startswith("✓ empirical Fisher of a Gaussian regressor: agrees with rlkit")


def test_empirical_fisher_exercise_says_not_done_for_the_stub(capsys):
    def stub(model, x, y, sigma):
        raise NotImplementedError

    assert ex02.check_empirical_fisher_gaussian(stub) is False
    assert NOT_IMPLEMENTED in capsys.readouterr().out


@pytest.mark.parametrize("mistake, words", [
    (squared_batch_gradient, "outer product of the batch's mean gradient with itself"),
    (summed_over_the_batch, "a sum over the batch"),
    (model_targets_instead_of_observed, "this is the exact Fisher"),
    (centred, "the mean gradient was subtracted"),
    (sigma_squared_missing, "σ² is missing"),
    (sigma_for_sigma_squared, "σ where σ² belongs"),
], ids=lambda v: getattr(v, "__name__", None))
def test_empirical_fisher_exercise_names_each_typical_mistake(mistake, words, capsys):
    assert ex02.check_empirical_fisher_gaussian(mistake) is False
    out = capsys.readouterr().out
    assert out.startswith("✗ empirical Fisher of a Gaussian regressor — case 1: ") and words in out


def test_empirical_fisher_exercise_reports_an_unknown_error_and_an_exception(capsys):
    assert not ex02.check_empirical_fisher_gaussian(lambda model, x, y, sigma: 1.1 * right_empirical_fisher(model, x, y, sigma))
    assert "largest absolute error" in capsys.readouterr().out
    assert not ex02.check_empirical_fisher_gaussian(lambda model, x, y, sigma: right_empirical_fisher(model, x, y, sigma)[:3])
    assert "shape" in capsys.readouterr().out


def test_empirical_fisher_cases_tell_the_mistakes_apart():
    # σ ≠ 1 and the data's noise ≠ σ in every case, so no planted mistake equals the reference
    for case in ex02.empirical_fisher_cases():
        assert case["sigma"] != 1.0
        reference = rlkit_empirical_fisher(case["model"], case["x"], GaussianValue(case["sigma"]), case["y"])
        for mistake in [squared_batch_gradient, summed_over_the_batch, model_targets_instead_of_observed, centred,
                        sigma_squared_missing, sigma_for_sigma_squared]:
            assert not torch.allclose(mistake(**case), reference, rtol=1e-3, atol=1e-6), mistake.__name__


def test_checks_leave_the_global_random_stream_alone():
    torch.manual_seed(123)
    reference = torch.rand(3)
    torch.manual_seed(123)
    ex02.check_cg_iterations(8)
    ex02.check_empirical_fisher_factor(4.0)
    ex02.check_empirical_fisher_gaussian(right_empirical_fisher)
    assert torch.equal(torch.rand(3), reference)
