"""Exercise checks of notebook 08: the right answer passes, typical wrong answers and the
notebook's placeholder (None) fail without raising."""

import math

import pytest

from rlkit.lessons.nb08_vmpo_em import exercises as ex08


_e = [math.exp(2.0), math.exp(1.5), math.exp(0.5)]
PSI = [_e[0] / sum(_e), 0.0, _e[2] / sum(_e), _e[1] / sum(_e), 0.0, 0.0]  # by hand, independent of rlkit
LOSS = -sum(p * lp for p, lp in zip(PSI, ex08.LOG_PROBS))
RIGHT = {ex08.check_weights: PSI, ex08.check_policy_loss: LOSS, ex08.check_mean_part: 0.5 * 0.25 / 4}
_all = [math.exp(a) for a in ex08.ADVANTAGES]
WRONG = {
    ex08.check_weights: [[x / sum(_all) for x in _all], [1 / 3, 0, 1 / 3, 1 / 3, 0, 0], [1, 0, 0, 0, 0, 0]],
    ex08.check_policy_loss: [LOSS / 3, LOSS / 6, -LOSS],
    ex08.check_mean_part: [0.125, 0.0625, 0.0625 * 1],
}


@pytest.mark.parametrize("check", list(RIGHT), ids=lambda c: c.__name__)
def test_right_answer_passes(check, capsys):
    assert check(RIGHT[check]) is True
    assert capsys.readouterr().out.startswith("✓")


@pytest.mark.parametrize("check, answer", [(c, a) for c, answers in WRONG.items() for a in answers],
                         ids=lambda v: getattr(v, "__name__", repr(v)))
def test_typical_wrong_answer_fails(check, answer, capsys):
    assert check(answer) is False
    assert capsys.readouterr().out.startswith("✗")


@pytest.mark.parametrize("check", list(RIGHT), ids=lambda c: c.__name__)
@pytest.mark.parametrize("answer", [None, "abc", [1.0, 2.0]])
def test_placeholder_and_unreadable_answers_fail_without_raising(check, answer, capsys):
    assert check(answer) is False
    assert capsys.readouterr().out.startswith("✗")


def test_hints_name_the_pitfalls(capsys):
    ex08.check_weights(WRONG[ex08.check_weights][0])
    assert "all six" in capsys.readouterr().out
    ex08.check_policy_loss(LOSS / 3)
    assert "mean instead of a sum" in capsys.readouterr().out
    ex08.check_mean_part(0.125)
    assert "OLD covariance" in capsys.readouterr().out
