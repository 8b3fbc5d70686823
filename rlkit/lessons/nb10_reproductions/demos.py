"""What notebook 10 needs beyond rlkit.experiments: the committed runs as inputs of
``rlkit.experiments.run_stats``, the claims of the papers as ratios with their intervals, and the
interval plot of the claims.

* :func:`load` → a committed laptop-scale report (``data/reproductions/<name>-laptop``) with each
  run's variant;
* :func:`grid_values` / :func:`bench_values` → (values, censored) of a grid's or the benchmark's runs;
* :func:`speeds` → the steps per second of the throughput benchmark's repeats;
* :class:`Claim` and :func:`claim_lines` → one line per claim: the ratio, its 95% interval, the
  paper's number, the verdict;
* :func:`claims_figure` → the claims' intervals on one log axis beside their bounds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rlkit.experiments import run_stats
from rlkit.experiments.results import benchmark_rows, load_reproduction, values_to_threshold

__all__ = ["NAMES", "load", "grid_values", "bench_values", "speeds", "Claim", "claim_lines", "claims_figure", "png"]

NAMES = ("acktr-table2", "acktr-table3", "acktr-figure5ab", "acktr-figure5cd", "vmpo-vs-acktr")


def load(name: str) -> dict:
    """``data/reproductions/<name>-laptop``: its runs (each with ``variant``), scale, the grid's command."""
    import re

    repro = load_reproduction(f"{name}-laptop")
    runs = [dict(r, variant=r["run"].split("/")[1]) for r in repro.runs]
    command = re.search(r"Command: `([^`]*)`", repro.markdown)
    return {"runs": runs, "rows": repro.rows, "scale": repro.scale, "command": command.group(1) if command else "?"}


def grid_values(runs: list[dict], variant: str, column: str = "steps_to_threshold", env: str | None = None):
    """(values, censored) of ``column`` over the runs of ``variant`` (on ``env``): a run that never reached the
    threshold is censored at the env steps (``steps_to_threshold``) or episodes it ran."""
    mine = [r for r in runs if r["variant"] == variant and (env is None or r["env"] == env)]
    budget = "env_steps" if column.startswith("steps") else "episodes"
    return run_stats.censor([r[column] for r in mine], [r[budget] for r in mine])


def bench_values(env: str, algorithm: str, unit: str = "steps", rows: list[dict] | None = None):
    """(values, censored) of the benchmark's seeds (``data/benchmarks/sample_efficiency.csv``)."""
    column = {"steps": "env_steps_to_threshold", "episodes": "episodes_to_threshold"}[unit]
    return values_to_threshold(rows if rows is not None else benchmark_rows("sample_efficiency"), env, algorithm, column)


def speeds(algorithm: str, domain: str, batch: int, rows: list[dict] | None = None) -> np.ndarray:
    """Steps per second of each repeat of ``data/benchmarks/throughput_runs.csv`` for one configuration."""
    rows = rows if rows is not None else benchmark_rows("throughput_runs")
    return np.array([r["timesteps_per_second"] for r in rows if r["algorithm"] == algorithm
                     and r["domain"] == domain and int(r["batch_size"]) == batch])


@dataclass
class Claim:
    """One claim as a ratio: ``estimate`` (a run_stats.Estimate), the claimed direction against ``bound``
    (``greater``: ratio > bound), the paper's number (text) and where the runs come from."""

    text: str
    estimate: run_stats.Estimate
    bound: float = 1.0
    greater: bool = True
    paper: str = "—"
    runs: tuple | None = None  # (x, censored_x, y, censored_y) of a ratio x/y: how many seeds would decide it

    @property
    def verdict(self) -> str:
        return run_stats.verdict(self.estimate, self.bound, self.greater)

    @property
    def seeds_to_decide(self) -> float | None:
        """run_stats.seeds_to_decide for an undecided ratio of two methods' runs (None otherwise)."""
        if self.verdict != "undecided" or self.runs is None:
            return None
        x, cx, y, cy = self.runs
        return run_stats.seeds_to_decide(x, y, cx, cy)


def _runs(estimate: run_stats.Estimate) -> str:
    n, k = np.atleast_1d(estimate.n), np.atleast_1d(estimate.censored)
    return "/".join(str(int(v)) for v in n) + (f" ({'/'.join(str(int(v)) for v in k)} cens.)" if k.any() else "")


def claim_lines(claims: list[Claim], width: int = 62) -> list[str]:
    """One line per claim: text, ours (estimate [95% CI]), runs per side, the paper's, the verdict (an undecided
    ratio of two methods: with the seeds per method that would decide it, from the observed spread)."""
    lines = [f"{'claim':{width}s} {'ours [95% CI]':>24s} {'runs':>16s} {'paper':>7s}  verdict"]
    for c in claims:
        n = c.seeds_to_decide
        more = "" if n is None else (f" (~{n:.0f} seeds to decide)" if math.isfinite(n) else " (no difference seen)")
        lines.append(f"{c.text:{width}s} {c.estimate.fmt():>24s} {_runs(c.estimate):>16s} {c.paper:>7s}  "
                     f"{c.verdict}{more}")
    return lines


COLORS = {"supported": "tab:green", "contradicted": "tab:red", "undecided": "tab:gray"}


def claims_figure(claims: list[Claim], title: str = ""):
    """The claims' 95% intervals on one log axis (an arrow where an interval is unbounded), each beside its bound
    (the dotted tick), coloured by verdict."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 0.34 * len(claims) + 1.2), dpi=100)
    ax = figure.subplots()
    finite = [v for c in claims for v in (c.estimate.ci_low, c.estimate.ci_high, c.estimate.low, c.bound)
              if 0 < v < math.inf]
    lo, hi = min(finite) / 1.5, max(finite) * 1.5
    for i, c in enumerate(claims):
        y = len(claims) - 1 - i
        e, color = c.estimate, COLORS[c.verdict]
        left, right = max(e.ci_low, lo), min(e.ci_high, hi)
        ax.plot([left, right], [y, y], color=color, lw=3, solid_capstyle="butt")
        if e.ci_high == math.inf:
            ax.annotate("", (hi, y), (hi / 1.25, y), arrowprops=dict(arrowstyle="->", color=color))
        if not (e.low == 0 and e.high == math.inf):  # "?": no estimate to mark
            ax.plot([min(max(e.low, lo), hi)], [y], "o", color="k", ms=4)
        ax.plot([c.bound, c.bound], [y - 0.4, y + 0.4], ":", color="k", lw=1)
    ax.set_yticks(range(len(claims))[::-1], [c.text for c in claims], fontsize=7)
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    ax.set_xlabel("ratio (dot: estimate; bar: 95% bootstrap interval; dotted: the claim's bound)")
    handles = [ax.plot([], [], color=color, lw=3)[0] for color in COLORS.values()]
    ax.legend(handles, list(COLORS), fontsize=7, loc="lower right")
    ax.set_title(title, fontsize=9)
    figure.tight_layout()
    return figure


def png(figure) -> bytes:
    """A matplotlib Figure as PNG bytes (for ``IPython.display.Image``)."""
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()
