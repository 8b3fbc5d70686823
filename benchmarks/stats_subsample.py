"""Does ACKTR learn as fast with K-FAC statistics on every k-th sample of the batch?

``KFAC(stats_subsample=k)`` takes the factor statistics of each Fisher pass from every k-th sample
only (``benchmarks/kfac_overhead.py`` measures what it saves per update). This script trains ACKTR
with ``stats_subsample=k`` on CartPole-v1, InvertedPendulum-v5 and Reacher-v5 (its presets, seeds
0..N−1, one torch thread, stopped at the threshold by ``sample_efficiency.py``'s stopper) and prints,
seed by seed, its env steps and episodes to the threshold beside those of the full-batch ACKTR runs
in ``data/benchmarks/sample_efficiency.csv`` (same seeds, presets and thread count: a paired
comparison), with the ratio of the medians.

    python benchmarks/stats_subsample.py                        # k = 8, 3 seeds
    python benchmarks/stats_subsample.py --subsample 4 --seeds 5
    python benchmarks/stats_subsample.py --quick --runs-root /tmp/ss   # smoke run (seconds)

Runs go to ``runs/benchmarks/stats_subsample/k<k>/<env>/acktr-s<seed>`` and are skipped when
finished. This is a benchmark, not a test: it prints and asserts nothing.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHMARKS))
import sample_efficiency as se  # noqa: E402  (its stopper, run reader and committed CSV)

# env, preset, threshold, budget: the sample-efficiency benchmark's thresholds and presets
CASES = [("CartPole-v1", "classic", 475, 100_000), ("InvertedPendulum-v5", "mujoco", 950, 200_000),
         ("Reacher-v5", "mujoco", -7, 200_000)]


def train_one(run_dir: Path, env: str, preset: str, threshold: float, budget: int, seed: int, k: int) -> dict:
    from rlkit.train import train

    if not run_dir.exists():
        try:
            train("acktr", env, steps=budget, seed=seed, preset=preset, run_dir=run_dir,
                  overrides={"stats_subsample": k}, checkpoint_every=1000, keep_checkpoints=1, progress=False,
                  callback=se._Stopper(run_dir, threshold))
        except se._ThresholdReached:
            pass
    return se.load_run(run_dir, threshold)


def median_or_none(values: list) -> float | None:
    """Median with a censored run (None) counted as +inf; None if that median is censored."""
    ranked = sorted(float("inf") if v is None else v for v in values)
    m = statistics.median(ranked)
    return None if m == float("inf") else m


def fmt(v) -> str:
    return ">budget" if v is None else f"{v:,.0f}"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--subsample", type=int, default=8, help="k >= 2: statistics from every k-th sample")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--runs-root", default="runs/benchmarks/stats_subsample")
    ap.add_argument("--quick", action="store_true", help="smoke run: CartPole only, 1 seed, 4k-step budget")
    args = ap.parse_args(argv)
    if args.subsample < 2:
        ap.error(f"--subsample must be an integer >= 2 (1 is the committed full-batch run); got {args.subsample}")
    import torch

    torch.set_num_threads(1)  # as sample_efficiency.py's workers: the same seeds give the same runs
    k = args.subsample
    full = committed_acktr_rows()
    cases, seeds = ([(CASES[0][0], CASES[0][1], CASES[0][2], 4_000)], 1) if args.quick else (CASES, args.seeds)
    print(f"ACKTR, K-FAC statistics on every {k}th sample vs every sample (data/benchmarks/sample_efficiency.csv); "
          f"torch {torch.__version__}, 1 thread")
    print(f"{'env':22s} {'seed':>4s} {'steps 1/' + str(k):>12s} {'steps all':>10s} {'episodes 1/' + str(k):>12s} "
          f"{'episodes all':>12s}  wall s (1/{k} run)")
    for env, preset, threshold, budget in cases:
        steps_k, steps_1, eps_k, eps_1 = [], [], [], []
        for seed in range(seeds):
            run = train_one(Path(args.runs_root) / f"k{k}" / env / f"acktr-s{seed}", env, preset, threshold,
                            budget, seed, k)
            ref = full.get((env, seed))
            steps_k.append(run["steps"])
            eps_k.append(run["episodes"])
            steps_1.append(ref["steps"] if ref else None)
            eps_1.append(ref["episodes"] if ref else None)
            print(f"{env:22s} {seed:4d} {fmt(run['steps']):>12s} {fmt(steps_1[-1]):>10s} {fmt(run['episodes']):>12s} "
                  f"{fmt(eps_1[-1]):>12s}  {run['wall_time_s']:6.0f}", flush=True)
        for unit, a, b in (("env steps", steps_k, steps_1), ("episodes", eps_k, eps_1)):
            ma, mb = median_or_none(a), median_or_none(b)
            ratio = f"{ma / mb:.2f}" if ma is not None and mb is not None else "n/a (censored)"
            print(f"  {env}: median {unit} 1/{k} {fmt(ma)}, all {fmt(mb)}: ratio {ratio}")


def committed_acktr_rows() -> dict:
    """The committed full-batch ACKTR runs: {(env, seed): {"steps": int | None, "episodes": int | None}}."""
    from rlkit.acktr_demos import benchmark_rows  # typed rows of data/benchmarks/sample_efficiency.csv

    value = lambda x: None if math.isnan(x) else int(x)  # noqa: E731  (NaN: censored)
    return {(r["env"], int(r["seed"])): {"steps": value(r["env_steps_to_threshold"]),
                                         "episodes": value(r["episodes_to_threshold"])}
            for r in benchmark_rows("sample_efficiency") if r["algorithm"] == "acktr"}


if __name__ == "__main__":
    main()
