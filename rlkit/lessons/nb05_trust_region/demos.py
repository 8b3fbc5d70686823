r"""Small plain pieces behind notebook 05 (the trust region) and its panel in ``rlkit.widgets``.

Nothing here is an algorithm of its own: the step size and the predicted KL come from
:mod:`rlkit.trust_region`, exact Fisher matrices and natural gradients from :mod:`rlkit.fisher`,
K-FAC from :mod:`rlkit.kfac` (Fisher-pass losses and square roots from :mod:`rlkit.critic`),
measured KLs from ``torch.distributions``. This module sets up the small problems the notebook
draws and measures things about them, so that the notebook stays short and the numbers behind
its pictures are tested (``tests/lessons/test_nb05_demos.py``).

The rule (DESIGN.md)
--------------------
For a natural-gradient direction Δ = F̂⁻¹g the KL after the ascent step θ + ηΔ is modelled by
the quadratic ½η²q, q = ΔᵀF̂Δ, and ACKTR picks η = min(η_max, sqrt(2δ/q)) (``"paper"``); the
openai/baselines code uses sqrt(δ/q) (``"baselines"``), so the same number δ gives half the
predicted KL. Above δ_cap = ½η_max²q (paper; η_max²q for baselines) the cap takes over: η = η_max
and the predicted KL stays at ½η_max²q whatever δ is (:func:`delta_cap`).

Problem 1: a fixed batch of a small policy (:func:`fixed_batch`)
---------------------------------------------------------------
A contextual bandit (:class:`ContextualBandit`): context s ~ N(0, I₄), three actions, mean reward
r̄(s, a) = (W s)_a for a fixed seeded W, observed reward r̄ + N(0, 1) noise. The policy is a
4 → 16 → 3 tanh network (:func:`make_policy`, float64, 131 parameters), first trained for five
trust-region updates so that it is no longer uniform. On one batch of 64 contexts, sampled actions
and advantages A = r − V(s) (V the exact expected reward under π: a perfect critic), the policy
gradient is g = ∇_θ (1/N) Σ_i A_i log π(a_i|s_i) and two directions are prepared:

* ``"exact"``: Δ = (F + λI)⁻¹g with the exact batch Fisher F (``rlkit.fisher.natural_gradient``,
  λ = ``damping`` keeps Δ out of F's near-null directions), and q = ΔᵀFΔ with F itself, the exact
  second-order term of the KL along Δ. As δ → 0 the measured KL over the predicted one → 1.
* ``"kfac"``: Δ = F̃⁻¹g with F̃ the damped block-diagonal Kronecker approximation
  (``rlkit.kfac.KFAC``, ``damping_mode="eigen"`` as ACKTR; factors from this batch with the exact
  expectation over actions, ``update_stats_exact``, so no sampling noise and no running-average
  lag), and q = ΔᵀF̃Δ, what ``KFAC.precondition()`` returns and ACKTR uses. As δ → 0 the ratio
  measured/predicted tends to ΔᵀFΔ / ΔᵀF̃Δ (:meth:`FixedBatch.limit_ratio`), which need not be 1:
  δ bounds K-FAC's model of the KL, not the KL.

For a new δ the step is a rescale of the same direction, so a panel only recomputes η and one
forward pass per (preconditioner, η), and measured KLs are cached by η.

Problem 2: ACKTR's actor update during training (:func:`contextual_run`)
----------------------------------------------------------------------
The same bandit and policy, trained by trust-region natural-gradient steps: exact Fisher, or
K-FAC as ACKTR runs it (Fisher pass with actions *sampled* from π, ``categorical_fisher_loss``;
running averages with ``stats_decay``; inverses every update). Records per update the step size,
q, predicted and measured KL: with K-FAC the measured KL is typically larger than δ (block
diagonal and Kronecker errors, sampling noise, factors that lag behind the policy).

Problem 3: a K-armed bandit (:func:`bandit_runs`)
------------------------------------------------
Tabular softmax policy π = softmax(θ), θ ∈ R^K, K arms with mean rewards evenly spaced in
[0, reward_scale] and Gaussian noise of std noise·reward_scale; each update pulls ``pulls`` arms,
A = r − Σ_a π_a r̄_a, g = ∇_θ (1/N) Σ A log π(a). For θ = logits the Jacobian is the identity, so
the Fisher is the output Fisher F = diag(p) − ppᵀ (``rlkit.fisher.Categorical().output_fisher``);
Δ = (F + λI)⁻¹g and q = gᵀΔ = Δᵀ(F + λI)Δ, ACKTR's damped quadratic. Many independent runs are
advanced together (one batch dimension). Two step rules: a fixed learning rate (θ += αΔ) and the
trust region (θ += ηΔ, η from ``rlkit.trust_region.effective_step_size``).

Why the fixed rate collapses: for one pull of arm a with advantage A, FΔ = g has the solution
Δ = A e_a / p_a (+ a constant, which softmax ignores): the natural gradient weights a rare arm by
1/p_a, so a lucky pull of a rare arm is a huge step, the policy jumps to near-deterministic on it
and, never sampling the others again, stays there. The trust region shrinks exactly those steps
(large q). It is also invariant to the reward scale (Δ and sqrt(q) both scale with the rewards,
η·Δ does not) as long as η_max does not bind; a fixed rate is not.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from rlkit.critic import categorical_fisher_loss, categorical_fisher_sqrt
from rlkit.fisher import (
    Categorical,
    fisher_matrix,
    flat_grad,
    flatten,
    natural_gradient,
    unflatten,
)
from rlkit.kfac import KFAC
from rlkit.trust_region import (
    CONVENTIONS,
    effective_step_size,
    measured_kl,
    predicted_kl,
)

__all__ = [
    "PRECONDITIONERS",
    "LABELS",
    "STEP_RULES",
    "DEFAULT_DELTAS",
    "ContextualBandit",
    "make_policy",
    "policy_gradient",
    "Direction",
    "FixedBatch",
    "fixed_batch",
    "delta_cap",
    "step_size_curves",
    "step_at",
    "step_size_panel_data",
    "contextual_run",
    "bandit_runs",
    "bandit_summary",
]

DTYPE = torch.float64
PRECONDITIONERS = ("exact", "kfac")
LABELS = {"exact": "exact Fisher", "kfac": "K-FAC"}
STEP_RULES = ("fixed", "trust_region")
#: The δ grid of the panel's curves: 41 points, log-spaced from 1e-5 to 1e-1 (ten per decade).
DEFAULT_DELTAS = np.logspace(-5, -1, 41)

CONTEXT_DIM, HIDDEN, NUM_ACTIONS = 4, 16, 3


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def _check_positive(name: str, value: float) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return value


def _check_convention(convention: str) -> str:
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    return convention


# ------------------------------------------------------------------------------------------
# The contextual bandit and its policy
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContextualBandit:
    """Contexts s ~ N(0, I), mean rewards r̄(s, a) = (W s)_a, observed rewards r̄ + noise·N(0, 1)."""

    weights: Tensor  # W, shape (num_actions, context_dim)
    noise: float = 1.0

    @classmethod
    def make(cls, seed: int = 1, context_dim: int = CONTEXT_DIM, num_actions: int = NUM_ACTIONS,
             noise: float = 1.0) -> "ContextualBandit":
        weights = torch.randn(num_actions, context_dim, generator=_generator(seed), dtype=DTYPE)
        return cls(weights, float(noise))

    @property
    def context_dim(self) -> int:
        return self.weights.shape[1]

    @property
    def num_actions(self) -> int:
        return self.weights.shape[0]

    def contexts(self, n: int, generator: torch.Generator) -> Tensor:
        return torch.randn(n, self.context_dim, generator=generator, dtype=DTYPE)

    def mean_rewards(self, contexts: Tensor) -> Tensor:
        """r̄(s, a) for every context and action, shape (n, num_actions)."""
        return contexts @ self.weights.T

    def rewards(self, contexts: Tensor, actions: Tensor, generator: torch.Generator) -> Tensor:
        mean = self.mean_rewards(contexts).gather(1, actions.long().reshape(-1, 1)).squeeze(1)
        return mean + self.noise * torch.randn(mean.shape, generator=generator, dtype=DTYPE)

    def values(self, policy: nn.Module, contexts: Tensor) -> Tensor:
        """V(s) = Σ_a π(a|s) r̄(s, a): the exact expected reward under π (a perfect critic)."""
        with torch.no_grad():
            return (torch.softmax(policy(contexts), -1) * self.mean_rewards(contexts)).sum(-1)


def make_policy(seed: int = 0, context_dim: int = CONTEXT_DIM, hidden: int = HIDDEN,
                num_actions: int = NUM_ACTIONS) -> nn.Sequential:
    """A context_dim → hidden → num_actions tanh network giving logits, float64, PyTorch's default
    initialization drawn under ``torch.manual_seed(seed)`` (the global random stream is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(context_dim, hidden), nn.Tanh(), nn.Linear(hidden, num_actions)).to(DTYPE)


def policy_gradient(policy: nn.Module, contexts: Tensor, actions: Tensor, advantages: Tensor) -> Tensor:
    """g = ∇_θ (1/N) Σ_i A_i log π(a_i|s_i), as one vector in ``rlkit.fisher``'s parameter layout."""
    objective = (advantages.detach() * Categorical().log_prob(policy(contexts), actions)).mean()
    return flatten(torch.autograd.grad(objective, tuple(p for p in policy.parameters() if p.requires_grad)))


def _sample_batch(problem: ContextualBandit, policy: nn.Module, n: int, gen: torch.Generator):
    contexts = problem.contexts(n, gen)
    with torch.no_grad():
        actions = Categorical().sample(policy(contexts), gen)
    advantages = problem.rewards(contexts, actions, gen) - problem.values(policy, contexts)
    return contexts, actions, advantages


def _entropy(logits: Tensor) -> float:
    return float(torch.distributions.Categorical(logits=logits).entropy().mean())


def _add_step(policy: nn.Module, direction: Tensor, eta: float) -> None:
    with torch.no_grad():
        for p, d in zip(policy.parameters(), unflatten(direction, policy).values()):
            p.add_(eta * d)


def _kfac(policy: nn.Module, damping: float, **options) -> KFAC:
    options = {"damping_mode": "eigen", "inverse_every": 1, **options}  # ACKTR's classic settings
    return KFAC(policy, damping=damping, **options)


def _kfac_direction(kfac: KFAC, policy: nn.Module, objective: Tensor) -> tuple[Tensor, float]:
    """(Δ, q): the K-FAC ascent direction F̃⁻¹g of ``objective`` and q = gᵀF̃⁻¹g = ΔᵀF̃Δ."""
    policy.zero_grad()
    (-objective).backward()  # K-FAC preconditions .grad, the gradient of the loss −J
    q = kfac.precondition()
    direction = -flat_grad(policy)
    policy.zero_grad()
    return direction, q


# ------------------------------------------------------------------------------------------
# Problem 1: a fixed batch
# ------------------------------------------------------------------------------------------


@dataclass
class Direction:
    """A step direction Δ and its quadratics: ``quadratic`` is the q of the rule, ``exact_quadratic`` ΔᵀFΔ."""

    name: str
    vector: Tensor
    quadratic: float
    exact_quadratic: float

    @property
    def label(self) -> str:
        return LABELS[self.name]


@dataclass
class FixedBatch:
    """One batch of the contextual bandit, the policy at θ, its gradient and the two directions."""

    policy: nn.Module
    contexts: Tensor
    actions: Tensor
    advantages: Tensor
    gradient: Tensor
    fisher: Tensor  # the exact batch Fisher F (dense)
    damping: float
    directions: dict[str, Direction]
    _kl_cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        with torch.no_grad():
            self._params = {n: p.detach().clone() for n, p in self.policy.named_parameters()}
            self._old_logits = self.policy(self.contexts)
        self._steps = {name: unflatten(d.vector, self._params) for name, d in self.directions.items()}

    @property
    def entropy(self) -> float:
        """Mean entropy of π(·|s) over the batch, in nats (log 3 = 1.099 is uniform)."""
        return _entropy(self._old_logits)

    def old_distribution(self) -> torch.distributions.Categorical:
        return Categorical().torch_distribution(self._old_logits)

    def stepped_logits(self, name: str, eta: float) -> Tensor:
        """The logits on the batch after the ascent step θ + ηΔ (no gradient; the policy is untouched)."""
        stepped = {n: self._params[n] + eta * self._steps[name][n] for n in self._params}
        with torch.no_grad():
            return torch.func.functional_call(self.policy, stepped, (self.contexts,))

    def measured_kl(self, name: str, eta: float) -> float:
        """KL(π_θ ‖ π_{θ+ηΔ}), mean over the batch (``rlkit.trust_region.measured_kl``); cached by η."""
        key = (name, float(eta))
        if key not in self._kl_cache:
            new = Categorical().torch_distribution(self.stepped_logits(name, eta))
            self._kl_cache[key] = measured_kl(self.old_distribution(), new)
        return self._kl_cache[key]

    def limit_ratio(self, name: str) -> float:
        """lim_{δ→0} measured/predicted KL = ΔᵀFΔ / q (1 for ``"exact"``; K-FAC's model error otherwise)."""
        d = self.directions[name]
        return d.exact_quadratic / d.quadratic


def _pretrain(problem, policy, updates, delta, damping, gen):
    """Trust-region steps along the exact natural gradient (θ leaves the near-uniform start)."""
    for _ in range(updates):
        contexts, actions, advantages = _sample_batch(problem, policy, 64, gen)
        g = policy_gradient(policy, contexts, actions, advantages)
        fisher = fisher_matrix(policy, contexts, Categorical())
        direction = torch.linalg.solve(fisher + damping * torch.eye(len(g), dtype=DTYPE), g)
        _add_step(policy, direction, effective_step_size(float(direction @ fisher @ direction), delta, 1.0))


def fixed_batch(seed: int = 0, batch_size: int = 64, pretrain_updates: int = 5, pretrain_delta: float = 0.01,
                damping: float = 1e-2, problem: ContextualBandit | None = None) -> FixedBatch:
    """The fixed batch of notebook 05: policy ``make_policy(seed)`` after ``pretrain_updates``
    trust-region updates (exact Fisher, δ = ``pretrain_delta``), then one fresh batch of
    ``batch_size`` contexts with sampled actions and perfect-critic advantages. Seeded: the same
    arguments give the same numbers on the same machine."""
    problem = ContextualBandit.make() if problem is None else problem
    gen = _generator(1000 + seed)
    policy = make_policy(seed, problem.context_dim, HIDDEN, problem.num_actions)
    _pretrain(problem, policy, pretrain_updates, pretrain_delta, damping, gen)
    contexts, actions, advantages = _sample_batch(problem, policy, batch_size, gen)
    g = policy_gradient(policy, contexts, actions, advantages)
    fisher = fisher_matrix(policy, contexts, Categorical())

    exact = natural_gradient(policy, contexts, Categorical(), g, damping=damping)
    q_exact = float(exact @ fisher @ exact)

    work = copy.deepcopy(policy)  # K-FAC's hooks and .grad live on a copy
    kfac = _kfac(work, damping, stats_decay=0.0)
    logits = work(contexts)
    kfac.update_stats_exact([(logits, categorical_fisher_sqrt(logits))])
    objective = (advantages * Categorical().log_prob(logits, actions)).mean()
    kfac_dir, q_kfac = _kfac_direction(kfac, work, objective)
    kfac.remove()

    directions = {
        "exact": Direction("exact", exact.detach(), q_exact, q_exact),
        "kfac": Direction("kfac", kfac_dir.detach(), q_kfac, float(kfac_dir @ fisher @ kfac_dir)),
    }
    return FixedBatch(policy, contexts, actions, advantages, g, fisher, float(damping), directions)


def delta_cap(quadratic: float, eta_max: float, convention: str = "paper") -> float:
    """The δ above which η_max takes over: ½η_max²q (paper) or η_max²q (baselines)."""
    _check_convention(convention)
    factor = 0.5 if convention == "paper" else 1.0
    return factor * _check_positive("eta_max", eta_max) ** 2 * float(quadratic)


def step_at(batch: FixedBatch, name: str, delta: float, eta_max: float, convention: str = "paper") -> dict:
    """One step on the fixed batch: η, the predicted KL ½η²q, the measured KL, whether η = η_max."""
    q = batch.directions[name].quadratic
    eta = effective_step_size(q, delta, eta_max, convention)
    predicted = predicted_kl(q, eta)
    measured = batch.measured_kl(name, eta)
    return {"eta": eta, "predicted_kl": predicted, "measured_kl": measured, "capped": eta == eta_max,
            "ratio": measured / predicted}


def step_size_curves(batch: FixedBatch, deltas: Sequence[float] = DEFAULT_DELTAS, eta_max: float = 0.15,
                     convention: str = "paper") -> dict[str, dict]:
    """For each preconditioner, over the δ grid: η, predicted and measured KL, capped, and δ_cap.

    Returns ``{name: {"deltas", "eta", "predicted_kl", "measured_kl", "capped", "delta_cap"}}``
    (numpy arrays over ``deltas``; ``delta_cap`` a float).
    """
    deltas = np.asarray(deltas, dtype=float)
    out = {}
    for name in batch.directions:
        steps = [step_at(batch, name, d, eta_max, convention) for d in deltas]
        out[name] = {
            "deltas": deltas,
            "eta": np.array([s["eta"] for s in steps]),
            "predicted_kl": np.array([s["predicted_kl"] for s in steps]),
            "measured_kl": np.array([s["measured_kl"] for s in steps]),
            "capped": np.array([s["capped"] for s in steps]),
            "delta_cap": delta_cap(batch.directions[name].quadratic, eta_max, convention),
        }
    return out


def step_size_panel_data(batch: FixedBatch, delta: float = 0.01, eta_max: float = 0.15, convention: str = "paper",
                         deltas: Sequence[float] = DEFAULT_DELTAS) -> dict:
    """Everything the trust-region panel draws, for one setting of its controls.

    ``{"delta", "eta_max", "convention", "deltas", "curves": step_size_curves(...),
    "other_convention": {name: predicted KL of the other convention over deltas},
    "at_delta": {name: step_at(..., delta, ...)}, "limit_ratio": {name: batch.limit_ratio(name)}}``.
    """
    _check_convention(convention)
    other = CONVENTIONS[1 - CONVENTIONS.index(convention)]
    deltas = np.asarray(deltas, dtype=float)
    return {
        "delta": float(delta),
        "eta_max": float(eta_max),
        "convention": convention,
        "other": other,
        "deltas": deltas,
        "curves": step_size_curves(batch, deltas, eta_max, convention),
        "other_convention": {
            name: np.array([predicted_kl(d.quadratic, effective_step_size(d.quadratic, x, eta_max, other))
                            for x in deltas])
            for name, d in batch.directions.items()
        },
        "at_delta": {name: step_at(batch, name, delta, eta_max, convention) for name in batch.directions},
        "limit_ratio": {name: batch.limit_ratio(name) for name in batch.directions},
    }


# ------------------------------------------------------------------------------------------
# Problem 2: the trust region during training
# ------------------------------------------------------------------------------------------


def contextual_run(preconditioner: str = "kfac", *, delta: float = 0.01, eta_max: float = 1.0, updates: int = 100,
                   batch_size: int = 64, damping: float = 1e-2, stats_decay: float = 0.95, seed: int = 0,
                   eval_contexts: int = 1000, problem: ContextualBandit | None = None) -> dict[str, np.ndarray]:
    """Train the contextual-bandit policy with trust-region natural-gradient steps; per update record
    ``eta``, ``quadratic`` (q), ``predicted_kl`` (½η²q), ``measured_kl`` (on the update's batch),
    ``capped``, and before it ``entropy`` and ``expected_reward`` (on a fixed evaluation set).

    ``"exact"``: Δ = (F + λI)⁻¹g, q = ΔᵀFΔ with the exact batch Fisher. ``"kfac"``: ACKTR's actor
    update: a Fisher pass with actions sampled from π, factors averaged with ``stats_decay``,
    inverses every update, q from ``KFAC.precondition``. Also returns ``best_reward`` (the
    expected reward of the optimal policy on the evaluation set).
    """
    if preconditioner not in PRECONDITIONERS:
        raise ValueError(f"preconditioner must be one of {PRECONDITIONERS}, got {preconditioner!r}")
    problem = ContextualBandit.make() if problem is None else problem
    gen = _generator(2000 + seed)
    eval_x = problem.contexts(eval_contexts, _generator(7))
    eval_r = problem.mean_rewards(eval_x)
    policy = make_policy(seed, problem.context_dim, HIDDEN, problem.num_actions)
    kfac = _kfac(policy, damping, stats_decay=stats_decay) if preconditioner == "kfac" else None
    keys = ("eta", "quadratic", "predicted_kl", "measured_kl", "capped", "entropy", "expected_reward")
    out = {k: np.zeros(updates) for k in keys}
    for t in range(updates):
        with torch.no_grad():
            p_eval = torch.softmax(policy(eval_x), -1)
            out["entropy"][t] = float(torch.distributions.Categorical(probs=p_eval).entropy().mean())
            out["expected_reward"][t] = float((p_eval * eval_r).sum(-1).mean())
        contexts, actions, advantages = _sample_batch(problem, policy, batch_size, gen)
        if kfac is None:
            g = policy_gradient(policy, contexts, actions, advantages)
            fisher = fisher_matrix(policy, contexts, Categorical())
            # the dense solve of rlkit.fisher.natural_gradient, reusing F (it is needed for q anyway)
            direction = torch.linalg.solve(fisher + damping * torch.eye(len(g), dtype=DTYPE), g)
            q = float(direction @ fisher @ direction)
            with torch.no_grad():
                old_logits = policy(contexts)
        else:
            logits = policy(contexts)
            kfac.update_stats(categorical_fisher_loss(logits, generator=gen))
            objective = (advantages * Categorical().log_prob(logits, actions)).mean()
            direction, q = _kfac_direction(kfac, policy, objective)
            old_logits = logits.detach()
        eta = effective_step_size(q, delta, eta_max)
        _add_step(policy, direction, eta)
        with torch.no_grad():
            new_logits = policy(contexts)
        out["eta"][t], out["quadratic"][t] = eta, q
        out["predicted_kl"][t] = predicted_kl(q, eta)
        out["measured_kl"][t] = measured_kl(Categorical().torch_distribution(old_logits),
                                            Categorical().torch_distribution(new_logits))
        out["capped"][t] = eta == eta_max
    if kfac is not None:
        kfac.remove()
    out["best_reward"] = np.array(float(eval_r.max(-1).values.mean()))
    return out


# ------------------------------------------------------------------------------------------
# Problem 3: the K-armed bandit
# ------------------------------------------------------------------------------------------


def bandit_runs(step_rule: str, value: float, *, runs: int = 20, updates: int = 200, arms: int = 5, pulls: int = 8,
                noise: float = 1.0, reward_scale: float = 1.0, damping: float = 1e-2, eta_max: float = 1.0,
                convention: str = "paper", seed: int = 0) -> dict[str, np.ndarray]:
    """``runs`` independent natural-gradient runs on the K-armed bandit, advanced together.

    ``step_rule="fixed"``: θ += αΔ with α = ``value``; ``"trust_region"``: θ += ηΔ with
    η = ``effective_step_size(q, delta=value, eta_max, convention)`` per run. Returns arrays of
    shape (runs, updates), each recorded for the update that starts from the policy of that row:
    ``entropy`` (nats), ``expected_reward`` (divided by ``reward_scale``, so 1 is the best arm),
    ``p_best`` (probability of the best arm), ``eta``, ``quadratic``, ``predicted_kl``,
    ``measured_kl`` (KL(π_old ‖ π_new) by ``torch.distributions``); and ``logits`` (runs, updates + 1,
    arms), the policies visited, ``final_probs`` (runs, arms), ``means`` (arms,). Seeded and deterministic.
    """
    if step_rule not in STEP_RULES:
        raise ValueError(f"step_rule must be one of {STEP_RULES}, got {step_rule!r}")
    value = _check_positive("value (the learning rate or δ)", value)
    _check_convention(convention)
    reward_scale = _check_positive("reward_scale", reward_scale)
    gen = _generator(seed)
    means = reward_scale * torch.linspace(0, 1, arms, dtype=DTYPE)
    theta = torch.zeros(runs, arms, dtype=DTYPE)
    damped = damping * torch.eye(arms, dtype=DTYPE)
    keys = ("entropy", "expected_reward", "p_best", "eta", "quadratic", "predicted_kl", "measured_kl")
    out = {k: np.zeros((runs, updates)) for k in keys}
    visited = [theta.clone()]
    for t in range(updates):
        theta.requires_grad_(True)
        log_p = torch.log_softmax(theta, -1)
        p = log_p.detach().exp()
        actions = torch.multinomial(p, pulls, replacement=True, generator=gen)
        rewards = means[actions] + noise * reward_scale * torch.randn(runs, pulls, generator=gen, dtype=DTYPE)
        baseline = p @ means
        advantages = rewards - baseline[:, None]
        (g,) = torch.autograd.grad((advantages * log_p.gather(1, actions)).mean(1).sum(), theta)
        theta = theta.detach()
        fisher = Categorical().output_fisher(theta)  # J = I for θ = logits: F = diag(p) − ppᵀ per run
        direction = torch.linalg.solve(fisher + damped, g)
        q = (g * direction).sum(1).clamp_min(0.0)  # gᵀ(F + λI)⁻¹g >= 0; clamp round-off only
        if step_rule == "fixed":
            eta = torch.full((runs,), value, dtype=DTYPE)
        else:
            eta = torch.tensor([effective_step_size(float(qi), value, eta_max, convention) for qi in q], dtype=DTYPE)
        new_theta = theta + eta[:, None] * direction
        kl = torch.distributions.kl_divergence(torch.distributions.Categorical(logits=theta),
                                               torch.distributions.Categorical(logits=new_theta))
        out["entropy"][:, t] = torch.distributions.Categorical(logits=theta).entropy().numpy()
        out["expected_reward"][:, t] = (baseline / reward_scale).numpy()
        out["p_best"][:, t] = p[:, -1].numpy()
        out["eta"][:, t] = eta.numpy()
        out["quadratic"][:, t] = q.numpy()
        out["predicted_kl"][:, t] = (0.5 * eta**2 * q).numpy()
        out["measured_kl"][:, t] = kl.numpy()
        theta = new_theta
        visited.append(theta.clone())
    out["logits"] = torch.stack(visited, 1).numpy()
    out["final_probs"] = torch.softmax(theta, -1).numpy()
    out["means"] = means.numpy()
    return out


def bandit_summary(result: dict[str, np.ndarray], at: int = 25) -> dict[str, float]:
    """Numbers that carry the lesson of :func:`bandit_runs`.

    ``entropy_at``: median entropy after ``at`` updates; ``final_entropy``: median at the end;
    ``on_best``: fraction of runs whose final policy puts more than ½ on the best arm;
    ``stuck_wrong``: fraction near-deterministic (> 0.99) on a worse arm; ``final_reward``: mean
    final expected reward (1 = best arm); ``median_kl``, ``max_kl``: measured KL per step over all
    runs and updates.
    """
    final = result["final_probs"]
    probs_best = final[:, -1]
    worst_dominant = final[:, :-1].max(1)
    final_reward = final @ (result["means"] / result["means"][-1])
    return {
        "entropy_at": float(np.median(result["entropy"][:, at])),
        "final_entropy": float(np.median(result["entropy"][:, -1])),
        "on_best": float(np.mean(probs_best > 0.5)),
        "stuck_wrong": float(np.mean(worst_dominant > 0.99)),
        "final_reward": float(np.mean(final_reward)),
        "median_kl": float(np.median(result["measured_kl"])),
        "max_kl": float(np.max(result["measured_kl"])),
    }
