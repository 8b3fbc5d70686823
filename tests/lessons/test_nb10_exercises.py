"""Exercise checks of notebook 10: the right answer passes, typical wrong answers and the
notebook's placeholder (None) fail without raising."""


import pytest

from rlkit.lessons.nb10_reproductions import exercises as ex10

# Exercise 1 by hand: window means from episode 1: 261.7, 340, 436.7, 428.3, 481.7 -> N = 5
N_STAR = 5
# Exercise 3 by hand: ACKTR Table 3, Atari batch 640: A2C 1162 steps/s, ACKTR 852
TIME_RATIO = 1162 / 852

def test_problem_data_give_the_hand_computed_answers():
    from rlkit.experiments.report import threshold_crossing

    assert threshold_crossing(ex10.RETURNS, ex10.THRESHOLD, ex10.WINDOW) == N_STAR
    assert ex10.paper_time_ratio() == pytest.approx(TIME_RATIO)


@pytest.mark.parametrize("answer", [N_STAR, float(N_STAR)])
def test_episodes_to_threshold_right_answer_passes(answer, capsys):
    assert ex10.check_episodes_to_threshold(answer) is True
    assert capsys.readouterr().out.startswith("✓")


@pytest.mark.parametrize("answer, hint", [(3, "first single episode"), (4, "0-based"), (7, "last episode"),
                                          (10, "only for their mean"), (6, "not 6")])
def test_episodes_to_threshold_typical_wrong_answers_fail_with_their_hint(answer, hint, capsys):
    assert ex10.check_episodes_to_threshold(answer) is False
    out = capsys.readouterr().out
    assert out.startswith("✗") and hint in out


def right_improvement(x, cx, y, cy):
    """The exercise's solution, written independently of rlkit: pairs decided only where the censoring decides them."""
    total = 0.0
    for xi, ci in zip(x, cx):
        for yj, cj in zip(y, cy):
            x_wins = not ci and xi < yj
            y_wins = not cj and yj < xi
            total += 1.0 if x_wins else 0.0 if y_wins else 0.5
    return total / (len(x) * len(y))


def test_improvement_by_hand():
    import numpy as np

    from rlkit.experiments.run_stats import probability_of_improvement

    # x: 5 (reached), >10 (censored); y: 7 (reached), >10 (censored)
    # pairs: 5<7 win; 5<(>10) win; (>10) vs 7: y wins; (>10) vs (>10): open, 1/2  -> 2.5 / 4
    x, cx, y, cy = np.array([5.0, 10.0]), np.array([False, True]), np.array([7.0, 10.0]), np.array([False, True])
    assert right_improvement(x, cx, y, cy) == probability_of_improvement(x, y, cx, cy) == 0.625


def test_improvement_right_answer_passes(capsys):
    assert ex10.check_probability_of_improvement(right_improvement) is True
    assert capsys.readouterr().out.startswith("✓")


def test_improvement_stub_is_not_done(capsys):
    def stub(x, cx, y, cy):
        raise NotImplementedError

    assert ex10.check_probability_of_improvement(stub) is False
    assert "not done" in capsys.readouterr().out


def _dropped(x, cx, y, cy):
    x, y = x[~cx], y[~cy]
    return right_improvement(x, [False] * len(x), y, [False] * len(y))


@pytest.mark.parametrize("mistake, says", [
    (_dropped, "censored runs were dropped"),
    (lambda x, cx, y, cy: right_improvement(x, [False] * len(x), y, [False] * len(y)), "compared at their budget"),
    (lambda x, cx, y, cy: right_improvement(y, cy, x, cx), "reversed"),
    (lambda x, cx, y, cy: sum(1.0 for xi, ci in zip(x, cx) for yj, cj in zip(y, cy) if not ci and xi < yj)
     / (len(x) * len(y)), "counted as 0"),
    (lambda x, cx, y, cy: 0.5, "largest absolute error"),
])
def test_improvement_typical_mistakes_are_named(mistake, says, capsys):
    assert ex10.check_probability_of_improvement(mistake) is False
    out = capsys.readouterr().out
    assert out.startswith("✗") and says in out, out


def test_time_ratio_right_answer_passes(capsys):
    assert ex10.check_time_ratio(1162 / 852) is True
    assert ex10.check_time_ratio(1.364) is True  # rounded to three digits
    assert capsys.readouterr().out.startswith("✓")


@pytest.mark.parametrize("answer, hint", [(852 / 1162, "inverse"), (1162 / 852 - 1, "extra time"),
                                          (1 - 852 / 1162, "fraction of throughput"), (1.25, "largest absolute error")])
def test_time_ratio_typical_wrong_answers_fail_with_their_hint(answer, hint, capsys):
    assert ex10.check_time_ratio(answer) is False
    out = capsys.readouterr().out
    assert out.startswith("✗") and hint in out


@pytest.mark.parametrize("check", [ex10.check_episodes_to_threshold, ex10.check_time_ratio], ids=lambda c: c.__name__)
@pytest.mark.parametrize("answer", [None, "abc", [1.0, 2.0], float("nan")])
def test_placeholder_and_unreadable_answers_fail_without_raising(check, answer, capsys):
    assert check(answer) is False
    assert capsys.readouterr().out.startswith("✗")
