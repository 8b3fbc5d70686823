r"""TRPO: Trust Region Policy Optimization (Schulman et al., 2015), the ACKTR paper's second baseline.

The natural gradient here is computed the matrix-free way — conjugate gradient on exact
Fisher-vector products — instead of K-FAC's Kronecker-factored inverse. One update::

    A_t, R_t ← GAE(λ) advantages (standardized) and value targets
    L(θ)     = mean[ π_θ(a|s) / π_old(a|s) · A ] + c_H·mean H[π_θ]   (the surrogate)
    g        ← ∇L(θ_old);   s ← CG solve (F + λI) s = g   (cg_iters iterations; F v exact:
                                              rlkit.fisher.fisher_vector_product)
    q        ← sᵀ(F + λI)s ;   step_size η ← sqrt(2δ / q)  (predicted KL ½η²q = δ)
    line search: θ ← θ_old + ρ^k η s for k = 0, 1, ...: the first step whose surrogate improves
             and whose measured KL(π_old ‖ π_θ) <= kl_tolerance·δ; none: θ ← θ_old
    value function: value_epochs epochs of Adam (lr) on minibatches of mean (V − R)²

δ is the KL of the step in the paper convention (``rlkit.trust_region``): TRPO's ``max_kl``.
The critic is fitted by Adam, not by the natural-gradient step, so ``shared_trunk`` must be False.

Presets: ``mujoco`` and ``atari`` take openai/baselines' ``trpo_mpi`` values (max_kl, CG
damping, γ, λ, value iterations and step size, the line search) with the batches, networks and
initial policy of the ACKTR presets, so that the methods compare on the same networks, as in the
paper; ``classic`` is ours. Sample efficiency of the presets:
``data/benchmarks/sample_efficiency.txt``. The presets' values and sources: docs/agents.md, *TRPO*.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from rlkit.agents.base import Agent, OnPolicyConfig, check, explained_variance
from rlkit.fisher import Categorical, DiagonalGaussian, conjugate_gradient, fisher_vector_product, flatten
from rlkit.rollout import Rollout
from rlkit.trust_region import measured_kl, predicted_kl

__all__ = ["TRPO", "TRPOConfig"]


@dataclass
class TRPOConfig(OnPolicyConfig):
    """TRPO's hyperparameters (defaults: the ``classic`` preset); the shared ones: :class:`OnPolicyConfig`.

    ``shared_trunk`` must stay False: separate actor and critic networks.
    """

    gae_lambda: float = 0.97  # (OnPolicyConfig's default: 1)
    normalize_advantages: bool = True
    # the policy step
    delta: float = 0.01  # δ: TRPO's max KL
    damping: float = 0.1  # λ in (F + λI) s = g
    cg_iters: int = 10
    max_backtracks: int = 10
    backtrack_coef: float = 0.5  # ρ: the step shrinks by this factor per backtrack
    kl_tolerance: float = 1.5  # accept a step whose measured KL <= kl_tolerance·δ
    # the value function
    lr: float = 1e-3  # Adam
    value_epochs: int = 5
    value_minibatch_size: int = 64

    def validate(self) -> "TRPOConfig":
        super().validate()
        check(not self.shared_trunk, "shared_trunk", self.shared_trunk,
              "False for TRPO (its critic is fitted by Adam, separately from the natural-gradient policy step)")
        check(self.delta > 0, "delta", self.delta, "> 0 (valid range (0, inf))")
        check(self.damping >= 0, "damping", self.damping, ">= 0 (valid range [0, inf))")
        check(self.lr > 0, "lr", self.lr, "> 0 (valid range (0, inf))")
        check(0 < self.backtrack_coef < 1, "backtrack_coef", self.backtrack_coef, "in (0, 1)")
        check(self.kl_tolerance >= 1, "kl_tolerance", self.kl_tolerance, ">= 1 (valid range [1, inf))")
        for name in ("cg_iters", "max_backtracks", "value_epochs", "value_minibatch_size"):
            check(getattr(self, name) >= 1, name, getattr(self, name), "an integer >= 1 (valid range [1, inf))")
        return self


class TRPO(Agent):
    """Natural policy gradient by conjugate gradient, KL-constrained step with line search; Adam critic."""

    name = "trpo"
    Config = TRPOConfig
    supported_action_kinds = ("discrete", "continuous")
    presets = {
        "classic": {},
        "atari": dict(
            num_envs=32, num_steps=20, gamma=0.98, gae_lambda=1.0, normalize_advantages=True, entropy_coef=0.0,
            delta=0.001, damping=1e-3, cg_iters=10, lr=1e-4, value_epochs=3, value_minibatch_size=64,
        ),
        "mujoco": dict(
            num_envs=1, num_steps=2500, gamma=0.99, gae_lambda=0.98, normalize_advantages=True, hidden_sizes=[64, 64],
            activation="tanh", log_std_init=-1.5, entropy_coef=0.0, delta=0.01, damping=0.1, cg_iters=10, lr=1e-3,
            value_epochs=5, value_minibatch_size=64,
        ),
        # TRPO at its own best on CartPole, not at ACKTR's batch: the cell benchmarks/preset_search.py chose
        # (data/benchmarks/preset_search/trpo-CartPole-v1.txt): a batch of 8 × 128, as TRPO is usually run
        "classic-tuned": dict(num_envs=8, num_steps=128),
    }

    def __init__(self, env_summary, config: TRPOConfig, *, seed: int, device="cpu"):
        super().__init__(env_summary, config, seed=seed, device=device)
        actor = self.model.actor
        # The policy's output distribution, for rlkit.fisher's exact Fisher-vector products.
        if env_summary.action_kind == "discrete":
            self.output = Categorical()
        else:
            self.output = DiagonalGaussian(log_std=actor.head.log_std)
        self.value_optimizer = torch.optim.Adam(self.model.critic.parameters(), lr=self.config.lr)

    def update(self, rollout: Rollout) -> dict[str, float]:
        c, start = self.config, self.clock()
        batch = self.batch(rollout)
        actor = self.model.actor
        params = list(actor.parameters())  # the order of rlkit.fisher's parameter vector
        theta_old = flatten(p.detach() for p in params).clone()

        # 1. The surrogate L(θ) and its gradient g at θ_old.
        pd_old = actor(batch.obs)
        pi_old = self.model.distribution(pd_old, detach=True)
        log_probs_old = pi_old.log_prob(batch.actions)

        def surrogate(pd_params: torch.Tensor) -> torch.Tensor:
            pi = self.model.distribution(pd_params)
            ratio = torch.exp(pi.log_prob(batch.actions) - log_probs_old)
            return (ratio * batch.advantages).mean() + c.entropy_coef * pi.entropy().mean()

        surrogate_old = surrogate(pd_old)
        g = flatten(torch.autograd.grad(surrogate_old, params))

        # 2. Natural-gradient direction s ≈ (F + λI)⁻¹ g by conjugate gradient.
        def fvp(v: torch.Tensor) -> torch.Tensor:
            return fisher_vector_product(actor, batch.obs, self.output, v, damping=c.damping)

        s, cg = conjugate_gradient(fvp, g, max_iters=c.cg_iters, return_info=True)

        # 3. The largest step in the KL ball of the quadratic model: ½η²q = δ.
        q = float(s @ fvp(s))
        eta = math.sqrt(2 * c.delta / q) if q > 0 else 0.0
        expected = float(g @ s) * eta  # first-order improvement of the surrogate for the full step

        # 4. Backtracking line search on the surrogate and the measured KL.
        accepted, backtracks, kl, improvement, fraction = False, 0, 0.0, 0.0, 0.0
        if eta > 0:
            for backtracks in range(c.max_backtracks):
                fraction = c.backtrack_coef**backtracks
                self._set_parameters(params, theta_old + fraction * eta * s)
                with torch.no_grad():
                    pd_new = actor(batch.obs)
                    kl = measured_kl(pi_old, self.model.distribution(pd_new))
                    improvement = float(surrogate(pd_new) - surrogate_old)
                if kl <= c.kl_tolerance * c.delta and improvement > 0:
                    accepted = True
                    break
            else:
                backtracks = c.max_backtracks
        if not accepted:  # no acceptable step: stay at θ_old
            self._set_parameters(params, theta_old)
            kl, improvement, fraction = 0.0, 0.0, 0.0

        # 5. The value function: a few epochs of Adam on mean (V − R)².
        value_loss = float((batch.values - batch.returns).pow(2).mean())
        for _ in range(c.value_epochs):
            order = torch.randperm(batch.size, generator=self.generator, device=self.device)
            for idx in order.split(c.value_minibatch_size):
                loss = (self.model.critic(batch.obs[idx]) - batch.returns[idx]).pow(2).mean()
                self.value_optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.value_optimizer.step()
        self.updates += 1

        return {
            "step_size": fraction * eta,
            "quadratic": q,
            "predicted_kl": predicted_kl(q, fraction * eta),
            "measured_kl": kl,
            "cg_iterations": float(cg["iterations"]),
            "cg_residual": cg["residual_norm"],
            "line_search_steps": float(backtracks),
            "line_search_accepted": float(accepted),
            "expected_improvement": fraction * expected,
            "surrogate_improvement": improvement,
            "damping": c.damping,
            "entropy": float(pi_old.entropy().mean()),
            "value_loss": value_loss,
            "explained_variance": explained_variance(batch.values, batch.returns),
            "time_update": self.clock() - start,
        }

    @staticmethod
    def _set_parameters(params: list[torch.Tensor], vector: torch.Tensor) -> None:
        """Copy a flat vector (rlkit.fisher's layout) into the parameters, in place."""
        with torch.no_grad():
            offset = 0
            for p in params:
                p.copy_(vector[offset:offset + p.numel()].view_as(p))
                offset += p.numel()

    def extra_state(self) -> dict:
        return {"value_optimizer": self.value_optimizer.state_dict()}

    def load_extra_state(self, state: dict) -> None:
        self.value_optimizer.load_state_dict(state["value_optimizer"])
