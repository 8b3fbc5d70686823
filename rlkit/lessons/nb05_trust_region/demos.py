"""Small plain pieces behind notebook 05 (the trust region) and its panel in
:mod:`rlkit.lessons.nb05_trust_region.panels`.

Nothing here is an algorithm of its own: the step size and the predicted KL come from
:mod:`rlkit.trust_region`, exact Fisher matrices and natural gradients from :mod:`rlkit.fisher`,
K-FAC from :mod:`rlkit.kfac` (the Fisher pass's square root from :mod:`rlkit.critic`),
measured KLs from ``torch.distributions``. This module sets up the small problems the notebook
draws and measures things about them, so that the notebook stays short and the numbers behind
its pictures are tested (``tests/lessons/test_nb05_demos.py``).

* :class:`ContextualBandit` and :func:`make_policy`: the contextual bandit and the small policy
  the notebook trains (its actor loop is written in the notebook itself);
* :func:`fixed_batch`: one batch of that policy, with an exact-Fisher and a K-FAC direction; a
  new δ only rescales them (:func:`step_size_curves`, and the panel's :func:`step_size_panel_data`
  with the axis limits :func:`panel_limits`, which no slider changes);
* :func:`bandit_runs`: a K-armed bandit with a tabular softmax policy, a fixed natural-gradient
  learning rate against the trust region.

The rule is ACKTR's step size, η = min(η_max, sqrt(2δ/q)) (``"paper"``) or openai/baselines'
sqrt(δ/q) (``"baselines"``), as docs/design.md states it; why a fixed rate collapses is taught in
notebook 05. The problems in detail: docs/plumbing.md, *rlkit.lessons.nb05_trust_region.demos*.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from rlkit.critic import categorical_fisher_sqrt
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
    "ETA_MAX_RANGE",
    "ContextualBandit",
    "make_policy",
    "policy_gradient",
    "Direction",
    "FixedBatch",
    "fixed_batch",
    "delta_cap",
    "step_size_curves",
    "step_at",
    "panel_limits",
    "step_size_panel_data",
    "bandit_runs",
    "bandit_summary",
]

DTYPE = torch.float64
PRECONDITIONERS = ("exact", "kfac")
LABELS = {"exact": "exact Fisher", "kfac": "K-FAC"}
STEP_RULES = ("fixed", "trust_region")
#: The δ grid of the panel's curves: 41 points, log-spaced from 1e-5 to 1e-1 (ten per decade).
DEFAULT_DELTAS = np.logspace(-5, -1, 41)
#: The range of the panel's eta_max slider: the figure's axes cover every step it can select.
ETA_MAX_RANGE = (0.01, 1.0)

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


def panel_limits(batch: FixedBatch, deltas: Sequence[float] = DEFAULT_DELTAS,
                 eta_max_range: tuple[float, float] = ETA_MAX_RANGE, points: int = 41) -> dict:
    """Axis limits of the trust-region figure that hold for every setting of its controls.

    With δ in ``deltas``, η_max in ``eta_max_range`` and either convention, a step along Δ has
    η between min(η_max low, sqrt(δ_min/q)) and min(η_max high, sqrt(2δ_max/q)); ``points``
    log-spaced steps over that range give the lowest and highest KL (predicted and measured,
    which grow with η) and the largest ratio measured/predicted. Returns
    ``{"delta": (low, high), "kl": (low, high), "ratio": (0, high)}`` (log margins of 5%, the
    ratio's top 15% above its largest value, the δ → 0 limits and 1 included): a slider move
    never rescales an axis, so the panel can redraw only what moved.
    """
    deltas = np.asarray(deltas, dtype=float)
    low, high = _check_positive("eta_max_range[0]", eta_max_range[0]), _check_positive("eta_max_range[1]", eta_max_range[1])
    kl_low, kl_high, ratio_high = deltas[0], deltas[-1], 1.0
    for name, d in batch.directions.items():
        q = d.quadratic
        etas = np.geomspace(min(low, effective_step_size(q, deltas[0], high, "baselines")),
                            effective_step_size(q, deltas[-1], high, "paper"), points)
        predicted = np.array([predicted_kl(q, eta) for eta in etas])
        measured = np.array([batch.measured_kl(name, eta) for eta in etas])
        kl_low = min(kl_low, predicted.min(), measured.min())
        kl_high = max(kl_high, predicted.max(), measured.max())
        ratio_high = max(ratio_high, float(np.max(measured / predicted)), batch.limit_ratio(name))
    pad_delta, pad_kl = (deltas[-1] / deltas[0]) ** 0.05, (kl_high / kl_low) ** 0.05
    return {"delta": (deltas[0] / pad_delta, deltas[-1] * pad_delta), "kl": (kl_low / pad_kl, kl_high * pad_kl),
            "ratio": (0.0, 1.15 * ratio_high)}


def step_size_panel_data(batch: FixedBatch, delta: float = 0.01, eta_max: float = 0.15, convention: str = "paper",
                         deltas: Sequence[float] = DEFAULT_DELTAS, limits: dict | None = None) -> dict:
    """Everything the trust-region panel draws, for one setting of its controls.

    ``{"delta", "eta_max", "convention", "other", "deltas", "curves": step_size_curves(...),
    "other_convention": {name: predicted KL of the other convention over deltas},
    "at_delta": {name: step_at(..., delta, ...)}, "limit_ratio": {name: batch.limit_ratio(name)},
    "limits": panel_limits(batch, deltas)}``; ``limits`` passes limits computed once (the panel's).
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
        "limits": panel_limits(batch, deltas) if limits is None else limits,
    }


# ------------------------------------------------------------------------------------------
# Problem 2: the K-armed bandit
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
