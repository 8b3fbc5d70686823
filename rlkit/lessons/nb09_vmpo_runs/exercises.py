"""Exercise checks for notebook 09 (full V-MPO runs).

The data are the notebook's own: a run directory it trained (``updates.csv``, ``config.json``) and
the ε_η × ε_α sweep (:func:`rlkit.experiments.sweeps.load_sweep`). Each check takes the student's answer
(``None`` while the exercise is not done: the check says so and returns False, it does not raise)
and the data, computes the expected value with rlkit (:mod:`rlkit.lessons.nb09_vmpo_runs.demos`,
:mod:`rlkit.experiments.sweeps`) and prints ✓ or ✗ with a hint naming the typical mistake.
"""
from __future__ import annotations

import math
import os

import numpy as np

from rlkit.lessons.checks import NOT_DONE, close, report

__all__ = ["expected_temperature_dual", "check_temperature_dual", "expected_mstep_ratio", "check_mstep_ratio",
           "fastest_points", "check_fastest_point"]


# ----------------------------------------------------------------------------- exercise 1


def _row(run_dir, update: int) -> dict[str, float]:
    from rlkit.lessons.nb09_vmpo_runs.demos import read_updates

    u = read_updates(run_dir)
    index = np.flatnonzero(u["update"] == update)
    if not len(index):
        raise ValueError(f"{run_dir} has no update {update} "
                         f"(it has updates {int(u['update'][0])}…{int(u['update'][-1])})")
    return {name: float(values[index[0]]) for name, values in u.items()}


def expected_temperature_dual(run_dir: str | os.PathLike, update: int) -> tuple[float, float]:
    """(dL_η/dη, H(ψ)) at ``update`` of a V-MPO run: ε_η − KL(ψ ‖ U) and log k − KL(ψ ‖ U), with the
    KL (``estep_kl``) and k (``num_selected``) from its updates.csv and ε_η from its config.json."""
    from rlkit.lessons.nb09_vmpo_runs.demos import run_budgets

    row = _row(run_dir, update)
    eps_eta = run_budgets(run_dir)["eps_eta"]
    return eps_eta - row["estep_kl"], math.log(row["num_selected"]) - row["estep_kl"]


def check_temperature_dual(answer, run_dir: str | os.PathLike, update: int) -> bool:
    """Exercise 1: ``[dL_η/dη, H(ψ)]`` at row ``update`` of the run's updates.csv."""
    what = f"[dL_η/dη, H(ψ)] at update {update}"
    if answer is None:
        return report(False, what, NOT_DONE)
    grad, entropy = expected_temperature_dual(run_dir, update)
    ok, hint = close(answer, [grad, entropy], rtol=1e-3, atol=1e-5)
    if not ok:
        row = _row(run_dir, update)
        kl, k = row["estep_kl"], row["num_selected"]
        if close(answer, [-grad, entropy], rtol=1e-3, atol=1e-5)[0]:
            hint = ("the sign of the derivative: dL_η/dη = ε_η − KL (a KL above budget makes it negative, "
                    "so η grows)")
        elif close(answer, [grad, math.log(2 * k) - kl], rtol=1e-3, atol=1e-5)[0]:
            hint = "k is the number of SELECTED samples (num_selected), not the whole batch"
        elif close(answer, [grad, math.log(k) + kl], rtol=1e-3, atol=1e-5)[0]:
            hint = "KL(ψ ‖ U) = log k − H(ψ), so H(ψ) = log k − KL"
        elif close(answer, [grad, math.log2(k) - kl], rtol=1e-3, atol=1e-5)[0]:
            hint = "natural logarithms: the KL is in nats"
    verdict = report(ok, what, hint)
    if ok:
        row = _row(run_dir, update)
        print(f"  (updates.csv: estep_kl = {row['estep_kl']:.4f}; the E-step spreads its weight over about "
              f"exp(H) = {math.exp(entropy):.1f} of the k = {int(row['num_selected'])} selected samples)")
    return verdict


# ----------------------------------------------------------------------------- exercise 2


def expected_mstep_ratio(run_dir: str | os.PathLike) -> float:
    """The mean of ``mstep_kl`` over all the run's updates divided by its ``eps_alpha`` (a categorical policy)."""
    from rlkit.lessons.nb09_vmpo_runs.demos import read_updates, run_budgets

    u = read_updates(run_dir)
    if "mstep_kl" not in u:
        raise ValueError(f"{run_dir} is not a categorical V-MPO run (its updates.csv has no mstep_kl column)")
    return float(np.mean(u["mstep_kl"])) / run_budgets(run_dir)["eps_alpha"]


def check_mstep_ratio(answer, run_dir: str | os.PathLike) -> bool:
    """Exercise 2: mean M-step KL over training ÷ ε_α."""
    what = "mean M-step KL over training / ε_α"
    if answer is None:
        return report(False, what, NOT_DONE)
    from rlkit.lessons.nb09_vmpo_runs.demos import read_updates, run_budgets

    expected = expected_mstep_ratio(run_dir)
    ok, hint = close(answer, expected, rtol=5e-3, atol=1e-6)  # three significant digits are enough
    if not ok:
        kl, eps = read_updates(run_dir)["mstep_kl"], run_budgets(run_dir)["eps_alpha"]
        if close(answer, 1 / expected, rtol=1e-3, atol=1e-6)[0]:
            hint = "upside down: the KL divided by ε_α"
        elif close(answer, float(kl[kl > 0].mean()) / eps, rtol=1e-3, atol=1e-6)[0]:
            hint = ("that leaves out the updates right after a target refresh, where the KL is 0; they are part of "
                    "the saw-tooth ε_α bounds: average over all updates")
        elif close(answer, float(kl[-1]) / eps, rtol=1e-3, atol=1e-6)[0]:
            hint = "that is the last update only; average over all updates"
        elif close(answer, float(np.median(kl)) / eps, rtol=1e-3, atol=1e-6)[0]:
            hint = "that is the median; the exercise asks for the mean"
    verdict = report(ok, what, hint)
    if ok:
        factor = max(expected, 1 / expected) if expected > 0 else math.inf
        print(f"  (ratio {expected:.3f}: the mean KL is within a factor {factor:.1f} of ε_α, "
              f"{'below' if expected < 1 else 'above'} it)")
    return verdict


# ----------------------------------------------------------------------------- exercise 3


def fastest_points(sweep, threshold: float | None = None) -> list[tuple[float, float]]:
    """The (ε_η, ε_α) points of the sweep with the fewest median env steps to ``threshold`` (all of them
    if several tie), by :func:`rlkit.experiments.sweeps.sweep_grid`; [] if no point reaches it."""
    from rlkit.experiments.sweeps import sweep_grid

    threshold = sweep.meta.get("threshold") if threshold is None else threshold
    grid = sweep_grid(sweep, "steps_to_threshold", threshold)
    values = grid["values"]
    finite = np.isfinite(values)
    if not finite.any():
        return []
    best = values[finite].min()
    points = [(float(grid["x_values"][j]), float(grid["y_values"][i])) for i, j in zip(*np.nonzero(values == best))]
    return sorted(points) if grid["x"] == "eps_eta" else sorted((b, a) for a, b in points)


def check_fastest_point(answer, sweep, threshold: float | None = None) -> bool:
    """Exercise 3: ``(eps_eta, eps_alpha)`` of the swept point that reaches the threshold in the fewest
    median env steps."""
    threshold = sweep.meta.get("threshold") if threshold is None else threshold
    what = f"the (eps_eta, eps_alpha) with the fewest median steps to {threshold:g}"
    if answer is None:
        return report(False, what, NOT_DONE)
    best = fastest_points(sweep, threshold)
    if not best:
        return report(False, what, f"no point of this sweep reaches {threshold:g}")
    ok = any(close(answer, point, rtol=1e-3, atol=0.0)[0] for point in best)
    hint = close(answer, best[0], rtol=1e-3, atol=0.0)[1]
    if not ok:
        from rlkit.experiments.sweeps import sweep_grid

        grid = sweep_grid(sweep, "steps_to_threshold", threshold)
        fewest = grid["values"][np.isfinite(grid["values"])].min()
        steps = {(float(x), float(y)): grid["values"][i, j] for i, y in enumerate(grid["y_values"])
                 for j, x in enumerate(grid["x_values"])}
        if grid["x"] != "eps_eta":
            steps = {(b, a): v for (a, b), v in steps.items()}
        mine = [v for point, v in steps.items() if close(answer, point, rtol=1e-3, atol=0.0)[0]]
        if any(close(answer, point[::-1], rtol=1e-3, atol=0.0)[0] for point in best):
            hint = "the order: (eps_eta, eps_alpha)"
        elif close(answer, (0.1, 0.01), rtol=1e-3, atol=0.0)[0]:
            hint = (f"that is the classic preset's point (median {mine[0]:,.0f} steps); the fewest is "
                    f"{fewest:,.0f}: read the sweep")
        elif mine:
            needs = ("too few seeds reach it (median: never)" if not np.isfinite(mine[0])
                     else f"the median is {mine[0]:,.0f} steps")
            hint = f"at that point {needs}; the fewest is {fewest:,.0f}"
    verdict = report(ok, what, hint)
    if ok:
        from rlkit.experiments.sweeps import sweep_grid

        steps = sweep_grid(sweep, "steps_to_threshold", threshold)["values"]
        others = [p for p in best if not close(answer, p, rtol=1e-3, atol=0.0)[0]]
        print(f"  (median {np.nanmin(steps[np.isfinite(steps)]):,.0f} env steps over the sweep's seeds"
              + (f"; tied with {others}" if others else "") + ")")
    return verdict
