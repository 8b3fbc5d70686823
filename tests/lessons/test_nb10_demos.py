"""Notebook 10's helpers: the committed runs as (values, censored) for rlkit.experiments.run_stats, the claims'
verdicts and their figure."""
import math

import numpy as np
import pytest

from rlkit.experiments import run_stats
from rlkit.lessons.nb10_reproductions import demos

RUNS = [{"variant": "a", "env": "E", "steps_to_threshold": 100.0, "episodes_to_threshold": 10.0, "env_steps": 500.0,
         "episodes": 40.0},
        {"variant": "a", "env": "E", "steps_to_threshold": math.nan, "episodes_to_threshold": math.nan,
         "env_steps": 510.0, "episodes": 45.0},
        {"variant": "b", "env": "E", "steps_to_threshold": 50.0, "episodes_to_threshold": 5.0, "env_steps": 500.0,
         "episodes": 30.0}]


def test_grid_values_censor_unreached_runs_at_what_they_ran():
    values, censored = demos.grid_values(RUNS, "a")
    np.testing.assert_array_equal(values, [100.0, 510.0])
    np.testing.assert_array_equal(censored, [False, True])
    values, censored = demos.grid_values(RUNS, "a", "episodes_to_threshold", env="E")
    np.testing.assert_array_equal(values, [10.0, 45.0])


def test_bench_values_read_the_committed_benchmark():
    values, censored = demos.bench_values("InvertedPendulum-v5", "a2c")
    assert censored.tolist() == [False, False, True] and values[2] == 300_000  # the censored seed at its budget
    episodes, _ = demos.bench_values("InvertedPendulum-v5", "a2c", "episodes")
    assert episodes[2] == 5441  # the episodes it completed within the budget


def test_speeds_are_the_repeats_of_one_configuration():
    assert len(demos.speeds("acktr", "MuJoCo", 1000)) == 5


@pytest.mark.parametrize("x, y, greater, verdict", [
    ([200.0, 210.0, 220.0], [100.0, 105.0, 110.0], True, "supported"),
    ([50.0, 52.0, 55.0], [100.0, 105.0, 110.0], True, "contradicted"),
    ([50.0, 52.0, 55.0], [100.0, 105.0, 110.0], False, "supported"),
    ([90.0, 105.0, 120.0], [100.0, 105.0, 110.0], True, "undecided"),
])
def test_claim_verdicts(x, y, greater, verdict):
    claim = demos.Claim("c", run_stats.ratio_ci(x, y), greater=greater)
    assert claim.verdict == verdict
    lines = demos.claim_lines([claim])
    assert lines[1].startswith("c ") and lines[1].endswith(verdict)


def test_claims_figure_draws_every_claim(tmp_path):
    values, censored = run_stats.censor([math.nan] * 3, 100.0)
    claims = [demos.Claim("win", run_stats.ratio_ci([2.0, 2.1, 2.2], [1.0, 1.1, 1.2])),
              demos.Claim("open", run_stats.ratio_ci(values, values, run_stats.median, censored, censored))]
    figure = demos.claims_figure(claims, "t")
    assert [t.get_text() for t in figure.axes[0].get_yticklabels()] == ["win", "open"]  # top to bottom as listed
    assert demos.png(figure)[:4] == b"\x89PNG"
