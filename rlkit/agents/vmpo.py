r"""V-MPO: on-policy Maximum a Posteriori Policy Optimization (Song et al., ICLR 2020).

V-MPO replaces the policy gradient by an EM step on a learned state-value function. The EM
pieces (top-k E-step, temperature loss, weighted M-step, KL trust region, decoupled Gaussian KL,
dual variables) are :mod:`rlkit.vmpo`; this file is the agent around them. One update, on a
rollout of T steps × N envs collected with the **target** network π_old::

    G_t     ← n-step bootstrapped returns (λ = 1; GAE λ-returns for λ < 1), V from the online critic
    A_t     ← G_t − V_φ(s_t)                      (÷ σ with PopArt: normalized units)
    then ``learner_steps`` learner steps on this rollout, G and A held fixed, each:
    E-step:  𝒟̃ ← top ``top_k_fraction`` of A among the VALID steps (reset steps never enter)
             ψ  ← softmax(A/η) on 𝒟̃ (0 elsewhere), with the current η
             L_η = η ε_η + η log mean_{𝒟̃} exp(A/η)
    M-step:  L_π = −Σ_{𝒟̃} ψ log π_θ(a|s)         (a sum)
             KL = E_s[KL(π_old ‖ π_θ)]  over the valid states, π_old = the target network
             L_α = α (ε_α − sg[KL]) + sg[α] KL    (Gaussian: decoupled, α_μ/ε_α_μ and α_Σ/ε_α_Σ)
    critic:  L_V = c_V · mean_valid (V_φ(s) − G)²  (c_V = 0.5: the paper's ½; PopArt: normalized)
             one Adam step on θ, φ (lr) and one on η, α (dual_lr, their own Adam), then the duals are
             projected (rlkit.vmpo.DualVariables.project_); every ``target_period`` learner steps
             (counted over the run, as the paper's T_target): π_old ← π_θ

Learner steps per rollout. The paper takes one learner step per batch, each batch fresh from
many asynchronous actors. On a laptop the env steps are the scarce thing, so the ``classic`` and
``mujoco`` presets take ``learner_steps`` = 4 Adam steps on each rollout (PPO reuses its batches
the same way): the KL trust region to π_old is what keeps the repeated steps safe. Measured on
CartPole-v1 (seed 0, steps to a mean return of 475): 1 learner step 172k, 4 learner steps 29k,
8 learner steps 29k (seeds 1–3: 17k–20k) but 8 made Pendulum-v1 unstable (2 of 3 seeds never
reached −200 in 400k steps, with the E-step KL swinging 0.001–0.24 around ε_η = 0.1), so 4.
Refreshing π_old after every rollout instead (T_target = learner_steps) was slower: 126k with 4.

Acting and the target network. ``policy`` (what the collector calls) samples actions from the
target network, so the rollout is on-policy for π_old and no importance weights are needed (the
paper used none either). The *values* it returns come from the online critic V_φ: the online
network does not change during a rollout, so they are exactly V_φ at update time, and G_t and
A_t = G_t − V_φ(s_t) use the current value function as in the paper. ``act_deterministic``
(evaluation) uses the online network. Right after a refresh the KL between π_old and π_θ is 0,
and its gradient too: the trust region bites through the drift accumulated over the
``target_period`` learner steps π_old is held fixed. The diagnostics are the last learner step's;
its ``mstep_kl`` is the KL at the start of that step (what the loss saw).

PopArt (``popart=True``, van Hasselt et al., 2016): the value head predicts a normalized value
n(s), V(s) = σ n(s) + μ. Before each step μ, σ move toward the mean and standard deviation of the
value targets (exponential moving averages with step ``popart_beta``, bias-corrected like Adam's
moments, so the first batches are averaged exactly; σ clipped to [1e-4, 1e6]), and the value
head's last layer is rescaled, W ← W σ/σ', b ← (σ b + μ − μ')/σ', so that V(s) is unchanged by
the move ("preserving outputs"). The value loss is then taken in normalized units,
(n(s) − (G − μ')/σ')², and the advantages are divided by σ' (as in PopArt-IMPALA, Hessel et al.,
2019), so η works in units of σ. On in every preset (ours): without it the critic, fitted by Adam
from an output of scale 1, lagged far behind returns of scale 10²–10³: on Pendulum-v1 its
explained variance stayed near 0 for 500k steps and the policy did not improve; on CartPole-v1
one seed in ten (seed 7) stalled near a return of 150 with an explained variance of 0.

Presets (P = the paper's value, read from ``data/``; everything else is ours):

* ``classic`` (the defaults; CartPole-v1, Acrobot-v1, Pendulum-v1): ours, tuned on CartPole-v1:
  16 envs × 16 steps, separate 64-64 tanh networks, n-step returns (λ = 1), ε_η = 0.1,
  top half, ε_α = 0.01 (ε_α_μ = 0.01, ε_α_Σ = 1e-4 for Gaussian policies), T_target = 10
  learner steps, 4 learner steps per rollout, Adam lr 3e-3 for the networks and dual_lr 0.05 for
  the duals, PopArt; initial duals η = 1, α = 5 (categorical), α_μ = α_Σ = 1 (Gaussian) (P,
  Table 1). Measured (mean return of the last 10 episodes, ``data/benchmarks/sample_efficiency_vmpo.txt``):
  CartPole-v1 reaches 475 after 25k–29k steps (seeds 0–2; seed 3: 53k), ACKTR's classic preset
  after 19k–37k; Pendulum-v1 reaches −200 after 163k–189k steps (seeds 0–2; ACKTR 80k–243k) and
  then drifts back (−462 ± 131 at 300k, ``data/reproductions/vmpo-vs-acktr-laptop``). With 1
  learner step per rollout: 56k–172k (seeds 0–9) and 349k–384k (seeds 0–2). Tuning notes
  (CartPole-v1, 1 learner step, before PopArt): with dual_lr 0.01, η rose from 1 to only 1.7 in
  the first 100 updates while the E-step KL stayed near 1, ten times ε_η; with lr 1e-3 one seed
  in three missed 475 within 300k steps; lr 1e-2 with 4 learner steps was slower (118k, seed 0).
* ``mujoco``: ours (the paper's continuous-control table is not in ``data/``): the ``classic``
  values with a larger batch, 8 envs × 64 steps. Measured (mean of the last 10 episodes):
  InvertedPendulum-v5 reaches 950 after 27k–53k steps (seeds 0–2; 1 learner step: 71k–84k).
* ``atari``: the paper's Atari Table 3 where it applies, taking its *multi-task* column because
  that is the setting whose rewards are clipped to [−1, 1] and discounted with γ = 0.99, as
  ``rlkit.envs`` trains Atari (sign-clipped rewards): T_target = 100 (P), ε_η = 0.02 (P, both
  columns), ε_α log-uniform in [0.001, 0.01), drawn per update (P), γ = 0.99 (P), initial η = 1,
  α = 5 (P, Table 1). (The single-task column has T_target = 1000, ε_α ∈ [0.005, 0.01),
  γ = 0.997 and unclipped rewards.) Ours: the shared Nature-CNN trunk (the paper used a ResNet
  with an LSTM or a Transformer-XL), 32 envs × 20 steps (the other agents' Atari batch), Adam
  lr 1e-4, dual_lr 0.01, PopArt. Only smoke-tested here (no Atari training run on a CPU).

Not implemented: recurrent cores, importance weighting of stale data (the paper describes it for
asynchronous actors and does not use it), per-dimension α_μ/α_Σ (``rlkit.vmpo`` supports them),
ε_α sampling for Gaussian policies (``eps_alpha_log_uniform`` is refused there: the ranges given
in ``data/`` are for categorical policies).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from rlkit.agents.base import Agent, Config, check, check_common, explained_variance
from rlkit.rollout import Rollout
from rlkit.vmpo import (
    PAPER_INITIAL_DUALS,
    DualVariables,
    categorical_kl,
    decoupled_gaussian_kl,
    e_step,
    kl_constraint_loss,
    policy_loss,
    sample_eps_alpha,
)

__all__ = ["VMPO", "VMPOConfig", "PopArt"]

POPART_SIGMA_RANGE = (1e-4, 1e6)  # σ is clipped to this range


@dataclass
class VMPOConfig(Config):
    """V-MPO's hyperparameters (defaults: the ``classic`` preset). One name per concept, as in the kit."""

    # rollout: a batch is num_envs × num_steps transitions, collected with the target network
    num_envs: int = 16
    num_steps: int = 16
    gamma: float = 0.99
    lam: float = 1.0  # 1: n-step bootstrapped returns (the paper); < 1: GAE(λ) targets and advantages
    # networks (rlkit.nets.ActorCritic): separate policy and value networks, or a shared trunk
    shared_trunk: bool = False
    hidden_sizes: list[int] = field(default_factory=lambda: [64, 64])
    activation: str = "tanh"
    log_std_init: float = 0.0
    # E-step
    eps_eta: float = 0.1  # ε_η: the bound on KL(ψ ‖ uniform over the selected set)
    top_k_fraction: float = 0.5  # the fraction of the valid samples the E-step keeps
    # M-step: KL(π_old ‖ π_θ) trust region
    eps_alpha: float = 0.01  # ε_α (categorical policies)
    eps_alpha_mu: float = 0.01  # ε_α_μ: mean part of the decoupled Gaussian KL
    eps_alpha_sigma: float = 1e-4  # ε_α_Σ: covariance part of the decoupled Gaussian KL
    eps_alpha_log_uniform: bool = False  # draw ε_α per update, log-uniform in [eps_alpha_low, eps_alpha_high)
    eps_alpha_low: float = 0.005  # default range: the paper's single-task Atari [0.005, 0.01)
    eps_alpha_high: float = 0.01
    # duals: initial values (the paper's Table 1) and their own Adam
    initial_eta: float = PAPER_INITIAL_DUALS["discrete"]["eta"]  # 1
    initial_alpha: float = PAPER_INITIAL_DUALS["discrete"]["alpha"]  # 5 (categorical policies)
    initial_alpha_mu: float = PAPER_INITIAL_DUALS["continuous"]["alpha_mu"]  # 1 (Gaussian policies)
    initial_alpha_sigma: float = PAPER_INITIAL_DUALS["continuous"]["alpha_sigma"]  # 1 (Gaussian policies)
    dual_lr: float = 0.05
    # the target (behaviour) network π_old
    target_period: int = 10  # T_target: refresh π_old ← π_θ every this many learner steps
    learner_steps: int = 4  # learner steps (Adam steps) on each rollout; the paper: 1 (fresh data for every step)
    # losses and the networks' Adam
    value_coef: float = 0.5  # c_V: c_V·mean (V − G)², 0.5 = the paper's ½
    entropy_coef: float = 0.0  # c_H: not part of V-MPO (0); a bonus −c_H·H[π] if you want one
    lr: float = 3e-3
    max_grad_norm: float = 0.0  # global gradient-norm clipping of the networks; 0 disables
    # PopArt value normalization
    popart: bool = True
    popart_beta: float = 3e-4  # step size of the moving averages of the value targets

    def validate(self) -> "VMPOConfig":
        super().validate()
        check_common(self)
        for name in ("eps_eta", "eps_alpha", "eps_alpha_mu", "eps_alpha_sigma", "eps_alpha_low", "lr", "dual_lr",
                     "initial_eta", "initial_alpha", "initial_alpha_mu", "initial_alpha_sigma"):
            check(getattr(self, name) > 0, name, getattr(self, name), "> 0 (valid range (0, inf))")
        check(self.eps_alpha_high > self.eps_alpha_low, "eps_alpha_high", self.eps_alpha_high,
              f"> eps_alpha_low = {self.eps_alpha_low} (ε_α is drawn from [eps_alpha_low, eps_alpha_high))")
        check(0 < self.top_k_fraction <= 1, "top_k_fraction", self.top_k_fraction, "in (0, 1]")
        for name in ("target_period", "learner_steps"):
            check(getattr(self, name) >= 1, name, getattr(self, name), "an integer >= 1 (valid range [1, inf))")
        for name in ("value_coef", "max_grad_norm"):
            check(getattr(self, name) >= 0, name, getattr(self, name), ">= 0 (valid range [0, inf))")
        check(0 < self.popart_beta <= 1, "popart_beta", self.popart_beta, "in (0, 1]")
        return self


class PopArt:
    r"""PopArt: adaptive normalization of the value targets, preserving the value function's outputs.

    ``head`` is the value network's last ``nn.Linear`` (one output): it predicts n(s) and
    V(s) = σ n(s) + μ. :meth:`update` moves μ and σ toward the targets' first and second moments
    and rescales ``head`` so that V is unchanged (see the module docstring). Statistics are kept in
    float64: ``m``, ``v`` the moving averages of G and G² from 0, ``t`` the number of updates;
    μ = m / (1 − (1 − β)^t), ν = v / (1 − (1 − β)^t) (Adam's bias correction), σ = sqrt(ν − μ²).
    Before any update μ = 0, σ = 1.
    """

    def __init__(self, head: nn.Linear, beta: float):
        if not (isinstance(head, nn.Linear) and head.out_features == 1):
            raise ValueError("PopArt needs the value network's last layer: an nn.Linear with one output")
        self.head, self.beta = head, beta
        self.m, self.v, self.t = 0.0, 0.0, 0

    @property
    def mu(self) -> float:
        return 0.0 if self.t == 0 else self.m / (1 - (1 - self.beta) ** self.t)

    @property
    def sigma(self) -> float:
        if self.t == 0:
            return 1.0
        nu = self.v / (1 - (1 - self.beta) ** self.t)
        low, high = POPART_SIGMA_RANGE
        return min(max(math.sqrt(max(nu - self.mu**2, 0.0)), low), high)

    def unnormalize(self, n: Tensor) -> Tensor:
        return n * self.sigma + self.mu

    def normalize(self, values: Tensor) -> Tensor:
        return (values - self.mu) / self.sigma

    @torch.no_grad()
    def update(self, targets: Tensor) -> None:
        """Move μ, σ toward the moments of ``targets`` (1-D) and rescale the head to preserve V."""
        mu, sigma = self.mu, self.sigma
        t = targets.detach().double()
        self.m = (1 - self.beta) * self.m + self.beta * float(t.mean())
        self.v = (1 - self.beta) * self.v + self.beta * float(t.square().mean())
        self.t += 1
        new_mu, new_sigma = self.mu, self.sigma
        w, b = self.head.weight, self.head.bias
        w.mul_(sigma / new_sigma)
        b.mul_(sigma).add_(mu - new_mu).div_(new_sigma)

    def state_dict(self) -> dict:
        return {"m": self.m, "v": self.v, "t": self.t}

    def load_state_dict(self, state: dict) -> None:
        self.m, self.v, self.t = float(state["m"]), float(state["v"]), int(state["t"])


class VMPO(Agent):
    """V-MPO with a target (behaviour) network, Adam for the networks and their own Adam for the duals."""

    name = "vmpo"
    Config = VMPOConfig
    supported_action_kinds = ("discrete", "continuous")
    presets = {
        "classic": {},
        "atari": dict(
            num_envs=32, num_steps=20, gamma=0.99, lam=1.0, shared_trunk=True, eps_eta=0.02, top_k_fraction=0.5,
            eps_alpha_log_uniform=True, eps_alpha_low=0.001, eps_alpha_high=0.01, eps_alpha=0.005,
            initial_eta=1.0, initial_alpha=5.0, target_period=100, learner_steps=1, value_coef=0.5, lr=1e-4,
            dual_lr=0.01, max_grad_norm=0.0, popart=True,
        ),
        "mujoco": dict(
            num_envs=8, num_steps=64, gamma=0.99, lam=1.0, shared_trunk=False, hidden_sizes=[64, 64],
            activation="tanh", eps_eta=0.1, eps_alpha_mu=0.01, eps_alpha_sigma=1e-4, initial_eta=1.0,
            initial_alpha_mu=1.0, initial_alpha_sigma=1.0, target_period=10, lr=3e-3, dual_lr=0.05, popart=True,
        ),
    }

    def __init__(self, env_summary, config: VMPOConfig, *, seed: int, device="cpu"):
        super().__init__(env_summary, config, seed=seed, device=device)
        c = self.config
        self.discrete = env_summary.action_kind == "discrete"
        if c.eps_alpha_log_uniform and not self.discrete:
            raise ValueError("eps_alpha_log_uniform must be False for continuous actions (it draws the categorical "
                             "policy's eps_alpha; Gaussian policies use fixed eps_alpha_mu and eps_alpha_sigma); "
                             f"got True for the {env_summary.action_space} action space of {env_summary.env_id}")
        # The target network π_old: acts, and is the reference of the M-step's KL.
        self.target = copy.deepcopy(self.model)
        self.target.requires_grad_(False)
        # The duals η and α (α_μ, α_Σ), positive, with their own Adam and the projection after each step.
        if self.discrete:
            self.duals = DualVariables("discrete", eta=c.initial_eta, alpha=c.initial_alpha)
        else:
            self.duals = DualVariables("continuous", eta=c.initial_eta, alpha_mu=c.initial_alpha_mu,
                                       alpha_sigma=c.initial_alpha_sigma)
        self.duals.to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=c.lr)
        self.dual_optimizer = torch.optim.Adam(self.duals.parameters(), lr=c.dual_lr)
        self.popart = PopArt(self._value_head(self.model), c.popart_beta) if c.popart else None
        # ε_α draws (eps_alpha_log_uniform) come from their own CPU stream, checkpointed.
        self.eps_generator = torch.Generator().manual_seed(seed)
        self.last_estep = None  # the last update's rlkit.vmpo.EStep, on the (T, N) grid (for notebooks)

    # ---- acting -------------------------------------------------------------------------

    @torch.no_grad()
    def policy(self, obs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(actions ~ π_old, log π_old(actions|obs), V_φ(obs)): the target acts, the online critic values."""
        pd_params = self.target.pd_params(obs)
        actions = self.target.policy_head.sample(pd_params, self.generator)
        log_probs = self.target.distribution(pd_params).log_prob(actions)
        return actions, log_probs, self.value(obs)

    @torch.no_grad()
    def value(self, obs: Tensor) -> Tensor:
        """V_φ(obs) of the online critic, in reward units (PopArt: σ n(s) + μ)."""
        v = self.model.value(obs)
        return self.popart.unnormalize(v) if self.popart is not None else v

    @staticmethod
    def _value_head(model) -> nn.Linear:
        return model.value_head if model.shared_trunk else model.critic.head

    # ---- the update -------------------------------------------------------------------------

    def advantages(self, rollout: Rollout) -> tuple[Tensor, Tensor]:
        """(value targets G, advantages G − V) on the (T, N) grid, 0 at invalid steps, in reward units."""
        c = self.config
        adv = rollout.gae(c.gamma, c.lam)  # λ = 1: the n-step bootstrapped return minus V
        return adv + rollout.values * rollout.valid, adv

    def update(self, rollout: Rollout) -> dict[str, float]:
        """``learner_steps`` learner steps on one rollout; the last one's diagnostics (``target_updated``: at any)."""
        c, start = self.config, self.clock()
        valid = rollout.valid
        if not bool(valid.any()):
            raise ValueError("the rollout has no valid step to learn from (every step is a reset step)")

        # 1. Value targets and advantages (the online critic's values, collected by `policy`): fixed
        #    for all the learner steps on this rollout, as PPO fixes its advantages per batch.
        returns, advantages = self.advantages(rollout)
        if self.popart is not None:  # move μ, σ toward the targets, keeping V(s) unchanged
            self.popart.update(returns[valid])
            advantages = advantages / self.popart.sigma

        target_updated = False
        for i in range(c.learner_steps):
            # counted over the run, so that T_target is in learner steps (the paper's unit)
            learner_step = self.updates * c.learner_steps + i + 1
            diagnostics = self._learner_step(rollout, returns, advantages, learner_step)
            target_updated = target_updated or diagnostics["target_updated"] == 1.0
        self.updates += 1
        diagnostics["target_updated"] = float(target_updated)  # at any learner step of this update
        if self.popart is not None:
            diagnostics.update(popart_mu=self.popart.mu, popart_sigma=self.popart.sigma)
        diagnostics["time_update"] = self.clock() - start
        return diagnostics

    def _learner_step(self, rollout: Rollout, returns: Tensor, advantages: Tensor, learner_step: int
                      ) -> dict[str, float]:
        """Learner step number ``learner_step`` (from 1): an E-step, an M-step and a critic step (one Adam step
        on the networks, one on the duals); π_old ← π_θ when ``learner_step`` is a multiple of T_target."""
        c, valid = self.config, rollout.valid
        T, N = valid.shape

        # 2. E-step: top-k of the valid advantages, weights ψ, temperature loss L_η (the current η).
        estep = e_step(advantages, self.duals.eta, c.eps_eta, c.top_k_fraction, valid=valid)
        self.last_estep = estep

        # 3. M-step: weighted maximum likelihood, KL(π_old ‖ π_θ) trust region.
        obs = rollout.obs.reshape(T * N, *rollout.obs.shape[2:])
        pd_params, values = self.model(obs)
        with torch.no_grad():
            old_params = self.target.pd_params(obs)
        pi = self.model.distribution(pd_params)
        log_probs = pi.log_prob(rollout.actions.reshape(T * N, *rollout.actions.shape[2:])).reshape(T, N)
        loss_pi = policy_loss(log_probs, estep.weights)
        duals = self.duals.diagnostics()  # the values this step uses
        if self.discrete:
            eps_alpha = (sample_eps_alpha(c.eps_alpha_low, c.eps_alpha_high, generator=self.eps_generator)
                         if c.eps_alpha_log_uniform else c.eps_alpha)
            kl = categorical_kl(old_params.reshape(T, N, -1), pd_params.reshape(T, N, -1), valid=valid)
            constraint = kl_constraint_loss(kl, self.duals.alpha, eps_alpha)
            kl_diagnostics = {"eps_alpha": eps_alpha, "mstep_kl": float(kl.detach())}
            loss_alpha = constraint.total
        else:
            old_std = self.target.policy_head.log_std.exp()
            new_std = self.model.policy_head.log_std.exp()
            kl = decoupled_gaussian_kl(old_params.reshape(T, N, -1), old_std, pd_params.reshape(T, N, -1), new_std,
                                       valid=valid)
            mean_part = kl_constraint_loss(kl.mean, self.duals.alpha_mu, c.eps_alpha_mu)
            cov_part = kl_constraint_loss(kl.covariance, self.duals.alpha_sigma, c.eps_alpha_sigma)
            kl_diagnostics = {"mstep_kl_mean": float(kl.mean.detach()), "mstep_kl_cov": float(kl.covariance.detach())}
            loss_alpha = mean_part.total + cov_part.total

        # 4. The critic: c_V · mean (V − G)² over the valid steps (normalized units with PopArt).
        values = values.reshape(T, N)[valid]
        targets = returns[valid]
        if self.popart is not None:
            targets = self.popart.normalize(targets)
        value_loss = (values - targets).pow(2).mean()
        entropy = pi.entropy().reshape(T, N)[valid].mean()

        # 5. One step: Adam on the networks, Adam on the duals, then the duals' projection.
        loss = loss_pi + loss_alpha + estep.loss + c.value_coef * value_loss - c.entropy_coef * entropy
        self.optimizer.zero_grad(set_to_none=True)
        self.dual_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        max_norm = c.max_grad_norm if c.max_grad_norm > 0 else float("inf")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm))
        self.optimizer.step()
        self.dual_optimizer.step()
        self.duals.project_()

        # 6. Every T_target learner steps the target (behaviour) network catches up: π_old ← π_θ.
        target_updated = learner_step % c.target_period == 0
        if target_updated:
            self.target.load_state_dict(self.model.state_dict())

        diagnostics = {**duals, **kl_diagnostics}
        diagnostics.update(
            estep_kl=float(estep.kl),  # KL(ψ ‖ uniform on the selected set); the dual drives it to ε_η
            max_weight=float(estep.max_weight),
            num_selected=float(estep.num_selected),
            temperature_loss=float(estep.loss.detach()),
            policy_loss=float(loss_pi.detach()),
            entropy=float(entropy.detach()),
            value_loss=float(value_loss.detach()),
            explained_variance=explained_variance(rollout.values[valid], returns[valid]),
            grad_norm=grad_norm,
            target_updated=float(target_updated),
        )
        return diagnostics

    # ---- checkpoints ------------------------------------------------------------------------

    def extra_state(self) -> dict:
        return {
            "target": self.target.state_dict(),
            "duals": self.duals.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "dual_optimizer": self.dual_optimizer.state_dict(),
            "popart": None if self.popart is None else self.popart.state_dict(),
            "eps_generator": self.eps_generator.get_state(),
        }

    def load_extra_state(self, state: dict) -> None:
        if (state["popart"] is None) != (self.popart is None):
            raise ValueError(f"the state has popart={state['popart'] is not None}, this agent has "
                             f"popart={self.popart is not None}")
        self.target.load_state_dict(state["target"])
        self.duals.load_state_dict(state["duals"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.dual_optimizer.load_state_dict(state["dual_optimizer"])
        if self.popart is not None:
            self.popart.load_state_dict(state["popart"])
        self.eps_generator.set_state(state["eps_generator"].clone())
