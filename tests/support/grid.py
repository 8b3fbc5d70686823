"""Helpers shared by the grid tests (tests/experiments/test_grid.py, tests/experiments/test_grid_ray.py, tests/experiments/test_registry_smoke.py,
tests/experiments/test_sweeps.py, tests/test_cli_grid.py)."""
import csv
import hashlib
from pathlib import Path

import numpy as np

from rlkit.experiments.grid import GridRun
from rlkit.experiments.runs import is_timing_column

TINY = (("num_envs", 2), ("num_steps", 8))  # 16 env steps per update
# 128 envs × 200 steps = 25,600 env steps per update: a grid run checkpoints every
# CHECKPOINT_EVERY_STEPS // 25,600 = 1 update, so a worker killed after update 2 has a checkpoint to resume.
BIG = (("num_envs", 128), ("num_steps", 200))
BIG_BATCH = 128 * 200


def tiny_run(algorithm="acktr", seed=0, steps=64, name=None, extra=()):
    return GridRun(algorithm, "CartPole-v1", seed, steps, name or f"CartPole-v1/{algorithm}/s{seed}",
                   tuple(sorted(dict(TINY + tuple(extra)).items())))


def big_run(name="CartPole-v1/acktr-big/s0", updates=3):
    return GridRun("acktr", "CartPole-v1", 0, updates * BIG_BATCH, name, BIG)


def rows(path):
    """(header, rows) of a CSV, read with the csv module (independently of rlkit.experiments.runs)."""
    with open(path, newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        data = list(reader)
        return list(reader.fieldnames or []), data


def without_timing(path):
    """A CSV's header and rows without the columns that measure time (rlkit.experiments.runs.is_timing_column)."""
    header, data = rows(path)
    return ([c for c in header if not is_timing_column(c)],
            [{k: v for k, v in row.items() if not is_timing_column(k)} for row in data])


def assert_same_results(run_dir_a, run_dir_b):
    """episodes.csv and updates.csv of two runs agree in every column but the timing ones."""
    for name in ("episodes.csv", "updates.csv"):
        a, b = without_timing(Path(run_dir_a) / name), without_timing(Path(run_dir_b) / name)
        assert a[0] == b[0], name
        assert len(a[1]) > 0 or name == "episodes.csv"
        assert a[1] == b[1], f"{name} of {run_dir_a} differs from {run_dir_b}"


def tree_hashes(root):
    """{relative path: sha256} of every file under root."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(root).rglob("*")) if p.is_file()}


def snapshot(root):
    """{relative path: (bytes, mtime_ns)}: what 'unchanged' means for a directory."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None, p.stat().st_mtime_ns)
            for p in sorted(Path(root).rglob("*"))}


def episodes(run_dir):
    """(env_steps, episode_return) arrays of a run's episodes.csv."""
    data = rows(Path(run_dir) / "episodes.csv")[1]
    return (np.array([float(r["env_steps"]) for r in data]), np.array([float(r["episode_return"]) for r in data]))


def run_dirs_with_config(root):
    """Every run directory under root, as the relative paths of the folders holding a config.json."""
    return {str(p.parent.relative_to(root)) for p in Path(root).rglob("config.json")}


def expected_names(exp, scale, seeds=None):
    """The run directories an experiment's grid must have, built from its declaration by hand:
    <env with / as _>/<variant label>/s<seed> for the variants of the env's family (and the scale's `only`)."""
    from rlkit.experiments.train import env_family

    chosen = exp.scales[scale]
    seeds = chosen.seeds if seeds is None else seeds
    names = set()
    for env, _ in chosen.envs:
        for variant in exp.variants:
            if variant.family not in (None, env_family(env)):
                continue
            if chosen.only and variant.label not in chosen.only:
                continue
            names |= {f"{env.replace('/', '_')}/{variant.label}/s{seed}" for seed in range(seeds)}
    return names
