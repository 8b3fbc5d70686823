"""Exercise checks for notebook 10 (the papers' claims, reproduced at laptop scale).

Each check takes the student's answer (``None`` while the exercise is not done: the check then
says so and returns False, it does not raise), compares it with rlkit's own computation and
prints ✓ or ✗ with a hint naming the typical mistake:

* :func:`check_episodes_to_threshold`: the paper's "episodes to threshold" of a list of returns,
  against :func:`rlkit.experiments.report.threshold_crossing`;
* :func:`check_seed_mean_std`: mean ± std over seeds of one variant, computed from a report's
  ``runs.csv``, against the same numbers in its ``rows.csv`` (what :func:`rlkit.experiments.report.report`
  computed);
* :func:`check_time_ratio`: ACKTR's time per env step over A2C's, from the paper's Table 3
  (:func:`rlkit.experiments.data.load_table`).

The problem data are module constants, so the notebook's text and the check read the same numbers.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from rlkit.lessons.checks import NOT_DONE, close, report

__all__ = [
    "RETURNS", "THRESHOLD", "WINDOW", "TIME_DOMAIN", "TIME_BATCH",
    "check_episodes_to_threshold", "seed_values", "check_seed_mean_std", "paper_time_ratio", "check_time_ratio",
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


def _float_or_none(text: str) -> float | None:
    return float(text) if text not in (None, "") else None


def seed_values(directory: str | os.PathLike, variant: str, column: str = "final_return",
                env: str | None = None) -> list[float]:
    """The per-seed ``column`` of ``variant`` in ``directory/runs.csv`` (seeds without a value left out)."""
    from rlkit.experiments.runs import read_csv

    rows = read_csv(Path(directory) / "runs.csv")[1]
    return [float(r[column]) for r in rows if r["run"].split("/")[1] == variant and (env is None or r["env"] == env)
            and r[column] not in (None, "")]


def check_seed_mean_std(answer, directory: str | os.PathLike, variant: str, column: str = "final_return",
                        env: str | None = None) -> bool:
    """Exercise 2: ``(mean, std)`` over seeds of ``column`` for ``variant``, from ``directory/runs.csv``;
    compared with ``directory/rows.csv`` (what the report computed: population std over seeds)."""
    from rlkit.experiments.runs import read_csv

    what = f"mean ± std over seeds of {column} for {variant}" + (f" on {env}" if env else "")
    if answer is None:
        return report(False, what, NOT_DONE)
    rows = [r for r in read_csv(Path(directory) / "rows.csv")[1]
            if r["variant"] == variant and (env is None or r["env"] == env)]
    if len(rows) != 1:
        return report(False, what, f"{directory}/rows.csv has {len(rows)} rows for {variant}"
                      + ("" if env else "; pass env=..."))
    mean, std = _float_or_none(rows[0][f"{column}_mean"]), _float_or_none(rows[0][f"{column}_std"])
    if mean is None:
        return report(False, what, f"no seed of {variant} has a {column} in {directory} (a smoke-scale stand-in?)")
    try:
        pair = [float(x) for x in answer]
    except (TypeError, ValueError):
        return report(False, what, "give two numbers, (mean, std)")
    if len(pair) != 2:
        return report(False, what, "give two numbers, (mean, std)")
    scale = max(1.0, abs(mean))
    ok, hint = close(pair, [mean, std], rtol=1e-6, atol=1e-6 * scale)
    values = seed_values(directory, variant, column, env)
    if not ok and len(values) > 1 and close(pair, [mean, float(np.std(values, ddof=1))], rtol=1e-6,
                                            atol=1e-6 * scale)[0] and std > 0:
        hint = "that is the sample std (ddof=1); the report gives the population std over seeds (np.std, ddof=0)"
    elif not ok and close(pair[::-1], [mean, std], rtol=1e-6, atol=1e-6 * scale)[0]:
        hint = "mean and std swapped: (mean, std)"
    elif not ok and abs(pair[0] - mean) > 1e-6 * scale:
        hint = (f"the mean is off ({pair[0]:g}): take only the runs of {variant}, whose run name is "
                f"'<env>/{variant}/s<seed>'" + (", and only the seeds that reached the threshold"
                                                if column != "final_return" else ""))
    verdict = report(ok, what, hint)
    if ok:
        print(f"  (rows.csv: {column}_mean = {mean:.2f}, {column}_std = {std:.2f} over {len(values)} seed(s))")
    return verdict


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
