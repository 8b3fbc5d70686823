"""The implementations a researcher would pick instead: Stable-Baselines3 PPO and A2C, sb3-contrib TRPO.

``benchmarks/sample_efficiency.py`` trains these beside the kit's agents, on the same envs, budgets,
seeds and threshold rule, when they are named in ``--algorithms``. Each peer comes in two settings:

* ``sb3-ppo``, ``sb3-a2c``, ``sb3-trpo``: the library's **default** hyperparameters, one env;
* ``sb3-ppo-zoo``, ``sb3-a2c-zoo``, ``sb3-trpo-zoo``: the RL Baselines3 Zoo's tuned hyperparameters,
  where the zoo has an entry for the env (:data:`ZOO`, copied from the zoo's ``hyperparams/*.yml`` at
  :data:`ZOO_COMMIT`; its MuJoCo entries are for v2/v4 of the envs, used here on v5). Where it has
  none, the job is left out and the report says so.

A peer run directory holds ``peer.json`` (what was trained, with which settings and library versions),
``episodes.csv`` and ``updates.csv`` in the kit's columns, so that the benchmark reads it as it reads
a run of the kit. Peer runs are not resumable: an unfinished one is trained again from the start.

The peers come from the optional ``peers`` extra (``pip install -e .[peers]``); nothing else in the
kit needs them.
"""

from __future__ import annotations

import csv
import json
import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

PEER_FILE = "peer.json"
ZOO_COMMIT = "22e3ff2450fd92033f7f032915e1f64894a09584"  # DLR-RM/rl-baselines3-zoo, 2026-04-23

# The zoo's entries for the benchmark's envs: {kit env: (zoo key, hyperparameters)}.
# "lin_X" is a schedule falling linearly from X to 0 over n_timesteps, as in the zoo.
ZOO = {
    "ppo": {
        "CartPole-v1": ("CartPole-v1", dict(
            n_envs=8, n_timesteps=1e5, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20,
            ent_coef=0.0, learning_rate="lin_0.001", clip_range="lin_0.2")),
        "InvertedPendulum-v5": ("InvertedPendulum-v2", dict(
            normalize=True, n_envs=1, n_timesteps=1e6, batch_size=64, n_steps=32, gamma=0.999,
            learning_rate=0.000222425, ent_coef=1.37976e-07, clip_range=0.4, n_epochs=5, gae_lambda=0.9,
            max_grad_norm=0.3, vf_coef=0.19816)),
        "Reacher-v5": ("Reacher-v2", dict(
            normalize=True, n_envs=1, n_timesteps=1e6, batch_size=32, n_steps=512, gamma=0.9,
            learning_rate=0.000104019, ent_coef=7.52585e-08, clip_range=0.3, n_epochs=5, gae_lambda=1.0,
            max_grad_norm=0.9, vf_coef=0.950368)),
        "HalfCheetah-v5": ("HalfCheetah-v4", dict(
            normalize=True, n_envs=1, n_timesteps=1e6, batch_size=64, n_steps=512, gamma=0.98,
            learning_rate=2.0633e-05, ent_coef=0.000401762, clip_range=0.1, n_epochs=20, gae_lambda=0.92,
            max_grad_norm=0.8, vf_coef=0.58096,
            policy_kwargs="dict(log_std_init=-2, ortho_init=False, activation_fn=nn.ReLU, "
                          "net_arch=dict(pi=[256, 256], vf=[256, 256]))")),
        "Pendulum-v1": ("Pendulum-v1", dict(
            n_envs=4, n_timesteps=1e5, n_steps=1024, gae_lambda=0.95, gamma=0.9, n_epochs=10, ent_coef=0.0,
            learning_rate=1e-3, clip_range=0.2, use_sde=True, sde_sample_freq=4)),
    },
    "a2c": {
        "CartPole-v1": ("CartPole-v1", dict(n_envs=8, n_timesteps=5e5, ent_coef=0.0)),
        "HalfCheetah-v5": ("HalfCheetah-v4", dict(normalize=True, n_timesteps=1e6)),
        "Pendulum-v1": ("Pendulum-v1", dict(
            normalize=True, n_envs=8, n_timesteps=1e6, ent_coef=0.0, max_grad_norm=0.5, n_steps=8, gae_lambda=0.9,
            vf_coef=0.4, gamma=0.9, use_rms_prop=True, normalize_advantage=False, learning_rate="lin_7e-4",
            use_sde=True, policy_kwargs="dict(log_std_init=-2, ortho_init=False)")),
    },
    "trpo": {
        "CartPole-v1": ("CartPole-v1", dict(
            n_envs=2, n_timesteps=1e5, n_steps=512, batch_size=512, cg_damping=1e-3, gae_lambda=0.98,
            gamma=0.99, learning_rate=1e-3, n_critic_updates=20)),
        "HalfCheetah-v5": ("HalfCheetah-v4", dict(
            normalize=True, n_envs=2, n_timesteps=1e6, batch_size=128, n_steps=1024, gamma=0.99,
            gae_lambda=0.95, sub_sampling_factor=1, cg_max_steps=25, cg_damping=0.1, n_critic_updates=20,
            learning_rate=1e-3, target_kl=0.04)),
        "Pendulum-v1": ("Pendulum-v1", dict(
            n_envs=2, n_timesteps=1e5, n_steps=1024, gamma=0.9, n_critic_updates=15, use_sde=True, sde_sample_freq=4)),
    },
}


@dataclass(frozen=True)
class Peer:
    family: str  # "ppo", "a2c", "trpo"
    zoo: bool  # the zoo's tuned hyperparameters (else the library's defaults)

    def model_class(self):
        if self.family == "trpo":
            from sb3_contrib import TRPO

            return TRPO
        import stable_baselines3

        return {"ppo": stable_baselines3.PPO, "a2c": stable_baselines3.A2C}[self.family]

    def has_settings(self, env: str) -> bool:
        return not self.zoo or env in ZOO[self.family]

    def settings(self, env: str) -> dict:
        """The hyperparameters for ``env`` as the zoo writes them (``{}``: the library's defaults)."""
        if not self.zoo:
            return {}
        if env not in ZOO[self.family]:
            raise KeyError(f"the zoo has no {self.family} entry for {env}")
        return dict(ZOO[self.family][env][1])

    def preset(self, env: str) -> str:
        """The preset column of the benchmark's CSV: which settings were used."""
        if not self.zoo:
            return "sb3-defaults"
        return f"zoo:{ZOO[self.family][env][0]}@{ZOO_COMMIT[:7]}"


PEERS = {f"sb3-{family}{'-zoo' if zoo else ''}": Peer(family, zoo)
         for zoo in (False, True) for family in ("ppo", "a2c", "trpo")}


def missing_library() -> str | None:
    """None when the peers can be trained, else why not (for the benchmark and its smoke test)."""
    try:
        import sb3_contrib  # noqa: F401
        import stable_baselines3  # noqa: F401
    except ImportError as error:
        return f"the peers need the optional 'peers' extra (pip install -e .[peers]): {error}"
    return None


def horizon(name: str, env: str, budget: int) -> int:
    """The run's budget: the benchmark's, or the zoo's n_timesteps where it is shorter (its schedules end there)."""
    n = PEERS[name].settings(env).get("n_timesteps")
    return budget if n is None else min(budget, int(n))


def batch_shape(name: str, env: str) -> dict:
    """num_envs and num_steps per rollout, as the report prints them for the kit's agents."""
    settings = PEERS[name].settings(env) if PEERS[name].has_settings(env) else {}
    default_steps = {"ppo": 2048, "a2c": 5, "trpo": 2048}[PEERS[name].family]
    return {"num_envs": int(settings.get("n_envs", 1)), "num_steps": int(settings.get("n_steps", default_steps))}


def _schedule(value):
    if isinstance(value, str) and value.startswith("lin_"):
        start = float(value[4:])
        return lambda progress_remaining: progress_remaining * start
    return value


def model_kwargs(settings: dict) -> dict:
    """The zoo's entry as keyword arguments of the SB3 model (schedules and policy_kwargs made objects)."""
    from torch import nn

    kwargs = {k: v for k, v in settings.items() if k not in ("n_envs", "n_timesteps", "normalize")}
    for key in ("learning_rate", "clip_range"):
        if key in kwargs:
            kwargs[key] = _schedule(kwargs[key])
    if "policy_kwargs" in kwargs:
        kwargs["policy_kwargs"] = eval(kwargs["policy_kwargs"], {"dict": dict, "nn": nn})  # the zoo's own syntax
    return kwargs


def library_versions() -> dict:
    import gymnasium
    import sb3_contrib
    import stable_baselines3
    import torch

    return {"stable_baselines3": stable_baselines3.__version__, "sb3_contrib": sb3_contrib.__version__,
            "gymnasium": gymnasium.__version__, "torch": torch.__version__}


def read_peer_config(run_dir: Path) -> dict | None:
    path = Path(run_dir) / PEER_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def train(name: str, env: str, seed: int, budget: int, threshold: float, window: int, run_dir: Path,
          command: str = "") -> None:
    """Train peer ``name`` on ``env`` until the mean of the last ``window`` episodes reaches ``threshold``
    or ``budget`` env steps are spent; log it into ``run_dir`` in the kit's columns."""
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    from rlkit.experiments.runs import EPISODE_COLUMNS, UPDATE_BASE_COLUMNS

    peer = PEERS[name]
    settings = peer.settings(env)
    run_dir = Path(run_dir)
    if run_dir.exists():
        shutil.rmtree(run_dir)  # an unfinished peer run: trained again from the start
    run_dir.mkdir(parents=True)
    shape = batch_shape(name, env)
    config = {"peer": name, "algorithm": name, "env": env, "seed": seed, "steps": budget, "preset": peer.preset(env),
              "threshold": threshold, "settings": settings, "zoo_commit": ZOO_COMMIT if peer.zoo else None,
              "agent": shape, "versions": library_versions(), "command": command}
    (run_dir / PEER_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")

    venv = make_vec_env(env, n_envs=shape["num_envs"], seed=seed)
    if settings.get("normalize"):
        venv = VecNormalize(venv, gamma=settings.get("gamma", 0.99))
    total = int(settings.get("n_timesteps", budget))
    model = peer.model_class()("MlpPolicy", venv, seed=seed, device="cpu", verbose=0, **model_kwargs(settings))

    episodes_file = open(run_dir / "episodes.csv", "w", newline="", encoding="utf-8")
    updates_file = open(run_dir / "updates.csv", "w", newline="", encoding="utf-8")
    episodes = csv.DictWriter(episodes_file, fieldnames=EPISODE_COLUMNS)
    updates = csv.DictWriter(updates_file, fieldnames=UPDATE_BASE_COLUMNS)
    episodes.writeheader()
    updates.writeheader()
    start = time.perf_counter()

    class Log(BaseCallback):
        """Logs every finished episode (Monitor's raw return) and stops at the threshold or the budget."""

        def __init__(self):
            super().__init__()
            self.returns: list[float] = []
            self.rollouts = 0

        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if "episode" in info:
                    self.returns.append(float(info["episode"]["r"]))
                    episodes.writerow({"env_steps": self.num_timesteps, "wall_time_s": time.perf_counter() - start,
                                       "episode_return": self.returns[-1], "episode_length": int(info["episode"]["l"]),
                                       "update": self.rollouts})
            reached = (len(self.returns) >= window
                       and statistics.fmean(self.returns[-window:]) >= threshold)
            return not reached and self.num_timesteps < budget

        def _on_rollout_end(self) -> None:
            self.rollouts += 1
            updates.writerow({"update": self.rollouts, "env_steps": self.num_timesteps,
                              "wall_time_s": time.perf_counter() - start})
            episodes_file.flush()  # progress readable while it trains
            updates_file.flush()

    try:
        model.learn(total_timesteps=total, callback=Log())
        updates.writerow({"update": "", "env_steps": model.num_timesteps, "wall_time_s": time.perf_counter() - start})
    finally:
        episodes_file.close()
        updates_file.close()
        venv.close()
