"""A finished grid as the paper's table: our numbers (mean ± std over seeds) beside the paper's.

``python -m rlkit report DIR`` (and notebook 10) call :func:`report` on a grid directory written by
``python -m rlkit reproduce`` or ``sweep``: it reads ``DIR/grid.json`` (which experiment, which
scale) and every run's CSVs, and returns a :class:`Report` whose ``markdown`` is the table, whose
``rows`` are its numbers and whose ``figure`` is the learning curves (one panel per env, mean ± std
over seeds per variant, by env steps). ``python -m rlkit report`` writes them to ``DIR/report.md``
and ``DIR/learning_curves.png``.

The numbers, per run (:func:`summarize_run`):

* **final return**: the mean raw return of the run's last ``window`` episodes (Table 1: 100, the
  paper's "last 100 average episode rewards"; else 10);
* **episodes to threshold** (the paper's rule): the smallest N such that the mean return of episodes
  N … N+window−1 reaches the threshold (:func:`threshold_crossing`), and the env steps when that
  window's last episode ended. A run that never crosses is *censored*: it is only known to need more
  than the episodes it completed; the table then says how many seeds reached, and averages only
  over those (``—`` when none did);
* **steps per second**: the run's env steps over its training wall time (Table 3).

Per (env, variant) the table shows mean ± std (population std) over seeds, and the paper's number
for the same task and method where the paper's table has one (``rlkit.experiments.data``).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from rlkit.experiments.registry import Experiment, experiment
from rlkit.experiments.grid import GridRun, read_grid_file
from rlkit.experiments.plots import smoothed_returns, value_at
from rlkit.experiments.runs import UPDATES_FILE, RunError, read_episodes, read_update_rows

__all__ = ["threshold_crossing", "run_steps_to_threshold", "run_final_return", "RunSummary", "summarize_run", "Report", "report", "sweep_rows",
           "write_sweep_table", "SWEEP_POINTS"]

SWEEP_POINTS = 40  # points per learning curve in a sweep table


def threshold_crossing(returns: Sequence[float], threshold: float, window: int) -> int | None:
    """The paper's "episodes to threshold": the smallest N (1-based) with mean(returns[N−1 : N−1+window])
    ≥ ``threshold``; ``None`` if no full window of ``window`` episodes reaches it."""
    returns = np.asarray(returns, dtype=float)
    if window < 1:
        raise ValueError(f"window must be >= 1; got {window}")
    if len(returns) < window:
        return None
    sums = np.convolve(returns, np.ones(window), mode="valid")  # sums[i] = returns[i] + ... + returns[i+window-1]
    crossed = np.flatnonzero(sums / window >= threshold)
    return int(crossed[0]) + 1 if len(crossed) else None


@dataclass
class RunSummary:
    """One run's numbers (see the module docstring)."""

    run: GridRun
    episodes: int
    env_steps: int
    wall_time_s: float
    final_return: float | None
    episodes_to_threshold: int | None
    steps_to_threshold: int | None

    @property
    def steps_per_second(self) -> float | None:
        return self.env_steps / self.wall_time_s if self.wall_time_s > 0 else None


def run_steps_to_threshold(run_dir: str | os.PathLike, threshold: float, window: int = 10) -> int | None:
    """A run's env steps to ``threshold`` by the paper's rule: when the first window of ``window`` episodes
    whose mean return reaches it ended (:func:`threshold_crossing`); ``None`` if it never did."""
    steps, returns = read_episodes(run_dir)
    crossing = threshold_crossing(returns, threshold, window)
    return None if crossing is None else int(steps[crossing - 1 + window - 1])


def run_final_return(run_dir: str | os.PathLike, window: int = 10) -> float:
    """A run's mean return over its last ``window`` completed episodes (NaN before the first)."""
    _, returns = read_episodes(run_dir)
    return float(np.mean(returns[-window:])) if len(returns) else math.nan


def _updates(run_dir: Path) -> list[dict]:
    return read_update_rows(run_dir)[1] if (run_dir / UPDATES_FILE).is_file() else []  # today's column names


def summarize_run(run: GridRun, root: str | os.PathLike, threshold: float | None, window: int) -> RunSummary:
    run_dir = run.run_dir(root)
    _, returns = read_episodes(run_dir)
    updates = _updates(run_dir)
    env_steps = int(updates[-1]["env_steps"]) if updates else 0
    wall = float(updates[-1]["wall_time_s"]) if updates else 0.0
    final = run_final_return(run_dir, window) if len(returns) else None
    crossing = threshold_crossing(returns, threshold, window) if threshold is not None else None
    steps_to = run_steps_to_threshold(run_dir, threshold, window) if crossing is not None else None
    return RunSummary(run, len(returns), env_steps, wall, final, crossing, steps_to)


# ----------------------------------------------------------------------------- the report


@dataclass
class Report:
    """What :func:`report` returns: ``rows`` (one dict per env × variant), ``markdown`` (the table with
    the experiment's title and notes), ``figure`` (a matplotlib Figure), ``summaries`` (per run)."""

    experiment: Experiment
    scale: str
    rows: list[dict]
    markdown: str
    figure: object
    summaries: list[RunSummary] = field(default_factory=list)

    def save(self, directory: str | os.PathLike) -> list[Path]:
        """Write ``report.md``, ``learning_curves.png``, ``rows.csv`` (the table's numbers: ``x_mean`` and
        ``x_std`` for each mean ± std) and ``runs.csv`` (one row per run) into ``directory``: small files,
        what ``data/reproductions/`` keeps of a grid (its run directories stay out of git)."""
        from rlkit.experiments.runs import write_csv

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        text, png = directory / "report.md", directory / "learning_curves.png"
        text.write_text(self.markdown, encoding="utf-8")
        self.figure.savefig(png, dpi=100, bbox_inches="tight")
        flat = [_flatten(row) for row in self.rows]
        columns = list(dict.fromkeys(key for row in flat for key in row))
        write_csv(directory / "rows.csv", columns, flat)
        run_columns = ["run", "algorithm", "env", "seed", "steps", "overrides", "episodes", "env_steps", "wall_time_s",
                       "final_return", "episodes_to_threshold", "steps_to_threshold", "steps_per_second"]
        write_csv(directory / "runs.csv", run_columns, [{
            "run": s.run.name, "algorithm": s.run.algorithm, "env": s.run.env, "seed": s.run.seed,
            "steps": s.run.steps, "overrides": ";".join(f"{k}={v}" for k, v in s.run.overrides),
            "episodes": s.episodes, "env_steps": s.env_steps, "wall_time_s": round(s.wall_time_s, 2),
            "final_return": s.final_return, "episodes_to_threshold": s.episodes_to_threshold,
            "steps_to_threshold": s.steps_to_threshold,
            "steps_per_second": None if s.steps_per_second is None else round(s.steps_per_second, 1),
        } for s in self.summaries])
        return [text, png, directory / "rows.csv", directory / "runs.csv"]


STATISTICS = ("final_return", "episodes_to_threshold", "steps_to_threshold", "steps_per_second")  # mean ± std columns


def _flatten(row: dict) -> dict:
    flat = {}
    for key, value in row.items():
        if key in STATISTICS:
            flat[f"{key}_mean"], flat[f"{key}_std"] = value if value is not None else (None, None)
        else:
            flat[key] = value
    return flat


def _mean_std(values: list[float]) -> tuple[float, float] | None:
    if not values:
        return None
    return float(np.mean(values)), float(np.std(values))


def _fmt(stat: tuple[float, float] | None, digits: int = 1) -> str:
    if stat is None:
        return "—"
    mean, std = stat
    return f"{mean:,.{digits}f} ± {std:,.{digits}f}"


def _paper_row(exp: Experiment, env: str, variant_label: str) -> dict:
    """The paper's numbers for ``env`` and the variant's algorithm, or {} where its table has none."""
    if exp.paper_table is None or exp.kind != "returns":
        return {}
    rows = [row for row in _table_rows(exp.paper_table) if row.get("gym_id") == env]
    if not rows:
        return {}
    algo = exp.variant_of(variant_label).algorithm
    row = rows[0]
    episodes_key = next((k for k in row if k.startswith(f"{algo}_episodes_to")), None)
    return {"paper_return": row.get(f"{algo}_reward"), "paper_episodes": row.get(episodes_key) if episodes_key else None}


def _returns_rows(exp: Experiment, summaries: list[RunSummary]) -> list[dict]:
    rows = []
    for (env, label), group in _groups(summaries).items():
        reached = [s for s in group if s.episodes_to_threshold is not None]
        rows.append({
            "env": env, "variant": label, "seeds": len(group),
            "env_steps": min(s.env_steps for s in group),
            "final_return": _mean_std([s.final_return for s in group if s.final_return is not None]),
            "threshold": exp.thresholds.get(env),
            "reached": len(reached),
            "episodes_to_threshold": _mean_std([s.episodes_to_threshold for s in reached]),
            "steps_to_threshold": _mean_std([s.steps_to_threshold for s in reached]),
            **_paper_row(exp, env, label),
        })
    return rows


def _throughput_rows(exp: Experiment, summaries: list[RunSummary]) -> list[dict]:
    from rlkit.experiments.train import env_family

    paper = _table_rows(exp.paper_table) if exp.paper_table else []
    rows = []
    for (env, label), group in _groups(summaries).items():
        variant = exp.variant_of(label)
        batch = dict(group[0].run.overrides)  # what ran (the smoke scale's small batch overrides the variant's)
        batch_size = batch.get("num_envs", 1) * batch.get("num_steps", 1)
        domain = {"atari": "Atari", "mujoco": "MuJoCo"}.get(env_family(env))
        match = [r for r in paper if r["algorithm"] == variant.algorithm and r["domain"] == domain
                 and int(r["batch_size"]) == batch_size]
        rows.append({"env": env, "variant": label, "algorithm": variant.algorithm, "batch_size": batch_size,
                     "domain": domain, "seeds": len(group),
                     "steps_per_second": _mean_std([s.steps_per_second for s in group if s.steps_per_second]),
                     "paper_steps_per_second": float(match[0]["timesteps_per_second"]) if match else None})
    for row in rows:  # the claim is a ratio: ACKTR's time over A2C's at the same batch on the same env
        if row["algorithm"] == "acktr" and row["steps_per_second"]:
            a2c = [r for r in rows if r["algorithm"] == "a2c" and r["env"] == row["env"]
                   and r["batch_size"] == row["batch_size"] and r["steps_per_second"]]
            if a2c:
                row["time_ratio_to_a2c"] = a2c[0]["steps_per_second"][0] / row["steps_per_second"][0]
            if row["paper_steps_per_second"]:
                paper_a2c = [r for r in paper if r["algorithm"] == "a2c" and r["domain"] == row["domain"]
                             and int(r["batch_size"]) == row["batch_size"]]
                if paper_a2c:
                    row["paper_time_ratio_to_a2c"] = float(paper_a2c[0]["timesteps_per_second"]) / row["paper_steps_per_second"]
    return rows


def _table_rows(name: str) -> list[dict]:
    """A table of rlkit.experiments.data as a list of rows ``{column: value}`` (numbers as float, nan where missing)."""
    from rlkit.experiments.data import load_table

    table = load_table(name)
    n = len(next(iter(table.values())))
    return [{column: (float(values[i]) if isinstance(values, np.ndarray) else values[i])
             for column, values in table.items()} for i in range(n)]


def _groups(summaries: list[RunSummary]) -> dict[tuple[str, str], list[RunSummary]]:
    groups: dict[tuple[str, str], list[RunSummary]] = {}
    for s in summaries:
        groups.setdefault((s.run.env, s.run.name.split("/")[1]), []).append(s)
    return groups


def _markdown(exp: Experiment, scale: str, rows: list[dict], missing: int, command: str | None) -> str:
    lines = [f"# {exp.title}", "", f"Source: {exp.source}. Scale: **{scale}**."
             + (f" Command: `{command}`" if command else ""), ""]
    if exp.kind == "throughput":
        lines += ["| env | variant | batch | seeds | steps/s (ours) | steps/s (paper) | ACKTR time / A2C (ours) | (paper) |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['env']} | {r['variant']} | {r['batch_size']} | {r['seeds']} | {_fmt(r['steps_per_second'])} "
                         f"| {_num(r['paper_steps_per_second'], 0)} | {_num(r.get('time_ratio_to_a2c'), 2)} "
                         f"| {_num(r.get('paper_time_ratio_to_a2c'), 2)} |")
    else:
        lines += [f"| env | variant | seeds | env steps | final return (last {exp.window} ep.) | threshold | reached "
                  "| episodes to threshold | steps to threshold | paper return | paper episodes |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['env']} | {r['variant']} | {r['seeds']} | {r['env_steps']:,} | {_fmt(r['final_return'])} "
                         f"| {_num(r['threshold'], 1)} | {r['reached']}/{r['seeds']} | {_fmt(r['episodes_to_threshold'], 0)} "
                         f"| {_fmt(r['steps_to_threshold'], 0)} | {_num(r.get('paper_return'), 1)} "
                         f"| {_num(r.get('paper_episodes'), 0)} |")
    lines += ["", "mean ± std over seeds; episodes/steps to threshold averaged over the seeds that reached it.", ""]
    if missing:
        lines += [f"**{missing} run(s) of the grid have no results yet** (not run or failed): the rows above "
                  "count only the runs that have.", ""]
    if exp.notes:
        lines += ["Notes: " + exp.notes, ""]
    return "\n".join(lines)


def _num(value, digits: int) -> str:
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{float(value):,.{digits}f}"


def _figure(exp: Experiment, summaries: list[RunSummary], root: Path, points: int = 200):
    from matplotlib.figure import Figure

    envs = list(dict.fromkeys(s.run.env for s in summaries))
    figure = Figure(figsize=(5.5 * max(1, len(envs)), 4), dpi=100)
    axes = figure.subplots(1, max(1, len(envs)), squeeze=False)[0]
    for ax, env in zip(axes, envs):
        for (group_env, label), group in _groups(summaries).items():
            if group_env != env:
                continue
            curves = [read_episodes(s.run.run_dir(root)) for s in group]
            curves = [(x, y) for x, y in curves if len(y)]
            if not curves:
                continue
            end = min(x[-1] for x, _ in curves)
            grid = np.linspace(0.0, end, points)
            values = np.stack([value_at(x, smoothed_returns(y, exp.window), grid) for x, y in curves])
            ok = ~np.isnan(values).any(axis=0)
            mean, std = values[:, ok].mean(axis=0), values[:, ok].std(axis=0)
            line, = ax.plot(grid[ok], mean, label=f"{label} ({len(curves)})")
            ax.fill_between(grid[ok], mean - std, mean + std, color=line.get_color(), alpha=0.2)
        if exp.thresholds.get(env) is not None:
            ax.axhline(exp.thresholds[env], color="gray", linestyle=":", linewidth=1)
        ax.set_title(env)
        ax.set_xlabel("env steps")
        ax.set_ylabel(f"mean return (last {exp.window} episodes)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    figure.suptitle(exp.title, fontsize=10)
    figure.tight_layout()
    return figure


def report(root: str | os.PathLike) -> Report:
    """The report of the grid in ``root`` (see the module docstring); runs without results are counted, not hidden."""
    root = Path(root)
    about, runs = read_grid_file(root)
    exp = experiment(about.get("experiment", ""))
    summaries = [summarize_run(run, root, exp.thresholds.get(run.env), exp.window) for run in runs
                 if (run.run_dir(root) / UPDATES_FILE).is_file()]
    if not summaries:
        raise RunError(f"no run of the grid in {root} has results yet: run python -m rlkit reproduce first")
    missing = len(runs) - len(summaries)
    rows = _throughput_rows(exp, summaries) if exp.kind == "throughput" else _returns_rows(exp, summaries)
    markdown = _markdown(exp, about.get("scale", "?"), rows, missing, about.get("command"))
    return Report(exp, about.get("scale", "?"), rows, markdown, _figure(exp, summaries, root), summaries)


# ----------------------------------------------------------------------------- sweep tables


def sweep_rows(root: str | os.PathLike, points: int = SWEEP_POINTS) -> tuple[list[str], list[dict]]:
    """The compact table of a sweep grid: per run (axes values, seed) and per point of an even env-step grid,
    the mean return of the last 10 episodes ended by then and the means of the run's per-update
    diagnostics over the updates since the previous point."""
    root = Path(root)
    about, runs = read_grid_file(root)
    exp = experiment(about.get("experiment", ""))
    if exp.kind != "sweep":
        raise RunError(f"{exp.name} is not a sweep (its kind is {exp.kind}); python -m rlkit report reads it")
    axes = [name for name, _ in exp.axes]
    diagnostics = SWEEP_DIAGNOSTICS[exp.variants[0].algorithm]
    columns = ["env", *axes, "seed", "env_steps", "episode_return", "episodes", *diagnostics]
    rows = []
    for run in runs:
        run_dir = run.run_dir(root)
        if not (run_dir / UPDATES_FILE).is_file():
            raise RunError(f"{run_dir} has no results: the sweep is not finished (run it again to continue it)")
        steps, returns = read_episodes(run_dir)
        updates = _updates(run_dir)
        update_steps = np.array([float(u["env_steps"]) for u in updates])
        grid = np.unique(np.round(np.linspace(run.steps / points, run.steps, points)))  # tiny runs: fewer points
        curve = value_at(steps, smoothed_returns(returns, 10), grid) if len(returns) else np.full(points, np.nan)
        counts = np.searchsorted(steps, grid, side="right")
        values = dict(run.overrides)
        previous = 0.0
        for point, mean_return, count in zip(grid, curve, counts):
            inside = [u for u, s in zip(updates, update_steps) if previous < s <= point]
            previous = point
            row = {"env": run.env, **{name: values[name] for name in axes}, "seed": run.seed, "env_steps": int(point),
                   "episode_return": None if np.isnan(mean_return) else round(float(mean_return), 3),
                   "episodes": int(count)}
            for name in diagnostics:
                numbers = [float(u[name]) for u in inside if u.get(name) not in (None, "")]
                row[name] = float(f"{np.mean(numbers):.5g}") if numbers else None
            rows.append(row)
    return columns, rows


SWEEP_DIAGNOSTICS = {
    "acktr": ("measured_kl", "predicted_kl", "step_size", "step_size_capped", "entropy"),
    "vmpo": ("temperature", "alpha", "estep_kl", "mstep_kl", "max_weight", "entropy"),
}


def write_sweep_table(root: str | os.PathLike, out: str | os.PathLike, command: str | None = None) -> Path:
    """Write :func:`sweep_rows` of the grid in ``root`` to ``out`` (CSV) and its provenance to ``out`` with
    suffix ``.json`` (experiment, scale, axes, command, versions)."""
    import json

    from rlkit.experiments.runs import write_csv
    from rlkit.experiments.train import package_versions

    columns, rows = sweep_rows(root)
    about, runs = read_grid_file(root)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_csv(out, columns, rows)
    exp = experiment(about["experiment"])
    meta = {"experiment": exp.name, "title": exp.title, "scale": about.get("scale"), "axes": dict(exp.axes),
            "algorithm": exp.variants[0].algorithm, "threshold": exp.thresholds.get(runs[0].env), "env": runs[0].env, "steps": runs[0].steps, "seeds": sorted({r.seed for r in runs}),
            "points": SWEEP_POINTS, "command": command or about.get("command"), "versions": package_versions(),
            "columns": {"episode_return": "mean return of the last 10 episodes ended by env_steps",
                        "episodes": "episodes ended by env_steps",
                        **{name: f"mean of the per-update diagnostic {name} (updates.csv) since the previous point"
                           for name in SWEEP_DIAGNOSTICS[exp.variants[0].algorithm]}}}
    out.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return out
