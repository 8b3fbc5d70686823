"""Exercise checks for notebook 10 (the papers' claims, reproduced at laptop scale).

Each check takes the student's answer (``None`` while the exercise is not done: the check then
says so and returns False, it does not raise), compares it with rlkit's own computation and
prints ✓ or ✗ with a hint naming the typical mistake:

* :func:`check_episodes_to_threshold`: the paper's "episodes to threshold" of a list of returns,
  against :func:`rlkit.experiments.report.threshold_crossing`;
* :func:`check_probability_of_improvement` (an implementation exercise): the student's probability
  of improvement with censored runs, against :func:`rlkit.experiments.run_stats.probability_of_improvement`
  on seeded random runs, naming the typical mistakes;
* :func:`check_time_ratio`: ACKTR's time per env step over A2C's, from the paper's Table 3
  (:func:`rlkit.experiments.data.load_table`).

The problem data are module constants, so the notebook's text and the check read the same numbers.
"""
from __future__ import annotations

import math

import numpy as np

from rlkit.lessons.checks import NOT_DONE, close, report

__all__ = [
    "RETURNS", "THRESHOLD", "WINDOW", "TIME_DOMAIN", "TIME_BATCH",
    "check_episodes_to_threshold", "improvement_cases", "check_probability_of_improvement", "paper_time_ratio",
    "check_time_ratio",
]

#: Exercise 1: the returns of a run's first twelve episodes, in order; threshold and window of the rule
RETURNS = (95.0, 210.0, 480.0, 330.0, 500.0, 455.0, 490.0, 500.0, 470.0, 500.0, 500.0, 500.0)
THRESHOLD = 475.0
WINDOW = 3
#: Exercise 3: which row pair of ACKTR Table 3
TIME_DOMAIN, TIME_BATCH = "Atari", 640


def _number(answer) -> float | None:
    try:
        value = float(answer)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def check_episodes_to_threshold(answer) -> bool:
    """Exercise 1: the smallest N (1-based) with mean(RETURNS[N−1 : N−1+WINDOW]) ≥ THRESHOLD."""
    from rlkit.experiments.report import threshold_crossing

    what = f"episodes to threshold {THRESHOLD:g} (window {WINDOW}) of the twelve returns"
    if answer is None:
        return report(False, what, NOT_DONE)
    expected = threshold_crossing(RETURNS, THRESHOLD, WINDOW)
    value = _number(answer)
    if value is None:
        return report(False, what, "give one whole number, the episode N")
    ok = value == expected
    hint = f"not {value:g}"
    first_single = next(i + 1 for i, r in enumerate(RETURNS) if r >= THRESHOLD)
    first_all = next(i + 1 for i in range(len(RETURNS) - WINDOW + 1)
                     if all(r >= THRESHOLD for r in RETURNS[i:i + WINDOW]))
    if not ok and value == first_single:
        hint = "that is the first single episode above the threshold; the rule averages a window of episodes"
    elif not ok and value == expected - 1:
        hint = "a 0-based index: the paper counts episodes from 1"
    elif not ok and value == expected + WINDOW - 1:
        hint = ("that is the last episode of the first good window; N is the window's first episode "
                "(rlkit.experiments.report also gives the steps at the window's end)")
    elif not ok and value == first_all:
        hint = "every episode of that window is above the threshold; the rule asks only for their mean"
    verdict = report(ok, what, hint)
    if ok:
        window = RETURNS[expected - 1:expected - 1 + WINDOW]
        print(f"  (rlkit.experiments.report.threshold_crossing = {expected}: episodes {expected}…{expected + WINDOW - 1} "
              f"average {np.mean(window):.1f})")
    return verdict


def improvement_cases(count: int = 6, seed: int = 10) -> list[dict]:
    """Seeded random runs of two methods: whole-number steps to threshold (ties happen), each run with its own
    budget, about a third censored (at its budget), every case with a censored run on each side."""
    gen = np.random.default_rng(seed)
    cases = []
    while len(cases) < count:
        case = {}
        for name in ("x", "y"):
            n = int(gen.integers(3, 7))
            budgets = gen.integers(12, 25, size=n).astype(float)
            values = gen.integers(1, 20, size=n).astype(float)
            censored = (gen.random(n) < 0.35) | (values > budgets)
            case[name], case["c" + name] = np.where(censored, budgets, values), censored
        if case["cx"].any() and case["cy"].any():
            cases.append(case)
    return cases


def _plain(x, y, ties=0.5):
    """P(x < y) + ties · P(x = y) over all pairs, every value taken at face value."""
    x, y = np.asarray(x, dtype=float)[:, None], np.asarray(y, dtype=float)[None, :]
    return float(np.mean(np.where(x < y, 1.0, np.where(x == y, ties, 0.0))))


def _dropped(x, cx, y, cy):
    x, y = np.asarray(x)[~np.asarray(cx)], np.asarray(y)[~np.asarray(cy)]
    return _plain(x, y) if len(x) and len(y) else math.nan


IMPROVEMENT_MISTAKES = (
    (lambda x, cx, y, cy: _dropped(x, cx, y, cy),
     "the censored runs were dropped: a run that never reached the threshold needs more than its budget, it is "
     "not missing (dropping it flatters the method that failed)"),
    (lambda x, cx, y, cy: _plain(x, y),
     "censored runs were compared at their budget as if they had reached the threshold there; a censored run is "
     "only known to need MORE than its budget, so a pair it leaves open (both censored, or the other run above "
     "its budget) is a tie"),
    (lambda x, cx, y, cy: 1.0 - _rlkit_improvement(x, cx, y, cy),
     "reversed: that is the probability that a run of Y needs fewer steps than a run of X"),
    (lambda x, cx, y, cy: _rlkit_improvement(x, cx, y, cy)
     - 0.5 * float(np.mean(_open_pairs(x, cx, y, cy))),
     "ties (and pairs the censoring leaves open) were counted as 0; each counts one half"),
)


def _rlkit_improvement(x, cx, y, cy):
    from rlkit.experiments.run_stats import probability_of_improvement

    return probability_of_improvement(x, y, cx, cy)


def _open_pairs(x, cx, y, cy):
    """1 where a pair is a tie or left open by the censoring."""
    x, y = np.asarray(x, float)[:, None], np.asarray(y, float)[None, :]
    cx, cy = np.asarray(cx, bool)[:, None], np.asarray(cy, bool)[None, :]
    x_wins, y_wins = ~cx & (x < y), ~cy & (y < x)
    return (~x_wins & ~y_wins).astype(float)


def check_probability_of_improvement(student) -> bool:
    """The implementation exercise: ``student(x, cx, y, cy)`` against rlkit.experiments.run_stats on seeded
    random runs with censored runs on both sides (:func:`improvement_cases`)."""
    from rlkit.lessons.checks import check_implementation

    ok = check_implementation(student, _rlkit_improvement, improvement_cases(),
                              what="probability_of_improvement(x, cx, y, cy)", mistakes=IMPROVEMENT_MISTAKES,
                              rtol=1e-9, atol=1e-12)
    if ok:
        case = improvement_cases()[0]
        print(f"  (rlkit: run_stats.probability_of_improvement; in the first case {int(case['cx'].sum())} of "
              f"{len(case['x'])} runs of X and {int(case['cy'].sum())} of {len(case['y'])} of Y are censored, and "
              f"{int(_open_pairs(**case).sum())} of the {case['x'].size * case['y'].size} pairs are ties or left open)")
    return ok


def paper_time_ratio(domain: str = TIME_DOMAIN, batch_size: int = TIME_BATCH) -> float:
    """ACKTR's time per env step over A2C's in ACKTR Table 3: A2C's timesteps per second over ACKTR's."""
    from rlkit.experiments.data import find_row, load_table

    table = load_table("acktr_table3_timesteps_per_second")
    speed = {algo: find_row(table, algorithm=algo, domain=domain, batch_size=float(batch_size))["timesteps_per_second"]
             for algo in ("acktr", "a2c")}
    return speed["a2c"] / speed["acktr"]


def check_time_ratio(answer) -> bool:
    """Exercise 3: ACKTR's time per env step over A2C's, paper Table 3, TIME_DOMAIN at batch TIME_BATCH."""
    what = f"ACKTR time / A2C time per env step, paper Table 3, {TIME_DOMAIN} batch {TIME_BATCH}"
    if answer is None:
        return report(False, what, NOT_DONE)
    value = _number(answer)
    if value is None:
        return report(False, what, "give one number")
    expected = paper_time_ratio()
    ok, hint = close(value, expected, rtol=2e-3, atol=0.0)
    if not ok and close(value, 1 / expected, rtol=2e-3, atol=0.0)[0]:
        hint = "that is ACKTR's speed over A2C's (steps per second); time per step is its inverse"
    elif not ok and close(value, expected - 1, rtol=2e-3, atol=0.0)[0]:
        hint = "that is the extra time (ratio − 1); give the ratio itself"
    elif not ok and close(value, 1 - 1 / expected, rtol=2e-3, atol=0.0)[0]:
        hint = "that is the fraction of throughput ACKTR loses; the question asks for the time ratio"
    verdict = report(ok, what, hint)
    if ok:
        print(f"  (A2C steps/s ÷ ACKTR steps/s = {expected:.3f}: {100 * (expected - 1):.0f}% more time per step; "
              f"the caption says 'at most 25%')")
    return verdict
