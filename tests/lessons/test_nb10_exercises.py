"""Exercise checks of notebook 10: the right answer passes, typical wrong answers and the
notebook's placeholder (None) fail without raising."""

import math

import pytest

from rlkit.lessons.nb10_reproductions import exercises as ex10
from rlkit.experiments.runs import write_csv

# Exercise 1 by hand: window means from episode 1: 261.7, 340, 436.7, 428.3, 481.7 -> N = 5
N_STAR = 5
# Exercise 3 by hand: ACKTR Table 3, Atari batch 640: A2C 1162 steps/s, ACKTR 852
TIME_RATIO = 1162 / 852

# Exercise 2: a small report directory (rows.csv as rlkit.experiments.report writes it; runs.csv with two variants)
FINALS = {"gauss-newton-critic": [500.0, 420.0, 470.0], "first-order-critic": [150.0, 260.0, 90.0]}


def _mean_std(values):
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


@pytest.fixture
def report_dir(tmp_path):
    runs = [{"run": f"CartPole-v1/{variant}/s{seed}", "env": "CartPole-v1", "seed": seed, "final_return": value,
             "steps_to_threshold": ""}
            for variant, values in FINALS.items() for seed, value in enumerate(values)]
    write_csv(tmp_path / "runs.csv", ["run", "env", "seed", "final_return", "steps_to_threshold"], runs)
    rows = [{"env": "CartPole-v1", "variant": variant, "final_return_mean": _mean_std(values)[0],
             "final_return_std": _mean_std(values)[1], "steps_to_threshold_mean": "", "steps_to_threshold_std": ""}
            for variant, values in FINALS.items()]
    write_csv(tmp_path / "rows.csv", list(rows[0]), rows)
    return tmp_path


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


def test_seed_mean_std_right_answer_passes(report_dir, capsys):
    mean, std = _mean_std(FINALS["gauss-newton-critic"])
    assert ex10.check_seed_mean_std((mean, std), report_dir, "gauss-newton-critic") is True
    assert capsys.readouterr().out.startswith("✓")
    assert ex10.seed_values(report_dir, "gauss-newton-critic") == FINALS["gauss-newton-critic"]


def test_seed_mean_std_typical_wrong_answers_fail_with_their_hint(report_dir, capsys):
    values = FINALS["gauss-newton-critic"]
    mean, std = _mean_std(values)
    sample_std = std * math.sqrt(len(values) / (len(values) - 1))
    everything = _mean_std([v for vs in FINALS.values() for v in vs])
    for answer, hint in [((mean, sample_std), "ddof=1"), ((std, mean), "swapped"), (everything, "only the runs of")]:
        assert ex10.check_seed_mean_std(answer, report_dir, "gauss-newton-critic") is False
        out = capsys.readouterr().out
        assert out.startswith("✗") and hint in out, out


@pytest.mark.parametrize("answer", [None, "abc", 3.0, (1.0, 2.0, 3.0)])
def test_seed_mean_std_placeholder_and_unreadable_answers_fail_without_raising(answer, report_dir, capsys):
    assert ex10.check_seed_mean_std(answer, report_dir, "gauss-newton-critic") is False
    assert capsys.readouterr().out.startswith("✗")


def test_seed_mean_std_with_several_envs_needs_the_env(tmp_path, capsys):
    runs = [{"run": f"{env}/gn/s{seed}", "env": env, "final_return": value}
            for env, values in (("CartPole-v1", [400.0, 500.0]), ("InvertedPendulum-v5", [900.0, 1000.0]))
            for seed, value in enumerate(values)]
    write_csv(tmp_path / "runs.csv", ["run", "env", "final_return"], runs)
    rows = [{"env": env, "variant": "gn", "final_return_mean": mean, "final_return_std": 50.0}
            for env, mean in (("CartPole-v1", 450.0), ("InvertedPendulum-v5", 950.0))]
    write_csv(tmp_path / "rows.csv", list(rows[0]), rows)
    assert ex10.check_seed_mean_std((450.0, 50.0), tmp_path, "gn") is False
    assert "pass env=" in capsys.readouterr().out
    assert ex10.check_seed_mean_std((450.0, 50.0), tmp_path, "gn", env="CartPole-v1") is True
    assert ex10.check_seed_mean_std((950.0, 50.0), tmp_path, "gn", env="InvertedPendulum-v5") is True
    assert ex10.seed_values(tmp_path, "gn", env="CartPole-v1") == [400.0, 500.0]
    # the mean of both envs is the typical slip
    assert ex10.check_seed_mean_std((700.0, 250.0), tmp_path, "gn", env="CartPole-v1") is False


def test_seed_mean_std_says_when_the_directory_has_no_values(report_dir, capsys):
    # a smoke-scale stand-in: no episode ended, so rows.csv has no final return
    assert ex10.check_seed_mean_std((1.0, 0.0), report_dir, "gauss-newton-critic", column="steps_to_threshold") is False
    assert "stand-in" in capsys.readouterr().out
    assert ex10.check_seed_mean_std((1.0, 0.0), report_dir, "no-such-variant") is False
    assert "0 rows" in capsys.readouterr().out


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
