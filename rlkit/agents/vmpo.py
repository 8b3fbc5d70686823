r"""V-MPO: on-policy Maximum a Posteriori Policy Optimization (Song et al., ICLR 2020).

V-MPO replaces the policy gradient by an EM step on a learned state-value function; the EM pieces
are :mod:`rlkit.vmpo`, this file is the agent around them. One update, on a rollout of T steps ×
N envs collected with the **target** network π_old, then ``learner_steps`` learner steps on it::

    G_t ← n-step returns (GAE λ-returns for λ < 1);  A_t ← G_t − V_φ(s_t)   (÷ σ with PopArt)
    E-step: 𝒟̃ ← top ``top_k_fraction`` of A among the VALID steps;  ψ ← softmax(A/η) on 𝒟̃
            L_η = η ε_η + η log mean_{𝒟̃} exp(A/η)               (η: the temperature)
    M-step: L_π = −Σ_{𝒟̃} ψ log π_θ(a|s);   KL = E_s[KL(π_old ‖ π_θ)] over the valid states
            L_α = α (ε_α − sg[KL]) + sg[α] KL   (Gaussian: decoupled, α_μ/ε_α_μ and α_Σ/ε_α_Σ)
    critic: L_V = c_V · mean_valid (V_φ(s) − G)²
    one Adam step on θ, φ (lr), one on η, α (dual_lr), the duals projected;
    every ``target_period`` learner steps (counted over the run): π_old ← π_θ

The target network acts (the rollout is on-policy for π_old, no importance weights), the online
critic values. PopArt (``popart=True``, van Hasselt et al., 2016) normalizes the value targets,
preserving the value function's outputs, so that η works in units of σ.

Presets: the paper's values where its tables give them (``data/``: initial duals; for ``atari``
its multi-task Atari column, whose rewards are clipped as ``rlkit.envs`` clips them); ours
elsewhere. ``classic`` and ``mujoco`` take 4 learner steps per rollout (the paper: 1, on fresh
data from many actors), because on a laptop env steps are the scarce thing and the KL trust
region keeps the repeated steps safe; PopArt is on everywhere because without it the critic lags
far behind returns of large scale. Sample efficiency: ``data/benchmarks/sample_efficiency_vmpo.txt``.
The reasons in full: docs/agents.md, *V-MPO*.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rlkit.agents.base import Agent, OnPolicyConfig, check, explained_variance
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
class VMPOConfig(OnPolicyConfig):
    """V-MPO's hyperparameters (defaults: the ``classic`` preset); the shared ones: :class:`OnPolicyConfig`.

    The rollout is collected with the target network; ``gae_lambda`` = 1 gives the paper's n-step
    bootstrapped returns, < 1 GAE(λ) targets and advantages.
    """

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
    initial_temperature: float = PAPER_INITIAL_DUALS["discrete"]["eta"]  # η: 1
    initial_alpha: float = PAPER_INITIAL_DUALS["discrete"]["alpha"]  # 5 (categorical policies)
    initial_alpha_mu: float = PAPER_INITIAL_DUALS["continuous"]["alpha_mu"]  # 1 (Gaussian policies)
    initial_alpha_sigma: float = PAPER_INITIAL_DUALS["continuous"]["alpha_sigma"]  # 1 (Gaussian policies)
    dual_lr: float = 0.05
    # the target (behaviour) network π_old
    target_period: int = 10  # T_target: refresh π_old ← π_θ every this many learner steps
    learner_steps: int = 4  # learner steps (Adam steps) on each rollout; the paper: 1 (fresh data for every step)
    # losses and the networks' Adam (entropy_coef, shared: not part of V-MPO, 0; a bonus if you want one)
    value_coef: float = 0.5  # c_V: c_V·mean (V − G)², 0.5 = the paper's ½
    lr: float = 3e-3
    max_grad_norm: float = 0.0  # global gradient-norm clipping of the networks; 0 disables
    # PopArt value normalization
    popart: bool = True
    popart_beta: float = 3e-4  # step size of the moving averages of the value targets

    def validate(self) -> "VMPOConfig":
        super().validate()
        for name in ("eps_eta", "eps_alpha", "eps_alpha_mu", "eps_alpha_sigma", "eps_alpha_low", "lr", "dual_lr",
                     "initial_temperature", "initial_alpha", "initial_alpha_mu", "initial_alpha_sigma"):
            check(getattr(self, name) > 0, name, getattr(self, name), "> 0 (valid range (0, inf))")
        # Checked here, not at update 1: a KL bound beyond EPS_MAX nats binds nothing and its dual loss
        # η·ε overflows float32; an initial dual below the duals' floor is refused by DualVariables
        # after the run directory is made, and beyond DUAL_MAX it overflows the policy's logits.
        for name in ("eps_eta", "eps_alpha", "eps_alpha_mu", "eps_alpha_sigma", "eps_alpha_low", "eps_alpha_high"):
            check(getattr(self, name) <= EPS_MAX, name, getattr(self, name),
                  f"a KL bound in (0, {EPS_MAX:g}] nats (larger values overflow the dual losses)")
        for name in ("initial_temperature", "initial_alpha", "initial_alpha_mu", "initial_alpha_sigma"):
            check(DUAL_MIN <= getattr(self, name) <= DUAL_MAX, name, getattr(self, name),
                  f"in [{DUAL_MIN:.3g}, {DUAL_MAX:g}] (the duals' floor + softplus(raw_min), and float32 headroom)")
        check(self.eps_alpha_high > self.eps_alpha_low, "eps_alpha_high", self.eps_alpha_high,
              f"> eps_alpha_low = {self.eps_alpha_low} (ε_α is drawn from [eps_alpha_low, eps_alpha_high))")
        check(0 < self.top_k_fraction <= 1, "top_k_fraction", self.top_k_fraction, "in (0, 1]")
        for name in ("target_period", "learner_steps"):
            check(getattr(self, name) >= 1, name, getattr(self, name), "an integer >= 1 (valid range [1, inf))")
        for name in ("value_coef", "max_grad_norm"):
            check(getattr(self, name) >= 0, name, getattr(self, name), ">= 0 (valid range [0, inf))")
        check(0 < self.popart_beta <= 1, "popart_beta", self.popart_beta, "in (0, 1]")
        return self


def _dual_floor() -> float:
    """The smallest value a V-MPO dual takes: DualVariables' floor + softplus(raw_min), from its defaults."""
    import inspect

    from rlkit.vmpo.duals import DualVariables

    defaults = inspect.signature(DualVariables.__init__).parameters
    return defaults["floor"].default + math.log1p(math.exp(defaults["raw_min"].default))


EPS_MAX = 1e3  # nats: the largest KL bound (ε_η, ε_α, ...) a V-MPO config accepts
DUAL_MIN = _dual_floor()
DUAL_MAX = 1e6  # the largest initial dual (η, α, α_μ, α_Σ)


class PopArt:
    r"""PopArt: adaptive normalization of the value targets, preserving the value function's outputs.

    ``head`` is the value network's last ``nn.Linear`` (one output): it predicts n(s) and
    V(s) = σ n(s) + μ. :meth:`update` moves μ and σ toward the targets' first and second moments
    and rescales ``head`` so that V is unchanged: W ← W σ/σ', b ← (σ b + μ − μ')/σ'. Statistics are kept in
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
            num_envs=32, num_steps=20, gamma=0.99, gae_lambda=1.0, shared_trunk=True, eps_eta=0.02, top_k_fraction=0.5,
            eps_alpha_log_uniform=True, eps_alpha_low=0.001, eps_alpha_high=0.01, eps_alpha=0.005,
            initial_temperature=1.0, initial_alpha=5.0, target_period=100, learner_steps=1, value_coef=0.5, lr=1e-4,
            dual_lr=0.01, max_grad_norm=0.0, popart=True,
        ),
        "mujoco": dict(
            num_envs=8, num_steps=64, gamma=0.99, gae_lambda=1.0, shared_trunk=False, hidden_sizes=[64, 64],
            activation="tanh", eps_eta=0.1, eps_alpha_mu=0.01, eps_alpha_sigma=1e-4, initial_temperature=1.0,
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
            self.duals = DualVariables("discrete", eta=c.initial_temperature, alpha=c.initial_alpha)
        else:
            self.duals = DualVariables("continuous", eta=c.initial_temperature, alpha_mu=c.initial_alpha_mu,
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
        adv = rollout.gae(c.gamma, c.gae_lambda)  # λ = 1: the n-step bootstrapped return minus V
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
        # the values this step uses; η is logged as "temperature" (ACKTR's η is its step size)
        duals = {"temperature" if name == "eta" else name: value for name, value in self.duals.diagnostics().items()}
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
