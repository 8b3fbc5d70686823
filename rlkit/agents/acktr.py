r"""ACKTR: Actor-Critic using Kronecker-factored Trust Region (Wu et al., NeurIPS 2017).

One update, on a batch of T steps × N envs::

    A_t, R_t ← GAE(λ) advantages and value targets (λ = 1: the paper's k-step returns)
    Fisher pass: K-FAC statistics of −log π(â|s) and −log N(v̂; V, σ²), with â ~ π(·|s) and
                 v̂ ~ N(V(s), σ²) SAMPLED from the model (a shared trunk: their joint Fisher)
    g ← ∇ [ −mean(A log π(a|s)) − c_H·mean H[π] + c_V·mean (V − R)² ]
    Δ ← F̂⁻¹ g (K-FAC);  q ← Δᵀ F̂ Δ;  step_size η ← min(η_max, sqrt(2δ / q));  θ ← θ − η Δ
        (separate networks: actor and critic each with their own K-FAC, q, δ and η_max)

Options: ``trust_region_convention="baselines"`` (η = min(η_max, sqrt(δ/q)): openai/baselines'
``kl_clip`` is twice the KL reached); ``target_kl`` > 0 adapts η_max toward a measured KL
(baselines' ``acktr_cont``); ``kl_tolerance`` > 0 checks each step: η is halved until the KL the
step reached on the batch is within kl_tolerance·δ (TRPO's line search on the KL alone), so that δ
bounds the true KL, not only the quadratic model's; ``critic_iterations`` > 1 takes more critic
steps per batch; ``critic_optimizer="adam"`` is the first-order critic of the paper's Figure 5a/b.

Presets (paper convention; baselines' numbers converted): ``atari`` is baselines' ``acktr.py``;
``mujoco`` is baselines' ``acktr_cont.py`` but for a smaller initial σ, a fixed η_max and several
Gauss-Newton critic steps per batch; ``classic`` is tuned on CartPole-v1. Without the check, δ
bounds the KL of the K-FAC quadratic model, not the true KL, which is larger
(``data/benchmarks/kl_overshoot.txt``, ``acktr_checked.txt``); sample efficiency:
``data/benchmarks/sample_efficiency.txt``. The reasons in full: docs/agents.md, *ACKTR*.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from rlkit.agents.base import Agent, OnPolicyConfig, check, explained_variance
from rlkit.critic import (
    GAUSSIAN_LOG_STD_FISHER,
    GaussNewtonCritic,
    categorical_fisher_loss,
    gaussian_fisher_loss,
    joint_fisher_loss,
)
from rlkit.kfac import DAMPING_MODES, KFAC
from rlkit.rollout import Rollout
from rlkit.trust_region import CONVENTIONS, effective_step_size, measured_kl, predicted_kl

__all__ = ["ACKTR", "ACKTRConfig"]

CRITIC_OPTIMIZERS = ("gauss_newton", "adam")  # the critic's norm: Gauss-Newton (ACKTR) or Euclidean (first order)
ETA_MAX_RANGE = (1e-8, 1.0)  # bounds of the adapted η_max (baselines acktr_cont's min/max step size)


@dataclass
class ACKTRConfig(OnPolicyConfig):
    """ACKTR's hyperparameters (defaults: the ``classic`` preset); the shared ones: :class:`OnPolicyConfig`."""

    normalize_advantages: bool = True
    value_coef: float = 0.5  # c_V: c_V·mean (V − R)², 0.5 = the paper's ½|R − V|²
    # trust region of the actor (of the whole model with a shared trunk)
    delta: float = 0.002  # δ: the predicted KL of a step (paper convention)
    eta_max: float = 0.25  # η_max: the largest step size
    trust_region_convention: str = "paper"  # "paper": sqrt(2δ/q); "baselines": sqrt(δ/q)
    target_kl: float = 0.0  # > 0: adapt η_max (×1.5 or ÷1.5 per update) toward this measured KL; 0: fixed
    # 0: the paper's step, whose KL only the quadratic model bounds. > 0 ("checked"): measure the KL
    # the step reached on the batch and shrink η by backtrack_coef until it is <= kl_tolerance·δ (as
    # TRPO's line search does), at most max_backtracks tries (the first the full step), else no step
    kl_tolerance: float = 0.0
    max_backtracks: int = 10
    backtrack_coef: float = 0.5
    # K-FAC (damping/stats_decay: actor, or the whole model with a shared trunk)
    damping: float = 0.01  # λ
    damping_mode: str = "eigen"  # "eigen" (baselines) or "factored" (π-corrected Tikhonov)
    stats_decay: float = 0.5  # β of the running factor averages
    inverse_every: int = 1  # recompute inverses every this many updates
    stats_subsample: int = 1  # K-FAC statistics from every k-th sample of the batch (1: all; actor and critic)
    # the critic: Gaussian output N(v; V, σ²); its own trust region with separate networks
    critic_sigma: float = 1.0  # σ (1: Gauss-Newton; baselines' loss is σ = 0.5)
    critic_delta: float = 0.5  # separate networks only
    critic_eta_max: float = 1.0  # separate networks only (1: a full Gauss-Newton step)
    critic_damping: float = 0.01  # separate networks only
    critic_stats_decay: float = 0.99  # separate networks only
    # "gauss_newton": K-FAC Gauss-Newton step in the critic's trust region (ACKTR); "adam": a first-order
    # critic, Adam with lr critic_lr on the same loss (the paper's Figure 5a/b ablation; separate networks only)
    critic_optimizer: str = "gauss_newton"
    critic_lr: float = 1e-3  # critic_optimizer="adam" only
    # separate networks only: critic steps per batch (baselines' acktr_cont fits its value network with 25
    # K-FAC iterations per batch; 1 = the step of the combined update only)
    critic_iterations: int = 1
    # diagnostics
    measure_kl: bool = True  # one extra forward pass per update for the measured KL

    def validate(self) -> "ACKTRConfig":
        super().validate()
        for name in ("delta", "eta_max", "critic_delta", "critic_eta_max", "critic_sigma", "critic_lr"):
            check(getattr(self, name) > 0, name, getattr(self, name), "> 0 (valid range (0, inf))")
        for name in ("damping", "critic_damping", "value_coef"):
            check(getattr(self, name) >= 0, name, getattr(self, name), ">= 0 (valid range [0, inf))")
        for name in ("stats_decay", "critic_stats_decay"):
            check(0 <= getattr(self, name) < 1, name, getattr(self, name), "in [0, 1)")
        check(self.target_kl >= 0, "target_kl", self.target_kl, ">= 0 (0: a fixed eta_max)")
        check(self.kl_tolerance == 0 or self.kl_tolerance >= 1, "kl_tolerance", self.kl_tolerance,
              "0 (the paper's unchecked step) or >= 1 (valid range {0} ∪ [1, inf))")
        check(0 < self.backtrack_coef < 1, "backtrack_coef", self.backtrack_coef, "in (0, 1)")
        check(isinstance(self.max_backtracks, int) and self.max_backtracks >= 1, "max_backtracks",
              self.max_backtracks, "an integer >= 1 (valid range [1, inf))")
        check(self.target_kl == 0 or self.measure_kl, "measure_kl", self.measure_kl,
              "True when target_kl > 0 (the adaptation reads the measured KL)")
        check(self.critic_optimizer in CRITIC_OPTIMIZERS, "critic_optimizer", self.critic_optimizer,
              f"one of {list(CRITIC_OPTIMIZERS)}")
        check(self.critic_optimizer == "gauss_newton" or not self.shared_trunk, "critic_optimizer",
              self.critic_optimizer, "'gauss_newton' with shared_trunk=True (one K-FAC steps the whole model)")
        for name in ("inverse_every", "stats_subsample"):
            value = getattr(self, name)
            check(isinstance(value, int) and value >= 1, name, value, "an integer >= 1 (valid range [1, inf))")
        check(isinstance(self.critic_iterations, int) and self.critic_iterations >= 1, "critic_iterations",
              self.critic_iterations, "an integer >= 1 (valid range [1, inf))")
        check(self.critic_iterations == 1 or not self.shared_trunk, "critic_iterations", self.critic_iterations,
              "1 with shared_trunk=True (the critic has no parameters of its own)")
        check(self.damping_mode in DAMPING_MODES, "damping_mode", self.damping_mode, f"one of {list(DAMPING_MODES)}")
        check(self.trust_region_convention in CONVENTIONS, "trust_region_convention", self.trust_region_convention,
              f"one of {list(CONVENTIONS)}")
        return self


class ACKTR(Agent):
    """ACKTR with separate actor and critic (two K-FACs, two trust regions) or a shared trunk (one, joint Fisher)."""

    name = "acktr"
    Config = ACKTRConfig
    supported_action_kinds = ("discrete", "continuous")
    presets = {
        "classic": {},
        "atari": dict(
            num_envs=32, num_steps=20, gamma=0.99, gae_lambda=1.0, normalize_advantages=False, shared_trunk=True,
            value_coef=0.5, entropy_coef=0.01, delta=0.0005, eta_max=0.25, trust_region_convention="paper",
            damping=0.01, damping_mode="eigen", stats_decay=0.99, inverse_every=10, critic_sigma=1.0,
        ),
        "mujoco": dict(
            num_envs=1, num_steps=2500, gamma=0.99, gae_lambda=0.97, normalize_advantages=True, shared_trunk=False,
            hidden_sizes=[64, 64], activation="tanh", log_std_init=-1.5, value_coef=0.5, entropy_coef=0.0,
            delta=0.005, eta_max=1.0, target_kl=0.0, damping=0.01, damping_mode="eigen", stats_decay=0.99,
            inverse_every=1,
            critic_sigma=1.0, critic_delta=0.02, critic_eta_max=1.0, critic_damping=0.1, critic_stats_decay=0.95,
            critic_iterations=5,
        ),
    }
    # The checked trust region on MuJoCo: the measured KL held within 1.5·δ, with δ raised to the KL the
    # paper's step really takes there (benchmarks/acktr_variant.py compared δ = 0.005, 0.05 and 0.1:
    # data/benchmarks/acktr_checked.txt). Not the default: the notebooks teach the paper's step.
    presets["mujoco-checked"] = dict(presets["mujoco"], delta=0.1, kl_tolerance=1.5)
    # The checked step at its own best batch: the cell benchmarks/preset_search.py chose on InvertedPendulum
    # (data/benchmarks/preset_search/acktr-InvertedPendulum-v5-small-batch.txt), 1 x 250 steps per update
    presets["mujoco-tuned"] = dict(presets["mujoco-checked"], num_steps=250)
    # The checked step on CartPole: a search over batch, δ and η_max with the check on
    # (data/benchmarks/preset_search/acktr-CartPole-v1.txt) kept the classic preset's values
    presets["classic-checked"] = dict(presets["classic"], kl_tolerance=1.5)

    def __init__(self, env_summary, config: ACKTRConfig, *, seed: int, device="cpu"):
        super().__init__(env_summary, config, seed=seed, device=device)
        c = self.config
        self.eta_max = c.eta_max  # the actor's cap; adapted after each update when target_kl > 0
        # The critic's output model N(v; V(s), σ²): its Fisher-pass loss samples v̂ = V + σε.
        self.value_output = GaussNewtonCritic(sigma=c.critic_sigma)
        # The state-independent log-std is owned by no layer: K-FAC gets its exact Fisher block (2).
        log_std = {}
        if env_summary.action_kind == "continuous":
            log_std = {self.model.policy_head.log_std: GAUSSIAN_LOG_STD_FISHER}
        schedule = dict(damping_mode=c.damping_mode, inverse_every=c.inverse_every, stats_subsample=c.stats_subsample)
        if c.shared_trunk:  # one K-FAC on the whole model, joint Fisher of p(a, v|s)
            self.kfac = KFAC(self.model, damping=c.damping, stats_decay=c.stats_decay,
                             exact_diagonal_blocks=log_std, **schedule)
            self.kfacs = {"model": self.kfac}
        else:  # two K-FACs: the actor's policy Fisher, the critic's Gauss-Newton matrix
            self.actor_kfac = KFAC(self.model.actor, damping=c.damping, stats_decay=c.stats_decay,
                                   exact_diagonal_blocks=log_std, **schedule)
            self.kfacs = {"actor": self.actor_kfac}
            if c.critic_optimizer == "adam":  # the first-order critic of the paper's Figure 5a/b
                self.critic_adam = torch.optim.Adam(self.model.critic.parameters(), lr=c.critic_lr)
            else:
                self.critic_kfac = KFAC(self.model.critic, damping=c.critic_damping,
                                        stats_decay=c.critic_stats_decay, **schedule)
                self.kfacs["critic"] = self.critic_kfac

    # ---- the update -------------------------------------------------------------------------

    def acting(self) -> contextlib.AbstractContextManager[None]:
        """Collect without the K-FAC forward hooks (:meth:`rlkit.kfac.KFAC.paused`): the rollout's
        forwards are never captured, and acting skips PyTorch's slower hooked-module call path."""
        stack = contextlib.ExitStack()
        for kfac in self.kfacs.values():
            stack.enter_context(kfac.paused())
        return stack

    def update(self, rollout: Rollout) -> dict[str, float]:
        c, start = self.config, self.clock()
        kfac_time = self._kfac_timings()
        batch = self.batch(rollout)

        # 1. One forward pass, shared by the Fisher pass and the losses (with stats_subsample k > 1 the
        #    Fisher passes forward their own k-th of the batch first, alone in the graph).
        if c.stats_subsample > 1:
            self._subset_fisher_passes(batch.obs)
        pd_params, values = self.model(batch.obs)
        pi = self.model.distribution(pd_params)
        pi_old = self.model.distribution(pd_params, detach=True)  # frozen, for the measured KL
        values_old = values.detach()

        # 2. Fisher pass: the negative log-likelihood of outputs sampled from the model.
        if c.stats_subsample == 1:
            policy_nll = self._sampled_policy_nll(pd_params)
            value_nll = self.value_output.fisher_loss(values, generator=self.generator)
            if c.shared_trunk:
                self.kfac.update_stats(joint_fisher_loss(policy_nll, value_nll))  # p(a, v|s) = π(a|s) p(v|s)
            else:
                self.actor_kfac.update_stats(policy_nll)
                if c.critic_optimizer == "gauss_newton":
                    self.critic_kfac.update_stats(value_nll)

        # 3. The actor-critic loss and its gradient g.
        entropy = pi.entropy().mean()
        policy_loss = -(batch.advantages * pi.log_prob(batch.actions)).mean() - c.entropy_coef * entropy
        value_loss = (values - batch.returns).pow(2).mean()
        self.model.zero_grad(set_to_none=True)
        (policy_loss + c.value_coef * value_loss).backward()

        # 4. Natural gradient Δ = F̂⁻¹g (in .grad), step size from the trust region, θ ← θ − ηΔ;
        #    checked: η shrunk until the KL the step reached is within kl_tolerance·δ.
        actor = self.model if c.shared_trunk else self.model.actor
        kfac = self.kfac if c.shared_trunk else self.actor_kfac
        theta_old = [p.detach().clone() for p in actor.parameters()] if c.kl_tolerance > 0 else None
        q, eta = self._trust_region_step(kfac, actor.parameters(), c.delta, self.eta_max)
        capped = eta == self.eta_max
        if c.kl_tolerance > 0:
            eta, backtracks, accepted = self._line_search(actor, theta_old, eta, pi_old, values_old, batch.obs)
        if not c.shared_trunk:
            if c.critic_optimizer == "adam":  # Euclidean norm: one Adam step on the same gradient
                self.critic_adam.step()
                q_critic, eta_critic = float("nan"), c.critic_lr
            else:
                q_critic, eta_critic = self._trust_region_step(
                    self.critic_kfac, self.model.critic.parameters(), c.critic_delta, c.critic_eta_max)
            for _ in range(c.critic_iterations - 1):  # more critic steps on the same batch (the actor is done)
                q_critic, eta_critic = self._critic_step(batch)
        self.updates += 1

        # 5. Diagnostics: what the quadratic model predicted, and what the step did.
        kl, value_kl = float("nan"), float("nan")
        if c.measure_kl:
            with torch.no_grad():
                new_params, new_values = self.model(batch.obs)
            kl = measured_kl(pi_old, self.model.distribution(new_params))
            value_kl = float(((new_values - values_old) ** 2).mean()) / (2 * self.value_output.effective_sigma**2)
        kfac_time = {k: v - kfac_time[k] for k, v in self._kfac_timings().items()}
        diagnostics = {
            "step_size": eta,
            "eta_max": self.eta_max,
            "step_size_capped": float(capped),
            "quadratic": q,
            "predicted_kl": predicted_kl(q, eta),  # ½η²q: the joint KL of π and N(V, σ²) with a shared trunk
            "measured_kl": kl,  # KL(π_old ‖ π_new), mean over the batch
            "measured_value_kl": value_kl,  # mean (V_new − V_old)² / 2σ²
        }
        if c.kl_tolerance > 0:
            diagnostics.update(line_search_steps=float(backtracks), line_search_accepted=float(accepted))
        if not c.shared_trunk:
            critic_kl = predicted_kl(q_critic, eta_critic) if c.critic_optimizer == "gauss_newton" else float("nan")
            diagnostics.update(critic_step_size=eta_critic, critic_quadratic=q_critic,  # adam: critic_lr, q = NaN
                               critic_predicted_kl=critic_kl)
        diagnostics.update(
            damping=c.damping,
            entropy=float(entropy.detach()),
            policy_loss=float(policy_loss.detach()),
            value_loss=float(value_loss.detach()),
            explained_variance=explained_variance(batch.values, batch.returns),
            time_stats=kfac_time["stats"],
            time_inverse=kfac_time["inverse"],
            time_precondition=kfac_time["precondition"],
            time_update=self.clock() - start,
        )

        # 6. Optional (baselines acktr_cont): move η_max toward the measured KL target.
        if c.target_kl > 0:
            if kl > 2 * c.target_kl:
                self.eta_max = max(ETA_MAX_RANGE[0], self.eta_max / 1.5)
            elif kl < c.target_kl / 2:
                self.eta_max = min(ETA_MAX_RANGE[1], self.eta_max * 1.5)
        return diagnostics

    def _subset_fisher_passes(self, obs: torch.Tensor) -> None:
        """The Fisher passes with ``stats_subsample`` = k > 1: each K-FAC forwards only the samples its
        statistics come from (``KFAC.stats_rows``: every k-th, the offset cycling), so a pass costs 1/k
        of one on the whole batch's graph. The same statistics as a pass that shares the loss's forward
        and selects the rows itself; the sampled outputs are drawn for those rows only."""
        c = self.config
        if c.shared_trunk:
            if self.kfac.stats_due:
                pd_params, values = self.model(obs[self.kfac.stats_rows(len(obs))])
                self.kfac.update_stats(joint_fisher_loss(
                    self._sampled_policy_nll(pd_params), self.value_output.fisher_loss(values, generator=self.generator)),
                    retain_graph=False, presampled=True)
            return
        if self.actor_kfac.stats_due:
            pd_params = self.model.actor(obs[self.actor_kfac.stats_rows(len(obs))])
            self.actor_kfac.update_stats(self._sampled_policy_nll(pd_params), retain_graph=False, presampled=True)
        if c.critic_optimizer == "gauss_newton":
            self._critic_fisher_pass(obs)

    def _critic_fisher_pass(self, obs: torch.Tensor) -> None:
        """The critic K-FAC's Fisher pass on its own forward of ``KFAC.stats_rows`` (stats_subsample > 1),
        if statistics are due."""
        if not self.critic_kfac.stats_due:
            return
        values = self.model.critic(obs[self.critic_kfac.stats_rows(len(obs))])
        self.critic_kfac.update_stats(self.value_output.fisher_loss(values, generator=self.generator),
                                      retain_graph=False, presampled=True)

    def _critic_step(self, batch) -> tuple[float, float]:
        """One more critic step on ``batch``: a fresh forward of the critic, its Fisher pass (Gauss-Newton),
        the gradient of c_V·mean (V − R)², and the step (its trust region, or Adam); returns (q, η)."""
        c = self.config
        if c.critic_optimizer == "gauss_newton" and c.stats_subsample > 1:
            self._critic_fisher_pass(batch.obs)
        values = self.model.critic(batch.obs)
        if c.critic_optimizer == "gauss_newton" and c.stats_subsample == 1:
            self.critic_kfac.update_stats(self.value_output.fisher_loss(values, generator=self.generator))
        self.model.critic.zero_grad(set_to_none=True)
        (c.value_coef * (values - batch.returns).pow(2).mean()).backward()
        if c.critic_optimizer == "adam":
            self.critic_adam.step()
            return float("nan"), c.critic_lr
        return self._trust_region_step(self.critic_kfac, self.model.critic.parameters(), c.critic_delta,
                                       c.critic_eta_max)

    def _sampled_policy_nll(self, pd_params: torch.Tensor) -> torch.Tensor:
        """−Σ log π(â|s) with â ~ π(·|s) drawn from the agent's generator (detached)."""
        if self.env_summary.action_kind == "discrete":
            return categorical_fisher_loss(pd_params, generator=self.generator)
        return gaussian_fisher_loss(pd_params, self.model.policy_head.log_std, generator=self.generator)

    def _trust_region_step(self, kfac: KFAC, parameters, delta: float, eta_max: float) -> tuple[float, float]:
        """Precondition .grad in place (Δ = F̂⁻¹g), choose η, apply θ ← θ − ηΔ; return (q, η)."""
        q = kfac.precondition()
        eta = effective_step_size(q, delta, eta_max, self.config.trust_region_convention)
        with torch.no_grad():
            for p in parameters:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-eta)
        return q, eta

    def _line_search(self, actor, theta_old, eta, pi_old, values_old, obs) -> tuple[float, int, bool]:
        """Shrink the step θ_old − ηΔ (Δ in .grad) until its measured KL is <= kl_tolerance·δ: the policy's
        KL, plus the value output's with a shared trunk (the joint KL that δ bounds there). Returns
        (η taken, backtracks, accepted); not accepted: back at θ_old, η = 0."""
        c = self.config
        limit = c.kl_tolerance * c.delta
        for backtracks in range(c.max_backtracks):  # as TRPO: max_backtracks tries, the full step first
            step = eta * c.backtrack_coef**backtracks
            with torch.no_grad():
                if backtracks:
                    for p, p_old in zip(actor.parameters(), theta_old):
                        if p.grad is not None:
                            p.copy_(p_old - step * p.grad)
                if c.shared_trunk:
                    params, values = self.model(obs)
                    value_kl = float(((values - values_old) ** 2).mean()) / (2 * self.value_output.effective_sigma**2)
                else:
                    params, value_kl = actor(obs), 0.0
            kl = measured_kl(pi_old, self.model.distribution(params)) + value_kl
            if kl <= limit:
                return step, backtracks, True
        with torch.no_grad():
            for p, p_old in zip(actor.parameters(), theta_old):
                p.copy_(p_old)
        return 0.0, c.max_backtracks, False

    def _kfac_timings(self) -> dict[str, float]:
        return {key: sum(k.timings[key] for k in self.kfacs.values()) for key in ("stats", "inverse", "precondition")}

    # ---- checkpoints ------------------------------------------------------------------------

    def extra_state(self) -> dict:
        state = {"kfac": {name: k.state_dict() for name, k in self.kfacs.items()}, "eta_max": self.eta_max}
        if self.config.critic_optimizer == "adam":
            state["critic_adam"] = self.critic_adam.state_dict()
        return state

    def load_extra_state(self, state: dict) -> None:
        saved = state["kfac"]
        if set(saved) != set(self.kfacs):
            raise ValueError(f"K-FAC objects {sorted(saved)} in the state, this agent has {sorted(self.kfacs)}")
        for name, k in self.kfacs.items():
            k.load_state_dict(saved[name])
        self.eta_max = float(state["eta_max"])
        if self.config.critic_optimizer == "adam":
            self.critic_adam.load_state_dict(state["critic_adam"])
