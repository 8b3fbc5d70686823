"""Learning curves of run directories: mean ± std over seeds, by env steps and by wall time.

``plot_learning_curves(run_dirs)`` is what ``python -m rlkit plot`` draws and what a notebook
calls (it returns the matplotlib ``Figure``; ``out=`` also writes it to a file).
``learning_curves(run_dirs)`` returns the numbers behind the picture.

How a curve is made. Runs are grouped by (algorithm, env); each group is one line. For one run,
the curve at x (env steps, or seconds of wall time) is the mean raw return of the last ``window``
episodes that ended at or before x (undefined before its first episode). The group's line is the
mean over its runs at each of ``points`` evenly spaced x, up to the end of its shortest run (so
every seed counts at every point), and the band is ± one standard deviation over the runs
(population std; zero for a single run).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from rlkit.experiments.runs import CONFIG_FILE, EPISODES_FILE, RunError, read_config, read_csv

__all__ = ["RunCurve", "CurveGroup", "find_runs", "load_run", "learning_curves", "plot_learning_curves",
           "smoothed_returns", "value_at"]

AXES = (("env_steps", "env steps"), ("wall_time_s", "wall time (s)"))


@dataclass
class RunCurve:
    """One run's completed episodes."""

    run_dir: Path
    algorithm: str
    env: str
    seed: int
    env_steps: np.ndarray
    wall_time_s: np.ndarray
    returns: np.ndarray


@dataclass
class CurveGroup:
    """Runs of one algorithm on one env: per axis, the grid and the mean and std over runs."""

    algorithm: str
    env: str
    runs: list[RunCurve]
    x: dict[str, np.ndarray]
    mean: dict[str, np.ndarray]
    std: dict[str, np.ndarray]

    @property
    def label(self) -> str:
        n = len(self.runs)
        return f"{self.algorithm} on {self.env} ({n} seed{'s' if n != 1 else ''})"


def find_runs(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Run directories among ``paths``; a directory that is not a run stands for the runs inside it."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    found = []
    for path in map(Path, paths):
        if (path / CONFIG_FILE).is_file():
            found.append(path)
        elif path.is_dir() and (inside := sorted(p for p in path.iterdir() if (p / CONFIG_FILE).is_file())):
            found.extend(inside)
        else:
            read_config(path)  # raises the RunError that says what is wrong with it
    return found


def load_run(run_dir: str | os.PathLike) -> RunCurve:
    config = read_config(run_dir)
    path = Path(run_dir) / EPISODES_FILE
    try:
        _, rows = read_csv(path) if path.exists() else ([], [])
        columns = {key: np.array([float(row[key]) for row in rows]) for key in ("env_steps", "wall_time_s", "episode_return")}
    except (KeyError, ValueError, OSError) as error:
        raise RunError(f"cannot read {path}: {error}") from error
    return RunCurve(Path(run_dir), config["algorithm"], config["env"], config["seed"], columns["env_steps"],
                    columns["wall_time_s"], columns["episode_return"])


def smoothed_returns(returns: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last ``window`` returns at each episode."""
    sums = np.cumsum(np.concatenate([[0.0], returns]))
    counts = np.minimum(np.arange(1, len(returns) + 1), window)
    ends = np.arange(1, len(returns) + 1)
    return (sums[ends] - sums[ends - counts]) / counts


def value_at(x_events: np.ndarray, values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """The value of the last event at or before each grid point (NaN before the first)."""
    index = np.searchsorted(x_events, grid, side="right") - 1
    out = np.full(grid.shape, np.nan)
    out[index >= 0] = values[index[index >= 0]]
    return out


def learning_curves(run_dirs: Sequence[str | os.PathLike], window: int = 10, points: int = 200) -> list[CurveGroup]:
    """The curves of :func:`plot_learning_curves` (see the module docstring), one group per (algorithm, env)."""
    if window < 1 or points < 2:
        raise ValueError(f"window must be >= 1 and points >= 2; got window={window}, points={points}")
    runs = [load_run(path) for path in find_runs(run_dirs)]
    if not runs:
        raise RunError("no run directories given")
    empty = [str(run.run_dir) for run in runs if len(run.returns) == 0]
    runs = [run for run in runs if len(run.returns) > 0]
    if not runs:
        raise RunError(f"no completed episode in {', '.join(empty)}: nothing to plot yet")
    groups: dict[tuple[str, str], list[RunCurve]] = {}
    for run in runs:
        groups.setdefault((run.algorithm, run.env), []).append(run)
    result = []
    for (algorithm, env), members in groups.items():
        x, mean, std = {}, {}, {}
        for axis, _ in AXES:
            end = min(float(getattr(run, axis)[-1]) for run in members)
            grid = np.linspace(0.0, end, points)
            curves = np.stack([value_at(getattr(run, axis), smoothed_returns(run.returns, window), grid) for run in members])
            defined = ~np.isnan(curves).any(axis=0)  # every run has an episode by then
            x[axis] = grid[defined]
            mean[axis] = curves[:, defined].mean(axis=0)
            std[axis] = curves[:, defined].std(axis=0)
        result.append(CurveGroup(algorithm, env, members, x, mean, std))
    return result


def plot_learning_curves(run_dirs: Sequence[str | os.PathLike], out: str | os.PathLike | None = None, *,
                         window: int = 10, points: int = 200, axes=None, title: str | None = None):
    """Draw mean ± std learning curves, by env steps (left) and by wall time (right).

    ``run_dirs``: run directories (or directories holding runs). ``axes``: two matplotlib axes to
    draw into (default: a new figure). ``out``: also save the figure there (PNG by its suffix).
    Returns the figure.
    """
    import matplotlib.pyplot as plt

    groups = learning_curves(run_dirs, window=window, points=points)
    if axes is None:
        figure, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    else:
        figure = axes[0].figure
    for group in groups:
        for ax, (axis, _) in zip(axes, AXES):
            line, = ax.plot(group.x[axis], group.mean[axis], label=group.label)
            ax.fill_between(group.x[axis], group.mean[axis] - group.std[axis], group.mean[axis] + group.std[axis],
                            color=line.get_color(), alpha=0.25, linewidth=0)
    for ax, (_, xlabel) in zip(axes, AXES):
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"episode return (mean of last {window})")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="best", fontsize="small")
    figure.suptitle(title or "learning curves: mean ± std over seeds")
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(out, dpi=120)
    return figure

