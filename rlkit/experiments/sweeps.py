r"""Precomputed sweeps: learning curves over a hyperparameter grid, read by the notebooks' sliders.

``python -m rlkit sweep NAME`` trains every point of a grid (``rlkit.experiments.registry``: δ × η_max for
ACKTR, ε_η × ε_α for V-MPO, on CartPole-v1, 3 seeds each) and writes ``data/sweeps/NAME.csv`` (one
row per run and curve point: the axes' values, seed, env steps, the mean return of the last 10
episodes, per-update diagnostics averaged between points) and ``NAME.json`` (the command, the
axes, the versions). This module reads them back:

* :func:`load_sweep` → a :class:`Sweep` (columns as numpy arrays, the axes' grids);
* :func:`sweep_point` → the curves at the grid point nearest to the given values (nearest in
  log10 for the log-scaled axes δ, ε_η, ε_α; linearly for η_max): per seed and mean ± std;
* :func:`sweep_grid` → one number per grid point (final return, steps to a threshold, a
  diagnostic's mean), averaged over seeds: the heatmap beside the curves.

A slider over a sweep only selects and draws: no training, well under half a second.
"""
from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlkit.experiments.runs import RunError, read_csv

__all__ = ["Sweep", "load_sweep", "sweep_point", "sweep_grid", "steps_to_threshold", "LOG_AXES", "sweep_path"]

LOG_AXES = ("delta", "eps_eta", "eps_alpha")  # hyperparameters swept on a log grid (and shown on log sliders)


@dataclass
class Sweep:
    """A sweep table: ``columns`` (name → array; empty cells NaN), ``axes`` (name → sorted grid values),
    ``meta`` (the .json: command, env, steps, seeds, what each column means)."""

    name: str
    columns: dict[str, np.ndarray]
    axes: dict[str, np.ndarray]
    meta: dict

    @property
    def seeds(self) -> np.ndarray:
        return np.unique(self.columns["seed"]).astype(int)

    @property
    def diagnostics(self) -> list[str]:
        fixed = {*self.axes, "env", "seed", "env_steps", "episode_return", "episodes"}
        return [name for name in self.columns if name not in fixed]


def sweep_path(name: str, data_dir: str | os.PathLike | None = None) -> Path:
    """``data/sweeps/NAME.csv`` (``data_dir``: another data folder, as in ``rlkit.experiments.data``)."""
    from rlkit.experiments.data import data_dir as locate

    return locate(data_dir) / "sweeps" / f"{name}.csv"


def load_sweep(name_or_path: str | os.PathLike, data_dir: str | os.PathLike | None = None) -> Sweep:
    """Read a sweep table by name (``"acktr-delta-eta-max"``) or by the path of its CSV."""
    path = Path(name_or_path)
    if path.suffix != ".csv":
        path = sweep_path(str(name_or_path), data_dir)
    if not path.is_file():
        raise RunError(f"no sweep table {path}; make it with python -m rlkit sweep {path.stem}")
    meta = _read_meta(path.with_suffix(".json"))
    header, columns = _read_table(path, [*REQUIRED_COLUMNS, *meta.get("axes", {})])
    axes = meta.get("axes") or {}
    for name, declared in axes.items():
        found = np.unique(columns[name])
        extra = [v for v in found if not np.isclose(declared, v, rtol=1e-6, atol=0.0).any()]
        if extra:
            raise RunError(f"{path.with_suffix('.json')} declares the {name} values {declared}, but {path} has "
                           f"{', '.join(f'{v:g}' for v in extra)} too: the two files are not of one sweep")
    return Sweep(path.stem, columns, {name: np.unique(columns[name]) for name in axes}, meta)


TEXT_COLUMNS = ("env",)  # the only columns of a sweep table that are not numbers
REQUIRED_COLUMNS = ("seed", "env_steps", "episode_return")


def _read_meta(meta_path: Path) -> dict:
    """The sweep's .json (``{}`` if there is none), checked: a JSON object whose ``axes`` maps names to lists of numbers."""
    if not meta_path.is_file():
        return {}
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise RunError(f"{meta_path} is not readable JSON ({str(error).splitlines()[0]})") from None
    if not isinstance(meta, dict):
        raise RunError(f"{meta_path} must hold a JSON object; got {type(meta).__name__}")
    axes = meta.get("axes", {})
    if not isinstance(axes, dict) or not all(
            isinstance(values, list) and values and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                        for v in values) for values in axes.values()):
        raise RunError(f"{meta_path}: 'axes' must map each swept hyperparameter to a list of numbers; got {axes!r}")
    return meta


def _read_table(path: Path, required) -> tuple[list[str], dict[str, np.ndarray]]:
    """The sweep CSV as float columns (text only in :data:`TEXT_COLUMNS`), every cell checked."""
    try:
        header, rows = read_csv(path)
    except UnicodeDecodeError as error:
        raise RunError(f"{path}: not UTF-8 text at byte {error.start} (a damaged file)") from None
    except (OSError, csv.Error) as error:
        raise RunError(f"cannot read {path} as CSV: {error}") from None
    if not header:
        raise RunError(f"{path} is empty: a sweep table needs a header and rows")
    duplicated = sorted({name for name in header if header.count(name) > 1})
    missing = [name for name in dict.fromkeys(required) if name not in header]
    if duplicated or missing:
        raise RunError(f"{path}, line 1: " + (f"columns {duplicated} appear twice" if duplicated else
                                             f"no column {', '.join(missing)} (renamed or missing)"))
    numbers = {name: np.empty(len(rows)) for name in header if name not in TEXT_COLUMNS}
    for i, row in enumerate(rows):
        line = i + 2
        if None in row or any(value is None for value in row.values()):
            raise RunError(f"{path}, line {line}: {len(header)} cells expected (a row cut short or a junk row)")
        for name in numbers:
            cell = row[name].strip()
            try:
                numbers[name][i] = float(cell) if cell != "" else np.nan
            except ValueError:
                raise RunError(f"{path}, line {line}, column {name}: {cell!r} is not a number") from None
            if cell == "" and name in required and name != "episode_return":
                raise RunError(f"{path}, line {line}, column {name}: empty (every row needs its {name})")
    columns = {name: numbers[name] if name in numbers else np.array([row[name] for row in rows]) for name in header}
    return header, columns


def _nearest_point(sweep: Sweep, values: dict[str, float]) -> dict[str, float]:
    """The swept point nearest to ``values``: distance in log10 on the log axes, in units of the axis's
    range on the others (a sweep may hold only part of the product of its axes)."""
    names = list(sweep.axes)
    points = np.unique(np.stack([sweep.columns[name] for name in names], axis=1), axis=0)
    distance = np.zeros(len(points))
    for k, name in enumerate(names):
        value = float(values[name])
        if name in LOG_AXES:
            if value <= 0:
                raise ValueError(f"{name} must be > 0 (a log-scaled hyperparameter); got {value}")
            distance += (np.log10(points[:, k]) - math.log10(value)) ** 2
        else:
            span = float(np.ptp(sweep.axes[name])) or 1.0
            distance += ((points[:, k] - value) / span) ** 2
    best = points[int(np.argmin(distance))]
    return {name: float(best[k]) for k, name in enumerate(names)}


def _rows_at(sweep: Sweep, point: dict[str, float]) -> np.ndarray:
    mask = np.ones(len(sweep.columns["seed"]), dtype=bool)
    for name, value in point.items():
        mask &= np.isclose(sweep.columns[name], value, rtol=1e-9, atol=0.0)
    return mask


def sweep_point(sweep: Sweep, **values: float) -> dict:
    """The curves at the grid point nearest to ``values`` (every axis must be given).

    Returns ``{"asked": values, "point": {axis: grid value used}, "env_steps": (P,), "returns": (S, P)
    per seed, "mean": (P,), "std": (P,), "diagnostics": {name: (S, P)}, "seeds": (S,)}``. A point's
    return is the mean of the last 10 episodes ended by then (of fewer before the 10th episode); NaN
    before a seed's first episode (the mean and std skip it).
    """
    missing = [axis for axis in sweep.axes if axis not in values]
    unknown = [name for name in values if name not in sweep.axes]
    if missing or unknown:
        raise ValueError(f"sweep {sweep.name} has axes {', '.join(sweep.axes)}; "
                         + (f"missing {', '.join(missing)}" if missing else f"unknown {', '.join(unknown)}"))
    point = _nearest_point(sweep, values)
    mask = _rows_at(sweep, point)
    seeds = np.unique(sweep.columns["seed"][mask]).astype(int)
    per_seed = [mask & (sweep.columns["seed"] == seed) for seed in seeds]
    steps = sweep.columns["env_steps"][per_seed[0]]
    returns = np.stack([sweep.columns["episode_return"][m] for m in per_seed])
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (no episode yet) stay NaN
            mean, std = np.nanmean(returns, axis=0), np.nanstd(returns, axis=0)
    return {"asked": dict(values), "point": point, "env_steps": steps, "returns": returns, "mean": mean, "std": std,
            "diagnostics": {name: np.stack([sweep.columns[name][m] for m in per_seed]) for name in sweep.diagnostics},
            "seeds": seeds}


def steps_to_threshold(env_steps: np.ndarray, returns: np.ndarray, threshold: float) -> float:
    """The first curve point whose (last-10-episode) mean return reaches ``threshold``; ``inf`` if none."""
    reached = np.flatnonzero(np.nan_to_num(returns, nan=-np.inf) >= threshold)
    return float(env_steps[reached[0]]) if len(reached) else math.inf


def sweep_grid(sweep: Sweep, metric="final_return", threshold: float | None = None) -> dict:
    """One number per grid point, averaged over seeds, as a 2-D array over the first two axes.

    ``metric``: ``"final_return"`` (the last point of the curve), ``"steps_to_threshold"`` (median
    over seeds of :func:`steps_to_threshold`; ``inf`` when most seeds never reach it), a diagnostic's
    name (its mean over the whole run), or a function of a point's :func:`sweep_point` dict returning
    one number (``metric`` is then its ``__name__`` in the result). Returns ``{"x": axis name, "y": axis name, "x_values",
    "y_values", "values": (len(y_values), len(x_values))}``.
    """
    if len(sweep.axes) != 2:
        raise ValueError(f"sweep_grid needs a two-axis sweep; {sweep.name} has {len(sweep.axes)}")
    (x, x_values), (y, y_values) = sweep.axes.items()
    values = np.full((len(y_values), len(x_values)), np.nan)
    present = {tuple(p) for p in np.stack([sweep.columns[x], sweep.columns[y]], axis=1)}
    for i, yv in enumerate(y_values):
        for j, xv in enumerate(x_values):
            if (xv, yv) not in present:
                continue  # a partial sweep: no run at this point
            data = sweep_point(sweep, **{x: xv, y: yv})
            if callable(metric):
                values[i, j] = metric(data)
            elif metric == "final_return":
                last = data["returns"][:, -1]
                values[i, j] = np.mean(last[~np.isnan(last)]) if (~np.isnan(last)).any() else np.nan
            elif metric == "steps_to_threshold":
                if threshold is None:
                    raise ValueError("metric 'steps_to_threshold' needs a threshold")
                values[i, j] = np.median([steps_to_threshold(data["env_steps"], r, threshold) for r in data["returns"]])
            elif metric in data["diagnostics"]:
                numbers = data["diagnostics"][metric]
                values[i, j] = np.mean(numbers[~np.isnan(numbers)]) if (~np.isnan(numbers)).any() else np.nan
            else:
                raise ValueError(f"metric must be final_return, steps_to_threshold or one of {sweep.diagnostics}; "
                                 f"got {metric!r}")
    name = getattr(metric, "__name__", "custom") if callable(metric) else metric
    return {"x": x, "y": y, "x_values": x_values, "y_values": y_values, "values": values, "metric": name}
