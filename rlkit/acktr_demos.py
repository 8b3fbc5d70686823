r"""Small plain pieces behind notebook 07 (ACKTR runs): training side by side, reading run
directories, the sweep's stability map, and the paper's Tables 1–3 beside our measurements.

Nothing here is an algorithm of its own: training is :func:`rlkit.train.train`, the step-size rule
:func:`rlkit.trust_region.effective_step_size`, the threshold rule
:func:`rlkit.report.threshold_crossing`, the sweep tables :mod:`rlkit.sweeps`, the papers' tables
:mod:`rlkit.data`. This module reads the files those write, so that the notebook stays short and
the numbers behind its pictures are tested (``tests/test_acktr_demos.py``).

Conventions
-----------
* **Step size** (paper convention, ``trust_region_convention="paper"``, the kit's default): with the
  natural-gradient direction Δ = F̂⁻¹g and q = ΔᵀF̂Δ = gᵀF̂⁻¹g (``quadratic`` in updates.csv)

      η = min(η_max, sqrt(2δ / q)),     predicted KL = ½ η² q  (= δ while the cap is inactive).

  ``eta_capped`` is 1 when η = η_max. ``measured_kl`` is KL(π_old ‖ π_new) on the batch after the
  step; measured / predicted is how far K-FAC's quadratic model is from the real KL.
* **Steps to a threshold** (the paper's rule, as ``python -m rlkit report``): the smallest N with
  mean(returns[N … N+window−1]) ≥ threshold; the env steps when episode N+window−1 ended. ``None``:
  never reached (a censored run).
* **Sample-efficiency ratio** X/ACKTR: how many times ACKTR's samples (env steps, or episodes as in
  the paper's Table 2) method X needs to reach the threshold; > 1 means ACKTR is more efficient.
* **Time ratio** ACKTR/A2C (the paper's Table 3 claim, "at most 25 % more time per step"): A2C's
  timesteps per second over ACKTR's, i.e. ACKTR's time per step over A2C's.
* **K-FAC factor sizes**: a layer s = W a with W of shape (C_out, C_in) has factors A of size
  (C_in + 1)² (the trailing 1 for the bias; for a convolution C_in = channels × kernel height ×
  kernel width) and S of size C_out²; its exact Fisher block has ((C_in + 1)·C_out)² entries.
"""
from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from rlkit.report import run_final_return as final_return  # noqa: F401 - the notebook reads them from here
from rlkit.report import run_steps_to_threshold as steps_to_threshold  # noqa: F401
from rlkit.runs import read_columns, read_config
from rlkit.runs import read_episodes as run_episodes  # noqa: F401

__all__ = [
    "ALGORITHMS", "LABELS", "REPRODUCTION_FILES",
    "train_runs", "run_columns", "run_episodes", "steps_to_threshold", "final_return",
    "kl_summary", "rolling_median", "time_split", "step_size_from_row",
    "sweep_late_returns",
    "kfac_layer_sizes",
    "Reproduction", "load_reproduction", "benchmark_rows", "median_to_threshold", "sample_efficiency_ratio",
    "table2_comparison", "table3_comparison", "format_grid", "run_delta",
]

ALGORITHMS = ("acktr", "a2c", "trpo")
LABELS = {"acktr": "ACKTR", "a2c": "A2C", "trpo": "TRPO"}
REPRODUCTION_FILES = ("report.md", "learning_curves.png", "rows.csv", "runs.csv")


# ----------------------------------------------------------------------------- training and run directories


def train_runs(env: str, algorithms: Sequence[str], seeds: Sequence[int], steps: int, root: str | os.PathLike,
               overrides: dict[str, dict] | None = None) -> dict[str, list[Path]]:
    """Train each algorithm (its default preset for the env's family) with each seed for ``steps`` env steps.

    Runs go to ``root/<algorithm>-s<seed>`` (overwritten), with a single checkpoint at the end
    (notebooks do not resume). ``overrides``: per algorithm, hyperparameters over the preset.
    Returns ``{algorithm: [run_dir per seed]}``.
    """
    from rlkit.train import train  # the training loop is a layer above this module

    dirs: dict[str, list[Path]] = {}
    for algorithm in algorithms:
        for seed in seeds:
            run_dir = Path(root) / f"{algorithm}-s{seed}"
            train(algorithm, env, steps=steps, seed=seed, overrides=(overrides or {}).get(algorithm),
                  run_dir=run_dir, overwrite=True, progress=False, checkpoint_every=10**9, keep_checkpoints=1)
            dirs.setdefault(algorithm, []).append(run_dir)
    return dirs


def run_columns(run_dir: str | os.PathLike, file: str = "updates.csv") -> dict[str, np.ndarray]:
    """Every column of a run's ``updates.csv`` (or ``episodes.csv``) as a float array (NaN where empty)."""
    return read_columns(Path(run_dir) / file)


def kl_summary(run_dir: str | os.PathLike) -> dict:
    """The trust region over a run, from its updates.csv.

    Returns ``updates``; ``predicted_kl`` and ``measured_kl`` (medians over updates); ``measured_kl_max``; ``ratio_median`` and
    ``ratio_q90`` (median and 90th percentile of measured/predicted, where predicted > 0); ``capped``
    (fraction of updates with η = η_max, NaN for an agent without a cap); ``eta_median``;
    ``entropy_first`` and ``entropy_last`` (mean policy entropy of the first and last 10 updates, nats).
    """
    c = run_columns(run_dir)
    out = {"updates": int(len(c["update"]))}
    measured = c.get("measured_kl", np.full(len(c["update"]), np.nan))
    out["measured_kl"] = float(np.nanmedian(measured)) if np.isfinite(measured).any() else math.nan
    out["measured_kl_max"] = float(np.nanmax(measured)) if np.isfinite(measured).any() else math.nan
    if "predicted_kl" in c:
        predicted = c["predicted_kl"]
        ok = (predicted > 0) & np.isfinite(measured)
        ratio = measured[ok] / predicted[ok]
        out.update(predicted_kl=float(np.median(predicted)),
                   ratio_median=float(np.median(ratio)) if len(ratio) else math.nan,
                   ratio_q90=float(np.quantile(ratio, 0.9)) if len(ratio) else math.nan)
    else:
        out.update(predicted_kl=math.nan, ratio_median=math.nan, ratio_q90=math.nan)
    out["capped"] = float(np.mean(c["eta_capped"])) if "eta_capped" in c else math.nan
    out["eta_median"] = float(np.median(c["eta"])) if "eta" in c else math.nan
    entropy = c.get("entropy", np.full(1, np.nan))
    out["entropy_first"], out["entropy_last"] = float(np.mean(entropy[:10])), float(np.mean(entropy[-10:]))
    return out


def rolling_median(values: np.ndarray, window: int = 15) -> np.ndarray:
    """The median of ``values[max(0, i − window + 1) : i + 1]`` at each i (a trailing window; NaNs skipped):
    a readable line through a noisy per-update diagnostic."""
    values = np.asarray(values, dtype=float)
    if window < 1:
        raise ValueError(f"window must be >= 1; got {window}")
    out = np.full(len(values), np.nan)
    for i in range(len(values)):
        chunk = values[max(0, i - window + 1):i + 1]
        if np.isfinite(chunk).any():
            out[i] = np.nanmedian(chunk)
    return out


def time_split(run_dir: str | os.PathLike) -> dict[str, np.ndarray]:
    """Seconds per update: ``stats`` (K-FAC's Fisher pass statistics), ``inverse`` (eigendecompositions of
    the factors), ``precondition`` (S⁻¹∇W A⁻¹ and q), ``rest_of_update`` (forward, backward, step,
    diagnostics: ``time_update`` minus the three) and ``collect`` (acting in the envs: the wall time
    between updates minus ``time_update``). Timings differ between identical runs: never assert them."""
    c = run_columns(run_dir)
    wall = c["wall_time_s"]
    update = c["time_update"]
    kfac = {k: c.get(f"time_{k}", np.zeros_like(update)) for k in ("stats", "inverse", "precondition")}
    rest = update - kfac["stats"] - kfac["inverse"] - kfac["precondition"]
    collect = np.diff(np.concatenate([[0.0], wall])) - update
    return {"update": c["update"].astype(int), **kfac, "rest_of_update": rest, "collect": np.maximum(collect, 0.0)}


def step_size_from_row(row: dict, delta: float, convention: str = "paper") -> float:
    """η of one ACKTR update from its logged ``quadratic`` q and ``eta_max`` (a row of updates.csv, strings
    or numbers) and the run's δ: :func:`rlkit.trust_region.effective_step_size`."""
    from rlkit.trust_region import effective_step_size

    return effective_step_size(float(row["quadratic"]), float(delta), float(row["eta_max"]), convention)


def run_delta(run_dir: str | os.PathLike) -> float:
    """The run's δ (config.json)."""
    return float(read_config(run_dir)["agent"]["delta"])


# ----------------------------------------------------------------------------- the δ × η_max sweep


def sweep_late_returns(sweep, statistic: str = "mean", threshold: float | None = None, after: float = 0.5) -> dict:
    """How each grid point of a sweep does late in training, once most settings have learned.

    Per run, over its curve points with env steps > ``after`` × the run length (the curve is the mean
    return of the last 10 episodes): ``"mean"``, their mean; ``"min"``, the lowest (the worst relapse);
    ``"held"``, the fraction that are ≥ ``threshold``. Then the mean over seeds. Same layout as
    :func:`rlkit.sweeps.sweep_grid`: ``values`` of shape (len(y_values), len(x_values)), NaN where the
    sweep has no run; ``metric`` = ``"late_<statistic>"``.
    """
    from rlkit.sweeps import sweep_grid

    if statistic not in ("mean", "min", "held"):
        raise ValueError(f"statistic must be mean, min or held; got {statistic!r}")
    if statistic == "held" and threshold is None:
        raise ValueError("statistic 'held' needs a threshold")
    if len(sweep.axes) != 2:
        raise ValueError(f"sweep_late_returns needs a two-axis sweep; {sweep.name} has {len(sweep.axes)}")

    def late(data: dict) -> float:
        after_point = data["env_steps"] > after * data["env_steps"][-1]
        per_seed = []
        for curve in data["returns"][:, after_point]:
            if statistic == "held":
                per_seed.append(float(np.mean(np.nan_to_num(curve, nan=-np.inf) >= threshold)))
            elif np.isfinite(curve).any():
                per_seed.append(float(np.nanmean(curve) if statistic == "mean" else np.nanmin(curve)))
        return float(np.mean(per_seed)) if per_seed else np.nan

    late.__name__ = f"late_{statistic}"
    return sweep_grid(sweep, late)


# ----------------------------------------------------------------------------- K-FAC on Atari


def kfac_layer_sizes(kfac) -> list[dict]:
    """Per layer of a :class:`rlkit.kfac.KFAC`: ``name``, ``kind`` (linear/conv2d), ``a_dim`` = C_in + 1,
    ``s_dim`` = C_out, and the number of entries of A, S and of the dense Fisher block they replace."""
    rows = []
    for name, layer in kfac.layers.items():
        a, s = int(layer.d_in), int(layer.d_out)
        rows.append({"name": name, "kind": layer.kind, "a_dim": a, "s_dim": s, "a_entries": a * a,
                     "s_entries": s * s, "block_entries": (a * s) ** 2})
    return rows


# ----------------------------------------------------------------------------- reproductions and benchmarks


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
    from rlkit.data import data_dir as locate

    folder = locate(data_dir) / "reproductions" / name
    missing = [f for f in REPRODUCTION_FILES if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} lacks {', '.join(missing)}; make it with python -m rlkit reproduce "
                                f"and python -m rlkit report (data/reproductions/README.md)")
    return Reproduction(name, _read_rows(folder / "rows.csv"), _read_rows(folder / "runs.csv"),
                        (folder / "report.md").read_text(encoding="utf-8"), folder / "learning_curves.png")


def benchmark_rows(name: str, data_dir: str | os.PathLike | None = None) -> list[dict]:
    """``data/benchmarks/<name>.csv`` (``sample_efficiency``, ``throughput``) as typed rows."""
    from rlkit.data import data_dir as locate

    return _read_rows(locate(data_dir) / "benchmarks" / f"{name}.csv")


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


def table2_comparison(reproduction: Reproduction, benchmarks: list[dict], paper: dict,
                      env: str = "InvertedPendulum-v5") -> list[dict]:
    """Per algorithm on ``env``: the paper's episodes to threshold (Table 2, ``rlkit.data`` table
    ``acktr_table2_mujoco``), our benchmark's median episodes and env steps (300k-step budget), and the
    reproduction's final return, seeds reached and mean episodes/steps to threshold (rows.csv).
    Each dict also carries the ratio to ACKTR of the paper's and of the benchmark's episodes."""
    from rlkit.data import find_row

    paper_row = find_row(paper, gym_id=env)
    rows = []
    for algorithm in ALGORITHMS:
        repro = next((r for r in reproduction.rows if r.get("env") == env and r.get("variant") == algorithm), {})
        rows.append({
            "algorithm": algorithm,
            "paper_episodes": float(paper_row[f"{algorithm}_episodes_to_threshold"]),
            "bench_episodes": median_to_threshold(benchmarks, env, algorithm, "episodes_to_threshold"),
            "bench_steps": median_to_threshold(benchmarks, env, algorithm, "env_steps_to_threshold"),
            "repro_seeds": repro.get("seeds", math.nan), "repro_reached": repro.get("reached", math.nan),
            "repro_env_steps": repro.get("env_steps", math.nan),
            "repro_final_return": repro.get("final_return_mean", math.nan),
            "repro_final_return_std": repro.get("final_return_std", math.nan),
            "repro_episodes": repro.get("episodes_to_threshold_mean", math.nan),
            "repro_steps": repro.get("steps_to_threshold_mean", math.nan),
        })
    for row in rows:
        row["paper_ratio"] = row["paper_episodes"] / rows[0]["paper_episodes"]
        row["bench_ratio"] = row["bench_episodes"] / rows[0]["bench_episodes"]
    return rows


def table3_comparison(reproduction: Reproduction, throughput: list[dict], paper: dict) -> list[dict]:
    """ACKTR's time per step over A2C's (= A2C steps/s over ACKTR steps/s) by domain and batch size: the
    paper's Table 3 (GPU, ``rlkit.data`` table ``acktr_table3_timesteps_per_second``), our throughput
    benchmark (``data/benchmarks/throughput.csv``) and the reproduction (rows.csv), where each has that
    batch. Also the steps per second of ACKTR and A2C in each source."""
    def paper_sps(algorithm: str, domain: str, batch: int) -> float:
        for a, d, b, sps in zip(paper["algorithm"], paper["domain"], paper["batch_size"], paper["timesteps_per_second"]):
            if a == algorithm and d == domain and int(b) == batch:
                return float(sps)
        return math.nan

    def source_sps(rows: list[dict], algorithm: str, domain: str, batch: int, column: str) -> float:
        for r in rows:
            if r.get("algorithm") == algorithm and r.get("domain") == domain and int(r.get("batch_size", -1)) == batch:
                return float(r[column])
        return math.nan

    batches = sorted({(d, int(b)) for d, b in zip(paper["domain"], paper["batch_size"])}
                     | {(r["domain"], int(r["batch_size"])) for r in throughput}
                     | {(r["domain"], int(r["batch_size"])) for r in reproduction.rows if r.get("domain")})
    out = []
    for domain, batch in batches:
        row = {"domain": domain, "batch_size": batch}
        for source, get in (("paper", lambda a: paper_sps(a, domain, batch)),
                            ("bench", lambda a: source_sps(throughput, a, domain, batch, "timesteps_per_second")),
                            ("repro", lambda a: source_sps(reproduction.rows, a, domain, batch, "steps_per_second_mean"))):
            acktr, a2c = get("acktr"), get("a2c")
            row[f"{source}_acktr"], row[f"{source}_a2c"] = acktr, a2c
            row[f"{source}_ratio"] = a2c / acktr if acktr > 0 and a2c > 0 else math.nan
        out.append(row)
    return out


def format_grid(grid: dict, fmt: str = "{:.0f}", width: int = 9) -> str:
    """A :func:`rlkit.sweeps.sweep_grid`-style dict as a text table: one row per y value (e.g. η_max), one
    column per x value (e.g. δ); ``fmt`` formats each number (``inf`` prints as ``never``, NaN as ``—``)."""
    def cell(value: float) -> str:
        if math.isnan(value):
            return "—"
        if math.isinf(value):
            return "never"
        return fmt.format(value)

    corner = f"{grid['y']} / {grid['x']}"
    head = f"{corner:>16s}" + "".join(f"{v:>{width}.2g}" for v in grid["x_values"])
    lines = [head]
    for y, row in zip(grid["y_values"], grid["values"]):
        lines.append(f"{y:>16.3g}" + "".join(f"{cell(v):>{width}s}" for v in row))
    return "\n".join(lines)
