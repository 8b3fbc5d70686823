r"""ACKTR: Actor-Critic using Kronecker-factored Trust Region (Wu et al., NeurIPS 2017).

One update, on a batch of T steps × N envs (the paper's Algorithm, as this file runs it)::

    A_t, R_t  ← GAE(λ) advantages and value targets (λ = 1: the paper's k-step returns)
    π, V      ← one forward pass of the batch
    Fisher pass (statistics of K-FAC), with outputs SAMPLED from the model:
        â ~ π(·|s),  v̂ ~ N(V(s), σ²)          (σ = critic_sigma, 1: plain Gauss-Newton)
        separate networks: actor K-FAC ← −Σ log π(â|s);   critic K-FAC ← −Σ log N(v̂; V, σ²)
        shared trunk:      one K-FAC   ← −Σ [log π(â|s) + log N(v̂; V, σ²)]   (joint Fisher)
    g  ← ∇ [ −mean(A log π(a|s)) − c_H·mean H[π] + c_V·mean (V − R)² ]
    Δ  ← F̂⁻¹ g                               (K-FAC: S⁻¹ ∇W A⁻¹ per layer; log-std: g / (2 + λ))
    q  ← gᵀ F̂⁻¹ g = Δᵀ F̂ Δ
    η  ← min(η_max, sqrt(2δ / q))            (trust_region_convention="paper": predicted KL = δ)
    θ  ← θ − η Δ                               (separate networks: actor and critic each with
                                                their own K-FAC, q, δ and η_max)
    optional (target_kl > 0, baselines' acktr_cont): η_max ← η_max·1.5 if the measured KL was
        below target_kl/2, η_max/1.5 if above 2·target_kl

``critic_iterations`` = k > 1 (separate networks only) takes k − 1 more critic steps on the same batch
after the update (a fresh critic forward, Fisher pass and step each time; the actor is not touched),
as baselines' acktr_cont fits its value network with 25 K-FAC iterations per batch. Repeated
Gauss-Newton steps want a smaller ``critic_delta`` than one step does: K-FAC underestimates the
critic's curvature along the step, and full steps overshoot and oscillate.

``critic_optimizer="adam"`` (separate networks only) replaces the critic's Gauss-Newton step by one Adam
step (lr ``critic_lr``) on the same gradient: the first-order critic of the paper's Figure 5a/b, where
the actor is ACKTR in both arms. The value Fisher pass still draws its noise, so the actor's random
stream is the same in both arms (with ``stats_subsample`` = 1, the default: with k > 1 each K-FAC's
pass forwards and samples only its own rows, and the Adam arm has no critic pass).

The critic's loss c_V·mean (V − R)² with c_V = ``value_coef`` = 0.5 is the paper's ½|R − V|²;
with σ = 1 its natural gradient is a Gauss-Newton step (F = E[JᵀJ]/σ²), and η = 1 would be a
full one. The value's "KL" is that of N(V, σ²): KL = (ΔV)² / (2σ²), so ``critic_delta`` bounds
the mean squared change of the value: RMS ΔV ≈ σ·sqrt(2·critic_delta).

Trust-region convention: ``"paper"`` is η = min(η_max, sqrt(2δ/q)) (predicted KL ½η²q = δ);
``"baselines"`` is openai/baselines' η = min(η_max, sqrt(δ/q)) (their ``kl_clip`` is twice the
KL reached). The presets are written in the paper convention: baselines' Atari ``kfac_clip``
0.001 is δ = 0.0005 here — the same step.

Where the presets come from (the seed notes state the method, not the numbers; the numbers are
those of the paper's code, openai/baselines, converted where conventions differ):

* ``atari``: ``baselines/acktr/acktr.py`` defaults: 32 envs × 20 steps (batch 640, the largest
  Atari batch of the paper's Table 3), γ = 0.99, k-step returns (λ = 1), ``lr`` 0.25 → η_max,
  ``kfac_clip`` 0.001 → δ = 0.0005 (paper convention), ``epsilon`` 0.01 → damping (added to the
  Kronecker eigenvalue products: ``damping_mode="eigen"``), ``stats_decay`` 0.99,
  ``ent_coef`` 0.01, ``vf_coef`` 0.5, shared Nature-CNN trunk (joint Fisher). σ = 1 as the paper
  says; baselines' critic Fisher loss −(V − sg(V + ε))² is σ = 0.5. Not reproduced: baselines'
  linear decay of lr to 0, its momentum 0.9 on the preconditioned step, the 10 "cold" SGD
  iterations, and asynchronous inverses (here ``inverse_every`` = 10 synchronous updates).
* ``mujoco``: ``baselines/acktr/acktr_cont.py`` + ``run_mujoco.py`` (the 2017 code of the
  paper's MuJoCo runs) where it worked here, ours where it did not. From baselines: one env × 2500
  steps per batch, γ = 0.99, λ = 0.97, standardized advantages, separate 64-64 networks, damping
  0.01, ``stats_decay`` 0.99, no entropy bonus; ``clip_kl`` 0.01 (KfacOptimizer's default there) →
  δ = 0.005 in the paper convention; the critic's damping 0.1 and ``stats_decay`` 0.95. Ours, each
  measured on Reacher-v5 (seed 0, mean return of the last 10 episodes; threshold −7, the paper's
  Table 2: 3,325 episodes):

  - ``log_std_init`` = −1.5 (σ = 0.22; baselines: 0, σ = 1). Reacher charges Σa² per step on the
    clipped action, so exploration noise of σ = 1 alone costs about −60 per 50-step episode, far
    below −7; the trust region then spends most of its budget shrinking σ. Initial σ and episodes
    to −7 (with δ = 0.005, η_max = 1 and 25 critic steps of 0.01 per batch): σ = 1: not reached in
    200k steps (−21 at 200k); σ = 0.61: not reached (−12 at 200k, seeds 0 and 1); σ = 0.37: 3,736
    episodes (δ = 0.01: 2,975, 3,212, 3,317 on seeds 0–2); σ = 0.22: 2,227. This preset (σ = 0.22,
    5 critic steps of 0.02): 1,900 (δ = 0.01: 1,732).
  - a fixed η_max = 1 (``target_kl`` 0) instead of baselines' step size 0.03 adapted toward a
    measured KL of 0.002 per update (×1.5 / ÷1.5): that adaptation kept the actor's steps so small
    that Reacher went from −61 to −60 in 100k steps. Here δ limits the step; the measured KL per
    update is then 15–40 times δ (median 16× over a 25k-step InvertedPendulum run, ≈ 37× over
    100k steps, 20–30× late in InvertedDoublePendulum runs): K-FAC underestimates the curvature along
    the step, see below.
  - the critic fitted with ``critic_iterations`` = 5 Gauss-Newton steps per batch (each with its
    own Fisher pass) with critic_delta = 0.02 (RMS ΔV ≈ 0.2 per step): baselines fits its value
    network with 25 small K-FAC iterations per batch. With one step of 0.15 the critic's explained
    variance on Reacher stayed near 0 for 100k steps; 25 steps of 0.01 took 7× the update time of
    5 steps of 0.02 for the same result (2,968 vs 2,975 episodes at σ = 0.37).

  Its critic used ELU and time features; ours is the tanh MLP of the actor. Not reproduced:
  momentum 0.9. Measured with this preset: ``data/benchmarks/sample_efficiency.txt``.
  (Baselines' values, for comparison runs: ``--log-std-init 0 --eta-max 0.03 --target-kl 0.002
  --critic-delta 0.15 --critic-iterations 1``.)
* ``classic``: ours, tuned so that CartPole-v1 reaches a mean return of 475 well within 200k
  steps on a CPU (the defaults of :class:`ACKTRConfig` are this preset): 16 envs × 16 steps,
  separate 64-64 tanh networks, δ = 0.002, η_max = 0.25, damping 0.01, ``stats_decay`` 0.5.

How far the K-FAC trust region is from the true KL (measured, CartPole-v1, classic preset)
-------------------------------------------------------------------------------------------
δ bounds the KL *of the K-FAC quadratic model*, ½η²ΔᵀF̂Δ; ``measured_kl`` is the real
KL(π_old ‖ π_new) on the batch. On the first update, where the policy is near uniform and
K-FAC nearly exact, measured/δ ≈ 0.9. Later the measured KL is larger than δ, because F̂
underestimates the curvature along Δ: the block-diagonal approximation ignores that every layer's
step moves the same outputs (with L layers up to L times the block-diagonal model's KL, by
Cauchy–Schwarz), the Kronecker factorization
assumes activations and output gradients independent, and the running averages lag behind a policy
that sharpens (the trunk's S grows with the policy head's weights, which start at 0.01 scale). Median
measured/δ over training: ≈ 3 with ``stats_decay`` 0 (the current batch only), ≈ 4 with 0.5 (the
classic preset), ≈ 28 with 0.99 (the paper's value). Watch ``measured_kl`` beside ``predicted_kl``.

On MuJoCo (``mujoco`` preset) ``benchmarks/kl_overshoot.py`` measures each approximation's share
against the exact Fisher, on the step ACKTR took (medians over updates 1–39 of one seed, Reacher /
InvertedPendulum; ``data/benchmarks/kl_overshoot.txt``): measured/δ is 21 / 41 with
``stats_decay`` 0.99, of which the running average alone is ×7.2 / ×16 (it spans ≈ 100 batches of
2500 steps, more than a whole run to the threshold), the Kronecker factorization ×2.0 / ×1.7, the
dropped cross-layer blocks ×2.6 / ×2.4 (three layers: at most ×3), the damping ×0.64 / ×0.59 and
the terms beyond second order ×0.92 / ×0.90. With ``stats_decay`` 0 measured/δ is 6.1 / 5.0:
Kronecker ×3.9 / ×4.1, cross-layer ×2.3 / ×2.4, damping ×0.67 / ×0.64, higher order ×1.0 / ×0.92.
The preset keeps 0.99: with 0 (``benchmarks/acktr_variant.py``, ``data/benchmarks/stats_decay.txt``)
InvertedPendulum and Reacher reach their thresholds in 0.57 and 0.95 of the env steps, but
InvertedDoublePendulum reaches 9100 within 1M steps on 1 seed of 3 (the preset: 3 of 3).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch

from rlkit.agents.base import Agent, Config, check, check_common, explained_variance
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
class ACKTRConfig(Config):
    """ACKTR's hyperparameters (defaults: the ``classic`` preset). One name per concept, as in the kit."""

    # rollout: a batch is num_envs × num_steps transitions
    num_envs: int = 16
    num_steps: int = 16
    gamma: float = 0.99
    lam: float = 1.0  # GAE λ; 1 = the paper's k-step returns
    normalize_advantages: bool = True
    # networks (rlkit.nets.ActorCritic)
    shared_trunk: bool = False
    hidden_sizes: list[int] = field(default_factory=lambda: [64, 64])
    activation: str = "tanh"
    log_std_init: float = 0.0
    # losses
    value_coef: float = 0.5  # c_V: c_V·mean (V − R)², 0.5 = the paper's ½|R − V|²
    entropy_coef: float = 0.0  # c_H
    # trust region of the actor (of the whole model with a shared trunk)
    delta: float = 0.002  # δ: the predicted KL of a step (paper convention)
    eta_max: float = 0.25  # η_max: the largest step size
    trust_region_convention: str = "paper"  # "paper": sqrt(2δ/q); "baselines": sqrt(δ/q)
    target_kl: float = 0.0  # > 0: adapt η_max (×1.5 or ÷1.5 per update) toward this measured KL; 0: fixed
    # K-FAC (damping/stats_decay: actor, or the whole model with a shared trunk)
    damping: float = 0.01  # λ
    damping_mode: str = "eigen"  # "eigen" (baselines) or "factored" (π-corrected Tikhonov)
    stats_decay: float = 0.5  # β of the running factor averages (see the module docstring)
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
        check_common(self)
        for name in ("delta", "eta_max", "critic_delta", "critic_eta_max", "critic_sigma", "critic_lr"):
            check(getattr(self, name) > 0, name, getattr(self, name), "> 0 (valid range (0, inf))")
        for name in ("damping", "critic_damping", "value_coef"):
            check(getattr(self, name) >= 0, name, getattr(self, name), ">= 0 (valid range [0, inf))")
        for name in ("stats_decay", "critic_stats_decay"):
            check(0 <= getattr(self, name) < 1, name, getattr(self, name), "in [0, 1)")
        check(self.target_kl >= 0, "target_kl", self.target_kl, ">= 0 (0: a fixed eta_max)")
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
            num_envs=32, num_steps=20, gamma=0.99, lam=1.0, normalize_advantages=False, shared_trunk=True,
            value_coef=0.5, entropy_coef=0.01, delta=0.0005, eta_max=0.25, trust_region_convention="paper",
            damping=0.01, damping_mode="eigen", stats_decay=0.99, inverse_every=10, critic_sigma=1.0,
        ),
        "mujoco": dict(
            num_envs=1, num_steps=2500, gamma=0.99, lam=0.97, normalize_advantages=True, shared_trunk=False,
            hidden_sizes=[64, 64], activation="tanh", log_std_init=-1.5, value_coef=0.5, entropy_coef=0.0,
            delta=0.005, eta_max=1.0, target_kl=0.0, damping=0.01, damping_mode="eigen", stats_decay=0.99,
            inverse_every=1,
            critic_sigma=1.0, critic_delta=0.02, critic_eta_max=1.0, critic_damping=0.1, critic_stats_decay=0.95,
            critic_iterations=5,
        ),
    }

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

        # 4. Natural gradient Δ = F̂⁻¹g (in .grad), step size from the trust region, θ ← θ − ηΔ.
        if c.shared_trunk:
            q, eta = self._trust_region_step(self.kfac, self.model.parameters(), c.delta, self.eta_max)
        else:
            q, eta = self._trust_region_step(self.actor_kfac, self.model.actor.parameters(), c.delta, self.eta_max)
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
            "eta": eta,
            "eta_max": self.eta_max,
            "eta_capped": float(eta == self.eta_max),
            "quadratic": q,
            "predicted_kl": predicted_kl(q, eta),  # ½η²q: the joint KL of π and N(V, σ²) with a shared trunk
            "measured_kl": kl,  # KL(π_old ‖ π_new), mean over the batch
            "measured_value_kl": value_kl,  # mean (V_new − V_old)² / 2σ²
        }
        if not c.shared_trunk:
            critic_kl = predicted_kl(q_critic, eta_critic) if c.critic_optimizer == "gauss_newton" else float("nan")
            diagnostics.update(critic_eta=eta_critic, critic_quadratic=q_critic,  # adam: critic_eta = critic_lr, q = NaN
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
