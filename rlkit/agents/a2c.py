r"""A2C: synchronous advantage actor-critic, the first-order baseline of the ACKTR paper.

Same networks, batch and losses as :mod:`rlkit.agents.acktr`; only the optimizer differs. One
update, on a batch of T steps × N envs::

    A_t, R_t ← GAE(λ) advantages and value targets (λ = 1: k-step returns, as A3C)
    g        ← ∇ [ −mean(A log π(a|s)) − c_H·mean H[π] + c_V·mean (V − R)² ]
    g        ← g · min(1, max_grad_norm / ‖g‖)       (global norm clipping; 0 disables)
    θ        ← RMSprop(θ, g, lr)  (or Adam)

Presets. ``atari`` is openai/baselines' ``a2c.py`` (RMSprop, shared Nature-CNN trunk) on the
batch of ACKTR's ``atari`` preset, so that the two compare on the same data, as in the paper's
Figure 5. ``mujoco`` (Adam) and ``classic`` (RMSprop) are ours, with the batches, networks and
initial policy of the ACKTR presets, so that the algorithms compared start from the same policy
and differ only in how they update it. ``rmsprop_init`` is RMSprop's initial mean square: 1 as in
TensorFlow, hence baselines and ``atari``; 0 as in PyTorch and ``classic``. Neither start is
harmless: from 0 the first steps have the size lr/sqrt(1 − α) whatever the gradient's; from 1
they stay small until the mean square has adapted.

Sample efficiency of the presets: ``data/benchmarks/sample_efficiency.txt``. The presets'
sources and the RMSprop details: docs/agents.md, *A2C*.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from rlkit.agents.base import Agent, OnPolicyConfig, check, explained_variance
from rlkit.rollout import Rollout
from rlkit.trust_region import measured_kl

__all__ = ["A2C", "A2CConfig"]

OPTIMIZERS = ("rmsprop", "adam")


@dataclass
class A2CConfig(OnPolicyConfig):
    """A2C's hyperparameters (defaults: the ``classic`` preset); the shared ones: :class:`OnPolicyConfig`."""

    normalize_advantages: bool = False
    value_coef: float = 0.5  # c_V: c_V·mean (V − R)²
    entropy_coef: float = 0.01  # c_H (OnPolicyConfig's default: 0)
    # optimizer
    optimizer: str = "rmsprop"  # "rmsprop" or "adam"
    lr: float = 7e-4
    rmsprop_alpha: float = 0.99  # RMSprop's smoothing constant (Adam ignores it)
    rmsprop_init: float = 0.0  # RMSprop's initial mean square (PyTorch: 0; TensorFlow 1, hence baselines: 1)
    eps: float = 1e-5  # the optimizer's ε
    max_grad_norm: float = 0.5  # global gradient-norm clipping; 0 disables
    # diagnostics
    measure_kl: bool = True

    def validate(self) -> "A2CConfig":
        super().validate()
        check(self.lr > 0, "lr", self.lr, "> 0 (valid range (0, inf))")
        check(self.eps > 0, "eps", self.eps, "> 0 (valid range (0, inf))")
        check(0 <= self.rmsprop_alpha < 1, "rmsprop_alpha", self.rmsprop_alpha, "in [0, 1)")
        check(self.rmsprop_init >= 0, "rmsprop_init", self.rmsprop_init, ">= 0 (valid range [0, inf))")
        check(self.max_grad_norm >= 0, "max_grad_norm", self.max_grad_norm, ">= 0 (0 disables clipping)")
        check(self.value_coef >= 0, "value_coef", self.value_coef, ">= 0 (valid range [0, inf))")
        check(self.optimizer in OPTIMIZERS, "optimizer", self.optimizer, f"one of {list(OPTIMIZERS)}")
        return self


class A2C(Agent):
    """First-order actor-critic: one gradient step of RMSprop (or Adam) per batch."""

    name = "a2c"
    Config = A2CConfig
    supported_action_kinds = ("discrete", "continuous")
    presets = {
        "classic": {},
        "atari": dict(
            num_envs=32, num_steps=20, gamma=0.99, gae_lambda=1.0, normalize_advantages=False, shared_trunk=True,
            value_coef=0.5, entropy_coef=0.01, optimizer="rmsprop", lr=7e-4, rmsprop_alpha=0.99, rmsprop_init=1.0,
            eps=1e-5, max_grad_norm=0.5,
        ),
        "mujoco": dict(
            num_envs=1, num_steps=2500, gamma=0.99, gae_lambda=0.97, normalize_advantages=True, shared_trunk=False,
            hidden_sizes=[64, 64], activation="tanh", log_std_init=-1.5, value_coef=0.5, entropy_coef=0.0,
            optimizer="adam", lr=3e-3, eps=1e-5, max_grad_norm=0.5,
        ),
        # A2C at its own best on CartPole, not at ACKTR's batch: the cell benchmarks/preset_search.py chose
        # (data/benchmarks/preset_search/a2c-CartPole-v1.txt): many small updates, as Stable-Baselines3's A2C
        "classic-tuned": dict(num_envs=1, num_steps=5, lr=2e-3, entropy_coef=0.0),
    }
    # and on MuJoCo: the cell it chose on Reacher (data/benchmarks/preset_search/a2c-Reacher-v5.txt), 16 envs
    # x 5 steps per update instead of ACKTR's 1 x 2500, the mujoco preset otherwise
    presets["mujoco-tuned"] = dict(presets["mujoco"], num_envs=16, num_steps=5)

    def __init__(self, env_summary, config: A2CConfig, *, seed: int, device="cpu"):
        super().__init__(env_summary, config, seed=seed, device=device)
        c = self.config
        if c.optimizer == "rmsprop":
            self.optimizer = torch.optim.RMSprop(self.model.parameters(), lr=c.lr, alpha=c.rmsprop_alpha, eps=c.eps)
            for p in self.model.parameters():  # start the mean square at rmsprop_init (PyTorch would use 0)
                self.optimizer.state[p] = {"step": torch.zeros(()), "square_avg": torch.full_like(p, c.rmsprop_init)}
        else:
            self.optimizer = torch.optim.Adam(self.model.parameters(), lr=c.lr, eps=c.eps)

    def update(self, rollout: Rollout) -> dict[str, float]:
        c, start = self.config, self.clock()
        batch = self.batch(rollout)

        # 1. Forward pass and the actor-critic loss.
        pd_params, values = self.model(batch.obs)
        pi = self.model.distribution(pd_params)
        pi_old = self.model.distribution(pd_params, detach=True)
        entropy = pi.entropy().mean()
        policy_loss = -(batch.advantages * pi.log_prob(batch.actions)).mean() - c.entropy_coef * entropy
        value_loss = (values - batch.returns).pow(2).mean()

        # 2. Gradient, clipped by its global norm, and one optimizer step.
        self.optimizer.zero_grad(set_to_none=True)
        (policy_loss + c.value_coef * value_loss).backward()
        max_norm = c.max_grad_norm if c.max_grad_norm > 0 else float("inf")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm))  # norm before clipping
        self.optimizer.step()
        self.updates += 1

        # 3. Diagnostics.
        kl = float("nan")
        if c.measure_kl:
            with torch.no_grad():
                kl = measured_kl(pi_old, self.model.distribution(self.model.pd_params(batch.obs)))
        return {
            "measured_kl": kl,
            "grad_norm": grad_norm,
            "lr": c.lr,
            "entropy": float(entropy.detach()),
            "policy_loss": float(policy_loss.detach()),
            "value_loss": float(value_loss.detach()),
            "explained_variance": explained_variance(batch.values, batch.returns),
            "time_update": self.clock() - start,
        }

    def extra_state(self) -> dict:
        return {"optimizer": self.optimizer.state_dict()}

    def load_extra_state(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
