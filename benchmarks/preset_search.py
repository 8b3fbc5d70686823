"""Which settings make one of the kit's agents sample-efficient on an env? A small grid, searched by rule.

Every cell of the grid (``--grid KEY=V1,V2 ...``, on top of ``--preset`` and the fixed ``--set``
overrides) is trained on seeds 0..N−1 until the mean return of the last 10 episodes reaches the env's
threshold (``sample_efficiency.py``'s table and stopper) or the budget is spent. The cells are ranked by
the median env steps to the threshold, a censored run counting as more than its budget; ties go to
the smaller mean. The first cell is the search's choice: a preset is made of it by copying its values,
with the search's report named as its source. Every cell prints its median with a 95% bootstrap
interval (``rlkit.experiments.run_stats``), so a reader sees how far the choice is from the others.

    python benchmarks/preset_search.py --algorithm a2c --env CartPole-v1 --preset classic \\
        --grid num_envs=1,4 num_steps=5,16 lr=7e-4,2e-3 --set entropy_coef=0 --seeds 3 --budget 200000
    python benchmarks/preset_search.py --quick        # smoke run: 2 cells, 1 seed, 2k steps, to /tmp

Writes ``data/benchmarks/preset_search/<algorithm>-<env>.csv`` (one row per run) and the report as
``.txt`` beside it. Runs go to ``runs/benchmarks/preset_search/...`` and are skipped when finished.
This is a benchmark, not a test: it prints and asserts nothing.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import math
import multiprocessing
import shlex
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
REPO = BENCHMARKS.parent
sys.path.insert(0, str(BENCHMARKS))
import sample_efficiency as se  # noqa: E402  (the env table, the stopper, the run reader)

COLUMNS = ("algorithm", "env", "preset", "cell", "seed", "budget", "status", "env_steps_to_threshold",
           "episodes_to_threshold", "env_steps_run", "wall_time_s")


def parse_pairs(items: list[str] | None, many: bool) -> dict[str, list[str] | str]:
    """``["lr=1e-3,3e-3"]`` → ``{"lr": ["1e-3", "3e-3"]}`` (``many``) or ``["lr=1e-3"]`` → ``{"lr": "1e-3"}``."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise ValueError(f"expected KEY=VALUE{',VALUE...' if many else ''}; got {item!r}")
        out[key.strip().replace("-", "_")] = value.split(",") if many else value
    return out


def cells(grid: dict[str, list[str]]) -> list[dict[str, str]]:
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def label(cell: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in cell.items()) or "preset"


def train_cell(job: tuple) -> dict:
    """Train (or skip, when finished) one seed of one cell; return its row."""
    import torch

    algorithm, env, preset, overrides, cell_label, seed, budget, run_dir = job
    torch.set_num_threads(1)
    run_dir = Path(run_dir)
    threshold = se.ENVS[env].threshold
    run = se.load_run(run_dir, threshold) if run_dir.exists() else None
    if run is None or (run["status"] == "incomplete"):
        if run_dir.exists():
            import shutil

            shutil.rmtree(run_dir)  # an unfinished run: trained again from the start
        se.train_to_threshold(algorithm, env, run_dir, seed=seed, budget=budget, preset=preset, threshold=threshold,
                              overrides=overrides)
        run = se.load_run(run_dir, threshold)
    return {"algorithm": algorithm, "env": env, "preset": preset, "cell": cell_label, "seed": seed, "budget": budget,
            "status": run["status"], "env_steps_to_threshold": run["steps"] if run["status"] == "reached" else "",
            "episodes_to_threshold": run["episodes"] if run["status"] == "reached" else "",
            "env_steps_run": run["env_steps_run"], "wall_time_s": round(run["wall_time_s"], 1)}


def rank(rows: list[dict]) -> list[tuple[str, object, float]]:
    """[(cell, median estimate, mean with censored runs at their budget)], best first."""
    import numpy as np

    from rlkit.experiments import run_stats as rs

    ranked = []
    for cell_label in dict.fromkeys(r["cell"] for r in rows):
        runs = [r for r in rows if r["cell"] == cell_label]
        values, censored = rs.censor([float(r["env_steps_to_threshold"]) if r["status"] == "reached" else math.nan
                                      for r in runs], [float(r["budget"]) for r in runs])
        estimate = rs.bootstrap_ci(values, rs.median, censored)
        ranked.append((cell_label, estimate, float(np.mean(values)), runs))
    return sorted(ranked, key=lambda c: (c[1].value, c[2]))


def report(rows: list[dict], out) -> None:
    from rlkit.experiments.run_stats import fmt_steps

    out(f"{'rank':>4s}  {'cell':48s} {'median env steps [95% CI]':>30s}  per seed")
    for i, (cell_label, estimate, _, runs) in enumerate(rank(rows), 1):
        seeds = " ".join(fmt_steps(float(r["env_steps_to_threshold"])) if r["status"] == "reached"
                         else ">" + fmt_steps(float(r["budget"])) for r in runs)
        out(f"{i:4d}  {cell_label:48s} {estimate.fmt(fmt_steps):>30s}  {seeds}")
    best = rank(rows)[0]
    out(f"\nchosen (smallest median, censored runs counted above their budget; ties: smaller mean): {best[0]}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--algorithm", default="a2c")
    ap.add_argument("--env", default="CartPole-v1", choices=[e for e, spec in se.ENVS.items()
                                                             if not isinstance(spec.threshold, str)],
                    help="an env with a return threshold")
    ap.add_argument("--preset", default=None, help="the preset the cells start from (default: the env's family)")
    ap.add_argument("--grid", nargs="+", metavar="KEY=V1,V2", help="the searched fields and their values")
    ap.add_argument("--set", dest="fixed", nargs="+", metavar="KEY=VALUE", help="fields fixed in every cell")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--budget", type=int, default=None, help="env steps per run (default: the env's)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--runs-root", type=Path, default=REPO / "runs" / "benchmarks" / "preset_search")
    ap.add_argument("--out", type=Path, default=None, help="CSV (default data/benchmarks/preset_search/ALGO-ENV.csv)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 cells, 1 seed, 2k steps, under /tmp")
    args = ap.parse_args(argv)
    command = "python benchmarks/preset_search.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    if args.quick:
        import tempfile

        args.grid, args.seeds, args.budget, args.workers = args.grid or ["lr=7e-4,2e-3"], 1, 2048, 1
        scratch = Path(tempfile.mkdtemp(prefix="preset_search_"))
        args.runs_root, args.out = scratch / "runs", args.out or scratch / "search.csv"
    try:
        grid, fixed = parse_pairs(args.grid, many=True), parse_pairs(args.fixed, many=False)
        if not grid:
            raise ValueError("--grid needs at least one KEY=V1,V2")
        from rlkit.experiments.train import resolve_run_config

        for cell in cells(grid):  # refuse a bad key or value before any training
            resolve_run_config(args.algorithm, args.env, {**fixed, **cell}, preset=args.preset)
    except Exception as error:  # noqa: BLE001  (ValueError or rlkit's RunError: a usage error)
        ap.error(str(error))
    preset = args.preset or se.ENVS[args.env].preset
    budget = args.budget or se.ENVS[args.env].budget
    from rlkit.experiments.runs import sanitize

    root = args.runs_root / f"{args.algorithm}-{sanitize(args.env)}"
    jobs = [(args.algorithm, args.env, preset, {**fixed, **cell}, label(cell), seed, budget,
             str(root / label(cell) / f"s{seed}")) for cell in cells(grid) for seed in range(args.seeds)]
    lines: list[str] = []

    def out(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    out(f"$ {command}")
    out(f"{args.algorithm} on {args.env} (threshold {se.ENVS[args.env].threshold:g}, mean of the last {se.WINDOW} "
        f"episodes), preset {preset}" + (f" with {label(fixed)}" if fixed else "") + f"; {len(cells(grid))} cells x "
        f"{args.seeds} seeds, budget {budget:,} env steps; 1 torch thread per run")
    if args.workers <= 1:
        rows = [train_cell(job) for job in jobs]
    else:
        with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            rows = list(pool.map(train_cell, jobs))
    report(rows, out)
    out_csv = args.out or REPO / "data" / "benchmarks" / "preset_search" / f"{args.algorithm}-{args.env}.csv"
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    with open(out_csv, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    out_csv.with_suffix(".txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
