"""What notebook 07 draws and tabulates around the ACKTR update it writes out: the figure of its own
CartPole run, the sweep's late returns, K-FAC's layer sizes, and the paper's tables beside the committed
results.
"""
from __future__ import annotations

import math

import numpy as np

from rlkit.experiments.results import Reproduction, median_to_threshold

ALGORITHMS = ("acktr", "a2c", "trpo")


LABELS = {"acktr": "ACKTR", "a2c": "A2C", "trpo": "TRPO"}


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


def plot_training(log: dict, episodes: list, delta: float, threshold: float, title: str):
    """The figure of one training run of the notebook's ACKTR: the episode returns (each faint, the mean of
    the last 10 bold) with the threshold; the KL of each update (measured, and predicted ½η²q, running
    medians over 15 updates) against δ; the step size η against its cap, capped updates marked; the
    policy's entropy. ``log``: lists per update (``env_steps``, ``measured_kl``, ``predicted_kl``,
    ``step_size``, ``eta_max``, ``entropy``); ``episodes``: :class:`rlkit.rollout.Episode` s."""
    import matplotlib.pyplot as plt

    c = {key: np.asarray(values, dtype=float) for key, values in log.items()}
    x = c["env_steps"]
    fig, axes = plt.subplots(1, 4, figsize=(18, 3.8))
    ax = axes[0]
    steps = np.array([e.env_steps for e in episodes], dtype=float)
    returns = np.array([e.episode_return for e in episodes], dtype=float)
    ax.plot(steps, returns, color="C0", lw=0.5, alpha=0.3)
    if len(returns) >= 10:
        ax.plot(steps[9:], np.convolve(returns, np.ones(10) / 10, mode="valid"), color="C0", lw=2,
                label="mean of the last 10 episodes")
    ax.axhline(threshold, color="gray", ls=":", lw=1, label=f"threshold {threshold:g}")
    ax.set(xlabel="env steps", ylabel="episode return", title="returns")
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.plot(x, c["measured_kl"], color="C0", lw=0.6, alpha=0.3)
    ax.plot(x, rolling_median(c["measured_kl"]), color="C0", lw=2, label="measured KL(π_old ‖ π_new)")
    ax.plot(x, rolling_median(c["predicted_kl"]), color="k", lw=1.5, label="predicted ½η²q")
    ax.axhline(delta, color="k", ls="--", lw=0.8, label=f"δ = {delta:g}")
    ax.set(yscale="log", xlabel="env steps", ylabel="KL per update", title="KL of each step")
    ax.legend(fontsize=8)
    ax = axes[2]
    capped = c["step_size"] >= c["eta_max"]
    ax.plot(x, c["step_size"], color="C0", lw=1, label="η")
    ax.plot(x[capped], c["step_size"][capped], "o", ms=3, color="C3", label="η = η_max (capped)")
    ax.axhline(c["eta_max"][0], color="k", ls="--", lw=1, label=f"η_max = {c['eta_max'][0]:g}")
    ax.set(xlabel="env steps", ylabel="η", title="the actor's step size")
    ax.legend(fontsize=8)
    ax = axes[3]
    ax.plot(x, c["entropy"], color="C0", lw=1)
    ax.axhline(math.log(2), color="gray", ls=":", lw=1, label="log 2: uniform over 2 actions")
    ax.set(xlabel="env steps", ylabel="mean entropy (nats)", title="policy entropy")
    ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


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


def steps_to_threshold_table(rows: list[dict], env: str, algorithms: list[str]) -> list[dict]:
    """Per algorithm on ``env`` (rows of ``data/benchmarks/*.csv``): its settings (the preset column), seeds
    reached/run, and the median env steps to the threshold with its 95% bootstrap interval (censored runs
    above their budget, ``rlkit.experiments.run_stats``)."""
    from rlkit.experiments.results import values_to_threshold
    from rlkit.experiments.run_stats import bootstrap_ci, median

    table = []
    for algorithm in algorithms:
        mine = [r for r in rows if r["env"] == env and r["algorithm"] == algorithm]
        if not mine:
            continue
        values, censored = values_to_threshold(rows, env, algorithm, "env_steps_to_threshold")
        table.append({"algorithm": algorithm, "preset": mine[0]["preset"], "seeds": len(mine),
                      "reached": int((~censored).sum()), "median": bootstrap_ci(values, median, censored)})
    return table
