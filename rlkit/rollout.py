r"""Rollouts: T steps of N environments, and the returns and advantages computed from them.

Layout: every tensor is time-major, shape (T, N, ...): ``x[t, i]`` is step t of sub-env i.

Episode ends and the NEXT_STEP autoreset (see ``rlkit.envs``)
-------------------------------------------------------------
If sub-env i's episode ends at step t (``terminated`` or ``truncated``), ``obs[t + 1, i]`` is that
episode's final observation, and step t + 1 is the reset step: its action is ignored, its reward
is 0, and it is marked ``valid[t + 1, i] = False``. Invalid steps get zero return and advantage
and must be left out of every loss: select ``x[rollout.valid]`` (a (T, N) boolean mask applied to
a (T, N, ...) tensor gives the (M, ...) valid rows).

Two kinds of episode end:

- terminated: the MDP ended; the future is worth 0, nothing is bootstrapped;
- truncated (time limit): the MDP did not end, so the return bootstraps from V(final obs).

``next_values[t, i]`` is V of the observation reached by step t (for t < T − 1 it is
``values[t + 1, i]``; at t = T − 1 it is the value of the observation the next rollout starts
from). At a truncation this is the truncation bootstrap V(final obs); at a termination it is
unused. Write :math:`V'_t` for ``next_values[t]`` and define the continuation mask

.. math::  c_t = 1 \text{ if step } t+1 \text{ is in the same episode and in this rollout, else } 0,

i.e. :math:`c_t = (1 - \mathrm{term}_t)(1 - \mathrm{trunc}_t)\,\mathrm{valid}_{t+1}`, with
:math:`\mathrm{valid}_T = 0`. Then

- k-step bootstrapped return (A2C, ACKTR; k runs to the end of the episode or rollout):
  :math:`R_t = r_t + \gamma\,[\,c_t R_{t+1} + (1 - c_t)(1 - \mathrm{term}_t)\,V'_t\,]`
- GAE(λ): :math:`\delta_t = r_t + \gamma (1 - \mathrm{term}_t) V'_t - V_t`,
  :math:`A_t = \delta_t + \gamma\lambda\, c_t A_{t+1}`.
  With λ = 1 the sum telescopes to :math:`A_t = R_t - V_t`: the paper's k-step advantage.
  The value target is :math:`A_t + V_t` (the λ-return).

Because :math:`c_t = 0` at every episode end and before every invalid step, nothing flows
across an episode boundary, in either direction.

The collector
-------------
``RolloutCollector(envs, num_steps).collect(policy)`` steps a vector env made by
``rlkit.envs.make_vec_env``. The policy is any callable

    policy(obs) -> (actions, log_probs, values)

taking the (N, *obs_shape) observation tensor on the collector's device (float32, or uint8 for
Atari frames, which the network scales) and returning, on that device, ``actions`` (N,) integer
for discrete or (N, action_dim) float for continuous spaces (the unclipped sample; the env clips),
``log_probs`` (N,) = log π(action | obs), and ``values`` (N,) = V(obs). It is called under
``torch.no_grad()``, once per step and once more for the bootstrap value after the last step.
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

    Shapes (T, N); masks are bool. Invalid steps get 0. See the module docstring.
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
    lam: float,
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
        following = deltas[t] + gamma * lam * continues[t] * following
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

    def gae(self, gamma: float, lam: float) -> Tensor:
        return gae(self.rewards, self.values, self.next_values, self.terminated, self.truncated, self.valid,
                   gamma=gamma, lam=lam)


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
