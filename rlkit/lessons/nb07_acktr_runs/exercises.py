"""Exercise checks for notebook 07 (ACKTR runs).

Each check takes the student's answer (``None`` while the exercise is not done: the check then says so and
returns False, it does not raise), compares it with rlkit's own computation on the same data (a run
directory the notebook trained, the precomputed sweep, the committed benchmark) and prints ✓ or ✗ with a
hint naming the typical mistake.
"""
from __future__ import annotations

import math
import os

import numpy as np

from rlkit.lessons.checks import NOT_DONE, close, report

__all__ = ["check_step_size", "check_sweep_steps", "check_sample_efficiency_ratio",
           "SWEEP_POINT", "RATIO_ENV"]

#: Exercise 2: the sweep point whose steps to 475 the student reads
SWEEP_POINT = {"delta": 1e-3, "eta_max": 0.25}
#: Exercise 3: the env of the sample-efficiency ratio (the paper's Table 2 has it)
RATIO_ENV = "InvertedPendulum-v5"


def _update_row(run_dir: str | os.PathLike, update: int) -> dict:
    from rlkit.experiments.runs import read_update_rows

    _, rows = read_update_rows(run_dir)
    matches = [row for row in rows if int(row["update"]) == int(update)]
    if not matches:
        raise ValueError(f"{run_dir} has no update {update}")
    return matches[0]


def check_step_size(answer, run_dir: str | os.PathLike, update: int) -> bool:
    """Exercise 1: η of ``update`` of the ACKTR run in ``run_dir`` from its logged q, η_max and the run's δ."""
    from rlkit.lessons.nb07_acktr_runs.demos import run_delta, step_size_from_row

    row = _update_row(run_dir, update)
    delta = run_delta(run_dir)
    what = f"η of update {update} (q = {float(row['quadratic']):.5g}, δ = {delta:g}, η_max = {float(row['eta_max']):g})"
    if answer is None:
        return report(False, what, NOT_DONE)
    expected = step_size_from_row(row, delta)
    ok, hint = close(answer, expected, rtol=1e-3, atol=0.0)
    q, eta_max = float(row["quadratic"]), float(row["eta_max"])
    if not ok and close(answer, math.sqrt(delta / q), rtol=1e-3, atol=0.0)[0]:
        hint = "that is sqrt(δ/q), the baselines rule; the paper's sets ½η²q = δ"
    elif not ok and close(answer, math.sqrt(2 * delta / q), rtol=1e-3, atol=0.0)[0]:
        hint = f"sqrt(2δ/q) is above η_max = {eta_max:g}: the cap takes over"
    elif not ok and close(answer, 2 * delta / q, rtol=1e-3, atol=0.0)[0]:
        hint = "2δ/q is η²; take the square root"
    elif not ok and close(answer, eta_max, rtol=1e-6, atol=0.0)[0]:
        hint = "the cap does not bind here: sqrt(2δ/q) < η_max"
    verdict = report(ok, what, hint)
    if ok:
        print(f"  (rlkit: effective_step_size(q, δ, η_max) = {expected:.6g}; updates.csv logged step_size = "
              f"{float(row['step_size']):.6g}, step_size_capped = {float(row['step_size_capped']):g}, "
              f"predicted KL ½η²q = {0.5 * expected ** 2 * q:.3g})")
    return verdict


def check_sweep_steps(answer, sweep=None, threshold: float = 475.0) -> bool:
    """Exercise 2: the median over seeds of the env steps to ``threshold`` at :data:`SWEEP_POINT` of the sweep
    (default: ``data/sweeps/acktr-delta-eta-max``), by :func:`rlkit.experiments.sweeps.steps_to_threshold` on each seed's curve."""
    from rlkit.experiments.sweeps import load_sweep, steps_to_threshold, sweep_point

    sweep = load_sweep("acktr-delta-eta-max") if sweep is None else sweep
    what = f"median steps to {threshold:g} at δ = {SWEEP_POINT['delta']:g}, η_max = {SWEEP_POINT['eta_max']:g}"
    if answer is None:
        return report(False, what, NOT_DONE)
    data = sweep_point(sweep, **SWEEP_POINT)
    per_seed = [steps_to_threshold(data["env_steps"], r, threshold) for r in data["returns"]]
    expected = float(np.median(per_seed))
    ok, hint = close(answer, expected, rtol=1e-9, atol=0.5)
    finite = [s for s in per_seed if math.isfinite(s)]
    if not ok and finite and close(answer, float(np.mean(per_seed)), rtol=1e-9, atol=0.5)[0]:
        hint = "that is the mean over seeds; the median is asked"
    elif not ok and finite and close(answer, min(finite), rtol=1e-9, atol=0.5)[0] and min(finite) != expected:
        hint = "that is the fastest seed; the median over the three is asked"
    elif not ok:
        mean_hit = steps_to_threshold(data["env_steps"], data["mean"], threshold)
        if math.isfinite(mean_hit) and close(answer, mean_hit, rtol=1e-9, atol=0.5)[0]:
            hint = "that is where the MEAN curve crosses; take each seed's crossing, then the median"
    verdict = report(ok, what, hint)
    if ok:
        print(f"  (rlkit: per seed {[int(s) if math.isfinite(s) else 'never' for s in per_seed]}; "
              f"sweep_grid(sweep, 'steps_to_threshold', threshold={threshold:g}) holds the same median)")
    return verdict


def _is_nan(answer) -> bool:
    try:
        return math.isnan(float(answer))
    except (TypeError, ValueError):
        return False


def check_sample_efficiency_ratio(answer, rows: list[dict] | None = None) -> bool:
    """Exercise 3: A2C's over ACKTR's median episodes to the threshold on :data:`RATIO_ENV`, from
    ``data/benchmarks/sample_efficiency.csv`` (``rows``: those rows, for tests).

    A seed that did not reach the threshold within its budget (empty ``episodes_to_threshold``) is
    censored: it needed more episodes than it ran, so it counts as +inf; the median over all seeds
    still exists when fewer than half the seeds are censored (the rule of
    :func:`rlkit.experiments.results.median_to_threshold`)."""
    from rlkit.experiments.results import (
        benchmark_rows,
        sample_efficiency_ratio,
    )

    rows = benchmark_rows("sample_efficiency") if rows is None else rows
    what = f"A2C/ACKTR median episodes to the threshold on {RATIO_ENV}"
    if answer is None:
        return report(False, what, NOT_DONE)
    expected = sample_efficiency_ratio(rows, RATIO_ENV, unit="episodes")
    ok, hint = close(answer, expected, rtol=2e-3, atol=0.0)
    steps = sample_efficiency_ratio(rows, RATIO_ENV, unit="steps")

    def reached(algorithm):
        values = [r["episodes_to_threshold"] for r in rows if r["env"] == RATIO_ENV and r["algorithm"] == algorithm]
        return [v for v in values if not math.isnan(v)], len(values)

    (a2c, n_a2c), (acktr, n_acktr) = reached("a2c"), reached("acktr")
    censored = len(a2c) < n_a2c or len(acktr) < n_acktr
    if not ok and close(answer, steps, rtol=2e-3, atol=0.0)[0]:
        hint = "that is the ratio of env steps; the paper's Table 2 (and this exercise) counts episodes"
    elif not ok and close(answer, 1 / expected, rtol=2e-3, atol=0.0)[0]:
        hint = "upside down: A2C's episodes over ACKTR's"
    elif not ok and close(answer, np.mean(a2c) / np.mean(acktr), rtol=2e-3, atol=0.0)[0]:
        hint = "that is the ratio of the means; use the medians over seeds"
        if censored:
            hint += " (a seed that never reached the threshold has no finite mean to join; it counts as +inf)"
    elif not ok and censored and _is_nan(answer):
        hint = ("NaN: the censored seed's empty episodes_to_threshold is NaN, and np.median of a list with a NaN is "
                "NaN; count that seed as +inf (it needed more episodes than it ran) before taking the median")
    elif not ok and censored and close(answer, np.median(a2c) / np.median(acktr), rtol=2e-3, atol=0.0)[0]:
        hint = ("you left out the seed that did not reach the threshold: it needed more episodes than it ran, "
                "so count it as +inf (censored) and take the median over all seeds")
    verdict = report(ok, what, hint)
    if ok:
        from rlkit.experiments.data import find_row, load_table

        paper = find_row(load_table("acktr_table2_mujoco"), gym_id=RATIO_ENV)
        print(f"  (rlkit: sample_efficiency_ratio = {expected:.3f} in episodes, {steps:.3f} in env steps; the paper's "
              f"Table 2: {paper['a2c_episodes_to_threshold']:.0f} / {paper['acktr_episodes_to_threshold']:.0f} = "
              f"{paper['a2c_episodes_to_threshold'] / paper['acktr_episodes_to_threshold']:.3f})")
    return verdict
