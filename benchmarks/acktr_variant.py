"""Does a change to ACKTR's presets cost or save samples? Paired runs against the committed ones.

Trains ACKTR with its presets plus ``--set KEY=VALUE`` overrides (any ``ACKTRConfig`` field, as the
``rlkit train`` flags) on CartPole-v1, InvertedPendulum-v5 and Reacher-v5 (``--envs``; also
InvertedDoublePendulum-v5, 1M-step budget), seeds 0..N−1, one torch thread, stopped at the
threshold by ``sample_efficiency.py``'s stopper, and prints, seed by seed, its env steps and episodes
to the threshold beside those of the preset's own ACKTR runs in the benchmark's merged report
``data/benchmarks/sample_efficiency_with_peers.csv`` (same seeds, presets and thread count: a paired
comparison), with the ratio of the medians, and the variant's KL per update: the median over the
run's updates of the measured KL(π_old ‖ π_new) over δ (``--set kl_tolerance=0`` re-runs the
preset itself, for its KL).

    python benchmarks/acktr_variant.py --set stats_subsample=8      # K-FAC statistics on every 8th sample
    python benchmarks/acktr_variant.py --set stats_decay=0.95 --envs InvertedPendulum-v5 Reacher-v5
    python benchmarks/acktr_variant.py --set kl_tolerance=1.5 delta=0.05   # the checked trust region
    python benchmarks/acktr_variant.py --quick --set stats_subsample=4 --runs-root /tmp/v   # smoke run (seconds)

Runs go to ``runs/benchmarks/acktr_variant/<KEY=VALUE,...>/<env>/acktr-s<seed>`` and are skipped
when finished. This is a benchmark, not a test: it prints and asserts nothing.
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
         ("Reacher-v5", "mujoco", -7, 200_000), ("InvertedDoublePendulum-v5", "mujoco", 9100, 1_000_000)]
DEFAULT_ENVS = ["CartPole-v1", "InvertedPendulum-v5", "Reacher-v5"]  # not IDP: far longer runs (data/benchmarks/stats_decay.txt)


def train_one(run_dir: Path, env: str, preset: str, threshold: float, budget: int, seed: int,
              overrides: dict[str, str]) -> dict:
    if not run_dir.exists():
        se.train_to_threshold("acktr", env, run_dir, seed=seed, budget=budget, preset=preset, threshold=threshold,
                              overrides=overrides)
    run = se.load_run(run_dir, threshold)
    return {**run, "kl_over_delta": se.kl_over_delta(run_dir, run["config"])}


def median_or_none(values: list) -> float | None:
    """Median with a censored run (None) counted as +inf; None if that median is censored."""
    ranked = sorted(float("inf") if v is None else v for v in values)
    m = statistics.median(ranked)
    return None if m == float("inf") else m


def fmt(v) -> str:
    return ">budget" if v is None else f"{v:,.0f}"


def parse_overrides(items: list[str]) -> dict[str, str]:
    """``["stats_decay=0.95", ...]`` → ``{"stats_decay": "0.95"}`` (``rlkit.experiments.train`` converts and checks the values)."""
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise ValueError(f"--set takes KEY=VALUE (an ACKTRConfig field and its value); got {item!r}")
        overrides[key.strip().replace("-", "_")] = value.strip()
    return overrides


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", dest="overrides", nargs="+", required=True, metavar="KEY=VALUE",
                    help="ACKTRConfig fields to change from the presets, e.g. stats_subsample=8")
    ap.add_argument("--envs", nargs="+", choices=[c[0] for c in CASES], default=DEFAULT_ENVS,
                    help="default: %(default)s")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--runs-root", default="runs/benchmarks/acktr_variant")
    ap.add_argument("--quick", action="store_true", help="smoke run: CartPole only, 1 seed, 4k-step budget")
    ap.add_argument("--out", type=Path, default=None,
                    help="also write one CSV row per seed (env, seed, variant, steps and episodes of both, KL/delta)")
    args = ap.parse_args(argv)
    try:
        overrides = parse_overrides(args.overrides)
        from rlkit.experiments.train import resolve_run_config

        for env in args.envs:  # refuse a bad key or value before any training
            resolve_run_config("acktr", env, overrides)
    except Exception as error:  # noqa: BLE001  (ValueError or rlkit's RunError: report it as a usage error)
        ap.error(str(error))
    import torch

    torch.set_num_threads(1)  # as sample_efficiency.py's workers: the same seeds give the same runs
    label = ",".join(f"{k}={v}" for k, v in overrides.items())
    preset_runs = committed_acktr_rows()
    cases = [c for c in CASES if c[0] in args.envs]
    cases, seeds = ([(CASES[0][0], CASES[0][1], CASES[0][2], 4_000)], 1) if args.quick else (cases, args.seeds)
    print(f"ACKTR with {label} vs its presets (data/benchmarks/sample_efficiency_with_peers.csv); "
          f"torch {torch.__version__}, 1 thread")
    print(f"{'env':22s} {'seed':>4s} {'steps variant':>14s} {'steps preset':>13s} {'episodes variant':>17s} "
          f"{'episodes preset':>16s} {'KL/delta variant':>16s}  wall s (variant)")
    rows: list = []
    for env, preset, threshold, budget in cases:
        steps_v, steps_p, eps_v, eps_p, kls = [], [], [], [], []
        for seed in range(seeds):
            run = train_one(Path(args.runs_root) / label / env / f"acktr-s{seed}", env, preset, threshold,
                            budget, seed, overrides)
            ref = preset_runs.get((env, seed))
            steps_v.append(run["steps"])
            eps_v.append(run["episodes"])
            steps_p.append(ref["steps"] if ref else None)
            eps_p.append(ref["episodes"] if ref else None)
            kls.append(run["kl_over_delta"])
            rows.append({"env": env, "seed": seed, "variant": label, "budget": budget,
                         "env_steps_variant": run["steps"], "env_steps_preset": steps_p[-1],
                         "episodes_variant": run["episodes"], "episodes_preset": eps_p[-1],
                         "kl_over_delta_variant": round(kls[-1], 4)})
            print(f"{env:22s} {seed:4d} {fmt(run['steps']):>14s} {fmt(steps_p[-1]):>13s} {fmt(run['episodes']):>17s} "
                  f"{fmt(eps_p[-1]):>16s} {kls[-1]:16.2f}  {run['wall_time_s']:6.0f}", flush=True)
        for unit, a, b in (("env steps", steps_v, steps_p), ("episodes", eps_v, eps_p)):
            ma, mb = median_or_none(a), median_or_none(b)
            ratio = f"{ma / mb:.2f}" if ma is not None and mb is not None else "n/a (censored)"
            print(f"  {env}: median {unit} variant {fmt(ma)}, preset {fmt(mb)}: ratio variant/preset {ratio}")
        print(f"  {env}: measured KL per update / delta, median over seeds of each run's median: "
              f"{statistics.median(kls):.2f}")
    if args.out is not None:
        import csv

        args.out.parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


def committed_acktr_rows() -> dict:
    """The committed ACKTR runs at the env family's preset (``data/benchmarks/sample_efficiency_with_peers.csv``,
    the benchmark's merged report; runs at another preset are labelled apart there): {(env, seed): {"steps":
    int | None, "episodes": int | None}}."""
    from rlkit.experiments.results import benchmark_rows, labelled_by_preset

    value = lambda x: None if math.isnan(x) else int(x)  # noqa: E731  (NaN: censored)
    rows = labelled_by_preset(benchmark_rows("sample_efficiency_with_peers"))
    return {(r["env"], int(r["seed"])): {"steps": value(r["env_steps_to_threshold"]),
                                         "episodes": value(r["episodes_to_threshold"])}
            for r in rows if r["algorithm"] == "acktr"}


if __name__ == "__main__":
    main()
