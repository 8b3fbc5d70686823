"""The numbers and pictures behind notebook 09 (full V-MPO runs), read from run directories and data/.

Nothing here trains or re-implements V-MPO: runs come from :func:`rlkit.experiments.train.train` (agent
:mod:`rlkit.agents.vmpo`), sweeps from :mod:`rlkit.experiments.sweeps`, the V-MPO-against-ACKTR grid from
``python -m rlkit report`` (``data/reproductions/vmpo-vs-acktr-laptop``) and the benchmark from
``benchmarks/sample_efficiency.py`` (``data/benchmarks/sample_efficiency_vmpo.csv``). This module
reads those files and reduces them to the few numbers the notebook prints, so that the numbers are
tested (``tests/lessons/test_nb09_demos.py``).

Conventions:

* a *learning curve* is the mean return of the last ``window`` = 10 completed episodes, at the env
  step at which each episode ended (:func:`rlkit.experiments.plots.smoothed_returns`);
* *steps to threshold* follow the paper's rule (:func:`rlkit.experiments.report.threshold_crossing`,
  as the report and the benchmark apply it); ``None`` if no window of episodes reaches it;
* env steps count real transitions summed over the sub-envs (``rlkit.experiments.train``).

What each column of a V-MPO run's ``updates.csv`` means, and why the logged M-step KL is a
saw-tooth (:func:`kl_cycle_updates`): docs/plumbing.md, *rlkit.lessons.nb09_vmpo_runs.demos*.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from rlkit.experiments.plots import smoothed_returns
from rlkit.experiments.report import run_final_return as final_return  # noqa: F401 - the notebook reads them from here
from rlkit.experiments.report import run_steps_to_threshold as steps_to_threshold  # noqa: F401
from rlkit.experiments.results import benchmark_rows, labelled_by_preset, median_to_threshold
from rlkit.experiments.runs import (
    UPDATES_FILE,
    read_config,
    read_csv,
    read_episodes,
    read_updates,
)

__all__ = [
    "WINDOW",
    "THRESHOLDS",
    "read_updates",
    "read_episodes",
    "learning_curve",
    "steps_to_threshold",
    "final_return",
    "run_budgets",
    "vmpo_run_summary",
    "rolling_mean",
    "draw_vmpo_run",
    "sweep_table",
    "axis_summary",
    "point_steps",
    "draw_sweep_heatmaps",
    "draw_popart",
    "benchmark_steps",
    "reproduction",
]

#: episodes in the running mean of a learning curve and in the threshold rule
WINDOW = 10
#: the return thresholds of the kit's benchmarks and experiments
THRESHOLDS = {"CartPole-v1": 475.0, "Pendulum-v1": -200.0, "InvertedPendulum-v5": 950.0}


# ----------------------------------------------------------------------------- one run directory


def learning_curve(run_dir: str | os.PathLike, window: int = WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """(env steps, mean return of the last ``window`` episodes) at the end of every episode."""
    steps, returns = read_episodes(run_dir)
    return steps, smoothed_returns(returns, window) if len(returns) else returns


def run_budgets(run_dir: str | os.PathLike) -> dict[str, float]:
    """The run's KL budgets from its ``config.json``: ``eps_eta`` and ``eps_alpha`` (categorical) or
    ``eps_alpha_mu`` and ``eps_alpha_sigma`` (Gaussian: the columns the run logs decide), plus
    ``target_period``."""
    agent = read_config(run_dir)["agent"]
    header, _ = read_csv(Path(run_dir) / UPDATES_FILE)
    names = ["eps_eta", "target_period"] + (["eps_alpha_mu", "eps_alpha_sigma"] if "mstep_kl_mean" in header
                                            else ["eps_alpha"])
    return {name: float(agent[name]) for name in names}


def vmpo_run_summary(run_dir: str | os.PathLike, threshold: float | None = None) -> dict:
    """The lesson numbers of one V-MPO run.

    Returns ``env``, ``seed``, ``updates``, ``env_steps``, ``steps_to_threshold`` (None: not reached),
    ``final_return``; the budgets (:func:`run_budgets`); ``temperature_first``, ``temperature_last`` (τ);
    ``estep_kl_mean``: the mean E-step KL over the second half of the updates (after the dual has
    settled; the mean, because the dual's gradient ε_η − KL is zero on average where τ is stationary) and
    ``estep_ratio`` = that / ε_η; ``max_weight_last`` and ``uniform_weight`` = 1/k of the
    last update; ``entropy_first``, ``entropy_last`` (of π_θ); and per M-step KL (``mstep_kl`` for a
    categorical policy; ``mstep_kl_mean`` and ``mstep_kl_cov`` for a Gaussian one) its mean over all
    updates (``<kl>_avg``), the ratio of that mean to its ε (``<kl>_ratio``), and the first and last value of its
    α (``alpha_first``, ``alpha_last``; ``alpha_mu_…``, ``alpha_sigma_…``); ``kl_parts`` lists the
    (KL, ε, α) names.
    """
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    u = read_updates(run_dir)
    budgets = run_budgets(run_dir)
    threshold = THRESHOLDS.get(config["env"]) if threshold is None else threshold
    n = len(u["update"])
    second_half = slice(n // 2, n)
    summary = {
        "algorithm": config["algorithm"], "env": config["env"], "seed": config["seed"], "updates": n,
        "env_steps": int(u["env_steps"][-1]), "threshold": threshold,
        "steps_to_threshold": steps_to_threshold(run_dir, threshold) if threshold is not None else None,
        "final_return": final_return(run_dir), **budgets,
        "temperature_first": float(u["temperature"][0]), "temperature_last": float(u["temperature"][-1]),
        "estep_kl_mean": float(np.mean(u["estep_kl"][second_half])),
        "max_weight_last": float(u["max_weight"][-1]), "uniform_weight": float(1.0 / u["num_selected"][-1]),
        "entropy_first": float(u["entropy"][0]), "entropy_last": float(u["entropy"][-1]),
        "kl_parts": [],
    }
    summary["estep_ratio"] = summary["estep_kl_mean"] / budgets["eps_eta"]
    parts = ([("mstep_kl_mean", "eps_alpha_mu", "alpha_mu"), ("mstep_kl_cov", "eps_alpha_sigma", "alpha_sigma")]
             if "mstep_kl_mean" in u else [("mstep_kl", "eps_alpha", "alpha")])
    for kl, eps, alpha in parts:
        mean = float(np.mean(u[kl]))
        summary[f"{kl}_avg"] = mean
        summary[f"{kl}_ratio"] = mean / budgets[eps]
        summary[f"{alpha}_first"] = float(u[alpha][0])
        summary[f"{alpha}_last"] = float(u[alpha][-1])
        summary["kl_parts"].append((kl, eps, alpha))
    return summary


def kl_cycle_updates(run_dir: str | os.PathLike) -> int:
    """Updates after which the logged M-step KL's refresh pattern repeats: lcm(T_target, learner_steps) /
    learner_steps (T_target when each update is one learner step, as in runs made before learner_steps)."""
    agent = read_config(run_dir)["agent"]
    target_period, learner_steps = int(agent["target_period"]), int(agent.get("learner_steps", 1))
    return math.lcm(target_period, learner_steps) // learner_steps


def rolling_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last ``window`` values at each index (fewer at the start): the M-step KL averaged over
    one refresh cycle (:func:`kl_cycle_updates`) smooths its saw-tooth."""
    return smoothed_returns(np.asarray(values, dtype=float), window)


def _steps_in_thousands(ax) -> None:
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value / 1000:g}k" if value else "0"))


_LABELS = {"mstep_kl": ("M-step KL(π_old ‖ π_θ)", "ε_α"),
           "mstep_kl_mean": ("M-step KL, mean part", "ε_α_μ"),
           "mstep_kl_cov": ("M-step KL, covariance part", "ε_α_Σ"),
           "alpha": "α", "alpha_mu": "α_μ", "alpha_sigma": "α_Σ"}


def draw_vmpo_run(run_dir: str | os.PathLike, fig=None, threshold: float | None = None):
    """Six panels of one V-MPO run: the learning curve; τ; α (α_μ, α_Σ); the E-step KL against ε_η; the
    M-step KL(s) against ε_α (each per update, thin, and averaged over one refresh cycle, thick:
    :func:`kl_cycle_updates`);
    max ψ against 1/k. Returns the matplotlib Figure."""
    if fig is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(14, 6.6))
    run_dir = Path(run_dir)
    s = vmpo_run_summary(run_dir, threshold)
    u = read_updates(run_dir)
    x = u["env_steps"]
    period = kl_cycle_updates(run_dir)
    axes = fig.subplots(2, 3).ravel()
    steps, curve = learning_curve(run_dir)
    axes[0].plot(steps, curve, color="C0")
    if s["threshold"] is not None:
        axes[0].axhline(s["threshold"], color="0.5", ls=":", lw=1, label=f"threshold {s['threshold']:g}")
    if s["steps_to_threshold"] is not None:
        axes[0].axvline(s["steps_to_threshold"], color="0.5", ls="--", lw=1,
                        label=f"reached at {s['steps_to_threshold']:,} steps")
    axes[0].set(title=f"V-MPO on {s['env']}, seed {s['seed']}", ylabel="mean return (last 10 episodes)")
    axes[0].legend(fontsize=7)
    axes[1].plot(x, u["temperature"], color="C1")
    axes[1].set(title="temperature τ", yscale="log")
    for k, (_, _, alpha) in enumerate(s["kl_parts"]):
        axes[2].plot(x, u[alpha], color=f"C{2 + k}", label=_LABELS[alpha])
    axes[2].set(title="M-step multiplier" + ("s" if len(s["kl_parts"]) > 1 else ""), yscale="log")
    axes[2].legend(fontsize=7)
    axes[3].plot(x, u["estep_kl"], color="C1", lw=0.6, alpha=0.5)
    axes[3].plot(x, rolling_mean(u["estep_kl"], period), color="C1", lw=1.8, label=f"mean over {period} updates")
    axes[3].axhline(s["eps_eta"], color="k", ls="--", lw=1, label=f"ε_η = {s['eps_eta']:g}")
    axes[3].set(title="E-step KL(ψ ‖ uniform on the selected half)", yscale="log")
    axes[3].legend(fontsize=7)
    for k, (kl, eps, _) in enumerate(s["kl_parts"]):
        name, eps_label = _LABELS[kl]
        color = f"C{2 + k}"
        positive = np.where(u[kl] > 0, u[kl], np.nan)  # 0 right after each target refresh: off a log axis
        axes[4].plot(x, positive, color=color, lw=0.6, alpha=0.4)
        axes[4].plot(x, rolling_mean(u[kl], period), color=color, lw=1.8, label=f"{name} (mean over {period})")
        axes[4].axhline(s[eps], color=color, ls="--", lw=1, label=f"{eps_label} = {s[eps]:g}")
    axes[4].set(title="M-step KL against its budget", yscale="log")
    axes[4].legend(fontsize=7)
    axes[5].plot(x, u["max_weight"], color="C4", lw=0.8, label="max ψ")
    axes[5].plot(x, 1.0 / u["num_selected"], color="0.4", ls="--", lw=1, label="1/k (uniform)")
    axes[5].set(title="largest E-step weight", yscale="log")
    axes[5].legend(fontsize=7)
    for ax in axes:
        _steps_in_thousands(ax)
    for ax in axes[3:]:
        ax.set_xlabel("env steps")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- the ε_η × ε_α sweep


def sweep_table(sweep, threshold: float | None = None) -> list[dict]:
    """One row per swept (ε_η, ε_α) point, seeds averaged with :func:`rlkit.experiments.sweeps.sweep_grid`:
    ``final_return``; ``steps_to_threshold`` (median over seeds, ``inf`` when most seeds never reach it);
    ``estep_kl`` and ``mstep_kl`` (their means over the whole run) and the ratios ``estep_ratio`` =
    estep_kl/ε_η and ``mstep_ratio`` = mstep_kl/ε_α. Rows ordered by ε_η, then ε_α."""
    from rlkit.experiments.sweeps import sweep_grid

    threshold = sweep.meta.get("threshold") if threshold is None else threshold
    grids = {"final_return": sweep_grid(sweep, "final_return"),
             "steps_to_threshold": sweep_grid(sweep, "steps_to_threshold", threshold),
             "estep_kl": sweep_grid(sweep, "estep_kl"), "mstep_kl": sweep_grid(sweep, "mstep_kl")}
    g = grids["final_return"]
    rows = []
    for j, x_value in enumerate(g["x_values"]):
        for i, y_value in enumerate(g["y_values"]):
            row = {g["x"]: float(x_value), g["y"]: float(y_value)}
            row.update({name: float(grid["values"][i, j]) for name, grid in grids.items()})
            if np.isnan(row["final_return"]):
                continue  # not swept (a partial sweep)
            row["estep_ratio"] = row["estep_kl"] / row["eps_eta"]
            row["mstep_ratio"] = row["mstep_kl"] / row["eps_alpha"]
            rows.append(row)
    return rows


def axis_summary(sweep, axis: str = "eps_eta", threshold: float | None = None) -> list[dict]:
    """The sweep's runs grouped by one axis (every value of the other axis and every seed together): per value
    of ``axis``, ``runs``, ``reached`` (runs whose curve reaches ``threshold`` within the sweep's steps),
    ``median_steps`` (over all the runs, a run that never reaches counting as ``inf``), ``fastest`` and
    ``slowest`` (over the runs that reach) and ``final_return`` (mean over the runs). Steps to threshold are
    :func:`rlkit.experiments.sweeps.steps_to_threshold` on the sweep's curve grid."""
    from rlkit.experiments.sweeps import steps_to_threshold as curve_steps
    from rlkit.experiments.sweeps import sweep_point

    threshold = sweep.meta.get("threshold") if threshold is None else threshold
    other = next(name for name in sweep.axes if name != axis)
    out = []
    for value in sweep.axes[axis]:
        steps, finals = [], []
        for other_value in sweep.axes[other]:
            mask = np.isclose(sweep.columns[axis], value) & np.isclose(sweep.columns[other], other_value)
            if not mask.any():
                continue
            data = sweep_point(sweep, **{axis: float(value), other: float(other_value)})
            steps += [curve_steps(data["env_steps"], returns, threshold) for returns in data["returns"]]
            finals += [returns[-1] for returns in data["returns"]]
        reached = [s for s in steps if math.isfinite(s)]
        out.append({axis: float(value), "runs": len(steps), "reached": len(reached),
                    "median_steps": float(np.median(steps)) if steps else math.nan,
                    "fastest": min(reached) if reached else math.inf, "slowest": max(reached) if reached else math.inf,
                    "final_return": float(np.nanmean(finals)) if finals else math.nan})
    return out


def point_steps(sweep, threshold: float | None = None) -> dict[tuple[float, float], list[float]]:
    """Env steps to ``threshold`` per seed at every swept (ε_η, ε_α) point (``inf``: not reached within the
    sweep's steps), read on the sweep's curve grid (:func:`rlkit.experiments.sweeps.steps_to_threshold`)."""
    from rlkit.experiments.sweeps import steps_to_threshold as curve_steps
    from rlkit.experiments.sweeps import sweep_point

    threshold = sweep.meta.get("threshold") if threshold is None else threshold
    out = {}
    for eta in sweep.axes["eps_eta"]:
        for alpha in sweep.axes["eps_alpha"]:
            mask = np.isclose(sweep.columns["eps_eta"], eta) & np.isclose(sweep.columns["eps_alpha"], alpha)
            if mask.any():
                data = sweep_point(sweep, eps_eta=float(eta), eps_alpha=float(alpha))
                out[float(eta), float(alpha)] = [float(curve_steps(data["env_steps"], r, threshold))
                                                 for r in data["returns"]]
    return out


def draw_sweep_heatmaps(sweep, threshold: float | None = None, fig=None):
    """Three heatmaps over ε_η (x) × ε_α (y), seeds together: the median env steps to the threshold, each cell
    with how many seeds reached it (a censored cell, where most seeds never did, is hatched and reads
    "> budget"); the mean E-step KL / ε_η; the mean M-step KL / ε_α (both on a log colour scale centred on 1 =
    on budget). Returns the Figure."""
    from matplotlib.colors import LogNorm
    from matplotlib.patches import Rectangle

    if fig is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(15, 4.3))
    threshold = sweep.meta.get("threshold") if threshold is None else threshold
    rows = sweep_table(sweep, threshold)
    per_seed = point_steps(sweep, threshold)
    budget = float(sweep.meta.get("steps", max(s for v in per_seed.values() for s in v if math.isfinite(s))))
    xs = sorted({r["eps_eta"] for r in rows})
    ys = sorted({r["eps_alpha"] for r in rows})
    panels = [("steps_to_threshold", f"env steps to {threshold:g} (median of seeds)"),
              ("estep_ratio", "mean E-step KL / ε_η  (1 = on budget)"),
              ("mstep_ratio", "mean M-step KL / ε_α  (1 = on budget)")]
    axes = fig.subplots(1, 3)
    for ax, (key, title) in zip(axes, panels):
        values = np.full((len(ys), len(xs)), np.nan)
        for r in rows:
            values[ys.index(r["eps_alpha"]), xs.index(r["eps_eta"])] = r[key]
        if key == "steps_to_threshold":
            shown = np.where(np.isfinite(values), values / 1000, np.nan)
            finite = shown[np.isfinite(shown)]
            image = ax.imshow(shown, origin="lower", aspect="auto", cmap="viridis_r",
                              vmin=finite.min() if len(finite) else 0, vmax=budget / 1000)
        else:
            shown = values
            spread = max(np.nanmax(np.abs(np.log10(values))), 0.3)
            image = ax.imshow(shown, origin="lower", aspect="auto", cmap="coolwarm",
                              norm=LogNorm(vmin=10**-spread, vmax=10**spread))
        for i, y in enumerate(ys):
            for j, x in enumerate(xs):
                v = shown[i, j]
                if key == "steps_to_threshold":
                    seeds = per_seed.get((x, y), [])
                    reached = sum(math.isfinite(s) for s in seeds)
                    if not np.isfinite(v):
                        ax.add_patch(Rectangle(
                            (j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", edgecolor="0.5", lw=0))
                        text, color = f"> {budget / 1000:.0f}k\n{reached}/{len(seeds)}", "k"
                    else:
                        r_, g_, b_, _ = image.cmap(image.norm(v))
                        color = "k" if 0.299 * r_ + 0.587 * g_ + 0.114 * b_ > 0.5 else "w"
                        text = f"{v:.1f}k\n{reached}/{len(seeds)}"
                else:
                    color, text = "k", f"{v:.2f}"
                ax.text(j, i, text, ha="center", va="center", fontsize=7, color=color)
        ax.set_xticks(range(len(xs)), [f"{v:.2g}" for v in xs], fontsize=8)
        ax.set_yticks(range(len(ys)), [f"{v:.2g}" for v in ys], fontsize=8)
        ax.set(xlabel="ε_η (eps_eta)", ylabel="ε_α (eps_alpha)", title=title)
        fig.colorbar(image, ax=ax, fraction=0.05)
    fig.tight_layout()
    return fig


def draw_popart(history, threshold: float = 475.0, fig=None):
    """Two panels of the notebook's own V-MPO loop, per update: the mean return of the last 10 episodes against
    the threshold, and PopArt's μ and μ ± σ of the value targets (the scale the critic's output is divided by).
    ``history``: a list of dicts with ``env_steps``, ``return``, ``popart_mu``, ``popart_sigma``."""
    if fig is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(11, 3.6))
    steps = np.array([h["env_steps"] for h in history], dtype=float)
    mu = np.array([h["popart_mu"] for h in history])
    sigma = np.array([h["popart_sigma"] for h in history])
    left, right = fig.subplots(1, 2)
    left.plot(steps, [h["return"] for h in history], color="C0")
    left.axhline(threshold, color="0.5", ls=":", lw=1, label=f"threshold {threshold:g}")
    left.set(title="the notebook's V-MPO on CartPole-v1", xlabel="env steps", ylabel="mean return (last 10 episodes)")
    left.legend(fontsize=8)
    right.fill_between(steps, mu - sigma, mu + sigma, color="C1", alpha=0.3, label="μ ± σ")
    right.plot(steps, mu, color="C1", label="μ")
    right.set(title="PopArt's statistics of the value targets G", xlabel="env steps", ylabel="reward units")
    right.legend(fontsize=8)
    for ax in (left, right):
        _steps_in_thousands(ax)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- committed data


def benchmark_steps(data_dir: str | os.PathLike | None = None,
                    name: str = "sample_efficiency_vmpo") -> dict[tuple[str, str], dict]:
    """``data/benchmarks/NAME.csv`` per (env, algorithm): ``seeds``, ``steps`` (env steps
    to threshold per seed, ``inf`` where the budget ran out first), ``median`` (the rule of
    :func:`rlkit.experiments.results.median_to_threshold`), ``reached`` (seeds that did), ``threshold``,
    ``budget``. A kit agent at a preset other than its env family's is keyed ``ALGO@PRESET``
    (:func:`rlkit.experiments.results.labelled_by_preset`)."""
    rows = labelled_by_preset(benchmark_rows(name, data_dir))
    out: dict[tuple[str, str], dict] = {}
    for r in rows:
        entry = out.setdefault((r["env"], r["algorithm"]), {"seeds": [], "steps": [], "threshold": r["threshold"],
                                                            "budget": int(r["budget"])})
        entry["seeds"].append(int(r["seed"]))
        entry["steps"].append(r["env_steps_to_threshold"] if r["status"] == "reached" else math.inf)
    for (env, algorithm), entry in out.items():
        entry["median"] = median_to_threshold(rows, env, algorithm, "env_steps_to_threshold")
        entry["reached"] = sum(math.isfinite(s) for s in entry["steps"])
    return out


def reproduction(name: str = "vmpo-vs-acktr-laptop", data_dir: str | os.PathLike | None = None) -> dict:
    """The four files ``python -m rlkit report --out`` keeps of a grid in ``data/reproductions/NAME``:
    ``rows`` and ``runs`` (lists of dicts of strings, from rows.csv and runs.csv), ``markdown`` (report.md)
    and ``figure`` (the path of learning_curves.png)."""
    from rlkit.experiments.data import data_dir as locate

    folder = locate(data_dir) / "reproductions" / name
    return {"rows": read_csv(folder / "rows.csv")[1], "runs": read_csv(folder / "runs.csv")[1],
            "markdown": (folder / "report.md").read_text(encoding="utf-8"), "figure": folder / "learning_curves.png",
            "folder": folder}
