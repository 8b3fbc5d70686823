"""A finished grid as the paper's table: our numbers, with 95% intervals, beside the paper's.

``python -m rlkit report DIR`` (and notebook 10) call :func:`report` on a grid directory written by
``python -m rlkit reproduce`` or ``sweep``: it reads ``DIR/grid.json`` (which experiment, which
scale) and every run's CSVs, and returns a :class:`Report` whose ``markdown`` is the table, whose
``rows`` are its numbers and whose ``figure`` is the learning curves (one panel per env, the
interquartile mean over seeds per variant with a 95% bootstrap band, by env steps). ``python -m rlkit
report`` writes them to ``DIR/report.md`` and ``DIR/learning_curves.png``.
:func:`report_from_runs` re-makes the table of a kept report from its ``runs.csv`` alone
(``python -m rlkit.experiments.report --from-runs data/reproductions/NAME``): no run directory needed.

The numbers, per run (:func:`summarize_run`):

* **final return**: the mean raw return of the run's last ``window`` episodes (Table 1: 100, the
  paper's "last 100 average episode rewards"; else 10);
* **episodes to threshold** (the paper's rule): the smallest N such that the mean return of episodes
  N … N+window−1 reaches the threshold (:func:`threshold_crossing`), and the env steps when that
  window's last episode ended. A run that never crosses is *censored*: it needs more than the episodes
  (env steps) it ran, and it is counted so, never dropped;
* **steps per second**: the run's env steps over its training wall time (Table 3).

Per (env, variant) the table gives (``rlkit.experiments.run_stats``, Agarwal et al. 2021): the
interquartile mean of the final return and of the steps per second, the median episodes and env steps
to threshold (censored runs as "more than their budget": ``>x`` when the median depends on them), each
with its seeded 95% bootstrap interval, the number of runs and how many are censored; and the paper's
number for the same task and method where the paper's table has one (``rlkit.experiments.data``).
``rows`` also keep the mean ± std of each figure (``x_mean``, ``x_std`` in rows.csv; the steps and
episodes over the runs that reached) for readers of older tables.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from rlkit.experiments import run_stats
from rlkit.experiments.registry import Experiment, experiment
from rlkit.experiments.grid import GridRun, read_grid_file
from rlkit.experiments.plots import smoothed_returns, value_at
from rlkit.experiments.runs import UPDATES_FILE, RunError, read_episodes, read_update_rows

__all__ = ["threshold_crossing", "run_steps_to_threshold", "run_final_return", "RunSummary", "summarize_run", "Report", "report",
           "report_from_runs", "sweep_rows", "write_sweep_table", "SWEEP_POINTS"]

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


ESTIMATES = {"final_return": "final_return_iqm", "episodes_to_threshold": "episodes_to_threshold_median",
             "steps_to_threshold": "steps_to_threshold_median", "steps_per_second": "steps_per_second_iqm",
             "time_ratio_to_a2c": "time_ratio_iqm"}  # each figure's run_stats.Estimate in a row


def _flatten(row: dict) -> dict:
    """A row for rows.csv: a mean ± std as ``x_mean``, ``x_std``; an Estimate ``e`` as ``e`` (its value),
    ``e_high`` (the upper end of a censored estimate: inf when unbounded), ``e_ci_low``, ``e_ci_high``."""
    flat = {}
    for key, value in row.items():
        if key in STATISTICS:
            flat[f"{key}_mean"], flat[f"{key}_std"] = value if value is not None else (None, None)
        elif isinstance(value, run_stats.Estimate):
            flat[key], flat[f"{key}_high"] = value.low, value.high
            flat[f"{key}_ci_low"], flat[f"{key}_ci_high"] = value.ci_low, value.ci_high
        elif key in ESTIMATES.values():  # no value: empty cells
            flat[key] = flat[f"{key}_high"] = flat[f"{key}_ci_low"] = flat[f"{key}_ci_high"] = None
        else:
            flat[key] = value
    return flat


def _iqm(values: list[float]) -> run_stats.Estimate | None:
    return run_stats.bootstrap_ci(values, run_stats.interquartile_mean) if values else None


def _to_threshold(group: list[RunSummary], kind: str) -> run_stats.Estimate | None:
    """The median over runs of the episodes (``kind="episodes"``) or env steps to threshold, censored runs at
    the episodes (env steps) they ran; None when no run has any."""
    if kind == "episodes":
        values = [s.episodes_to_threshold for s in group]
        budgets = [s.episodes for s in group]
    else:
        values = [s.steps_to_threshold for s in group]
        budgets = [s.env_steps for s in group]
    if not group or all(b == 0 for b in budgets):
        return None
    x, censored = run_stats.censor([math.nan if v is None else v for v in values], budgets)
    return run_stats.bootstrap_ci(x, run_stats.median, censored)


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
            "final_return_iqm": _iqm([s.final_return for s in group if s.final_return is not None]),
            "episodes_to_threshold_median": _to_threshold(group, "episodes") if exp.thresholds.get(env) is not None else None,
            "steps_to_threshold_median": _to_threshold(group, "steps") if exp.thresholds.get(env) is not None else None,
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
                     "steps_per_second_iqm": _iqm([s.steps_per_second for s in group if s.steps_per_second]),
                     "sps": [s.steps_per_second for s in group if s.steps_per_second],
                     "paper_steps_per_second": float(match[0]["timesteps_per_second"]) if match else None})
    for row in rows:  # the claim is a ratio: ACKTR's time over A2C's at the same batch on the same env
        if row["algorithm"] == "acktr" and row["steps_per_second"]:
            a2c = [r for r in rows if r["algorithm"] == "a2c" and r["env"] == row["env"]
                   and r["batch_size"] == row["batch_size"] and r["steps_per_second"]]
            if a2c:
                row["time_ratio_to_a2c"] = a2c[0]["steps_per_second"][0] / row["steps_per_second"][0]
                row["time_ratio_iqm"] = run_stats.ratio_ci(a2c[0]["sps"], row["sps"], run_stats.interquartile_mean)
            if row["paper_steps_per_second"]:
                paper_a2c = [r for r in paper if r["algorithm"] == "a2c" and r["domain"] == row["domain"]
                             and int(r["batch_size"]) == row["batch_size"]]
                if paper_a2c:
                    row["paper_time_ratio_to_a2c"] = float(paper_a2c[0]["timesteps_per_second"]) / row["paper_steps_per_second"]
    for row in rows:
        del row["sps"]
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


def _est(estimate: run_stats.Estimate | None, number=lambda v: f"{v:,.1f}") -> str:
    if estimate is None:
        return "—"
    return estimate.fmt(number, interval=max(np.atleast_1d(estimate.n)) > 1)  # one run: no interval


def _runs(row: dict, key: str) -> str:
    e = row.get(key)
    return "—" if e is None else f"{e.n}" + (f" ({e.censored} censored)" if e.censored else "")


STATS_NOTE = ("IQM: interquartile mean over runs; [..]: 95% stratified percentile-bootstrap interval over runs "
              f"({run_stats.RESAMPLES} resamples, seed {run_stats.SEED}; rlkit.experiments.run_stats, Agarwal et al. 2021). ")


def _markdown(exp: Experiment, scale: str, rows: list[dict], missing: int, command: str | None,
              remade: str | None = None) -> str:
    lines = [f"# {exp.title}", "", f"Source: {exp.source}. Scale: **{scale}**."
             + (f" Command: `{command}`" if command else ""), ""]
    if remade:
        lines += [f"Tables re-made from runs.csv by `{remade}` (the learning curves are the grid's).", ""]
    integer = lambda v: f"{v:,.0f}"  # noqa: E731
    if exp.kind == "throughput":
        lines += ["| env | variant | batch | runs | steps/s (ours, IQM [95% CI]) | steps/s (paper) "
                  "| ACKTR time / A2C (ours [95% CI]) | (paper) |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in rows:
            ratio = r.get("time_ratio_iqm")
            lines.append(f"| {r['env']} | {r['variant']} | {r['batch_size']} | {r['seeds']} "
                         f"| {_est(r.get('steps_per_second_iqm'))} | {_num(r['paper_steps_per_second'], 0)} "
                         f"| {_est(ratio, lambda v: f'{v:.2f}')} | {_num(r.get('paper_time_ratio_to_a2c'), 2)} |")
        lines += ["", STATS_NOTE + "A figure from one run per configuration has no interval.", ""]
    else:
        lines += [f"| env | variant | runs | env steps | final return (last {exp.window} ep.), IQM [95% CI] | threshold "
                  "| reached | episodes to threshold, median [95% CI] | steps to threshold, median [95% CI] "
                  "| paper return | paper episodes |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['env']} | {r['variant']} | {r['seeds']} | {r['env_steps']:,} "
                         f"| {_est(r.get('final_return_iqm'))} | {_num(r['threshold'], 1)} | {r['reached']}/{r['seeds']} "
                         f"| {_est(r.get('episodes_to_threshold_median'), integer)} "
                         f"| {_est(r.get('steps_to_threshold_median'), integer)} | {_num(r.get('paper_return'), 1)} "
                         f"| {_num(r.get('paper_episodes'), 0)} |")
        lines += ["", STATS_NOTE + "A run that never reached the threshold is censored: it counts as more than "
                  "the episodes (env steps) it ran, never dropped; `>x`: the median is at least x and unbounded "
                  "above; an interval reaching inf: the runs cannot bound it.", ""]
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


def _band(values: np.ndarray, resamples: int = 500) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per curve point (columns of ``values``: runs × points): the IQM over runs and its 95% percentile-bootstrap
    band (the runs resampled together, seeded)."""
    rng = np.random.default_rng(run_stats.SEED)
    idx = rng.integers(0, len(values), size=(resamples, len(values)))
    draws = run_stats.interquartile_mean(values[idx], axis=1)  # (resamples, points)
    alpha = 1 - run_stats.CONFIDENCE
    return (run_stats.interquartile_mean(values, axis=0), np.quantile(draws, alpha / 2, axis=0),
            np.quantile(draws, 1 - alpha / 2, axis=0))


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
            centre, low, high = _band(values[:, ok])
            line, = ax.plot(grid[ok], centre, label=f"{label} ({len(curves)})")
            ax.fill_between(grid[ok], low, high, color=line.get_color(), alpha=0.2)
        if exp.thresholds.get(env) is not None:
            ax.axhline(exp.thresholds[env], color="gray", linestyle=":", linewidth=1)
        ax.set_title(env)
        ax.set_xlabel("env steps")
        ax.set_ylabel(f"mean return (last {exp.window} episodes): IQM over runs, 95% band")
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


def _summary_of(row: dict) -> RunSummary:
    """A RunSummary from a row of a kept runs.csv (:meth:`Report.save`)."""
    def number(key, kind=float):
        return None if row.get(key) in (None, "") else kind(float(row[key]))

    overrides = tuple((k, _parse(v)) for k, v in (kv.split("=", 1) for kv in (row.get("overrides") or "").split(";") if kv))
    run = GridRun(row["algorithm"], row["env"], int(row["seed"]), int(row["steps"]), row["run"], overrides)
    env_steps, sps = int(row["env_steps"]), number("steps_per_second")
    wall = env_steps / sps if sps else float(row["wall_time_s"] or 0.0)  # the kept steps/s, not the rounded wall time
    return RunSummary(run, int(row["episodes"]), env_steps, wall, number("final_return"),
                      number("episodes_to_threshold", int), number("steps_to_threshold", int))


def _parse(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def report_from_runs(directory: str | os.PathLike, command: str | None = None) -> tuple[str, list[dict]]:
    """Re-make a kept report's table (report.md, rows.csv) from its ``runs.csv`` and its ``report.md``'s header
    (experiment title, scale, the grid's command); the learning curves need the run directories and stay as
    they are. Returns ``(markdown, rows)``; :func:`main` writes them back."""
    import re

    from rlkit.experiments.registry import EXPERIMENTS
    from rlkit.experiments.runs import read_csv

    directory = Path(directory)
    old = (directory / "report.md").read_text(encoding="utf-8")
    title = old.splitlines()[0].removeprefix("# ").strip()
    exp = next(e for e in EXPERIMENTS.values() if e.title == title)
    scale = re.search(r"Scale: \*\*(\w+)\*\*", old).group(1)
    grid_command = re.search(r"Command: `([^`]*)`", old)
    summaries = [_summary_of(row) for row in read_csv(directory / "runs.csv")[1]]
    rows = _throughput_rows(exp, summaries) if exp.kind == "throughput" else _returns_rows(exp, summaries)
    markdown = _markdown(exp, scale, rows, 0, grid_command.group(1) if grid_command else None, remade=command)
    return markdown, rows


def _keep_legacy(path: Path) -> dict:
    """{(env, variant): the mean ± std and time-ratio columns} of an existing rows.csv (empty if none)."""
    from rlkit.experiments.runs import read_csv

    if not path.is_file():
        return {}
    legacy = {f"{k}_{part}" for k in STATISTICS for part in ("mean", "std")} | {"time_ratio_to_a2c"}
    return {(r["env"], r["variant"]): {k: v for k, v in r.items() if k in legacy} for r in read_csv(path)[1]}


def main(argv=None) -> None:
    """``python -m rlkit.experiments.report --from-runs DIR [DIR ...]``: rewrite each kept report's report.md and
    rows.csv from its runs.csv (:func:`report_from_runs`)."""
    import argparse
    import shlex
    import sys

    from rlkit.experiments.runs import write_csv

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--from-runs", nargs="+", required=True, metavar="DIR")
    args = parser.parse_args(argv)
    command = "python -m rlkit.experiments.report " + shlex.join(sys.argv[1:] if argv is None else argv)
    for directory in args.from_runs:
        old = _keep_legacy(Path(directory) / "rows.csv")
        markdown, rows = report_from_runs(directory, command)
        (Path(directory) / "report.md").write_text(markdown, encoding="utf-8")
        flat = [_flatten(row) for row in rows]
        for row in flat:  # the mean ± std columns as the grid's run directories gave them (runs.csv rounds steps/s)
            row.update(old.get((row["env"], row["variant"]), {}))
        write_csv(Path(directory) / "rows.csv", list(dict.fromkeys(k for row in flat for k in row)), flat)
        print(f"rewrote {directory}/report.md and rows.csv")


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


if __name__ == "__main__":
    main()
