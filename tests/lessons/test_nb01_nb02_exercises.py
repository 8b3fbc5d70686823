"""Exercise checks of notebooks 01 and 02: the right answer passes, typical wrong answers and the
notebooks' placeholder (None) fail without raising, and the facts the checks rely on hold in rlkit."""

import math

import numpy as np
import pytest
import torch

from rlkit.lessons.nb02_fisher_matrices import exercises as ex02
from rlkit.lessons.nb01_natural_gradient import exercises as ex01
from rlkit.lessons.nb01_natural_gradient.toy import descent_path

# ---------------------------------------------------------------- notebook 01

RIGHT_01 = {
    ex01.check_variance_fisher: [[0.25, 0.0], [0.0, 1 / 32]],
    ex01.check_predicted_kl: 0.06,
    ex01.check_sigma_after_step: 2 * math.exp(-0.234375),
}
WRONG_01 = {
    ex01.check_variance_fisher: [
        [[0.25, 0.0], [0.0, 0.5]],  # the (μ, σ) Fisher
        [[0.25, 0.0], [0.0, 2.0]],  # the (μ, log σ) Fisher
        [[0.25, 0.0], [0.0, 1 / 16]],  # forgot the ½ of 1/(2v²)
        [0.25, 1 / 32],  # the diagonal only: wrong shape
    ],
    ex01.check_predicted_kl: [0.12, 0.0757],  # dᵀFd without ½; the exact KL
    ex01.check_sigma_after_step: [1.53125, 2 * math.exp(-0.46875), 2.0],  # step in σ; gradient step; no step
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


def test_checks_leave_the_global_random_stream_alone():
    torch.manual_seed(123)
    reference = torch.rand(3)
    torch.manual_seed(123)
    ex02.check_cg_iterations(8)
    ex02.check_empirical_fisher_factor(4.0)
    assert torch.equal(torch.rand(3), reference)
