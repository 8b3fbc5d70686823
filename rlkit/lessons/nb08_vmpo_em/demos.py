"""Small plain pieces behind notebook 08 (V-MPO's EM) and its panels in
:mod:`rlkit.lessons.nb08_vmpo_em.panels`.

Nothing here is an algorithm of its own: the selection, ψ, the temperature loss and the E-step KL
come from :func:`rlkit.vmpo.e_step` / :func:`rlkit.vmpo.top_k_mask`; the M-step losses from
:func:`rlkit.vmpo.policy_loss` and :func:`rlkit.vmpo.kl_constraint_loss`; the KLs from
:func:`rlkit.vmpo.categorical_kl` and :func:`rlkit.vmpo.decoupled_gaussian_kl`; the duals from
:class:`rlkit.vmpo.DualVariables`; the rollout from ``rlkit.envs`` / ``rlkit.rollout`` / ``rlkit.agents``.
This module sets up the small problems the notebook draws, so that the numbers behind its
pictures are tested (``tests/lessons/test_nb08_demos.py``). The temperature is τ (notation.md);
rlkit's arguments and the paper call it η, and so do the names here that follow rlkit's.

* :func:`bandit_batch` (a 5-armed bandit, a perfect critic) and :func:`cartpole_batch` (one seeded
  CartPole-v1 rollout by an untrained actor-critic, with its ``valid`` mask): the E-step's inputs;
* :func:`solve_eta`, :func:`temperature_curve`: the temperature's dual, its minimizer τ* found by
  bisection with rlkit's own KL;
* :func:`fit_categorical`, :func:`m_step_sweep`: the M-step, a fixed number of Adam steps on
  L_π + L_α with α learned, over a grid of ε_α;
* :func:`gaussian_m_step`, :func:`gaussian_em`: the constrained M-step of a one-dimensional
  Gaussian policy solved exactly, decoupled or with one budget on the whole KL, once or repeated.

The derivations are taught in notebook 08; the problems in detail: docs/plumbing.md,
*rlkit.lessons.nb08_vmpo_em.demos*.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from rlkit.vmpo import (
    DualVariables,
    categorical_kl,
    decoupled_gaussian_kl,
    e_step,
    kl_constraint_loss,
    policy_loss,
    top_k_mask,
)

__all__ = [
    "BANDIT_MEANS",
    "DEFAULT_ETAS",
    "DEFAULT_EPS_ALPHAS",
    "EBatch",
    "bandit_batch",
    "cartpole_batch",
    "selection_summary",
    "solve_eta",
    "temperature_curve",
    "eps_eta_panel_data",
    "TabularPolicy",
    "fit_categorical",
    "m_step_sweep",
    "eps_alpha_panel_data",
    "gaussian_kl_parts",
    "gaussian_bandit_weights",
    "gaussian_m_step",
    "gaussian_em",
]

#: the bandit's mean rewards r̄(a), arm 4 the best
BANDIT_MEANS = (0.0, 0.25, 0.5, 0.75, 1.0)
#: the τ grid of the L_τ curves (log-spaced)
DEFAULT_ETAS = np.logspace(-2.5, 1.5, 121)
#: the ε_α grid of the M-step sweep; the eps_alpha slider steps on it (10^(-3 + 0.25 j))
DEFAULT_EPS_ALPHAS = np.logspace(-3, -0.5, 11)


@dataclass(frozen=True)
class EBatch:
    """Advantages for an E-step, with what produced them.

    advantages: float64, any shape ((N,) for the bandit, (T, N) for a rollout); invalid entries may hold anything.
    valid:      bool, same shape, or None (all valid).
    actions:    int64, same shape: the action taken at each sample.
    num_actions: the number of actions.
    old_logits: float64 (..., C): π_old's logits at each sample (the same row everywhere for the bandit).
    name:       a label.
    """

    advantages: Tensor
    valid: Tensor | None
    actions: Tensor
    num_actions: int
    old_logits: Tensor
    name: str


def bandit_batch(seed: int = 0, pulls: int = 32, noise: float = 0.5) -> EBatch:
    """32 pulls of a 5-armed bandit (means :data:`BANDIT_MEANS`, Gaussian noise) under the uniform π_old.

    A = r − V, V = mean of the means (the exact value of the uniform policy).
    """
    gen = torch.Generator().manual_seed(seed)
    means = torch.tensor(BANDIT_MEANS, dtype=torch.float64)
    k = means.numel()
    actions = torch.randint(0, k, (pulls,), generator=gen)
    rewards = means[actions] + noise * torch.randn(pulls, generator=gen, dtype=torch.float64)
    advantages = rewards - means.mean()
    old_logits = torch.zeros(pulls, k, dtype=torch.float64)
    return EBatch(advantages, None, actions, k, old_logits, "bandit")


def cartpole_batch(seed: int = 0, num_envs: int = 4, num_steps: int = 64, gamma: float = 0.99) -> EBatch:
    """One seeded rollout of CartPole-v1 by an untrained actor-critic; n-step advantages on the (T, N) grid.

    Invalid (reset) steps have advantage 0 from ``rlkit.rollout``; here they are set to NaN, so
    that any use of them would show (rlkit's E-step never reads them when given ``valid``).
    """
    from rlkit.agents import make_agent
    from rlkit.envs import EnvSummary, make_vec_env
    from rlkit.rollout import RolloutCollector

    envs = make_vec_env("CartPole-v1", num_envs)
    try:
        agent = make_agent("a2c", EnvSummary.of(envs), seed=seed)
        rollout = RolloutCollector(envs, num_steps, seed=seed).collect(agent.policy)
    finally:
        envs.close()
    advantages = rollout.k_step_returns(gamma) - rollout.values
    advantages = torch.where(rollout.valid, advantages, torch.full_like(advantages, float("nan"))).double()
    with torch.no_grad():
        old_logits = agent.model.pd_params(rollout.obs).double()
    return EBatch(advantages, rollout.valid.clone(), rollout.actions.clone(), int(old_logits.shape[-1]),
                  old_logits, "CartPole-v1 rollout")


def selection_summary(batch: EBatch, fraction: float = 0.5) -> dict:
    """The top-k selection 𝒟̃ (``rlkit.vmpo.top_k_mask``) and what it picked.

    Returns mask, k, n_valid, n_invalid, invalid_selected (always 0), the smallest selected and the
    largest unselected valid advantage (the threshold lies between), and ``invalid_if_forgotten``:
    how many invalid steps a top-k that forgets ``valid`` would pick when the advantages are
    standardized (as many ports do) and the invalid steps hold 0 (``rlkit.rollout``'s convention).
    """
    adv, valid = batch.advantages, batch.valid
    mask = top_k_mask(adv, fraction, valid)
    v = torch.ones_like(mask) if valid is None else valid
    out = {
        "mask": mask,
        "k": int(mask.sum()),
        "n_valid": int(v.sum()),
        "n_invalid": int((~v).sum()),
        "invalid_selected": int((mask & ~v).sum()),
        "min_selected": float(adv[mask].min()),
        "max_unselected": float(adv[v & ~mask].max()) if bool((v & ~mask).any()) else float("nan"),
    }
    standardized = (adv - adv[v].mean()) / adv[v].std()
    zero_filled = torch.where(v, standardized, torch.zeros_like(adv))
    out["invalid_if_forgotten"] = int((top_k_mask(zero_filled, fraction) & ~v).sum())
    return out


def _kl_at(batch: EBatch, eta: float, eps_eta: float, fraction: float) -> float:
    return float(e_step(batch.advantages, eta, eps_eta, fraction, batch.valid).kl)


def solve_eta(batch: EBatch, eps_eta: float, fraction: float = 0.5, *, low: float = 1e-6, high: float = 1e6,
              iterations: int = 200) -> float:
    """η* = argmin L_η: the root of ε_η − KL(ψ_η ‖ U_𝒟̃) by bisection in log η (KL from ``e_step``).

    KL decreases in η, so KL > ε_η means η is too small. Returns ``low`` if even η = low gives a KL
    below ε_η (ε_η ≥ log(k/m): no interior minimum), ``high`` if η = high still exceeds it.
    """
    if _kl_at(batch, low, eps_eta, fraction) <= eps_eta:
        return low
    if _kl_at(batch, high, eps_eta, fraction) >= eps_eta:
        return high
    lo, hi = math.log(low), math.log(high)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        if _kl_at(batch, math.exp(mid), eps_eta, fraction) > eps_eta:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-13:
            break
    return math.exp(0.5 * (lo + hi))


def temperature_curve(batch: EBatch, eps_eta: float, etas=DEFAULT_ETAS, fraction: float = 0.5) -> dict:
    """L_η(η), KL(ψ_η ‖ U) and dL_η/dη (autograd through ``e_step``'s loss) over the η grid."""
    losses, kls, grads = [], [], []
    for eta in np.asarray(etas, dtype=float):
        eta_t = torch.tensor(eta, dtype=torch.float64, requires_grad=True)
        step = e_step(batch.advantages, eta_t, eps_eta, fraction, batch.valid)
        (grad,) = torch.autograd.grad(step.loss, eta_t)
        losses.append(float(step.loss.detach()))
        kls.append(float(step.kl))
        grads.append(float(grad))
    return {"etas": np.asarray(etas, dtype=float), "loss": np.array(losses), "kl": np.array(kls),
            "grad": np.array(grads), "eps_eta": float(eps_eta)}


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def eps_eta_panel_data(batch: EBatch, eps_eta: float = 0.1, fraction: float = 0.5, *, curve: dict | None = None,
                       etas=DEFAULT_ETAS) -> dict:
    """Everything the ε_η panel draws, at one ε_η.

    ``curve``: :func:`temperature_curve` precomputed at any ε_η (L_τ is shifted by τ·Δε_η here, the
    KL does not depend on ε_η), so a slider move costs one bisection and one E-step.
    Keys: eps_eta, tau_star, kl_star (= ε_η at an interior optimum), grad_star (dL_τ/dτ at τ*),
    loss_star, psi_sorted (descending, the selected samples), max_psi, entropy_psi, log_k, k,
    taus, loss (L_τ at this ε_η), kl (over the grid).
    """
    if curve is None:
        curve = temperature_curve(batch, eps_eta, etas, fraction)
    tau_star = solve_eta(batch, eps_eta, fraction)
    tau = torch.tensor(tau_star, dtype=torch.float64, requires_grad=True)
    step = e_step(batch.advantages, tau, eps_eta, fraction, batch.valid)
    (grad,) = torch.autograd.grad(step.loss, tau)
    psi = step.weights[step.mask].numpy()
    psi_sorted = np.sort(psi)[::-1]
    # L_τ at this ε_η from the precomputed curve: L = τ ε + g(τ), g independent of ε_η
    g = curve["loss"] - curve["etas"] * curve["eps_eta"]
    return {
        "eps_eta": float(eps_eta), "tau_star": tau_star, "kl_star": float(step.kl), "grad_star": float(grad),
        "loss_star": float(step.loss.detach()), "psi_sorted": psi_sorted, "max_psi": float(psi_sorted[0]),
        "entropy_psi": _entropy(psi_sorted), "k": step.num_selected, "log_k": math.log(step.num_selected),
        "taus": curve["etas"], "loss": curve["etas"] * eps_eta + g, "kl": curve["kl"], "name": batch.name,
    }


# --------------------------------------------------------------------------- M-step


class TabularPolicy(nn.Module):
    """Logits θ ∈ R^C, the same for every state (a bandit's policy); forward(n) gives (n, C) logits."""

    def __init__(self, logits: Tensor):
        super().__init__()
        self.logits = nn.Parameter(logits.detach().clone())

    def forward(self, n: int) -> Tensor:
        return self.logits.expand(n, -1)


def fit_categorical(batch: EBatch, eps_alpha: float, *, eps_eta: float = 0.1, fraction: float = 0.5,
                    steps: int = 200, lr: float = 0.02, dual_lr: float = 0.1, alpha: float = 5.0,
                    use_trust_region: bool = True) -> dict:
    """The M-step on the bandit: fit π_θ (tabular, starting at π_old) to ψ by Adam on L_π + L_α.

    ψ comes from ``e_step`` at η* (:func:`solve_eta`); L_π = ``policy_loss`` (a sum over 𝒟̃);
    L_α = ``kl_constraint_loss(KL, α, ε_α).total`` with KL = ``categorical_kl(π_old, π_θ)`` and α a
    ``DualVariables("discrete", alpha=alpha)`` with its own Adam (``dual_lr``) and projection.
    ``use_trust_region=False`` drops L_α (plain weighted maximum likelihood).

    Returns probs_old, probs_new, target (Σ ψ on each action: the unconstrained optimum), kl (final
    KL(π_old ‖ π_new)), alpha (final), kl_trace and alpha_trace (per step).
    """
    eta = solve_eta(batch, eps_eta, fraction)
    weights = e_step(batch.advantages, eta, eps_eta, fraction, batch.valid).weights
    old = batch.old_logits[0]
    policy = TabularPolicy(old)
    duals = DualVariables("discrete", alpha=alpha, dtype=torch.float64)
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    dual_opt = torch.optim.Adam(duals.parameters(), lr=dual_lr)
    duals.register_projection(dual_opt)
    n = batch.actions.numel()
    kl_trace, alpha_trace = [], []
    for _ in range(steps):
        logits = policy(n)
        log_probs = torch.log_softmax(logits, -1).gather(-1, batch.actions.reshape(-1, 1)).reshape(-1)
        loss = policy_loss(log_probs, weights)
        kl = categorical_kl(batch.old_logits, logits)
        if use_trust_region:
            loss = loss + kl_constraint_loss(kl, duals.alpha, eps_alpha).total
        opt.zero_grad()
        dual_opt.zero_grad()
        loss.backward()
        opt.step()
        if use_trust_region:
            dual_opt.step()
        kl_trace.append(float(kl.detach()))
        alpha_trace.append(duals.alpha.item())
    with torch.no_grad():
        final_kl = float(categorical_kl(old[None], policy.logits[None]))
        probs_new = torch.softmax(policy.logits, -1).numpy()
    target = np.bincount(batch.actions.numpy(), weights=weights.numpy(), minlength=batch.num_actions)
    return {"eps_alpha": float(eps_alpha), "probs_old": torch.softmax(old, -1).numpy(), "probs_new": probs_new,
            "target": target, "kl": final_kl, "alpha": duals.alpha.item(), "kl_trace": np.array(kl_trace),
            "alpha_trace": np.array(alpha_trace), "eta": eta}


def m_step_sweep(batch: EBatch, eps_alphas=DEFAULT_EPS_ALPHAS, **fit_kwargs) -> list[dict]:
    """:func:`fit_categorical` at every ε_α of the grid (what the ε_α panel reads)."""
    return [fit_categorical(batch, float(e), **fit_kwargs) for e in np.asarray(eps_alphas, dtype=float)]


def eps_alpha_panel_data(sweep: list[dict], eps_alpha: float = 0.01) -> dict:
    """The ε_α panel's data: the grid point nearest ``eps_alpha`` (in log) and the whole sweep.

    Keys: eps_alpha (the grid value used), index, eps_grid, kl_grid (final KL per grid point),
    alpha_grid, fit (the selected :func:`fit_categorical` result), kl (its final KL).
    """
    grid = np.array([f["eps_alpha"] for f in sweep])
    index = int(np.argmin(np.abs(np.log(grid) - math.log(eps_alpha))))
    fit = sweep[index]
    return {"eps_alpha": float(grid[index]), "index": index, "eps_grid": grid,
            "kl_grid": np.array([f["kl"] for f in sweep]), "alpha_grid": np.array([f["alpha"] for f in sweep]),
            "fit": fit, "kl": fit["kl"]}


# --------------------------------------------------------------------------- Gaussian KL


def gaussian_kl_parts(old_mean, old_std, new_mean, new_std) -> dict:
    """The decoupled KL parts (``rlkit.vmpo.decoupled_gaussian_kl``) beside the full KL (torch.distributions).

    Arguments are per-dimension numbers or 1-D sequences (one state, diagonal Gaussians). Returns
    mean (½ Δμᵀ Σ_old⁻¹ Δμ), covariance (½[Tr(Σ_new⁻¹Σ_old) − D + log|Σ_new|/|Σ_old|]), sum, full
    (KL(N_old ‖ N_new)) and full_minus_sum (= ½ Δμᵀ(Σ_new⁻¹ − Σ_old⁻¹)Δμ).
    """
    t = lambda x: torch.as_tensor(x, dtype=torch.float64).reshape(1, -1)  # noqa: E731
    om, os_, nm, ns = t(old_mean), t(old_std), t(new_mean), t(new_std)
    parts = decoupled_gaussian_kl(om, os_, nm, ns)
    old = torch.distributions.Independent(torch.distributions.Normal(om, os_), 1)
    new = torch.distributions.Independent(torch.distributions.Normal(nm, ns), 1)
    full = float(torch.distributions.kl_divergence(old, new).sum())
    mean, cov = float(parts.mean), float(parts.covariance)
    return {"mean": mean, "covariance": cov, "sum": mean + cov, "full": full, "full_minus_sum": full - mean - cov}


def gaussian_bandit_weights(seed: int = 0, n: int = 64, target: float = 1.5, eps_eta: float = 0.1,
                            fraction: float = 0.5) -> dict:
    """A one-dimensional continuous bandit for the Gaussian M-step: actions a ~ π_old = N(0, 1),
    reward −(a − target)², A = r − mean r; ψ from ``e_step`` at η* (:func:`solve_eta`).

    Returns actions (n,), weights ψ (n,), and the ψ-weighted mean and std (the unconstrained fit).
    """
    gen = torch.Generator().manual_seed(seed)
    actions = torch.randn(n, generator=gen, dtype=torch.float64)
    rewards = -(actions - target) ** 2
    batch = EBatch(rewards - rewards.mean(), None, torch.zeros(n, dtype=torch.long), 1,
                   torch.zeros(n, 1, dtype=torch.float64), "continuous bandit")
    eta = solve_eta(batch, eps_eta, fraction)
    weights = e_step(batch.advantages, eta, eps_eta, fraction).weights
    mean = float((weights * actions).sum())
    std = float((weights * (actions - mean) ** 2).sum().sqrt())
    return {"actions": actions, "weights": weights, "mle_mean": mean, "mle_std": std, "eta": eta}


# --------------------------------------------------------------------------- the Gaussian M-step, exactly
#
# One state, one action dimension. In coordinates relative to π_old = N(μ_old, σ_old²),
# u = (μ − μ_old)/σ_old and v = log(σ/σ_old), with x = (a − μ_old)/σ_old the actions, m = Σψx and
# s² = Σψ(x − m)²: the weighted log-likelihood is, up to a constant, −v − (s² + (m − u)²)/(2e^{2v}),
# and the KLs are KL_μ = u²/2, KL_Σ = ½(e^{−2v} − 1 + 2v), KL = KL_Σ + u²/(2e^{2v}).


def _kl_cov(v):
    """KL_Σ of a log-std change v: ½(e^{−2v} − 1 + 2v) (numbers or arrays)."""
    return 0.5 * (np.expm1(-2.0 * np.asarray(v, dtype=float)) + 2.0 * np.asarray(v, dtype=float))


def _cov_interval(eps: float) -> tuple[float, float]:
    """The log-std changes v with KL_Σ(v) ≤ eps: [v_low, v_high] around 0, by bisection on each side."""
    def root(inside: float, outside: float) -> float:
        for _ in range(200):
            mid = 0.5 * (inside + outside)
            inside, outside = (mid, outside) if _kl_cov(mid) <= eps else (inside, mid)
        return inside

    return root(0.0, -20.0), root(0.0, 20.0)


def _weighted_log_likelihood(u, v, m: float, s2: float):
    return -v - (s2 + (m - u) ** 2) / (2.0 * np.exp(2.0 * v))


def gaussian_m_step(actions: Tensor, weights: Tensor, old_mean: float = 0.0, old_std: float = 1.0, *,
                    eps_alpha_mu: float = 0.01, eps_alpha_sigma: float = 1e-4, coupled_eps: float | None = None,
                    grid: int = 4001) -> dict:
    """The M-step of a one-dimensional Gaussian policy, solved exactly instead of by gradient steps.

    Maximizes Σ ψ log N(a; μ, σ²) over (μ, σ) subject to, decoupled (``coupled_eps=None``, V-MPO),
    KL_μ ≤ ε_α_μ and KL_Σ ≤ ε_α_Σ (the parts of KL(π_old ‖ π)); or, coupled, KL(π_old ‖ π) ≤
    ``coupled_eps`` (one budget on the whole KL). Decoupled, the problem separates: μ moves to the
    weighted mean, clipped to |u| ≤ √(2 ε_α_μ); σ to the weighted spread around the new mean,
    clipped to the interval where KL_Σ ≤ ε_α_Σ (the objective is concave in v). Coupled: for each v
    the best u is the weighted mean clipped to the KL's remaining room, and v is found on a grid of
    the feasible interval, then refined by ternary search. This is the problem V-MPO's gradient
    steps on L_π + L_α approximate.

    Returns mean, std, kl_mean, kl_cov, kl_full (rlkit's ``decoupled_gaussian_kl`` and
    torch.distributions, through :func:`gaussian_kl_parts`), and mle_mean, mle_std (the
    unconstrained weighted fit).
    """
    a = np.asarray(actions.detach(), dtype=float)
    w = np.asarray(weights.detach(), dtype=float)
    x = (a - old_mean) / old_std
    m = float((w * x).sum())
    s2 = float((w * (x - m) ** 2).sum())
    if coupled_eps is None:
        bound = math.sqrt(2.0 * eps_alpha_mu)
        u = min(max(m, -bound), bound)
        low, high = _cov_interval(eps_alpha_sigma)
        v = min(max(0.5 * math.log(s2 + (m - u) ** 2), low), high)
    else:
        low, high = _cov_interval(coupled_eps)

        def best(v):
            room = np.exp(v) * np.sqrt(np.maximum(2.0 * (coupled_eps - _kl_cov(v)), 0.0))
            u = np.clip(m, -room, room)
            return u, _weighted_log_likelihood(u, v, m, s2)

        vs = np.linspace(low, high, grid)
        j = int(np.argmax(best(vs)[1]))
        lo, hi = vs[max(j - 1, 0)], vs[min(j + 1, grid - 1)]
        for _ in range(100):
            a1, a2 = lo + (hi - lo) / 3, hi - (hi - lo) / 3
            lo, hi = (a1, hi) if best(a1)[1] < best(a2)[1] else (lo, a2)
        v = 0.5 * (lo + hi)
        u = float(best(v)[0])
    mean, std = old_mean + old_std * u, old_std * math.exp(v)
    parts = gaussian_kl_parts(old_mean, old_std, mean, std)
    return {"mean": mean, "std": std, "kl_mean": parts["mean"], "kl_cov": parts["covariance"],
            "kl_full": parts["full"], "mle_mean": old_mean + old_std * m, "mle_std": old_std * math.sqrt(s2)}


def gaussian_em(target: float = 0.3, iterations: int = 30, *, n: int = 64, seed: int = 0, eps_eta: float = 0.1,
                fraction: float = 0.5, eps_alpha_mu: float = 0.01, eps_alpha_sigma: float = 1e-4,
                coupled_eps: float = 0.0101) -> dict:
    """V-MPO's EM repeated on the one-dimensional bandit (reward −(a − target)²), from π = N(0, 1).

    Each iteration draws n actions a = μ + σ ξ from the current policy (the same seeded ξ for both
    variants), weights them with ``e_step`` at τ* (:func:`solve_eta`, ε_η), and takes the exact
    M-step (:func:`gaussian_m_step`), decoupled (ε_α_μ, ε_α_Σ) and coupled (``coupled_eps``).
    Returns {"decoupled": {"mean": (iterations + 1,), "std": ...}, "coupled": {...}}, index 0 the start.
    """
    gen = torch.Generator().manual_seed(seed)
    noise = [torch.randn(n, generator=gen, dtype=torch.float64) for _ in range(iterations)]
    out = {}
    for name, kwargs in [("decoupled", {"eps_alpha_mu": eps_alpha_mu, "eps_alpha_sigma": eps_alpha_sigma}),
                         ("coupled", {"coupled_eps": coupled_eps})]:
        mean, std, means, stds = 0.0, 1.0, [0.0], [1.0]
        for xi in noise:
            actions = mean + std * xi
            rewards = -(actions - target) ** 2
            batch = EBatch(rewards - rewards.mean(), None, torch.zeros(n, dtype=torch.long), 1,
                           torch.zeros(n, 1, dtype=torch.float64), "continuous bandit")
            weights = e_step(batch.advantages, solve_eta(batch, eps_eta, fraction), eps_eta, fraction).weights
            step = gaussian_m_step(actions, weights, mean, std, **kwargs)
            mean, std = step["mean"], step["std"]
            means.append(mean)
            stds.append(std)
        out[name] = {"mean": np.array(means), "std": np.array(stds)}
    return out
