"""What notebook 07 computes over ACKTR, A2C and TRPO runs: training a few seeds, reading their
diagnostics (KL, time split), the sweep's late returns, K-FAC's layer sizes, and the papers'
tables beside the committed results.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from rlkit.experiments.report import run_final_return as final_return  # noqa: F401 - the notebook reads them from here
from rlkit.experiments.report import run_steps_to_threshold as steps_to_threshold  # noqa: F401
from rlkit.experiments.results import Reproduction, median_to_threshold
from rlkit.experiments.runs import UPDATES_FILE, read_columns, read_config, read_updates
from rlkit.experiments.runs import read_episodes as run_episodes  # noqa: F401

ALGORITHMS = ("acktr", "a2c", "trpo")


LABELS = {"acktr": "ACKTR", "a2c": "A2C", "trpo": "TRPO"}


def train_runs(env: str, algorithms: Sequence[str], seeds: Sequence[int], steps: int, root: str | os.PathLike,
               overrides: dict[str, dict] | None = None) -> dict[str, list[Path]]:
    """Train each algorithm (its default preset for the env's family) with each seed for ``steps`` env steps.

    Runs go to ``root/<algorithm>-s<seed>`` (overwritten), with a single checkpoint at the end
    (notebooks do not resume). ``overrides``: per algorithm, hyperparameters over the preset.
    Returns ``{algorithm: [run_dir per seed]}``.
    """
    from rlkit.experiments.train import (
        train,  # the training loop is a layer above this module
    )

    dirs: dict[str, list[Path]] = {}
    for algorithm in algorithms:
        for seed in seeds:
            run_dir = Path(root) / f"{algorithm}-s{seed}"
            train(algorithm, env, steps=steps, seed=seed, overrides=(overrides or {}).get(algorithm),
                  run_dir=run_dir, overwrite=True, progress=False, checkpoint_every=10**9, keep_checkpoints=1)
            dirs.setdefault(algorithm, []).append(run_dir)
    return dirs


def run_columns(run_dir: str | os.PathLike, file: str = "updates.csv") -> dict[str, np.ndarray]:
    """Every column of a run's ``updates.csv`` (under today's column names) or ``episodes.csv`` as a float
    array (NaN where empty)."""
    return read_updates(run_dir) if file == UPDATES_FILE else read_columns(Path(run_dir) / file)


def kl_summary(run_dir: str | os.PathLike) -> dict:
    """The trust region over a run, from its updates.csv.

    Returns ``updates``; ``predicted_kl`` and ``measured_kl`` (medians over updates); ``measured_kl_max``; ``ratio_median`` and
    ``ratio_q90`` (median and 90th percentile of measured/predicted, where predicted > 0); ``capped``
    (fraction of updates with η = η_max, NaN for an agent without a cap); ``step_size_median``;
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
    out["capped"] = float(np.mean(c["step_size_capped"])) if "step_size_capped" in c else math.nan
    out["step_size_median"] = float(np.median(c["step_size"])) if "step_size" in c else math.nan
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


def sweep_late_returns(sweep, statistic: str = "mean", threshold: float | None = None, after: float = 0.5) -> dict:
    """How each grid point of a sweep does late in training, once most settings have learned.

    Per run, over its curve points with env steps > ``after`` × the run length (the curve is the mean
    return of the last 10 episodes): ``"mean"``, their mean; ``"min"``, the lowest (the worst relapse);
    ``"held"``, the fraction that are ≥ ``threshold``. Then the mean over seeds. Same layout as
    :func:`rlkit.experiments.sweeps.sweep_grid`: ``values`` of shape (len(y_values), len(x_values)), NaN where the
    sweep has no run; ``metric`` = ``"late_<statistic>"``.
    """
    from rlkit.experiments.sweeps import sweep_grid

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


def kfac_layer_sizes(kfac) -> list[dict]:
    """Per layer of a :class:`rlkit.kfac.KFAC`: ``name``, ``kind`` (linear/conv2d), ``a_dim`` = C_in + 1,
    ``s_dim`` = C_out, and the number of entries of A, S and of the dense Fisher block they replace."""
    rows = []
    for name, layer in kfac.layers.items():
        a, s = int(layer.d_in), int(layer.d_out)
        rows.append({"name": name, "kind": layer.kind, "a_dim": a, "s_dim": s, "a_entries": a * a,
                     "s_entries": s * s, "block_entries": (a * s) ** 2})
    return rows


def table2_comparison(reproduction: Reproduction, benchmarks: list[dict], paper: dict,
                      env: str = "InvertedPendulum-v5") -> list[dict]:
    """Per algorithm on ``env``: the paper's episodes to threshold (Table 2, ``rlkit.experiments.data`` table
    ``acktr_table2_mujoco``), our benchmark's median episodes and env steps (300k-step budget), and the
    reproduction's final return, seeds reached and mean episodes/steps to threshold (rows.csv).
    Each dict also carries the ratio to ACKTR of the paper's and of the benchmark's episodes."""
    from rlkit.experiments.data import find_row

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
    paper's Table 3 (GPU, ``rlkit.experiments.data`` table ``acktr_table3_timesteps_per_second``), our throughput
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
    """A :func:`rlkit.experiments.sweeps.sweep_grid`-style dict as a text table: one row per y value (e.g. η_max), one
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
