"""Exercise checks of notebooks 03 and 04: the right answer passes, typical wrong answers and the
notebooks' placeholder (None) fail without raising, and the facts the checks rely on hold in rlkit."""

import math

import numpy as np
import pytest
import torch

from rlkit.lessons.nb04_kfac_in_practice import exercises as ex04
from rlkit.lessons.nb03_kronecker_factors import exercises as ex03


def _layout():
    p = ex03.layout_problem()
    return p["A"], p["S"], p["G"], torch.linalg.inv(p["A"]), torch.linalg.inv(p["S"])


A, S, G, A_INV, S_INV = _layout()

RIGHT = {
    ex03.check_preconditioned_gradient: S_INV @ G @ A_INV,
    ex03.check_conv_factor_entries: 257**2 + 32**2,
    ex03.check_two_sample_constant: 0.25,
    ex04.check_smallest_damped_eigenvalue: 0.36,
    ex04.check_newest_pass_weight: 1 / (1 + 0.95 + 0.95**2),
    ex04.check_inverse_period: 6,
}
WRONG = {
    ex03.check_preconditioned_gradient: [
        A_INV @ G @ S_INV,  # the paper's formula taken literally on PyTorch's layout
        (S_INV @ G @ A_INV).T,  # transposed
        G,  # not preconditioned
        S @ G @ A,  # multiplied instead of solved
    ],
    ex03.check_conv_factor_entries: [256**2 + 32**2, (257 * 32) ** 2, 5**2 + 32**2, 257**2, 12345],
    ex03.check_two_sample_constant: [0.5, -0.25, 1.0, 0.0],
    ex04.check_smallest_damped_eigenvalue: [0.26, 0.385, 0.25, 0.5],
    ex04.check_newest_pass_weight: [0.05, 1 / 3, 0.9],
    ex04.check_inverse_period: [5, 5.29, 11, 7],
}


@pytest.mark.parametrize("check", list(RIGHT), ids=lambda c: c.__name__)
def test_right_answer_passes(check, capsys):
    assert check(RIGHT[check]) is True
    assert capsys.readouterr().out.startswith("✓")


@pytest.mark.parametrize(
    "check, answer", [(c, a) for c, answers in WRONG.items() for a in answers], ids=lambda v: getattr(v, "__name__", "")
)
def test_typical_wrong_answer_fails_with_a_hint(check, answer, capsys):
    assert check(answer) is False
    out = capsys.readouterr().out
    assert out.startswith("✗") and " — " in out


@pytest.mark.parametrize("check", list(RIGHT), ids=lambda c: c.__name__)
@pytest.mark.parametrize("placeholder", [None, "my answer", [1.0, float("nan")]])
def test_placeholder_or_unreadable_answer_fails_without_raising(check, placeholder, capsys):
    assert check(placeholder) is False
    assert capsys.readouterr().out.startswith("✗")


def test_right_answers_accept_tensors_numpy_and_lists():
    assert ex03.check_preconditioned_gradient((S_INV @ G @ A_INV).numpy())
    assert ex03.check_preconditioned_gradient((S_INV @ G @ A_INV).tolist())
    assert ex03.check_conv_factor_entries(np.int64(67073))
    assert ex03.check_two_sample_constant(torch.tensor(0.25))
    assert ex04.check_inverse_period(6.0)


def test_specific_hints(capsys):
    ex03.check_preconditioned_gradient(A_INV @ G @ S_INV)
    assert "paper" in capsys.readouterr().out
    ex04.check_smallest_damped_eigenvalue(0.26)
    assert "eigen mode" in capsys.readouterr().out
    ex04.check_newest_pass_weight(0.05)
    assert "bias correction" in capsys.readouterr().out


# ---------------------------------------------------------------- the facts behind the checks


def test_layout_problem_is_square_and_the_papers_literal_formula_differs():
    assert A.shape == S.shape == G.shape == (6, 6)
    right, literal = S_INV @ G @ A_INV, A_INV @ G @ S_INV
    assert (right - literal).norm() > 0.1 * right.norm()
    torch.testing.assert_close(ex03._rlkit_preconditioned(), right, rtol=1e-8, atol=1e-10)


def test_two_sample_difference_is_a_quarter_of_the_kronecker_of_differences():
    p = ex03.two_sample_problem()
    (a1, a2), (S1, S2) = p["a"], p["S"]
    delta = torch.kron(S1 - S2, torch.outer(a1, a1) - torch.outer(a2, a2))
    order = [i * 4 + j for i in range(4) for j in range(3)] + [i * 4 + 3 for i in range(4)]
    torch.testing.assert_close(p["exact"] - p["kfac"], 0.25 * delta[order][:, order], rtol=1e-9, atol=1e-13)


def test_damped_factored_eigenvalue_and_rlkit_agree():
    assert ex04.smallest_damped_eigenvalue("factored") == pytest.approx(0.36, rel=1e-12)
    assert ex04.smallest_damped_eigenvalue("eigen") == pytest.approx(0.26, rel=1e-12)


def test_newest_pass_weight_from_rlkit_matches_the_formula():
    assert ex04.newest_pass_weight_rlkit() == pytest.approx(1 / (1 + 0.95 + 0.95**2), rel=1e-12)


def test_inverse_period_ratio():
    d_in, d_out = ex04.PERIOD_LAYER
    ratio = (d_in**3 + d_out**3) / (d_out**2 * d_in + d_out * d_in**2)
    assert 5 < ratio < 6 and math.ceil(ratio) == 6
