"""Synthetic V-MPO run directories and sweeps, shared by the tests of notebook 09's demos and exercises."""
import numpy as np

from rlkit.experiments.runs import RUN_FORMAT, write_config, write_csv
from rlkit.experiments.sweeps import Sweep


def make_run(path, episodes, updates, *, env="CartPole-v1", algorithm="vmpo", seed=3, agent=None):
    """A run directory with the files the module reads: config.json, episodes.csv, updates.csv."""
    path.mkdir(parents=True, exist_ok=True)
    agent = {"eps_eta": 0.1, "eps_alpha": 0.01, "eps_alpha_mu": 0.01, "eps_alpha_sigma": 1e-4, "target_period": 4,
             **(agent or {})}
    write_config(path, {"rlkit_run": RUN_FORMAT, "algorithm": algorithm, "env": env, "seed": seed, "agent": agent})
    write_csv(path / "episodes.csv", ["env_steps", "episode_return"],
              [{"env_steps": s, "episode_return": r} for s, r in episodes])
    write_csv(path / "updates.csv", list(updates[0]), updates)
    return path


def categorical_updates(n=8):
    return [{"update": i + 1, "env_steps": 100 * (i + 1), "temperature": 1.0 + i, "alpha": 5.0 - 0.5 * i,
             "mstep_kl": [0.0, 0.004, 0.008, 0.012][i % 4], "estep_kl": 0.05 * (i + 1), "max_weight": 0.02,
             "num_selected": 128.0, "entropy": 0.7 - 0.01 * i} for i in range(n)]


def make_sweep(steps_to_reach, final, mstep, estep=None):
    """A 2 × 2 sweep (eps_eta ∈ {0.1, 1}, eps_alpha ∈ {0.001, 0.01}), 3 seeds, 4 curve points (0…3000 steps).

    ``steps_to_reach[(eps_eta, eps_alpha)]``: per seed, the curve point at which the return jumps from 0 to
    ``final`` (None: never); ``mstep``: the M-step KL per point (constant over the run)."""
    columns = {name: [] for name in ("eps_eta", "eps_alpha", "seed", "env_steps", "episode_return", "episodes",
                                     "estep_kl", "mstep_kl")}
    for (eta, alpha), per_seed in steps_to_reach.items():
        for seed, reach in enumerate(per_seed):
            for k, steps in enumerate([0, 1000, 2000, 3000]):
                ret = final[(eta, alpha)] if reach is not None and steps >= reach else 0.0
                for name, value in zip(columns, (eta, alpha, seed, steps, ret, k,
                                                 (estep or {}).get((eta, alpha), eta), mstep[(eta, alpha)])):
                    columns[name].append(value)
    columns = {name: np.array(values, dtype=float) for name, values in columns.items()}
    return Sweep("test", columns, {"eps_eta": np.array([0.1, 1.0]), "eps_alpha": np.array([0.001, 0.01])},
                 {"threshold": 475, "algorithm": "vmpo", "env": "CartPole-v1"})
