"""The committed results under ``data/``: rows of a benchmark (``data/benchmarks/NAME.csv``) and a
laptop reproduction (``data/reproductions/NAME/``), read typed, and the medians and ratios
of steps to a threshold that the README and the notebooks quote from them (a seed that never
reached the threshold counts as +inf, never dropped: the upper end of the censoring rule of
``rlkit.experiments.run_stats``, which also gives their intervals; :func:`values_to_threshold` hands
a benchmark's runs to it).
"""
from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlkit.experiments.report import run_final_return as final_return  # noqa: F401 - the notebook reads them from here
from rlkit.experiments.report import run_steps_to_threshold as steps_to_threshold  # noqa: F401
from rlkit.experiments.runs import read_episodes as run_episodes  # noqa: F401

REPRODUCTION_FILES = ("report.md", "learning_curves.png", "rows.csv", "runs.csv")


@dataclass
class Reproduction:
    """The four files ``python -m rlkit report`` keeps of a grid (``data/reproductions/<name>/``):
    ``rows`` (rows.csv: the table's numbers), ``runs`` (runs.csv: one row per run), ``markdown``
    (report.md) and ``figure`` (the path of learning_curves.png). Numbers are floats (NaN where empty)."""

    name: str
    rows: list[dict]
    runs: list[dict]
    markdown: str
    figure: Path

    @property
    def scale(self) -> str:
        """The scale the report says it was made at (``smoke``, ``laptop``, ``paper``)."""
        marker = "Scale: **"
        start = self.markdown.find(marker)
        return self.markdown[start + len(marker):self.markdown.find("**", start + len(marker))] if start >= 0 else "?"


def _typed(row: dict) -> dict:
    out = {}
    for key, value in row.items():
        try:
            out[key] = float(value) if value != "" else math.nan
        except (TypeError, ValueError):
            out[key] = value
    return out


def _read_rows(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as file:
        return [_typed(row) for row in csv.DictReader(file)]


def load_reproduction(name: str, data_dir: str | os.PathLike | None = None) -> Reproduction:
    """Read ``data/reproductions/<name>/`` (only its four files, :data:`REPRODUCTION_FILES`)."""
    from rlkit.experiments.data import data_dir as locate

    folder = locate(data_dir) / "reproductions" / name
    missing = [f for f in REPRODUCTION_FILES if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} lacks {', '.join(missing)}; make it with python -m rlkit reproduce "
                                f"and python -m rlkit report (data/reproductions/README.md)")
    return Reproduction(name, _read_rows(folder / "rows.csv"), _read_rows(folder / "runs.csv"),
                        (folder / "report.md").read_text(encoding="utf-8"), folder / "learning_curves.png")


def benchmark_rows(name: str, data_dir: str | os.PathLike | None = None) -> list[dict]:
    """``data/benchmarks/<name>.csv`` (``sample_efficiency``, ``throughput``) as typed rows."""
    from rlkit.experiments.data import data_dir as locate

    return _read_rows(locate(data_dir) / "benchmarks" / f"{name}.csv")


def labelled_by_preset(rows: list[dict]) -> list[dict]:
    """The rows with a kit agent trained at a named preset other than its env family's (``classic``, ``mujoco``,
    ``atari``) renamed ``ALGO@PRESET`` (``a2c@classic-tuned``), so that a table keeps it apart from the same agent
    at the family's preset; the peers' rows (``sb3-ppo``, ...) and rows already labelled are left as they are."""
    from rlkit.agents import AGENTS, FAMILY_PRESETS

    family_presets = {"classic", *FAMILY_PRESETS.values()}
    return [{**r, "algorithm": f"{r['algorithm']}@{r['preset']}"}
            if r["algorithm"] in AGENTS and r["preset"] not in family_presets else r for r in rows]


def values_to_threshold(rows: list[dict], env: str, algorithm: str, column: str) -> tuple[np.ndarray, np.ndarray]:
    """(values, censored) of ``column`` (``env_steps_to_threshold`` or ``episodes_to_threshold``) over the seeds of
    ``algorithm`` on ``env`` in the rows of :func:`benchmark_rows`, for ``rlkit.experiments.run_stats``: a censored
    seed (NaN) is put at its budget (``budget`` env steps, ``episodes_in_budget`` episodes) and marked."""
    from rlkit.experiments.run_stats import censor

    mine = [r for r in rows if r["env"] == env and r["algorithm"] == algorithm]
    if not mine:
        raise ValueError(f"no {algorithm} rows for {env}")
    budget = "budget" if column.startswith("env_steps") else "episodes_in_budget"
    return censor([r[column] for r in mine], [r[budget] for r in mine])


def median_to_threshold(rows: list[dict], env: str, algorithm: str, column: str) -> float:
    """Median over seeds of ``column`` (``env_steps_to_threshold`` or ``episodes_to_threshold``) of the rows of
    :func:`benchmark_rows`: a censored seed (NaN: not reached within its budget) counts as +inf, so the
    median is ``inf`` when half the seeds or more are censored."""
    values = [r[column] for r in rows if r["env"] == env and r["algorithm"] == algorithm]
    if not values:
        raise ValueError(f"no {algorithm} rows for {env}")
    values = [v if not math.isnan(v) else math.inf for v in values]
    return float(np.median(values))


def sample_efficiency_ratio(rows: list[dict], env: str, numerator: str = "a2c", denominator: str = "acktr",
                            unit: str = "episodes") -> float:
    """median(numerator) / median(denominator) of the samples to the threshold, over seeds, from the rows of
    ``data/benchmarks/sample_efficiency.csv``; ``unit``: ``"episodes"`` (the paper's Table 2) or ``"steps"``."""
    column = {"episodes": "episodes_to_threshold", "steps": "env_steps_to_threshold"}[unit]
    return median_to_threshold(rows, env, numerator, column) / median_to_threshold(rows, env, denominator, column)
