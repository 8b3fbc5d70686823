"""How many env steps and episodes does each algorithm need to reach a return threshold?

For every env of the plan and every algorithm, N seeds are trained with ``rlkit.experiments.train.train``
until the mean return of the last 10 episodes first reaches the env's threshold, or until the env's
step budget is spent. Per env it prints the env steps and episodes to the threshold (median over
seeds, and each seed), every algorithm's ratio to ACKTR and their geometric mean over envs, ACKTR's
episodes beside the ACKTR paper's Table 2, and the targets; it writes one CSV row per run (``--out``,
default ``data/benchmarks/sample_efficiency.csv``) and the printed report beside it (``.txt``).

Conventions (each in detail in benchmarks/README.md):

* every algorithm of an env uses that env's preset family (``classic``, ``mujoco``): the same
  networks and batch; each keeps its own optimizer hyperparameters, which are what is compared;
* a run that misses the threshold within its budget is censored: every median and ratio is an
  interval, and a target is "pass", "miss" or "open";
* resumable: finished runs under ``--runs-root`` are skipped, killed ones resumed exactly, censored
  ones continued when the budget is raised; several invocations add up to one report.

    python benchmarks/sample_efficiency.py --workers 2 --seeds 3      # the default plan
    python benchmarks/sample_efficiency.py --envs CartPole-v1 InvertedPendulum-v5
    python benchmarks/sample_efficiency.py --envs Reacher-v5:acktr --budget Reacher-v5=250000
    python benchmarks/sample_efficiency.py --report-only                  # re-print / re-write from the runs
    python benchmarks/sample_efficiency.py --quick                        # tiny smoke run (seconds)

This is a benchmark, not a test: it prints and asserts nothing.
"""

from __future__ import annotations

import argparse
import collections
import csv
import math
import multiprocessing
import os
import platform
import shlex
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WINDOW = 10  # the threshold is on the mean return of the last WINDOW episodes

ALGORITHMS = ("acktr", "a2c", "trpo")  # add "vmpo" here once rlkit.agents has it
REFERENCE = "acktr"  # every ratio is X / REFERENCE


@dataclass(frozen=True)
class EnvSpec:
    threshold: float
    budget: int  # env steps per run
    preset: str  # the preset family used for every algorithm (same networks and batch)
    paper_domain: str | None = None  # the row of data/acktr_table2_mujoco.csv, if the paper has one
    default: bool = True  # in the default plan (False: run only when asked with --envs)


ENVS = {
    "CartPole-v1": EnvSpec(475, 500_000, "classic"),
    "Pendulum-v1": EnvSpec(-200, 1_000_000, "classic", default=False),  # for V-MPO
    "InvertedPendulum-v5": EnvSpec(950, 300_000, "mujoco", "IP"),
    "InvertedDoublePendulum-v5": EnvSpec(9100, 1_000_000, "mujoco", "IDP"),
    "Reacher-v5": EnvSpec(-7, 500_000, "mujoco", "Reacher"),
}

# Targets (printed beside the figures)
TARGET_GEOMEAN = {"a2c": 2.0}  # X/ACKTR env steps, geometric mean over envs
QUICK_BUDGET = 2048

CSV_COLUMNS = (
    "env", "threshold", "algorithm", "seed", "preset", "num_envs", "num_steps", "budget", "status",
    "env_steps_to_threshold", "episodes_to_threshold", "env_steps_run", "episodes_run", "episodes_in_budget",
    "best_mean10", "final_mean10", "wall_time_s", "run_dir",
)


# --------------------------------------------------------------------------- plan and jobs


@dataclass(frozen=True)
class Job:
    env: str
    algorithm: str
    seed: int
    threshold: float
    budget: int
    preset: str
    run_dir: str
    command: str


def run_dir_of(root: Path, env: str, algorithm: str, seed: int) -> Path:
    from rlkit.experiments.runs import sanitize

    return root / sanitize(env) / f"{algorithm}-s{seed}"


def parse_envs(items: list[str] | None, algorithms: list[str]) -> list[tuple[str, list[str]]]:
    if not items:
        return [(env, list(algorithms)) for env, spec in ENVS.items() if spec.default]
    plan = []
    for item in items:
        env, _, algos = item.partition(":")
        if env not in ENVS:
            raise SystemExit(f"sample_efficiency: unknown env {env!r}; the table has {', '.join(ENVS)}")
        plan.append((env, [a for a in algos.split(",") if a] if algos else list(algorithms)))
    return plan


def parse_overrides(items: list[str] | None, kind, what: str) -> dict:
    out = {}
    for item in items or []:
        env, sep, value = item.partition("=")
        if not sep or env not in ENVS:
            raise SystemExit(f"sample_efficiency: --{what} takes ENV=VALUE with ENV one of {', '.join(ENVS)}; "
                             f"got {item!r}")
        out[env] = kind(float(value)) if kind is int else kind(value)
    return out


def check_algorithms(plan) -> None:
    from rlkit.agents import AGENTS

    unknown = sorted({a for _, algos in plan for a in algos} - set(AGENTS))
    if unknown:
        raise SystemExit(f"sample_efficiency: algorithm(s) {unknown} not in rlkit.agents "
                         f"(have: {', '.join(sorted(AGENTS))})")


def batch_and_networks(algorithm: str, preset: str) -> dict:
    from rlkit.agents import resolve_config

    c = resolve_config(algorithm, preset=preset)
    keys = ("num_envs", "num_steps", "hidden_sizes", "activation", "shared_trunk", "log_std_init")
    return {k: getattr(c, k, None) for k in keys}


# --------------------------------------------------------------------------- reading a run


def load_run(run_dir: Path, threshold: float, cap: int | None = None) -> dict | None:
    """What a run directory says about the threshold (None if it has no run yet).

    The run's budget is its config.json ``steps``, or ``cap`` if smaller (an explicit ``--budget``:
    a run that went further is judged on its first ``cap`` steps only).

    Everything is computed from config.json, episodes.csv and updates.csv, so the report does not
    depend on how the run was stopped. ``status``: "reached" (within the run's budget),
    "censored" (budget spent, not reached) or "incomplete" (neither: killed, or to be continued).
    """
    from rlkit.experiments.runs import EPISODES_FILE, UPDATES_FILE, read_config, read_csv

    if not (run_dir / "config.json").exists():
        return None
    config = read_config(run_dir)
    budget = int(config["steps"]) if cap is None else min(int(config["steps"]), cap)
    episodes = read_csv(run_dir / EPISODES_FILE)[1] if (run_dir / EPISODES_FILE).exists() else []
    updates = read_csv(run_dir / UPDATES_FILE)[1] if (run_dir / UPDATES_FILE).exists() else []
    steps_run = int(updates[-1]["env_steps"]) if updates else 0
    wall = float(updates[-1]["wall_time_s"]) if updates else 0.0
    returns = [float(e["episode_return"]) for e in episodes]
    ends = [int(e["env_steps"]) for e in episodes]
    within = sum(1 for s in ends if s <= budget)
    means = [statistics.fmean(returns[i + 1 - WINDOW:i + 1]) for i in range(WINDOW - 1, within)]
    hit = next((i for i, m in enumerate(means) if m >= threshold), None)
    row = {
        "config": config, "budget": budget, "env_steps_run": steps_run, "episodes_run": len(episodes),
        "best_mean10": max(means) if means else math.nan, "final_mean10": means[-1] if means else math.nan,
        "wall_time_s": wall, "episodes_within_budget": within,
    }
    if hit is not None:
        i = hit + WINDOW - 1
        row.update(status="reached", steps=ends[i], episodes=i + 1)
    else:
        row.update(status="censored" if steps_run >= budget else "incomplete", steps=None, episodes=None)
    return row


def check_run_matches(run: dict, job: Job) -> None:
    config = run["config"]
    found = {k: config.get(k) for k in ("algorithm", "env", "seed", "preset")}
    wanted = {"algorithm": job.algorithm, "env": job.env, "seed": job.seed, "preset": job.preset}
    if found != wanted or config.get("overrides"):
        raise RuntimeError(f"{job.run_dir} holds another run ({found}, overrides {config.get('overrides')}); "
                           f"expected {wanted} with no overrides: move it away or choose another --runs-root")


# --------------------------------------------------------------------------- one job (in a worker)


class _ThresholdReached(Exception):
    pass


class _Stopper:
    """The training callback: stops the run after the update in which the last-10 mean reached the threshold."""

    def __init__(self, run_dir: Path, threshold: float):
        self.run_dir, self.threshold, self.recent = run_dir, threshold, None

    def __call__(self, info) -> None:
        from rlkit.experiments.report import threshold_crossing
        from rlkit.experiments.runs import EPISODES_FILE, read_csv

        if self.recent is None:  # first update of this process: episodes.csv holds all episodes so far (flushed)
            returns = [float(r["episode_return"]) for r in read_csv(self.run_dir / EPISODES_FILE)[1]]
        else:  # the last WINDOW − 1 episodes before this update, then this update's
            returns = self.recent + [e.episode_return for e in info.episodes]
        # every window, by the report's rule: an update of a long batch ends many episodes, and the
        # last-10 mean may cross the threshold and fall back within one update
        if threshold_crossing(returns, self.threshold, WINDOW) is not None:
            raise _ThresholdReached()
        self.recent = returns[-(WINDOW - 1):]


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def run_job(job: Job) -> dict:
    """Train (or resume, or skip) one run; return what load_run says about it, plus the action taken."""
    from rlkit.experiments.train import resume, train

    start = time.perf_counter()
    run_dir = Path(job.run_dir)
    run = load_run(run_dir, job.threshold)
    if run is not None:
        check_run_matches(run, job)
        if run["status"] == "reached" or run["env_steps_run"] >= job.budget:
            return {"job": job, "action": "skipped", "seconds": 0.0, **run}
    stopper = _Stopper(run_dir, job.threshold)
    batch = batch_and_networks(job.algorithm, job.preset)
    checkpoint_every = max(1, math.ceil(50_000 / (batch["num_envs"] * batch["num_steps"])))  # about every 50k steps
    try:
        if run is None:
            action = "trained"
            if run_dir.exists() and not any(run_dir.iterdir()):
                run_dir.rmdir()
            train(job.algorithm, job.env, steps=job.budget, seed=job.seed, preset=job.preset, run_dir=run_dir,
                  checkpoint_every=checkpoint_every, keep_checkpoints=1, progress=False, callback=stopper,
                  command=job.command)
        else:
            action = "resumed"
            resume(run_dir, steps=job.budget, progress=False, callback=stopper,
                   expect={"algorithm": job.algorithm, "env": job.env, "seed": job.seed, "preset": job.preset})
    except _ThresholdReached:
        pass
    return {"job": job, "action": action, "seconds": time.perf_counter() - start, **load_run(run_dir, job.threshold)}


# --------------------------------------------------------------------------- statistics with censoring


@dataclass(frozen=True)
class Interval:
    """A value known to lie in [lo, hi] (hi = inf: only a lower bound; lo = 0 with hi = inf: unknown)."""

    lo: float
    hi: float

    @property
    def exact(self) -> bool:
        return self.lo == self.hi

    def fmt(self, kind: str = "steps") -> str:
        f = {"steps": fmt_steps, "int": lambda v: f"{v:,.0f}", "ratio": lambda v: f"{v:.2f}"}[kind]
        if self.exact:
            return f(self.lo)
        if math.isinf(self.hi):
            return "n/a" if self.lo == 0 else ">" + f(self.lo)
        if self.lo == 0:
            return "<" + f(self.hi)
        return f"{f(self.lo)}..{f(self.hi)}"


def fmt_steps(v: float) -> str:
    return f"{v / 1e3:.1f}k" if v < 1e6 else f"{v / 1e6:.2f}M"


def median_interval(values: list[tuple[float, bool]]) -> Interval:
    """Median of (value, censored) pairs; a censored value is a lower bound (the truth is above it)."""
    lo = statistics.median(v for v, _ in values)
    hi_vals = [math.inf if c else v for v, c in values]
    hi_sorted = sorted(hi_vals)
    n = len(hi_sorted)
    hi = hi_sorted[n // 2] if n % 2 else (hi_sorted[n // 2 - 1] + hi_sorted[n // 2]) / 2
    return Interval(lo, hi)


def ratio(num: Interval, den: Interval) -> Interval:
    lo = num.lo / den.hi if not math.isinf(den.hi) else 0.0
    hi = num.hi / den.lo if den.lo > 0 else math.inf
    return Interval(lo, hi)


def geomean(intervals: list[Interval]) -> Interval:
    def g(xs):
        if any(x == 0 for x in xs):
            return 0.0
        if any(math.isinf(x) for x in xs):
            return math.inf
        return math.exp(statistics.fmean(math.log(x) for x in xs))

    return Interval(g([i.lo for i in intervals]), g([i.hi for i in intervals]))


def verdict_at_least(x: Interval, target: float) -> str:
    return "pass" if x.lo >= target else ("miss" if x.hi < target else "open")


def verdict_at_most(x: Interval, target: float) -> str:
    return "pass" if x.hi <= target else ("miss" if x.lo > target else "open")


# --------------------------------------------------------------------------- the report


def collect(root: Path, algorithms_seen: list[str], caps: dict | None = None) -> list[dict]:
    """Every run under ``root`` for the envs of the table, as CSV rows (``caps``: explicit budgets per env)."""
    rows = []
    for env, spec in ENVS.items():
        from rlkit.experiments.runs import sanitize

        env_dir = root / sanitize(env)
        if not env_dir.is_dir():
            continue
        for run_dir in sorted(env_dir.iterdir()):
            run = load_run(run_dir, spec.threshold, (caps or {}).get(env))
            if run is None:
                continue
            c = run["config"]
            algo = c["algorithm"]
            if algo not in algorithms_seen:
                algorithms_seen.append(algo)
            rows.append({
                "env": env, "threshold": spec.threshold, "algorithm": algo, "seed": c["seed"], "preset": c["preset"],
                "num_envs": c["agent"].get("num_envs"), "num_steps": c["agent"].get("num_steps"),
                "budget": run["budget"], "status": run["status"],
                "env_steps_to_threshold": run["steps"] if run["status"] == "reached" else "",
                "episodes_to_threshold": run["episodes"] if run["status"] == "reached" else "",
                "env_steps_run": run["env_steps_run"], "episodes_run": run["episodes_run"],
                "episodes_in_budget": run["episodes_within_budget"],
                "best_mean10": round(run["best_mean10"], 2), "final_mean10": round(run["final_mean10"], 2),
                "wall_time_s": round(run["wall_time_s"], 1), "run_dir": os.path.relpath(run_dir, REPO),
            })
    order = {a: i for i, a in enumerate(algorithms_seen)}
    rows.sort(key=lambda r: (list(ENVS).index(r["env"]), order[r["algorithm"]], r["seed"]))
    return rows


def seed_values(rows: list[dict], kind: str) -> list[tuple[float, bool]]:
    """(value, censored) per finished run: steps or episodes to threshold; censored at the budget."""
    out = []
    for r in rows:
        if r["status"] == "reached":
            out.append((float(r["env_steps_to_threshold"] if kind == "steps" else r["episodes_to_threshold"]), False))
        elif r["status"] == "censored":
            out.append((float(r["budget"] if kind == "steps" else r["episodes_in_budget"]), True))
    return out


def fmt_seed(r: dict, kind: str) -> str:
    if r["status"] == "reached":
        return fmt_steps(r["env_steps_to_threshold"]) if kind == "steps" else f"{r['episodes_to_threshold']:,}"
    if r["status"] == "censored":
        return ">" + (fmt_steps(r["budget"]) if kind == "steps" else f"{r['episodes_in_budget']:,}")
    return "(running)"


def report(rows: list[dict], algorithms: list[str], out=print) -> None:
    from rlkit.experiments.data import find_row, load_table

    table2 = load_table("acktr_table2_mujoco")
    others = [a for a in algorithms if a != REFERENCE]
    ratios: dict[str, dict[str, Interval]] = {a: {} for a in others}  # algo -> env -> steps ratio
    ratios_ep: dict[str, dict[str, Interval]] = {a: {} for a in others}
    acktr_status: dict[str, tuple[int, int]] = {}
    acktr_episodes: dict[str, Interval] = {}
    for env in ENVS:
        env_rows = [r for r in rows if r["env"] == env]
        if not env_rows:
            continue
        spec = ENVS[env]
        budgets = sorted({r["budget"] for r in env_rows})
        first = env_rows[0]
        out(f"\n== {env}: threshold {spec.threshold:g} (mean return of the last {WINDOW} episodes); budget "
            f"{'/'.join(fmt_steps(b) for b in budgets)} env steps per run; preset {first['preset']} "
            f"({first['num_envs']} env(s) x {first['num_steps']} steps per update) ==")
        out(f"{'algorithm':10s} {'seeds':>5s} {'reached':>7s} {'steps median':>13s} {'steps per seed':>26s} "
            f"{'episodes median':>15s} {'episodes per seed':>26s} {'X/ACKTR steps':>13s} {'X/ACKTR episodes':>16s} "
            f"{'best mean10':>12s} {'wall s':>7s}")
        medians = {}
        for algo in algorithms:
            ar = [r for r in env_rows if r["algorithm"] == algo]
            if not ar:
                continue
            done = [r for r in ar if r["status"] != "incomplete"]
            reached = sum(r["status"] == "reached" for r in ar)
            steps = median_interval(seed_values(ar, "steps")) if done else None
            eps = median_interval(seed_values(ar, "episodes")) if done else None
            medians[algo] = (steps, eps)
            if algo == REFERENCE:
                acktr_status[env] = (reached, len(ar))
                if eps is not None:
                    acktr_episodes[env] = eps
            rs, re_ = "", ""
            if algo != REFERENCE and steps is not None and medians.get(REFERENCE, (None,))[0] is not None:
                s_ratio = ratio(steps, medians[REFERENCE][0])
                e_ratio = ratio(eps, medians[REFERENCE][1])
                ratios[algo][env], ratios_ep[algo][env] = s_ratio, e_ratio
                rs, re_ = s_ratio.fmt("ratio"), e_ratio.fmt("ratio")
            elif algo == REFERENCE:
                rs = re_ = "1"
            best = max(r["best_mean10"] for r in ar)
            wall = sum(r["wall_time_s"] for r in ar)
            out(f"{algo:10s} {len(ar):5d} {f'{reached}/{len(ar)}':>7s} {steps.fmt() if steps else '-':>13s} "
                f"{' '.join(fmt_seed(r, 'steps') for r in ar):>26s} {eps.fmt('int') if eps else '-':>15s} "
                f"{' '.join(fmt_seed(r, 'episodes') for r in ar):>26s} {rs:>13s} {re_:>16s} {best:12.1f} {wall:7.0f}")
        if spec.paper_domain:
            p = find_row(table2, domain=spec.paper_domain)
            paper = {a: p.get(f"{a}_episodes_to_threshold") for a in algorithms}
            line = f"paper Table 2 (episodes; 3 best of 8 seeds, 30M steps): ACKTR {paper[REFERENCE]:,.0f}"
            for a in others:
                if paper.get(a) is not None and not math.isnan(paper[a]):
                    line += f", {a.upper()} {paper[a]:,.0f} ({a.upper()}/ACKTR {paper[a] / paper[REFERENCE]:.2f})"
            out(line)

    # ---- summary: geometric means and targets
    out("\n== ratios to ACKTR over envs (X/ACKTR: how many times ACKTR's samples X needs; censored -> bounds) ==")
    for a in others:
        if ratios[a]:
            gs, ge = geomean(list(ratios[a].values())), geomean(list(ratios_ep[a].values()))
            per = ", ".join(f"{e} {r.fmt('ratio')}" for e, r in ratios[a].items())
            out(f"{a.upper()}/ACKTR env steps: geometric mean {gs.fmt('ratio')} over {len(ratios[a])} env(s) ({per}); "
                f"episodes: {ge.fmt('ratio')}")

    out("\n== targets ==")
    if acktr_status:
        missing = [f"{e} {k}/{n}" for e, (k, n) in acktr_status.items() if k < n]
        not_run = [e for e, s in ENVS.items() if s.default and e not in acktr_status]
        v = "pass" if not missing else "miss"
        if not missing and not_run:
            v = "pass (envs run)"
        out(f"ACKTR reaches every threshold (every seed, within budget): {v}"
            + (f"; reached/seeds: {', '.join(missing)}" if missing else "")
            + (f"; not run: {', '.join(not_run)}" if not_run else ""))
    for a, target in TARGET_GEOMEAN.items():
        if a in ratios and ratios[a]:
            g = geomean(list(ratios[a].values()))
            out(f"{a.upper()}/ACKTR >= {target:g} (geometric mean of env-step ratios over "
                f"{', '.join(ratios[a])}): {g.fmt('ratio')} -> {verdict_at_least(g, target)}")
    for env, spec in ENVS.items():
        if spec.paper_domain:
            paper = find_row(table2, domain=spec.paper_domain)["acktr_episodes_to_threshold"]
            if env in acktr_episodes:
                e = acktr_episodes[env]
                out(f"ACKTR episodes on {spec.paper_domain} <= paper's {paper:,.0f}: {e.fmt('int')} -> "
                    f"{verdict_at_most(e, paper)}")
            elif spec.default:
                out(f"ACKTR episodes on {spec.paper_domain} <= paper's {paper:,.0f}: not run")


def write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


# --------------------------------------------------------------------------- main


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--envs", nargs="+", metavar="ENV[:ALGO,...]",
                    help=f"envs to run (default: {', '.join(e for e, s in ENVS.items() if s.default)})")
    ap.add_argument("--algorithms", nargs="+", default=list(ALGORITHMS), help="default: %(default)s")
    ap.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    ap.add_argument("--budget", action="append", metavar="ENV=STEPS", help="env steps per run (default: the table's)")
    ap.add_argument("--threshold", action="append", metavar="ENV=VALUE", help="override an env's threshold")
    ap.add_argument("--workers", type=int, default=2, help="worker processes (1: in this process)")
    ap.add_argument("--runs-root", type=Path, default=None,
                    help="where run directories go (default runs/benchmarks/sample_efficiency)")
    ap.add_argument("--out", type=Path, default=None,
                    help="CSV to write; the printed report goes beside it as .txt (default "
                         "data/benchmarks/sample_efficiency.csv)")
    ap.add_argument("--report-only", action="store_true", help="train nothing: report the runs under --runs-root")
    ap.add_argument("--quick", action="store_true",
                    help=f"smoke run: CartPole-v1, 1 seed, {QUICK_BUDGET} steps, under runs/benchmarks/quick")
    args = ap.parse_args(argv)
    command = "python benchmarks/sample_efficiency.py " + shlex.join(sys.argv[1:] if argv is None else argv)

    if args.quick:
        args.envs = args.envs or ["CartPole-v1"]
        args.seeds = 1
        args.budget = [f"{e.partition(':')[0]}={QUICK_BUDGET}" for e in args.envs] + (args.budget or [])
    quick_root = REPO / "runs" / "benchmarks" / "quick"
    root = args.runs_root or (quick_root / "sample_efficiency" if args.quick
                              else REPO / "runs" / "benchmarks" / "sample_efficiency")
    out_csv = args.out or (quick_root / "sample_efficiency.csv" if args.quick
                           else REPO / "data" / "benchmarks" / "sample_efficiency.csv")
    thresholds = parse_overrides(args.threshold, float, "threshold")
    if thresholds:
        for env, value in thresholds.items():
            ENVS[env] = EnvSpec(value, ENVS[env].budget, ENVS[env].preset, ENVS[env].paper_domain, ENVS[env].default)
    budgets = parse_overrides(args.budget, int, "budget")
    plan = parse_envs(args.envs, args.algorithms)
    check_algorithms(plan)

    lines: list[str] = []

    def out(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    import torch

    out(f"$ {command}")
    out(f"python {platform.python_version()}  torch {torch.__version__}  cpus {os.cpu_count()}  "
        f"workers {args.workers} (1 torch thread each)  runs {os.path.relpath(root, REPO)}")
    out("batch and networks per env (every algorithm uses the env's preset family):")
    for env, algos in plan:
        preset = ENVS[env].preset
        shapes = {a: batch_and_networks(a, preset) for a in algos}
        distinct = {repr(s) for s in shapes.values()}
        s = next(iter(shapes.values()))
        desc = (f"{s['num_envs']} x {s['num_steps']} steps, {'-'.join(map(str, s['hidden_sizes']))} {s['activation']}, "
                f"{'shared trunk' if s['shared_trunk'] else 'separate actor and critic'}, "
                f"initial log-std {s['log_std_init']:g} (Gaussian policies)")
        out(f"  {env:27s} preset {preset:8s} {desc}" + ("" if len(distinct) == 1 else
            f"  WARNING: not identical: {shapes}"))

    if not args.report_only:
        jobs = [Job(env, algo, seed, ENVS[env].threshold, budgets.get(env, ENVS[env].budget), ENVS[env].preset,
                    str(run_dir_of(root, env, algo, seed)), command)
                for env, algos in plan for seed in range(args.seeds) for algo in algos]
        out(f"{len(jobs)} runs: " + "; ".join(
            f"{env} [{','.join(algos)}] x {args.seeds} seeds, budget {fmt_steps(budgets.get(env, ENVS[env].budget))}"
            for env, algos in plan))
        t0 = time.perf_counter()
        failures = []

        actions = []

        def done(result: dict) -> None:
            j = result["job"]
            actions.append(result["action"])
            what = (f"{result['status']} at {fmt_steps(result['steps'])} steps, episode {result['episodes']:,}"
                    if result["status"] == "reached" else f"{result['status']} at {fmt_steps(result['env_steps_run'])}")
            print(f"  [{time.perf_counter() - t0:7.0f}s] {j.env} {j.algorithm} s{j.seed}: {result['action']}, {what}, "
                  f"{result['seconds']:.0f}s", flush=True)

        if args.workers <= 1:
            _init_worker()
            for job in jobs:
                try:
                    done(run_job(job))
                except Exception as error:  # report, keep going
                    failures.append((job, error))
                    print(f"  FAILED {job.env} {job.algorithm} s{job.seed}: {error!r}", flush=True)
        else:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(args.workers, mp_context=ctx, initializer=_init_worker) as pool:
                futures = {pool.submit(run_job, job): job for job in jobs}
                for f in as_completed(futures):
                    try:
                        done(f.result())
                    except Exception as error:
                        job = futures[f]
                        failures.append((job, error))
                        print(f"  FAILED {job.env} {job.algorithm} s{job.seed}: {error!r}", flush=True)
        counts = collections.Counter(actions)
        out(f"this invocation: {', '.join(f'{n} {a}' for a, n in counts.items())}; wall time "
            f"{time.perf_counter() - t0:.0f} s (each run's own training time: 'wall s' below)"
            + (f"; {len(failures)} run(s) FAILED" if failures else ""))

    algorithms = [a for a in ALGORITHMS]
    for _, algos in plan:
        algorithms += [a for a in algos if a not in algorithms]
    rows = collect(root, algorithms, budgets)
    if not rows:
        out("no runs found")
        return
    report(rows, [a for a in algorithms if any(r["algorithm"] == a for r in rows)], out)
    write_csv(out_csv, rows)
    out_txt = out_csv.with_suffix(".txt")
    out(f"\nwrote {os.path.relpath(out_csv, REPO)} and {os.path.relpath(out_txt, REPO)}")
    out_txt.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
