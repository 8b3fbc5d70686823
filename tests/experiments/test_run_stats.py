"""rlkit.experiments.run_stats against independent computations: hand-computed interquartile means and
bootstrap intervals on small arrays (the bootstrap distribution enumerated exactly), coverage on
synthetic data, censoring by construction, and the verdict rule on constructed cases."""
import itertools
import math

import numpy as np
import pytest

from rlkit.experiments import run_stats as rs


@pytest.mark.parametrize("values, expected", [
    ([3.0, 1.0, 2.0], 2.0),                      # n = 3: nothing trimmed, the mean
    ([4.0, 1.0, 3.0, 2.0], 2.5),                 # n = 4: drop 1 each end -> mean(2, 3)
    ([1, 2, 3, 4, 100, 5, 6, 7], 4.5),           # n = 8: drop 2 each end -> mean(3, 4, 5, 6)
    ([10, 0, 1, 2, 3, 4, 5, 6, 7, 8], 4.5),      # n = 10: drop 2 each end -> mean(2..7)
])
def test_interquartile_mean_by_hand(values, expected):
    assert rs.interquartile_mean(values) == pytest.approx(expected)


def test_interquartile_mean_along_an_axis():
    x = np.array([[1, 2, 3, 100], [4, 4, 4, 4]], dtype=float)
    np.testing.assert_allclose(rs.interquartile_mean(x, axis=-1), [2.5, 4.0])


def exact_bootstrap_quantiles(values, statistic, confidence=0.95):
    """The percentile interval of the bootstrap distribution enumerated over all n^n resamples."""
    draws = np.array([statistic(np.array(s)) for s in itertools.product(values, repeat=len(values))])
    alpha = 1 - confidence
    return np.quantile(draws, alpha / 2, method="lower"), np.quantile(draws, 1 - alpha / 2, method="higher")


def test_bootstrap_interval_of_the_median_of_three_is_their_range():
    # P(median of a resample = min) = P(two or three draws are the min) = 7/27 > 2.5%: the interval is [min, max]
    est = rs.bootstrap_ci([5.0, 1.0, 3.0], rs.median)
    assert (est.low, est.high, est.ci_low, est.ci_high, est.n, est.censored) == (3.0, 3.0, 1.0, 5.0, 3, 0)


@pytest.mark.parametrize("values", [[1.0, 2.0, 4.0, 8.0, 9.0], [0.0, 0.0, 1.0, 10.0, 3.0]])
def test_bootstrap_interval_agrees_with_the_enumerated_bootstrap(values):
    exact = exact_bootstrap_quantiles(values, np.mean)
    est = rs.bootstrap_ci(values, np.mean, resamples=20_000)
    assert est.low == pytest.approx(np.mean(values))
    assert est.ci_low == pytest.approx(exact[0], abs=0.25) and est.ci_high == pytest.approx(exact[1], abs=0.25)


def test_bootstrap_is_seeded():
    x = np.arange(10.0) ** 2
    assert rs.bootstrap_ci(x, seed=3) == rs.bootstrap_ci(x, seed=3)
    assert rs.bootstrap_ci(x, seed=3) != rs.bootstrap_ci(x, seed=4)


def test_coverage_of_the_mean_on_synthetic_data():
    """A 95% interval of the mean of 40 normal draws covers the true mean in 93–97% of 2,000 repetitions."""
    gen = np.random.default_rng(12345)
    covered = 0
    for rep in range(2000):
        x = gen.normal(3.0, 2.0, size=40)
        est = rs.bootstrap_ci(x, np.mean, resamples=500, seed=rep)
        covered += est.ci_low <= 3.0 <= est.ci_high
    assert 0.93 <= covered / 2000 <= 0.97, covered / 2000


def test_stratified_bootstrap_resamples_each_stratum_on_its_own():
    # two strata of constant values: any resample keeps 3 zeros and 1 ten, so the mean is always 2.5
    est = rs.bootstrap_ci([[0.0, 0.0, 0.0], [10.0]], np.mean)
    assert est.low == est.ci_low == est.ci_high == 2.5 and est.n == 4
    # unstratified, the same four values give a wide interval
    wide = rs.bootstrap_ci([0.0, 0.0, 0.0, 10.0], np.mean)
    assert wide.ci_low == 0.0 and wide.ci_high >= 5.0


# ----------------------------------------------------------------------------- censoring


def test_censor_puts_unreached_runs_at_their_budget():
    values, censored = rs.censor([100.0, math.nan, 300.0], 1000.0)
    np.testing.assert_array_equal(values, [100.0, 1000.0, 300.0])
    np.testing.assert_array_equal(censored, [False, True, False])


@pytest.mark.parametrize("statistic", [rs.median, rs.interquartile_mean])
def test_a_censored_run_raises_the_estimate_never_lowers_it(statistic):
    reached = [100.0, 200.0, 300.0]
    base = rs.bootstrap_ci(reached + [250.0], statistic)
    # the fourth run never reached the threshold within 250 steps: it needs more than 250
    values, censored = rs.censor(reached + [math.nan], 250.0)
    est = rs.bootstrap_ci(values, statistic, censored)
    assert est.low >= base.low and est.high >= base.high and est.ci_high >= base.ci_high
    assert est.censored == 1 and est.high >= est.low
    # dropping the censored run instead would lower the median: the estimate never does that
    assert est.low >= statistic(reached)


def test_median_with_censored_runs_is_a_range_up_to_the_shared_rule():
    values, censored = rs.censor([100.0, math.nan, math.nan], 1000.0)
    est = rs.bootstrap_ci(values, rs.median, censored)
    assert est.low == 1000.0 and est.high == math.inf  # more than the budget: ">1000"
    assert est.fmt(lambda v: f"{v:.0f}", interval=False) == ">1000"
    # the upper end is the median with the censored runs at +inf: results.median_to_threshold's rule
    assert est.high == np.median([100.0, math.inf, math.inf])


def test_ratio_with_censored_runs_covers_every_value_they_could_have():
    a, ca = rs.censor([100.0, 110.0, math.nan], 500.0)   # the slow method: one run never reached
    b, cb = rs.censor([50.0, 55.0, 60.0], 500.0)
    est = rs.ratio_ci(a, b, rs.median, ca, cb)
    assert est.low == est.high == pytest.approx(110.0 / 55.0)  # the censored run is above the median either way
    assert est.ci_high == math.inf  # a resample with two censored runs has an unbounded median
    assert est.ci_low == pytest.approx(100.0 / 60.0)  # min over max: the median of three resampled is their range
    # the same ratio the other way round: 1/x
    back = rs.ratio_ci(b, a, rs.median, cb, ca)
    assert back.ci_low == 0.0 and back.ci_high == pytest.approx(60.0 / 100.0)


def test_difference_interval():
    est = rs.difference_ci([10.0, 10.0, 10.0], [4.0, 4.0, 4.0])
    assert est.low == est.ci_low == est.ci_high == 6.0


# ----------------------------------------------------------------------------- comparisons


def test_probability_of_improvement_by_hand():
    # fewer steps is better: pairs (x, y): 1<2 yes, 1<4 yes, 3<2 no, 3<4 yes, ties none -> 3/4
    assert rs.probability_of_improvement([1.0, 3.0], [2.0, 4.0]) == pytest.approx(0.75)
    # a tie counts one half
    assert rs.probability_of_improvement([2.0], [2.0]) == 0.5
    # higher is better (returns): P(X > Y)
    assert rs.probability_of_improvement([1.0, 3.0], [2.0, 4.0], lower_is_better=False) == pytest.approx(0.25)
    # two tasks: the mean of the per-task probabilities
    assert rs.probability_of_improvement([[1.0], [5.0]], [[2.0], [3.0]]) == pytest.approx(0.5)


def test_probability_of_improvement_with_censored_runs():
    x, cx = rs.censor([100.0, math.nan], 500.0)
    y, cy = rs.censor([math.nan, 700.0], [500.0, 1000.0])
    # pairs: 100 < (>500): 1; 100 < 700: 1; (>500) vs (>500): open, ½; (>500) vs 700: open, ½
    assert rs.probability_of_improvement(x, y, cx, cy) == pytest.approx(0.75)
    # a censored run is beaten by every run that reached below its budget
    assert rs.probability_of_improvement([math.inf], [10.0], [True], [False]) == 0.0


def test_improvement_interval_contains_the_estimate():
    est = rs.improvement_ci([1.0, 2.0, 3.0], [2.5, 3.5, 4.5])
    assert est.ci_low <= est.value <= est.ci_high and 0 <= est.ci_low and est.ci_high <= 1


def test_performance_profile():
    taus = [0.0, 150.0, 250.0, 1000.0]
    np.testing.assert_allclose(rs.performance_profile([100.0, 200.0, 300.0, 400.0], taus), [1.0, 0.75, 0.5, 0.0])
    values, censored = rs.censor([100.0, 200.0, math.nan], 300.0)
    # steps to threshold: the fraction of runs that had reached it within tau steps; the censored one never
    np.testing.assert_allclose(rs.performance_profile(values, taus, censored, lower_is_better=True),
                               [0.0, 1 / 3, 2 / 3, 2 / 3])


# ----------------------------------------------------------------------------- verdicts


def test_verdict_on_constructed_cases():
    win = rs.ratio_ci([200.0, 210.0, 220.0], [100.0, 105.0, 110.0])   # x needs about twice y's steps
    loss = rs.ratio_ci([50.0, 52.0, 55.0], [100.0, 105.0, 110.0])
    overlap = rs.ratio_ci([90.0, 105.0, 120.0], [100.0, 105.0, 110.0])
    assert rs.verdict(win) == "supported" and rs.verdict(loss) == "contradicted" and rs.verdict(overlap) == "undecided"
    assert rs.verdict(loss, greater=False) == "supported" and rs.verdict(win, greater=False) == "contradicted"
    # a difference against the bound 0
    assert rs.verdict(rs.difference_ci([5.0, 6.0], [1.0, 2.0]), bound=0.0) == "supported"


def test_seeds_to_decide():
    # log-spread 0.1 on each side, log-gap ln 2: already decided at 3 seeds -> "one more" at least
    x, y = 200 * np.exp([-0.1, 0.0, 0.1]), 100 * np.exp([-0.1, 0.0, 0.1])
    assert rs.seeds_to_decide(x, y) == 4
    # a small gap in a wide spread needs many seeds: z² (s_x² + s_y²) / gap²
    x, y = 105 * np.exp([-0.5, 0.0, 0.5]), 100 * np.exp([-0.5, 0.0, 0.5])
    z = 1.959963984540054
    assert rs.seeds_to_decide(x, y) == math.ceil(z * z * 0.5 / math.log(1.05) ** 2)
    assert rs.seeds_to_decide([1.0, 2.0], [1.0, 2.0]) == math.inf


def test_estimate_formats():
    assert rs.Estimate(1.5, 1.5, 1.0, 2.0, 3).fmt() == "1.50 [1.00, 2.00]"
    assert rs.Estimate(1.12, math.inf, 1.01, math.inf, 3, 2).fmt() == ">1.12 [1.01, inf]"
    assert rs.fmt_steps(33936) == "33.9k" and rs.fmt_steps(1_000_000) == "1.00M"


def test_geometric_mean_ratio_over_tasks():
    # two tasks, constant runs: ratios 2 and 8 -> geometric mean 4, no spread
    tasks = [([2.0, 2.0], None, [1.0, 1.0], None), ([8.0, 8.0, 8.0], None, [1.0, 1.0], None)]
    est = rs.geometric_mean_ratio_ci(tasks)
    assert est.low == est.high == est.ci_low == est.ci_high == pytest.approx(4.0)
    # a task where the numerator never reached: the geometric mean is only bounded below
    values, censored = rs.censor([math.nan, math.nan], 10.0)
    est = rs.geometric_mean_ratio_ci([([4.0, 4.0], None, [1.0, 1.0], None), (values, censored, [2.5, 2.5], None)])
    assert est.low == pytest.approx(4.0) and est.high == math.inf and est.ci_high == math.inf


def test_ratio_of_ratios():
    est = rs.ratio_of_ratios_ci([8.0] * 3, [2.0] * 3, [3.0] * 3, [1.5] * 3)
    assert est.low == est.high == est.ci_low == est.ci_high == pytest.approx(2.0)  # (8/2) / (3/1.5)
    a, ca = rs.censor([math.nan] * 3, 100.0)
    est = rs.ratio_of_ratios_ci(a, [10.0] * 3, [20.0] * 3, [10.0] * 3, censored=(ca, None, None, None))
    assert est.low == pytest.approx(5.0) and est.high == math.inf  # more than (100/10) / 2
