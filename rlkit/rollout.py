"""Rollouts: T steps of N environments, and the returns and advantages computed from them.

``RolloutCollector(envs, num_steps).collect(policy)`` steps a vector env made by
``rlkit.envs.make_vec_env`` and returns a :class:`Rollout`; :func:`k_step_returns` (A2C, ACKTR)
and :func:`gae` (GAE(λ); λ = 1 gives the k-step advantage) compute returns and advantages from it.

Conventions:

* time-major: every tensor has shape (T, N, ...); ``x[t, i]`` is step t of sub-env i;
* NEXT_STEP autoreset (``rlkit.envs``): the step after an episode end is a reset step, marked
  ``valid[t, i] = False``; it gets zero return and advantage and must be left out of every loss
  (select ``x[rollout.valid]``);
* a terminated episode bootstraps nothing; a truncated one bootstraps from V(final obs), held in
  ``next_values``; nothing flows across an episode boundary (:func:`continuation_mask` is 0 there);
* the policy is any callable ``policy(obs) -> (actions, log_probs, values)``, called under
  ``torch.no_grad()`` once per step and once more for the bootstrap value; ``actions`` are the
  unclipped sample (the env clips).

The formulas and the policy's contract: docs/plumbing.md, *rlkit.rollout*.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from rlkit.envs import AUTORESET_MODE, reset_with_seed

Policy = Callable[[Tensor], tuple[Tensor, Tensor, Tensor]]


# ----------------------------------------------------------------------------- returns and advantages


def continuation_mask(terminated: Tensor, truncated: Tensor, valid: Tensor | None = None) -> Tensor:
    """c_t (float, same shape): 1 where step t + 1 continues step t's episode inside the rollout."""
    if valid is None:
        valid = torch.ones_like(terminated, dtype=torch.bool)
    next_valid = torch.cat([valid[1:], torch.zeros_like(valid[:1])])  # valid_T = 0: the rollout ends
    return (~(terminated | truncated) & next_valid).float()


def k_step_returns(
    rewards: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    valid: Tensor | None = None,
    *,
    gamma: float,
) -> Tensor:
    r"""Bootstrapped returns :math:`R_t = r_t + \gamma[c_t R_{t+1} + (1 - c_t)(1 - \mathrm{term}_t)V'_t]`.

    Shapes (T, N); masks are bool. Invalid steps get 0. See docs/plumbing.md, *rlkit.rollout*.
    """
    continues = continuation_mask(terminated, truncated, valid)
    bootstrap = (1.0 - terminated.float()) * next_values
    returns = torch.zeros_like(rewards)
    following = torch.zeros_like(rewards[0])  # R_{t+1}
    for t in reversed(range(rewards.shape[0])):
        following = rewards[t] + gamma * (continues[t] * following + (1.0 - continues[t]) * bootstrap[t])
        returns[t] = following
    return _zero_invalid(returns, valid)


def gae(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    valid: Tensor | None = None,
    *,
    gamma: float,
    gae_lambda: float,
) -> Tensor:
    r"""GAE(λ) advantages: :math:`A_t = \delta_t + \gamma\lambda c_t A_{t+1}`,
    :math:`\delta_t = r_t + \gamma(1 - \mathrm{term}_t)V'_t - V_t`.

    Shapes (T, N); masks are bool. λ = 1 gives ``k_step_returns(...) - values``. Invalid steps
    get 0. Value targets: ``advantages + values``.
    """
    continues = continuation_mask(terminated, truncated, valid)
    deltas = rewards + gamma * (1.0 - terminated.float()) * next_values - values
    advantages = torch.zeros_like(rewards)
    following = torch.zeros_like(rewards[0])  # A_{t+1}
    for t in reversed(range(rewards.shape[0])):
        following = deltas[t] + gamma * gae_lambda * continues[t] * following
        advantages[t] = following
    return _zero_invalid(advantages, valid)


def _zero_invalid(x: Tensor, valid: Tensor | None) -> Tensor:
    return x if valid is None else x * valid.float()


# ----------------------------------------------------------------------------- storage


@dataclass(frozen=True)
class Episode:
    """A completed episode: its raw return and length (for Atari the whole game, unclipped)."""

    env_index: int
    episode_return: float
    length: int
    env_steps: int  # the collector's env_steps when it ended (for learning curves)


@dataclass
class Rollout:
    """T steps × N envs, time-major. ``obs[t]`` is where ``actions[t]`` was taken."""

    obs: Tensor  # (T, N, *obs_shape), float32 or uint8
    actions: Tensor  # (T, N) int64 or (T, N, action_dim) float32
    log_probs: Tensor  # (T, N) log π(a_t | s_t) when collected
    values: Tensor  # (T, N) V(s_t) when collected
    rewards: Tensor  # (T, N) the training reward (sign-clipped for Atari)
    terminated: Tensor  # (T, N) bool
    truncated: Tensor  # (T, N) bool
    valid: Tensor  # (T, N) bool; False at NEXT_STEP reset steps
    next_values: Tensor  # (T, N) V of the obs reached by step t: the bootstrap at truncations
    episodes: list[Episode] = field(default_factory=list)  # completed during this rollout

    @property
    def num_steps(self) -> int:
        return self.rewards.shape[0]

    @property
    def num_envs(self) -> int:
        return self.rewards.shape[1]

    def k_step_returns(self, gamma: float) -> Tensor:
        return k_step_returns(self.rewards, self.next_values, self.terminated, self.truncated, self.valid, gamma=gamma)

    def gae(self, gamma: float, gae_lambda: float) -> Tensor:
        return gae(self.rewards, self.values, self.next_values, self.terminated, self.truncated, self.valid,
                   gamma=gamma, gae_lambda=gae_lambda)


# ----------------------------------------------------------------------------- collection


class RolloutCollector:
    """Steps a NEXT_STEP vector env with a policy, ``num_steps`` steps per ``collect``.

    It owns the env between calls (its current observation and which sub-envs reset next), so
    consecutive rollouts continue each other exactly. ``env_steps`` counts valid transitions,
    i.e. real environment steps summed over sub-envs (for Atari: agent steps, 4 frames each).
    ``episodes`` lists every completed episode so far, in order.
    """

    def __init__(self, envs: gym.vector.VectorEnv, num_steps: int, *, seed: int | None = None,
                 device: str | torch.device = "cpu"):
        mode = envs.metadata.get("autoreset_mode")
        if mode != AUTORESET_MODE:
            raise ValueError(f"the collector needs autoreset mode {AUTORESET_MODE}, the env has {mode}; "
                             "make it with rlkit.envs.make_vec_env")
        self.envs, self.num_steps, self.device = envs, num_steps, torch.device(device)
        obs, _ = reset_with_seed(envs, seed)
        self.obs = self._to_tensor(obs)
        self.next_valid = np.ones(envs.num_envs, dtype=bool)  # False where the next step is a reset step
        self.env_steps = 0
        self.episodes: list[Episode] = []

    def collect(self, policy: Policy) -> Rollout:
        """Run ``num_steps`` steps of every sub-env with ``policy`` and return them."""
        steps = [self._step(policy) for _ in range(self.num_steps)]
        with torch.no_grad():
            last_value = policy(self.obs)[2]
        stacked = {key: torch.stack([step[key] for step in steps]) for key in steps[0] if key != "episodes"}
        next_values = torch.cat([stacked["values"][1:], last_value[None]])
        episodes = [episode for step in steps for episode in step["episodes"]]
        return Rollout(next_values=next_values, episodes=episodes, **stacked)

    def _step(self, policy: Policy) -> dict:
        with torch.no_grad():
            actions, log_probs, values = policy(self.obs)
        self._check_policy_output(log_probs, values)
        valid = torch.tensor(self.next_valid, device=self.device)
        obs = self.obs
        next_obs, rewards, terminated, truncated, info = self.envs.step(actions.cpu().numpy())
        self.env_steps += int(self.next_valid.sum())
        self.next_valid = ~(terminated | truncated)  # NEXT_STEP: those sub-envs reset at the next step
        self.obs = self._to_tensor(next_obs)
        return dict(
            obs=obs, actions=actions, log_probs=log_probs, values=values, valid=valid,
            rewards=torch.as_tensor(rewards, dtype=torch.float32, device=self.device),
            terminated=torch.as_tensor(terminated, device=self.device),
            truncated=torch.as_tensor(truncated, device=self.device),
            episodes=self._completed_episodes(info),
        )

    def _completed_episodes(self, info: dict) -> list[Episode]:
        """Episodes that ended at this step, from gymnasium's RecordEpisodeStatistics (raw returns)."""
        if "_episode" not in info:
            return []
        stats = info["episode"]
        episodes = [Episode(int(i), float(stats["r"][i]), int(stats["l"][i]), self.env_steps)
                    for i in np.flatnonzero(info["_episode"])]
        self.episodes.extend(episodes)
        return episodes

    def _to_tensor(self, obs: np.ndarray) -> Tensor:
        tensor = torch.as_tensor(obs, device=self.device)
        return tensor.float() if tensor.is_floating_point() else tensor  # float64 -> float32; uint8 frames stay

    def _check_policy_output(self, log_probs: Tensor, values: Tensor) -> None:
        expected = (self.envs.num_envs,)
        for name, tensor in (("log_probs", log_probs), ("values", values)):
            if tuple(tensor.shape) != expected:
                raise ValueError(f"policy returned {name} of shape {tuple(tensor.shape)}, expected {expected}")
