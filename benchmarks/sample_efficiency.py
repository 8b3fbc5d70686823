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
* a run that misses the threshold within its budget is censored: it counts as more than its budget,
  never dropped; every median and ratio carries its 95% bootstrap interval (``rlkit.experiments.run_stats``),
  a claim is "supported", "contradicted" or "undecided" by that interval, a target "pass", "miss" or "open";
* resumable: finished runs under ``--runs-root`` are skipped, killed ones resumed exactly, censored
  ones continued when the budget is raised; several invocations add up to one report.

    python benchmarks/sample_efficiency.py --workers 2 --seeds 3      # the default plan
    python benchmarks/sample_efficiency.py --envs CartPole-v1 InvertedPendulum-v5
    python benchmarks/sample_efficiency.py --envs Reacher-v5:acktr --budget Reacher-v5=250000
    python benchmarks/sample_efficiency.py --report-only                  # re-print / re-write from the runs
    python benchmarks/sample_efficiency.py --from-csv data/benchmarks/sample_efficiency.csv  # from the CSV alone
    python benchmarks/sample_efficiency.py --quick                        # tiny smoke run (seconds)

More seeds for runs already made: ``--first-seed 3 --seeds 2`` trains seeds 3 and 4 (under another
``--runs-root``); ``--from-csv`` then merges the two CSVs, and refuses a run that appears in both.

Peers: ``--algorithms`` also takes Stable-Baselines3's PPO and A2C and sb3-contrib's TRPO, at the
library's defaults (``sb3-ppo``, ``sb3-a2c``, ``sb3-trpo``) or the RL Baselines3 Zoo's tuned settings
(``sb3-ppo-zoo``, ...), from the optional ``peers`` extra (benchmarks/peers.py). Their rows carry their
settings in the preset column; ``--from-csv`` reads several CSVs, so the kit's and the peers' runs
print as one report:

    python benchmarks/sample_efficiency.py --envs CartPole-v1 --algorithms sb3-ppo sb3-ppo-zoo \
        --seeds 5 --out data/benchmarks/sample_efficiency_peers.csv
    python benchmarks/sample_efficiency.py --from-csv data/benchmarks/sample_efficiency.csv \
        data/benchmarks/sample_efficiency_peers.csv --out data/benchmarks/sample_efficiency_with_peers.csv

A threshold can be an algorithm's return instead of a number (HalfCheetah-v5's is ``sb3-ppo``'s, or
``--threshold ENV=ALGO``): every run then trains to the budget, and the report takes the median over
ALGO's seeds of the mean of its last 10 episodes there, and judges every run by that return. The runs
can lie under several roots, reported as one:

    python benchmarks/sample_efficiency.py --envs HalfCheetah-v5:sb3-ppo,acktr --report-only \
        --runs-root runs/benchmarks/halfcheetah runs/benchmarks/halfcheetah-checked

This is a benchmark, not a test: it prints and asserts nothing.
"""

from __future__ import annotations

import argparse
import collections
import csv
import dataclasses
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
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/peers.py, also in spawned workers

import peers  # noqa: E402
WINDOW = 10  # the threshold is on the mean return of the last WINDOW episodes

ALGORITHMS = ("acktr", "a2c", "trpo")  # the default plan; V-MPO runs when named (--envs ENV:vmpo)
REFERENCE = "acktr"  # every ratio is X / REFERENCE


@dataclass(frozen=True)
class EnvSpec:
    threshold: float | str  # a return, or an algorithm's name: the return it reaches at the budget (below)
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
    # against PPO, the threshold is the return PPO reaches in 1M steps, not the paper's 4,700
    "HalfCheetah-v5": EnvSpec("sb3-ppo", 1_000_000, "mujoco", default=False),
}

# Targets (printed beside the figures)
TARGET_GEOMEAN = {"a2c": 2.0}  # X/ACKTR env steps, geometric mean over envs
QUICK_BUDGET = 2048

CSV_COLUMNS = (
    "env", "threshold", "algorithm", "seed", "preset", "num_envs", "num_steps", "budget", "status",
    "env_steps_to_threshold", "episodes_to_threshold", "env_steps_run", "episodes_run", "episodes_in_budget",
    "best_mean10", "final_mean10", "wall_time_s", "run_dir", "kl_over_delta",
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


def training_threshold(spec: EnvSpec) -> float:
    """The return a run stops at: the env's threshold, or none (inf) where the threshold is an algorithm's
    return at the budget, known only once that algorithm's runs are finished."""
    return math.inf if isinstance(spec.threshold, str) else float(spec.threshold)


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


def parse_thresholds(items: list[str] | None) -> dict[str, float | str]:
    """``ENV=VALUE``: a return, or an algorithm's name (the median return its runs reach at the budget)."""
    out = {}
    for env, value in parse_overrides(items, str, "threshold").items():
        try:
            out[env] = float(value)
        except ValueError:
            out[env] = value
    return out


def parse_presets(items: list[str] | None) -> dict[str, str]:
    """``["a2c=classic-tuned"]`` → ``{"a2c": "classic-tuned"}``, each checked against the agent's presets."""
    from rlkit.agents import resolve_config

    out = {}
    for item in items or []:
        algorithm, sep, preset = item.partition("=")
        if not sep:
            raise SystemExit(f"sample_efficiency: --preset takes ALGO=PRESET; got {item!r}")
        try:
            resolve_config(algorithm, preset=preset)
        except ValueError as error:
            raise SystemExit(f"sample_efficiency: --preset {item}: {error}") from error
        out[algorithm] = preset
    return out


def check_algorithms(plan) -> None:
    from rlkit.agents import AGENTS

    unknown = sorted({a for _, algos in plan for a in algos} - set(AGENTS) - set(peers.PEERS))
    if unknown:
        raise SystemExit(f"sample_efficiency: algorithm(s) {unknown} are neither in rlkit.agents "
                         f"({', '.join(sorted(AGENTS))}) nor peers ({', '.join(peers.PEERS)})")
    wanted = {a for _, algos in plan for a in algos} & set(peers.PEERS)
    why = peers.missing_library() if wanted else None
    if why:
        raise SystemExit(f"sample_efficiency: {', '.join(sorted(wanted))}: {why}")


def check_threshold_algorithms() -> None:
    from rlkit.agents import AGENTS

    for env, spec in ENVS.items():
        if isinstance(spec.threshold, str) and spec.threshold not in {*AGENTS, *peers.PEERS}:
            raise SystemExit(f"sample_efficiency: --threshold {env}={spec.threshold}: a threshold is a return or "
                             f"the name of an algorithm ({', '.join([*sorted(AGENTS), *peers.PEERS])})")


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

    config = peers.read_peer_config(run_dir)
    if config is None:
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


def kl_over_delta(run_dir: Path, config: dict) -> float:
    """The median over a run's updates of its measured KL(π_old ‖ π_new) over its δ (NaN where the agent has
    no δ or measured no KL: A2C, V-MPO, the peers)."""
    import numpy as np

    from rlkit.experiments.runs import read_updates

    delta = (config.get("agent") or {}).get("delta")
    if delta is None or not (run_dir / "updates.csv").exists():
        return math.nan
    kl = read_updates(run_dir).get("measured_kl")
    if kl is None or not np.isfinite(kl).any():
        return math.nan
    return float(np.nanmedian(kl)) / float(delta)


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


def train_to_threshold(algorithm: str, env: str, run_dir: Path, *, seed: int, budget: int, preset: str,
                       threshold: float, overrides: dict | None = None, checkpoint_every: int = 10**6,
                       command: str | None = None) -> None:
    """Train a new run of a kit agent into ``run_dir`` until the mean return of the last 10 episodes reaches
    ``threshold`` (after the update in which it does) or ``budget`` env steps are spent."""
    from rlkit.experiments.train import train

    try:
        train(algorithm, env, steps=budget, seed=seed, preset=preset, run_dir=run_dir, overrides=overrides,
              checkpoint_every=checkpoint_every, keep_checkpoints=1, progress=False,
              callback=_Stopper(run_dir, threshold), command=command)
    except _ThresholdReached:
        pass


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def run_job(job: Job) -> dict:
    """Train (or resume, or skip) one run; return what load_run says about it, plus the action taken."""
    from rlkit.experiments.train import resume

    start = time.perf_counter()
    run_dir = Path(job.run_dir)
    run = load_run(run_dir, job.threshold)
    if run is not None:
        check_run_matches(run, job)
        if run["status"] == "reached" or run["env_steps_run"] >= job.budget:
            return {"job": job, "action": "skipped", "seconds": 0.0, **run}
    if job.algorithm in peers.PEERS:
        peers.train(job.algorithm, job.env, job.seed, job.budget, job.threshold, WINDOW, run_dir, job.command)
        return {"job": job, "action": "trained" if run is None else "trained again",
                "seconds": time.perf_counter() - start, **load_run(run_dir, job.threshold)}
    batch = batch_and_networks(job.algorithm, job.preset)
    checkpoint_every = max(1, math.ceil(50_000 / (batch["num_envs"] * batch["num_steps"])))  # about every 50k steps
    if run is None:
        action = "trained"
        if run_dir.exists() and not any(run_dir.iterdir()):
            run_dir.rmdir()
        train_to_threshold(job.algorithm, job.env, run_dir, seed=job.seed, budget=job.budget, preset=job.preset,
                           threshold=job.threshold, checkpoint_every=checkpoint_every, command=job.command)
    else:
        action = "resumed"
        try:
            resume(run_dir, steps=job.budget, progress=False, callback=_Stopper(run_dir, job.threshold),
                   expect={"algorithm": job.algorithm, "env": job.env, "seed": job.seed, "preset": job.preset})
        except _ThresholdReached:
            pass
    return {"job": job, "action": action, "seconds": time.perf_counter() - start, **load_run(run_dir, job.threshold)}


# --------------------------------------------------------------------------- statistics with censoring
#
# rlkit.experiments.run_stats: medians with 95% seeded bootstrap intervals; a censored run (budget spent,
# threshold not reached) counts as "more than its budget" (the estimate's lower end at the budget, its
# upper end at +inf), never dropped; a claim's verdict follows from the interval of its ratio.


def fmt_steps(v: float) -> str:
    from rlkit.experiments.run_stats import fmt_steps as fmt

    return fmt(v)


def fmt_ratio(v: float) -> str:
    return f"{v:.2f}"


def seed_values(rows: list[dict], kind: str):
    """(values with each censored run at its budget, censored mask) over the finished runs: steps or episodes."""
    import numpy as np

    from rlkit.experiments.run_stats import censor

    done = [r for r in rows if r["status"] in ("reached", "censored")]
    column, budget = (("env_steps_to_threshold", "budget") if kind == "steps"
                      else ("episodes_to_threshold", "episodes_in_budget"))
    values = [float(r[column]) if r["status"] == "reached" else math.nan for r in done]
    return censor(values, [float(r[budget]) for r in done]) if done else (np.array([]), np.array([], bool))


def target_verdict(estimate, target: float, at_least: bool) -> str:
    """"pass" when the 95% interval clears the target, "miss" when it clears it the other way, else "open"."""
    lo, hi = estimate.ci_low, estimate.ci_high
    if at_least:
        return "pass" if lo >= target else ("miss" if hi < target else "open")
    return "pass" if hi <= target else ("miss" if lo > target else "open")


# --------------------------------------------------------------------------- the report


def run_dirs_of(roots: list[Path], env: str) -> list[Path]:
    from rlkit.experiments.runs import sanitize

    return [d for root in roots if (root / sanitize(env)).is_dir() for d in sorted((root / sanitize(env)).iterdir())]


def derived_threshold(algorithm: str, run_dirs: list[Path], cap: int | None) -> dict | None:
    """The threshold ``algorithm`` defines on an env: the median over its finished runs (of ``run_dirs``) of the mean
    return of the last 10 episodes at the budget (None: no finished run of it)."""
    finals = {}
    for run_dir in run_dirs:
        run = load_run(run_dir, math.inf, cap)
        if (run is not None and run["config"]["algorithm"] == algorithm and run["env_steps_run"] >= run["budget"]
                and not math.isnan(run["final_mean10"])):
            finals[run["config"]["seed"]] = run["final_mean10"]
    if not finals:
        return None
    return {"threshold": statistics.median(finals.values()), "algorithm": algorithm, "finals": dict(sorted(finals.items()))}


def collect(roots: list[Path], algorithms_seen: list[str], caps: dict | None = None,
            notes: list[str] | None = None) -> list[dict]:
    """Every run under ``roots`` for the envs of the table, as CSV rows (``caps``: explicit budgets per env).

    Where an env's threshold is an algorithm's return, it is derived first from that algorithm's runs
    (``notes`` gets a line saying so); an env without a finished run of it is left out, with a note."""
    rows = []
    notes = [] if notes is None else notes
    for env, spec in ENVS.items():
        run_dirs = run_dirs_of(roots, env)
        if not run_dirs:
            continue
        cap = (caps or {}).get(env)
        threshold = spec.threshold
        if isinstance(threshold, str):
            derived = derived_threshold(threshold, run_dirs, cap)
            if derived is None:
                notes.append(f"{env} left out: its threshold is the return {threshold} reaches at the budget, "
                             f"and no finished {threshold} run is under {', '.join(map(str, roots))}")
                continue
            threshold = derived["threshold"]  # not rounded: the median seed reaches its own return
            notes.append(f"{env}: threshold {threshold:g} = median over seeds of {threshold_source(derived)}")
        for run_dir in run_dirs:
            run = load_run(run_dir, threshold, cap)
            if run is None:
                continue
            c = run["config"]
            algo = c["algorithm"]
            if algo not in algorithms_seen:
                algorithms_seen.append(algo)
            rows.append({
                "env": env, "threshold": threshold, "algorithm": algo, "seed": c["seed"], "preset": c["preset"],
                "num_envs": c["agent"].get("num_envs"), "num_steps": c["agent"].get("num_steps"),
                "budget": run["budget"], "status": run["status"],
                "env_steps_to_threshold": run["steps"] if run["status"] == "reached" else "",
                "episodes_to_threshold": run["episodes"] if run["status"] == "reached" else "",
                "env_steps_run": run["env_steps_run"], "episodes_run": run["episodes_run"],
                "episodes_in_budget": run["episodes_within_budget"],
                "best_mean10": round(run["best_mean10"], 2), "final_mean10": round(run["final_mean10"], 2),
                "wall_time_s": round(run["wall_time_s"], 1), "run_dir": os.path.relpath(run_dir, REPO),
                "kl_over_delta": round(kl_over_delta(run_dir, c), 3),
            })
    order = {a: i for i, a in enumerate(algorithms_seen)}
    rows.sort(key=lambda r: (list(ENVS).index(r["env"]), order[r["algorithm"]], r["seed"]))
    return rows


def threshold_source(derived: dict) -> str:
    finals = ", ".join(f"s{seed} {value:.1f}" for seed, value in derived["finals"].items())
    return f"{derived['algorithm']}'s mean return of the last {WINDOW} episodes at the budget ({finals})"


def fmt_seed(r: dict, kind: str) -> str:
    if r["status"] == "reached":
        return fmt_steps(r["env_steps_to_threshold"]) if kind == "steps" else f"{r['episodes_to_threshold']:,}"
    if r["status"] == "censored":
        return ">" + (fmt_steps(r["budget"]) if kind == "steps" else f"{r['episodes_in_budget']:,}")
    return "(running)"


def report(rows: list[dict], algorithms: list[str], out=print) -> None:
    from rlkit.experiments import run_stats as rs
    from rlkit.experiments.data import find_row, load_table

    table2 = load_table("acktr_table2_mujoco")
    others = [a for a in algorithms if a != REFERENCE]
    ratios: dict[str, dict[str, tuple]] = {a: {} for a in others}  # algo -> env -> (x, cx, y, cy) of steps
    ratios_ep: dict[str, dict[str, tuple]] = {a: {} for a in others}
    claims: list[str] = []
    acktr_status: dict[str, tuple[int, int]] = {}
    acktr_episodes: dict[str, object] = {}
    integer = lambda v: f"{v:,.0f}"  # noqa: E731
    for env in ENVS:
        env_rows = [r for r in rows if r["env"] == env]
        if not env_rows:
            continue
        spec = ENVS[env]
        budgets = sorted({r["budget"] for r in env_rows})
        first = env_rows[0]
        out(f"\n== {env}: threshold {float(first['threshold']):g} (mean return of the last {WINDOW} episodes); budget "
            f"{'/'.join(fmt_steps(b) for b in budgets)} env steps per run; preset {first['preset']} "
            f"({first['num_envs']} env(s) x {first['num_steps']} steps per update) ==")
        out(f"{'algorithm':20s} {'seeds':>5s} {'reached':>7s} {'steps median [95% CI]':>30s} {'steps per seed':>24s} "
            f"{'episodes median [95% CI]':>26s} {'X/ACKTR steps [95% CI]':>24s} {'X/ACKTR episodes':>20s} "
            f"{'best mean10':>11s} {'wall s':>6s}")
        samples = {}
        for algo in algorithms:
            ar = [r for r in env_rows if r["algorithm"] == algo]
            if not ar:
                continue
            reached = sum(r["status"] == "reached" for r in ar)
            steps, eps = seed_values(ar, "steps"), seed_values(ar, "episodes")
            has = len(steps[0]) > 0
            m_steps = rs.bootstrap_ci(*steps[:1], rs.median, steps[1]) if has else None
            m_eps = rs.bootstrap_ci(*eps[:1], rs.median, eps[1]) if has else None
            if has:
                samples[algo] = (steps, eps)
            if algo == REFERENCE:
                acktr_status[env] = (reached, len(ar))
                if m_eps is not None:
                    acktr_episodes[env] = m_eps
            rs_, re_ = "", ""
            if algo != REFERENCE and has and REFERENCE in samples:
                (x, cx), (y, cy) = steps, samples[REFERENCE][0]
                (xe, cxe), (ye, cye) = eps, samples[REFERENCE][1]
                s_ratio = rs.ratio_ci(x, y, rs.median, cx, cy)
                e_ratio = rs.ratio_ci(xe, ye, rs.median, cxe, cye)
                ratios[algo][env], ratios_ep[algo][env] = (x, cx, y, cy), (xe, cxe, ye, cye)
                rs_, re_ = s_ratio.fmt(fmt_ratio), e_ratio.fmt(fmt_ratio)
                poi = rs.improvement_ci(y, x, cy, cx)
                claims.append(f"{env}: ACKTR needs fewer env steps than {algo.upper()}: {algo.upper()}/ACKTR "
                              f"{s_ratio.fmt(fmt_ratio)}, P(ACKTR run faster) {poi.fmt(fmt_ratio)} -> "
                              f"{rs.verdict(s_ratio)}" + _seeds_note(rs, s_ratio, x, cx, y, cy))
            elif algo == REFERENCE:
                rs_ = re_ = "1"
            best = max(r["best_mean10"] for r in ar)
            wall = sum(r["wall_time_s"] for r in ar)
            out(f"{algo:20s} {len(ar):5d} {f'{reached}/{len(ar)}':>7s} {m_steps.fmt(fmt_steps) if m_steps else '-':>30s} "
                f"{' '.join(fmt_seed(r, 'steps') for r in ar):>24s} {m_eps.fmt(integer) if m_eps else '-':>26s} "
                f"{rs_:>24s} {re_:>20s} {best:11.1f} {wall:6.0f}")
        settings = {r["algorithm"]: f"{r['preset']} ({r['num_envs']} env(s) x {r['num_steps']} steps)"
                    for r in env_rows if r["preset"] != first["preset"] or r["algorithm"] in peers.PEERS}
        if settings:
            out("settings: " + "; ".join(f"{a} {text}" for a, text in settings.items()))
        kl = {a: [r["kl_over_delta"] for r in env_rows if r["algorithm"] == a] for a in algorithms}
        kl = {a: v for a, v in kl.items() if v and all(not math.isnan(x) for x in v)}
        if kl:
            out("measured KL per update / delta (each run's median over its updates; median over seeds): " + "; ".join(
                f"{a} {statistics.median(v):.2f} ({', '.join(f'{x:.2f}' for x in v)})" for a, v in kl.items()))
        if spec.paper_domain:
            p = find_row(table2, domain=spec.paper_domain)
            paper = {a: p.get(f"{a}_episodes_to_threshold") for a in [REFERENCE, *others]}
            line = f"paper Table 2 (episodes; 3 best of 8 seeds, 30M steps): ACKTR {paper[REFERENCE]:,.0f}"
            for a in others:
                if paper.get(a) is not None and not math.isnan(paper[a]):
                    line += f", {a.upper()} {paper[a]:,.0f} ({a.upper()}/ACKTR {paper[a] / paper[REFERENCE]:.2f})"
            out(line)

    out("\n(medians over seeds with 95% seeded bootstrap intervals, rlkit.experiments.run_stats; a censored seed "
        "counts as more than its budget: '>x' is a median bounded below only, an interval reaching inf is "
        "unbounded; X/ACKTR > 1: ACKTR needs fewer)")
    out("\n== claims, one per env: supported when the 95% interval of X/ACKTR env steps is above 1, contradicted "
        "when below, undecided otherwise (seeds per method to decide, from the observed spread) ==")
    for line in claims:
        out(line)

    # ---- summary: geometric means and targets
    out("\n== ratios to ACKTR over envs (X/ACKTR: how many times ACKTR's samples X needs; geometric mean over "
        "envs, 95% interval of the stratified bootstrap: each algorithm on each env resampled on its own) ==")
    geo = {}
    for a in others:
        if ratios[a]:
            gs = rs.geometric_mean_ratio_ci(list(ratios[a].values()))
            ge = rs.geometric_mean_ratio_ci(list(ratios_ep[a].values()))
            geo[a] = gs
            out(f"{a.upper()}/ACKTR env steps: geometric mean {gs.fmt(fmt_ratio)} over {len(ratios[a])} env(s) "
                f"({', '.join(ratios[a])}); episodes: {ge.fmt(fmt_ratio)}")

    out("\n== targets (pass: the 95% interval clears the target; miss: it clears it the other way; open: neither) ==")
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
        if a in geo:
            g = geo[a]
            out(f"{a.upper()}/ACKTR >= {target:g} (geometric mean of env-step ratios over "
                f"{', '.join(ratios[a])}): {g.fmt(fmt_ratio)} -> {target_verdict(g, target, at_least=True)}")
    for env, spec in ENVS.items():
        if spec.paper_domain:
            paper = find_row(table2, domain=spec.paper_domain)["acktr_episodes_to_threshold"]
            if env in acktr_episodes:
                e = acktr_episodes[env]
                out(f"ACKTR episodes on {spec.paper_domain} <= paper's {paper:,.0f}: {e.fmt(integer)} -> "
                    f"{target_verdict(e, paper, at_least=False)}")
            elif spec.default:
                out(f"ACKTR episodes on {spec.paper_domain} <= paper's {paper:,.0f}: not run")


def _seeds_note(rs, estimate, x, cx, y, cy) -> str:
    if rs.verdict(estimate) != "undecided":
        return ""
    n = rs.seeds_to_decide(x, y, cx, cy)
    return " (deciding it would take about " + (f"{n:.0f} seeds per algorithm" if math.isfinite(n)
                                                else "more seeds than any number: no difference seen") + ")"


def read_rows(path: Path) -> list[dict]:
    """The rows of a CSV this script wrote, typed as :func:`collect` makes them."""
    integers = ("seed", "num_envs", "num_steps", "budget", "env_steps_run", "episodes_run", "episodes_in_budget",
                "env_steps_to_threshold", "episodes_to_threshold")
    floats = ("threshold", "best_mean10", "final_mean10", "wall_time_s", "kl_over_delta")  # the last: newer CSVs
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k in integers:
            r[k] = int(r[k]) if r[k] != "" else ""
        for k in floats:
            r[k] = float(r[k]) if r.get(k, "") != "" else math.nan
    return rows


def check_distinct_runs(rows: list[dict]) -> None:
    """Refuse CSVs that hold the same run twice (env, algorithm, preset, seed): a merge must add seeds, not repeat them."""
    seen = collections.Counter((r["env"], r["algorithm"], r["preset"], r["seed"]) for r in rows)
    repeated = [key for key, n in seen.items() if n > 1]
    if repeated:
        env, algo, preset, seed = repeated[0]
        raise SystemExit(f"--from-csv: {len(repeated)} run(s) appear more than once, e.g. {algo} ({preset}) on {env}, "
                         f"seed {seed}; give each seed in one CSV only")


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
    ap.add_argument("--seeds", type=int, default=3, help="how many seeds (default 3)")
    ap.add_argument("--first-seed", type=int, default=0,
                    help="the seeds are FIRST..FIRST+N-1 (default 0); e.g. --first-seed 3 --seeds 2 adds seeds 3 "
                         "and 4 to runs made with --seeds 3, under another --runs-root, merged with --from-csv")
    ap.add_argument("--budget", action="append", metavar="ENV=STEPS", help="env steps per run (default: the table's)")
    ap.add_argument("--threshold", action="append", metavar="ENV=VALUE", help="override an env's threshold")
    ap.add_argument("--preset", action="append", metavar="ALGO=PRESET",
                    help="train ALGO with another of its presets than the env family's (e.g. a2c=classic-tuned); "
                         "its rows print as ALGO@PRESET")
    ap.add_argument("--workers", type=int, default=2, help="worker processes (1: in this process)")
    ap.add_argument("--runs-root", type=Path, nargs="+", default=None, metavar="ROOT",
                    help="where run directories go (default runs/benchmarks/sample_efficiency); with "
                         "--report-only, several roots report as one")
    ap.add_argument("--out", type=Path, default=None,
                    help="CSV to write; the printed report goes beside it as .txt (default "
                         "data/benchmarks/sample_efficiency.csv)")
    ap.add_argument("--report-only", action="store_true", help="train nothing: report the runs under --runs-root")
    ap.add_argument("--from-csv", type=Path, nargs="+", metavar="CSV",
                    help="train nothing, read no run directory: re-print the report of the CSV(s) this script "
                         "wrote (e.g. data/benchmarks/sample_efficiency.csv) and rewrite the .txt beside the "
                         "first, or, with --out, write the rows together to --out and its .txt")
    ap.add_argument("--quick", action="store_true",
                    help=f"smoke run: CartPole-v1, 1 seed, {QUICK_BUDGET} steps, under runs/benchmarks/quick")
    args = ap.parse_args(argv)
    if args.seeds < 1 or args.first_seed < 0:
        ap.error(f"--seeds must be at least 1 and --first-seed at least 0 (got {args.seeds} and {args.first_seed})")
    command = "python benchmarks/sample_efficiency.py " + shlex.join(sys.argv[1:] if argv is None else argv)

    if args.quick:
        args.envs = args.envs or ["CartPole-v1"]
        args.seeds = 1
        args.budget = [f"{e.partition(':')[0]}={QUICK_BUDGET}" for e in args.envs] + (args.budget or [])
    quick_root = REPO / "runs" / "benchmarks" / "quick"
    roots = args.runs_root or [quick_root / "sample_efficiency" if args.quick
                               else REPO / "runs" / "benchmarks" / "sample_efficiency"]
    if len(roots) > 1 and not args.report_only:
        ap.error("several --runs-root are for --report-only; training writes under one")
    root = roots[0]
    out_csv = args.out or (quick_root / "sample_efficiency.csv" if args.quick
                           else REPO / "data" / "benchmarks" / "sample_efficiency.csv")
    for env, value in parse_thresholds(args.threshold).items():
        ENVS[env] = dataclasses.replace(ENVS[env], threshold=value)
    check_threshold_algorithms()
    budgets = parse_overrides(args.budget, int, "budget")
    chosen_presets = parse_presets(args.preset)
    plan = parse_envs(args.envs, args.algorithms)
    check_algorithms(plan)

    lines: list[str] = []

    def out(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    from rlkit.experiments.results import labelled_by_preset

    if args.from_csv is not None:
        out(f"$ {command}")
        out_txt = (args.out or args.from_csv[0]).with_suffix(".txt")
        rows = []
        for source in args.from_csv:
            source_txt = source.with_suffix(".txt")
            made_by = [line for line in (source_txt.read_text(encoding="utf-8").splitlines()
                                         if source_txt.is_file() else [])
                       if line.startswith(("$ ", "runs made by: $ "))][:2]
            made_by = next((line.removeprefix("runs made by: ") for line in made_by if "--from-csv" not in line), None)
            out(f"re-printed from {os.path.relpath(source.resolve(), REPO)} (no training, no run directory read)")
            if made_by:
                out(f"runs made by: {made_by}")
            rows += read_rows(source)
        check_distinct_runs(rows)
        if args.out is not None:
            write_csv(args.out, rows)
        if args.envs:  # ENV keeps every algorithm of the CSVs on ENV, ENV:A,B only those
            named = {item.partition(":")[0]: bool(item.partition(":")[2]) for item in args.envs}
            keep = {(env, a) for env, algos in plan for a in algos}
            rows = [r for r in rows if r["env"] in named and (not named[r["env"]] or (r["env"], r["algorithm"]) in keep)]
        rows = labelled_by_preset(rows)
        algorithms = list(dict.fromkeys([*ALGORITHMS, *(r["algorithm"] for r in rows)]))
        report(rows, [a for a in algorithms if any(r["algorithm"] == a for r in rows)], out)
        out(f"\nwrote {os.path.relpath(out_txt.resolve(), REPO)}"
            + (f" and {os.path.relpath(args.out.resolve(), REPO)}" if args.out is not None else ""))
        out_txt.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return

    import torch

    out(f"$ {command}")
    out(f"python {platform.python_version()}  torch {torch.__version__}  cpus {os.cpu_count()}  "
        f"workers {args.workers} (1 torch thread each)  runs {', '.join(os.path.relpath(r, REPO) for r in roots)}")
    out("batch and networks per env (every algorithm uses the env's preset family):")
    for env, algos in plan:
        preset = ENVS[env].preset
        shapes = {a: batch_and_networks(a, chosen_presets.get(a, preset)) for a in algos if a not in peers.PEERS}
        if not shapes:
            continue
        distinct = {repr(s) for s in shapes.values()}
        s = next(iter(shapes.values()))
        desc = (f"{s['num_envs']} x {s['num_steps']} steps, {'-'.join(map(str, s['hidden_sizes']))} {s['activation']}, "
                f"{'shared trunk' if s['shared_trunk'] else 'separate actor and critic'}, "
                f"initial log-std {s['log_std_init']:g} (Gaussian policies)")
        others = ", ".join(f"{a} {chosen_presets[a]}" for a in algos if a in chosen_presets)
        out(f"  {env:27s} preset {preset:8s}{f' ({others})' if others else ''} {desc}" + ("" if len(distinct) == 1 else
            f"  WARNING: not identical: {shapes}"))

    if not args.report_only:
        seeds = range(args.first_seed, args.first_seed + args.seeds)
        jobs, left_out = [], []
        for env, algos in plan:
            for algo in algos:
                budget = budgets.get(env, ENVS[env].budget)
                preset = chosen_presets.get(algo, ENVS[env].preset)
                if algo in peers.PEERS:
                    if not peers.PEERS[algo].has_settings(env):
                        left_out.append(f"{algo} on {env} (the zoo has no entry)")
                        continue
                    budget, preset = peers.horizon(algo, env, budget), peers.PEERS[algo].preset(env)
                jobs += [Job(env, algo, seed, training_threshold(ENVS[env]), budget, preset,
                             str(run_dir_of(root, env, algo, seed)), command) for seed in seeds]
        if left_out:
            out("left out: " + "; ".join(left_out))
        out(f"{len(jobs)} runs: " + "; ".join(
            f"{env} [{','.join(algos)}] x seeds {seeds.start}-{seeds.stop - 1}, budget {fmt_steps(budgets.get(env, ENVS[env].budget))}"
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
    notes: list[str] = []
    rows = collect(roots, algorithms, budgets, notes)
    for note in notes:
        out(note)
    if not rows:
        out("no runs found")
        return
    shown = labelled_by_preset(rows)
    algorithms += [a for a in dict.fromkeys(r["algorithm"] for r in shown) if a not in algorithms]
    report(shown, [a for a in algorithms if any(r["algorithm"] == a for r in shown)], out)
    write_csv(out_csv, rows)
    out_txt = out_csv.with_suffix(".txt")
    out(f"\nwrote {os.path.relpath(out_csv, REPO)} and {os.path.relpath(out_txt, REPO)}")
    out_txt.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
