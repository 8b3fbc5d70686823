"""Exercise checks of notebook 05: the right answer passes, typical wrong answers and the
notebook's placeholder (None) fail without raising, and the facts the checks rely on hold in rlkit."""

import math

import numpy as np
import pytest
import torch

from rlkit.lessons.nb05_trust_region import exercises as ex05
from rlkit.trust_region import effective_step_size, predicted_kl

RIGHT = {
    ex05.check_paper_delta: 0.001,
    ex05.check_capped_predicted_kl: 0.0025,
    ex05.check_rare_arm_logit_gap: 10.0,
}
WRONG = {
    ex05.check_paper_delta: [0.004, 0.002, 0.002 / math.sqrt(2)],  # reversed; same number; √2 instead of 2
    ex05.check_capped_predicted_kl: [0.01, 0.005, 0.25],  # δ (cap ignored); no ½; η not squared
    ex05.check_rare_arm_logit_gap: [0.1485, 0.15, 0.1, 0.001, 100.0],  # plain gradient (and rounded); ηA; ηAp; without η
}


@pytest.mark.parametrize("check", list(RIGHT), ids=lambda c: c.__name__)
def test_right_answer_passes(check, capsys):
    assert check(RIGHT[check]) is True
    assert capsys.readouterr().out.startswith("✓")


@pytest.mark.parametrize(
    "check, answer", [(c, a) for c, answers in WRONG.items() for a in answers],
    ids=lambda v: getattr(v, "__name__", repr(v)),
)
def test_typical_wrong_answer_fails_with_a_hint(check, answer, capsys):
    assert check(answer) is False
    out = capsys.readouterr().out
    assert out.startswith("✗") and " — " in out


@pytest.mark.parametrize("check", list(RIGHT), ids=lambda c: c.__name__)
@pytest.mark.parametrize("placeholder", [None, "my answer", [1.0, float("nan")], float("inf")])
def test_placeholder_or_unreadable_answer_fails_without_raising(check, placeholder, capsys):
    assert check(placeholder) is False
    assert capsys.readouterr().out.startswith("✗")


def test_right_answers_accept_tensors_and_numpy():
    assert ex05.check_paper_delta(torch.tensor(0.001))
    assert ex05.check_capped_predicted_kl(np.float64(0.0025))
    assert ex05.check_rare_arm_logit_gap(np.array(10.0))


# ---------------------------------------------------------------- the facts behind the checks


def test_exercise_1_rules_agree_for_every_q():
    for q in (0.01, 1.0, 37.0):
        paper = effective_step_size(q, ex05.BASELINES_KL_CLIP / 2, 1e9, "paper")
        assert paper == pytest.approx(effective_step_size(q, ex05.BASELINES_KL_CLIP, 1e9, "baselines"), rel=1e-12)


def test_exercise_2_is_capped():
    eta = effective_step_size(ex05.CAP_QUADRATIC, ex05.CAP_DELTA, ex05.CAP_ETA_MAX)
    assert eta == ex05.CAP_ETA_MAX
    assert predicted_kl(ex05.CAP_QUADRATIC, eta) == pytest.approx(0.0025, rel=1e-12)


def test_exercise_3_natural_gradient_weights_the_rare_arm_by_one_over_p():
    step = ex05.rare_arm_step()
    assert step["gap"] == pytest.approx(ex05.RARE_LR * ex05.RARE_ADVANTAGE / ex05.RARE_PROB, rel=1e-9)
    assert step["prob_after"] > 0.99  # one lucky pull: near-deterministic on the rare arm
    assert step["prob_after_trust_region"] < 0.1  # the trust region keeps the step small


# ---------------------------------------------------------------- the implementation exercise


def trust_region_step(theta, g, direction, delta, eta_max):
    """A correct solution, as the notebook's solution cell writes it."""
    q = float(g @ direction)
    eta = min(eta_max, math.sqrt(2 * delta / q))
    return theta + eta * direction, eta, 0.5 * eta**2 * q


def baselines_rule(theta, g, direction, delta, eta_max):
    q = float(g @ direction)
    eta = min(eta_max, math.sqrt(delta / q))
    return theta + eta * direction, eta, 0.5 * eta**2 * q


def q_from_gradient(theta, g, direction, delta, eta_max):
    q = float(g @ g)
    eta = min(eta_max, math.sqrt(2 * delta / q))
    return theta + eta * direction, eta, 0.5 * eta**2 * q


def no_cap(theta, g, direction, delta, eta_max):
    q = float(g @ direction)
    eta = math.sqrt(2 * delta / q)
    return theta + eta * direction, eta, 0.5 * eta**2 * q


def eta_not_squared(theta, g, direction, delta, eta_max):
    q = float(g @ direction)
    eta = min(eta_max, math.sqrt(2 * delta / q))
    return theta + eta * direction, eta, 0.5 * eta * q


def kl_is_delta(theta, g, direction, delta, eta_max):
    q = float(g @ direction)
    eta = min(eta_max, math.sqrt(2 * delta / q))
    return theta + eta * direction, eta, delta


def step_down(theta, g, direction, delta, eta_max):
    q = float(g @ direction)
    eta = min(eta_max, math.sqrt(2 * delta / q))
    return theta - eta * direction, eta, 0.5 * eta**2 * q


def stub(theta, g, direction, delta, eta_max):
    raise NotImplementedError


def test_trust_region_step_accepts_a_correct_solution(capsys):
    assert ex05.check_trust_region_step(trust_region_step) is True
    out = capsys.readouterr().out
    assert out.startswith("✓") and "2 of the 4 steps were capped" in out


def test_trust_region_step_says_not_done_for_the_stub(capsys):
    assert ex05.check_trust_region_step(stub) is False
    assert "not done yet" in capsys.readouterr().out


@pytest.mark.parametrize("mistake, named", [
    (baselines_rule, "baselines code's rule"),
    (q_from_gradient, "gᵀg, the gradient's squared norm"),
    (no_cap, "the cap is missing"),
    (eta_not_squared, "η enters squared"),
    (kl_is_delta, "it equals δ only while the cap η_max does not bind"),
    (step_down, "a step down"),
], ids=lambda v: getattr(v, "__name__", ""))
def test_trust_region_step_names_each_typical_mistake(mistake, named, capsys):
    assert ex05.check_trust_region_step(mistake) is False
    out = capsys.readouterr().out
    assert out.startswith("✗") and named in out


def test_trust_region_step_cases_are_capped_and_uncapped_in_turn():
    for number, case in enumerate(ex05.trust_region_step_cases()):
        q = float(case["g"] @ case["direction"])
        eta = effective_step_size(q, case["delta"], case["eta_max"])
        assert (eta == case["eta_max"]) == (number % 2 == 1)
