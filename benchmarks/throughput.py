"""Training timesteps per second of ACKTR, A2C and TRPO: the ACKTR paper's Table 3 on this machine.

Times the whole training loop of ``rlkit.experiments.train.train`` (rollout collection, the agent's
update, the CSV rows) side by side in one run: every repeat trains each (task, batch size,
algorithm) briefly, the algorithms' order rotating from repeat to repeat, and the median over
repeats is reported. Timing starts after a warm-up update and covers a whole number of ACKTR's
inverse periods (``inverse_every``), so the K-FAC inverses count at their true rate.

Tasks and batches (num_envs x num_steps, the paper's Table 3 columns): HalfCheetah-v5 with the
``mujoco`` presets, batch 1000 (1 x 1000) and 2500 (1 x 2500); ALE/Pong-v5 with the ``atari``
presets, batch 80 (16 x 5: A2C's batch in the paper) and 160 (16 x 10).

It prints timesteps per second and ACKTR's overhead A2C/ACKTR beside the paper's Table 3
(``data/acktr_table3_timesteps_per_second.csv``) and the targets (<= 1.15 MuJoCo, <= 1.30 Atari),
then where the time goes; it writes ``--out`` (default ``data/benchmarks/throughput.csv``),
``throughput_runs.csv`` and ``throughput.txt``. Details: benchmarks/README.md.

    python benchmarks/throughput.py                       # 3 repeats, CPU, 1 torch thread
    python benchmarks/throughput.py --repeats 5 --threads 2
    python benchmarks/throughput.py --domains mujoco      # MuJoCo only
    python benchmarks/throughput.py --device cuda
    python benchmarks/throughput.py --quick               # tiny smoke run (seconds; ACKTR inverts by Cholesky)

This is a benchmark, not a test: it prints and asserts nothing.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ALGORITHMS = ("acktr", "a2c", "trpo")
REFERENCE = "acktr"
TARGETS = {"MuJoCo": 1.15, "Atari": 1.30}  # A2C/ACKTR timesteps-per-second ratio (ACKTR's overhead)


@dataclass(frozen=True)
class Case:
    domain: str  # as in the paper's Table 3: "MuJoCo" or "Atari"
    env: str
    preset: str
    num_envs: int
    num_steps: int
    min_steps: int  # timed env steps per run at least (rounded up to whole updates and inverse periods)

    @property
    def batch(self) -> int:
        return self.num_envs * self.num_steps


CASES = (
    Case("MuJoCo", "HalfCheetah-v5", "mujoco", 1, 1000, 5000),
    Case("MuJoCo", "HalfCheetah-v5", "mujoco", 1, 2500, 5000),
    Case("Atari", "ALE/Pong-v5", "atari", 16, 5, 480),
    Case("Atari", "ALE/Pong-v5", "atari", 16, 10, 480),
)
QUICK_CASES = (
    Case("MuJoCo", "HalfCheetah-v5", "mujoco", 1, 64, 64),
    Case("Atari", "ALE/Pong-v5", "atari", 2, 2, 4),
)

# --quick only: K-FAC inverses by Cholesky instead of eigendecompositions (the Nature CNN's 3137 x 3137
# factor takes seconds to eigendecompose on a CPU), so that the smoke run takes seconds
QUICK_OVERRIDES = {"acktr": {"damping_mode": "factored"}}

SUMMARY_COLUMNS = ("algorithm", "domain", "batch_size", "timesteps_per_second", "env", "num_envs", "num_steps",
                   "repeats", "timesteps_per_second_min", "timesteps_per_second_max", "a2c_over_acktr",
                   "a2c_over_acktr_of_medians", "a2c_over_acktr_from_update_times",
                   "paper_timesteps_per_second", "paper_a2c_over_acktr", "collect_s_per_update", "update_s_per_update",
                   "stats_s_per_update", "inverse_s_per_update", "precondition_s_per_update", "device", "torch_threads")
RUN_COLUMNS = ("repeat", "algorithm", "domain", "env", "batch_size", "num_envs", "num_steps", "updates_timed",
               "env_steps_timed", "seconds", "timesteps_per_second", "collect_s_per_update", "update_s_per_update",
               "stats_s_per_update", "inverse_s_per_update", "precondition_s_per_update")


def timed_updates(case: Case, algorithm: str, quick: bool) -> int:
    """Updates to time: >= case.min_steps env steps, a multiple of the agent's inverse period."""
    from rlkit.agents import resolve_config

    if quick:
        return 1
    period = getattr(resolve_config(algorithm, preset=case.preset), "inverse_every", 1)
    n = max(1, math.ceil(case.min_steps / case.batch))
    return period * math.ceil(n / period)


class _Enough(Exception):
    pass


def one_run(case: Case, algorithm: str, updates: int, device: str, seed: int, extra: dict | None = None) -> dict:
    """Train ``1 + updates`` updates (the first is warm-up); time the last ``updates`` through the callback.

    The run is stopped from the callback after its last timed update, so no checkpoint (the
    trainer saves one before its final update's callback) falls in the timed window.
    """
    from rlkit.experiments.train import train

    marks = []

    def callback(info) -> None:
        marks.append((time.perf_counter(), info.env_steps, info.diagnostics))
        if len(marks) > updates:
            raise _Enough()

    overrides = {"num_envs": case.num_envs, "num_steps": case.num_steps, **(extra or {})}
    with tempfile.TemporaryDirectory(prefix="rlkit-throughput-") as tmp:
        try:
            train(algorithm, case.env, steps=10**9, seed=seed, preset=case.preset, device=device, overrides=overrides,
                  run_dir=Path(tmp) / "run", checkpoint_every=10**9, keep_checkpoints=1, progress=False,
                  callback=callback)
        except _Enough:
            pass
    (t0, s0, _), (t1, s1, _) = marks[0], marks[updates]
    timed = [d for _, _, d in marks[1:updates + 1]]
    seconds = t1 - t0
    per = lambda key: statistics.fmean(d.get(key, 0.0) for d in timed)  # noqa: E731
    update_s = per("time_update")
    return {
        "algorithm": algorithm, "domain": case.domain, "env": case.env, "batch_size": case.batch,
        "num_envs": case.num_envs, "num_steps": case.num_steps, "updates_timed": updates, "env_steps_timed": s1 - s0,
        "seconds": seconds, "timesteps_per_second": (s1 - s0) / seconds,
        "collect_s_per_update": seconds / updates - update_s, "update_s_per_update": update_s,
        "stats_s_per_update": per("time_stats"), "inverse_s_per_update": per("time_inverse"),
        "precondition_s_per_update": per("time_precondition"),
    }


def write_csv(path: Path, columns, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for row in rows:
            w.writerow({k: (round(v, 5) if isinstance(v, float) else v) for k, v in row.items()})


def read_runs(path: Path) -> list[dict]:
    """The rows of a *_runs.csv, numbers as numbers."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    text = {"algorithm", "domain", "env"}
    ints = {"repeat", "batch_size", "num_envs", "num_steps", "updates_timed", "env_steps_timed"}
    return [{k: (v if k in text else int(v) if k in ints else float(v)) for k, v in row.items()} for row in rows]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repeats; the median is reported (default 3)")
    ap.add_argument("--domains", nargs="+", choices=("mujoco", "atari"), default=["mujoco", "atari"])
    ap.add_argument("--algorithms", nargs="+", default=list(ALGORITHMS), help="default: %(default)s")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1: a shared CPU)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None,
                    help="summary CSV (default data/benchmarks/throughput.csv); *_runs.csv and .txt go beside it")
    ap.add_argument("--quick", action="store_true", help="tiny smoke run: tiny batches, 1 timed update, 1 repeat")
    ap.add_argument("--from-runs", type=Path, default=None, metavar="RUNS_CSV",
                    help="measure nothing: re-make the report and summary from a *_runs.csv written before")
    args = ap.parse_args(argv)
    command = "python benchmarks/throughput.py " + shlex.join(sys.argv[1:] if argv is None else argv)

    import torch

    from rlkit.experiments.data import load_table

    torch.set_num_threads(args.threads)
    if args.quick:
        args.repeats = 1
    out_csv = args.out or (REPO / "runs" / "benchmarks" / "quick" / "throughput.csv" if args.quick
                           else REPO / "data" / "benchmarks" / "throughput.csv")
    cases = [c for c in (QUICK_CASES if args.quick else CASES) if c.domain.lower() in args.domains]
    algorithms = list(args.algorithms)
    lines: list[str] = []

    def out(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    def show(r: dict) -> None:
        out(f"  repeat {r['repeat']} {r['domain']:6s} batch {r['batch_size']:5d} {r['algorithm']:6s} "
            f"{r['timesteps_per_second']:8.1f} steps/s  ({r['env_steps_timed']} steps, {r['seconds']:.1f} s)")

    out(f"$ {command}")
    if args.from_runs:
        runs = read_runs(args.from_runs)
        out(f"report re-made from {os.path.relpath(args.from_runs, REPO)} (measured earlier; nothing measured now)")
        cases = [Case(r["domain"], r["env"], "", r["num_envs"], r["num_steps"], 0) for r in runs]
        cases = list(dict.fromkeys(cases))
        algorithms = list(dict.fromkeys(r["algorithm"] for r in runs))
        args.repeats = len({r["repeat"] for r in runs})
        for r in runs:
            show(r)
        wall = sum(r["seconds"] for r in runs)
    else:
        out(f"python {platform.python_version()}  torch {torch.__version__}  device {args.device}  "
            f"torch threads {torch.get_num_threads()}  cpus {os.cpu_count()}  "
            f"{platform.processor() or platform.machine()}")
        plan = [(c, a, timed_updates(c, a, args.quick)) for c in cases for a in algorithms]
        out("timed per run (after 1 warm-up update): " + "; ".join(
            f"{c.domain} {c.batch} {a} {n} updates" for c, a, n in plan))
        runs = []
        t_start = time.perf_counter()
        for rep in range(args.repeats):
            for case in cases:
                order = algorithms[rep % len(algorithms):] + algorithms[:rep % len(algorithms)]
                for algo in order:
                    n = timed_updates(case, algo, args.quick)
                    r = one_run(case, algo, n, args.device, args.seed,
                                QUICK_OVERRIDES.get(algo) if args.quick else None)
                    r["repeat"] = rep
                    runs.append(r)
                    show(r)
        wall = time.perf_counter() - t_start

    paper = load_table("acktr_table3_timesteps_per_second")
    paper_tps = {(paper["algorithm"][i], paper["domain"][i], int(paper["batch_size"][i])):
                 float(paper["timesteps_per_second"][i]) for i in range(len(paper["algorithm"]))}

    summary = []
    for case in cases:
        for algo in algorithms:
            rs = [r for r in runs
                  if r["algorithm"] == algo and r["domain"] == case.domain and r["batch_size"] == case.batch]
            med = lambda key: statistics.median(r[key] for r in rs)  # noqa: E731
            summary.append({
                "algorithm": algo, "domain": case.domain, "batch_size": case.batch, "env": case.env,
                "num_envs": case.num_envs, "num_steps": case.num_steps, "repeats": len(rs),
                "timesteps_per_second": med("timesteps_per_second"),
                "timesteps_per_second_min": min(r["timesteps_per_second"] for r in rs),
                "timesteps_per_second_max": max(r["timesteps_per_second"] for r in rs),
                "paper_timesteps_per_second": paper_tps.get((algo, case.domain, case.batch), ""),
                "collect_s_per_update": med("collect_s_per_update"), "update_s_per_update": med("update_s_per_update"),
                "stats_s_per_update": med("stats_s_per_update"), "inverse_s_per_update": med("inverse_s_per_update"),
                "precondition_s_per_update": med("precondition_s_per_update"),
                "device": args.device, "torch_threads": torch.get_num_threads(),
            })

    def find(algo, case):
        return next((s for s in summary if s["algorithm"] == algo and s["domain"] == case.domain
                     and s["batch_size"] == case.batch), None)

    out(f"\ntraining timesteps per second (median of {args.repeats} interleaved repeat(s); paper: Table 3, GPU)")
    out("A2C/ACKTR: median over repeats of the ratio within a repeat (side by side); 'of medians': the ratio of "
        "the\nmedians; 'from times': (C + U_acktr) / (C + U_a2c) with C the median collection time of both and U "
        "each one's\nmedian update time per update (the update times are measured inside the process: least "
        "disturbed by other load)")
    header = f"{'domain':7s} {'env':15s} {'batch':>5s} " + "".join(f"{a:>10s} {'paper':>6s}" for a in algorithms)
    out(header + f" {'A2C/ACKTR':>10s} {'of medians':>10s} {'from times':>10s} {'paper':>6s} {'target':>7s} {'':5s}")
    verdicts = []
    for case in cases:
        row = f"{case.domain:7s} {case.env:15s} {case.batch:5d} "
        for algo in algorithms:
            s = find(algo, case)
            p = s["paper_timesteps_per_second"]
            row += f"{s['timesteps_per_second']:10.1f} {p if p == '' else f'{p:.0f}':>6s}"
        ref, a2c = find(REFERENCE, case), find("a2c", case)
        if ref and a2c:
            of_medians = a2c["timesteps_per_second"] / ref["timesteps_per_second"]
            ratios = [x["timesteps_per_second"] / y["timesteps_per_second"] for x in runs for y in runs
                      if x["repeat"] == y["repeat"] and x["algorithm"] == "a2c" and y["algorithm"] == REFERENCE
                      and x["domain"] == y["domain"] == case.domain
                      and x["batch_size"] == y["batch_size"] == case.batch]
            r = statistics.median(ratios)
            collect = statistics.median(x["collect_s_per_update"] for x in runs if x["algorithm"] in ("a2c", REFERENCE)
                                        and x["domain"] == case.domain and x["batch_size"] == case.batch)
            from_times = (collect + ref["update_s_per_update"]) / (collect + a2c["update_s_per_update"])
            pr = paper_tps.get(("a2c", case.domain, case.batch), math.nan) / paper_tps.get(
                (REFERENCE, case.domain, case.batch), math.nan)
            target = TARGETS[case.domain]
            verdict = "pass" if r <= target else "miss"
            for s in summary:
                if s["domain"] == case.domain and s["batch_size"] == case.batch:
                    s.update(a2c_over_acktr=r, a2c_over_acktr_of_medians=of_medians,
                             a2c_over_acktr_from_update_times=from_times,
                             paper_a2c_over_acktr=pr if not math.isnan(pr) else "")
            row += (f" {r:9.2f}x {of_medians:9.2f}x {from_times:9.2f}x "
                    f"{'-' if math.isnan(pr) else f'{pr:.2f}x':>6s} {target:6.2f}x {verdict}")
            verdicts.append((case, r, target, verdict, min(ratios), max(ratios), from_times))
        out(row)
    if verdicts:
        out("\nper-repeat A2C/ACKTR (same repeat, side by side): " + "; ".join(
            f"{c.domain} {c.batch}: {lo:.2f}..{hi:.2f}" for c, _, _, _, lo, hi, _ in verdicts))

    out("\nwhere the time goes (median seconds per update; collect = env steps + policy forward passes + logging;"
        " ACKTR's stats/inverse/precondition are part of its update)")
    out(f"{'domain':7s} {'batch':>5s} {'algorithm':10s} {'collect':>9s} {'update':>9s} {'stats':>9s} {'inverse':>9s} "
        f"{'precond':>9s} {'update share':>12s}")
    for case in cases:
        for algo in algorithms:
            s = find(algo, case)
            total = s["collect_s_per_update"] + s["update_s_per_update"]
            share = s["update_s_per_update"] / total if total > 0 else math.nan
            extra = (f"{s['stats_s_per_update']:9.4f} {s['inverse_s_per_update']:9.4f} "
                     f"{s['precondition_s_per_update']:9.4f}"
                     if algo == "acktr" else f"{'':9s} {'':9s} {'':9s}")
            out(f"{case.domain:7s} {case.batch:5d} {algo:10s} {s['collect_s_per_update']:9.4f} "
                f"{s['update_s_per_update']:9.4f} {extra} {share:11.0%}")

    out(f"\ntargets: ACKTR's overhead A2C/ACKTR <= {TARGETS['MuJoCo']} on MuJoCo, <= {TARGETS['Atari']} on Atari")
    for case, r, target, verdict, lo, hi, from_times in verdicts:
        out(f"  {case.domain} batch {case.batch}: {r:.2f}x (repeats {lo:.2f}..{hi:.2f}; from update times "
            f"{from_times:.2f}x; target <= {target:.2f}x) -> {verdict}")
    out(f"\n{'timed seconds, summed' if args.from_runs else 'benchmark wall time'}: {wall:.0f} s")

    write_csv(out_csv, SUMMARY_COLUMNS, summary)
    runs_csv = out_csv.with_name(out_csv.stem + "_runs.csv")
    if not (args.from_runs and args.from_runs.resolve() == runs_csv.resolve()):
        write_csv(runs_csv, RUN_COLUMNS, runs)
    out_txt = out_csv.with_suffix(".txt")
    rel = lambda p: os.path.relpath(p, REPO)  # noqa: E731
    out(f"wrote {rel(out_csv)}, {rel(out_txt)}" + ("" if args.from_runs else f" and {rel(runs_csv)}"))
    out_txt.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
