"""Exercise checks for notebook 09 (full V-MPO runs).

The data are the notebook's own: a run directory it trained (``updates.csv``, ``config.json``) and
the ε_η × ε_α sweep (:func:`rlkit.experiments.sweeps.load_sweep`). Each check takes the student's answer
(``None`` while the exercise is not done: the check says so and returns False, it does not raise)
and the data, computes the expected value with rlkit (:mod:`rlkit.lessons.nb09_vmpo_runs.demos`,
:mod:`rlkit.experiments.sweeps`) and prints ✓ or ✗ with a hint naming the typical mistake.

Implementation exercise (4): :func:`check_learner_loss` runs the student's L_τ + L_π + L_α on seeded random
batches against rlkit (``rlkit.lessons.checks.check_implementation``), value and gradients, and names the
typical mistakes of public V-MPO ports (docs/design.md, "V-MPO's pitfalls").
"""
from __future__ import annotations

import math
import os

import numpy as np
import torch

from rlkit.lessons.checks import NOT_DONE, check_implementation, close, report

__all__ = ["expected_temperature_dual", "check_temperature_dual", "expected_mstep_ratio", "check_mstep_ratio",
           "fastest_points", "check_fastest_point", "check_learner_loss"]


# ----------------------------------------------------------------------------- exercise 1


def _row(run_dir, update: int) -> dict[str, float]:
    from rlkit.lessons.nb09_vmpo_runs.demos import read_updates

    u = read_updates(run_dir)
    index = np.flatnonzero(u["update"] == update)
    if not len(index):
        raise ValueError(f"{run_dir} has no update {update} "
                         f"(it has updates {int(u['update'][0])}…{int(u['update'][-1])})")
    return {name: float(values[index[0]]) for name, values in u.items()}


def expected_temperature_dual(run_dir: str | os.PathLike, update: int) -> tuple[float, float]:
    """(dL_τ/dτ, H(ψ)) at ``update`` of a V-MPO run: ε_η − KL(ψ ‖ U) and log k − KL(ψ ‖ U), with the
    KL (``estep_kl``) and k (``num_selected``) from its updates.csv and ε_η from its config.json."""
    from rlkit.lessons.nb09_vmpo_runs.demos import run_budgets

    row = _row(run_dir, update)
    eps_eta = run_budgets(run_dir)["eps_eta"]
    return eps_eta - row["estep_kl"], math.log(row["num_selected"]) - row["estep_kl"]


def check_temperature_dual(answer, run_dir: str | os.PathLike, update: int) -> bool:
    """Exercise 1: ``[dL_τ/dτ, H(ψ)]`` at row ``update`` of the run's updates.csv."""
    what = f"[dL_τ/dτ, H(ψ)] at update {update}"
    if answer is None:
        return report(False, what, NOT_DONE)
    grad, entropy = expected_temperature_dual(run_dir, update)
    ok, hint = close(answer, [grad, entropy], rtol=1e-3, atol=1e-5)
    if not ok:
        row = _row(run_dir, update)
        kl, k = row["estep_kl"], row["num_selected"]
        if close(answer, [-grad, entropy], rtol=1e-3, atol=1e-5)[0]:
            hint = ("the sign of the derivative: dL_τ/dτ = ε_η − KL (a KL above budget makes it negative, "
                    "so τ grows)")
        elif close(answer, [grad, math.log(2 * k) - kl], rtol=1e-3, atol=1e-5)[0]:
            hint = "k is the number of SELECTED samples (num_selected), not the whole batch"
        elif close(answer, [grad, math.log(k) + kl], rtol=1e-3, atol=1e-5)[0]:
            hint = "KL(ψ ‖ U) = log k − H(ψ), so H(ψ) = log k − KL"
        elif close(answer, [grad, math.log2(k) - kl], rtol=1e-3, atol=1e-5)[0]:
            hint = "natural logarithms: the KL is in nats"
    verdict = report(ok, what, hint)
    if ok:
        row = _row(run_dir, update)
        print(f"  (updates.csv: estep_kl = {row['estep_kl']:.4f}; the E-step spreads its weight over about "
              f"exp(H) = {math.exp(entropy):.1f} of the k = {int(row['num_selected'])} selected samples)")
    return verdict


# ----------------------------------------------------------------------------- exercise 2


def expected_mstep_ratio(run_dir: str | os.PathLike) -> float:
    """The mean of ``mstep_kl`` over all the run's updates divided by its ``eps_alpha`` (a categorical policy)."""
    from rlkit.lessons.nb09_vmpo_runs.demos import read_updates, run_budgets

    u = read_updates(run_dir)
    if "mstep_kl" not in u:
        raise ValueError(f"{run_dir} is not a categorical V-MPO run (its updates.csv has no mstep_kl column)")
    return float(np.mean(u["mstep_kl"])) / run_budgets(run_dir)["eps_alpha"]


def check_mstep_ratio(answer, run_dir: str | os.PathLike) -> bool:
    """Exercise 2: mean M-step KL over training ÷ ε_α."""
    what = "mean M-step KL over training / ε_α"
    if answer is None:
        return report(False, what, NOT_DONE)
    from rlkit.lessons.nb09_vmpo_runs.demos import read_updates, run_budgets

    expected = expected_mstep_ratio(run_dir)
    ok, hint = close(answer, expected, rtol=5e-3, atol=1e-6)  # three significant digits are enough
    if not ok:
        kl, eps = read_updates(run_dir)["mstep_kl"], run_budgets(run_dir)["eps_alpha"]
        if close(answer, 1 / expected, rtol=1e-3, atol=1e-6)[0]:
            hint = "upside down: the KL divided by ε_α"
        elif close(answer, float(kl[kl > 0].mean()) / eps, rtol=1e-3, atol=1e-6)[0]:
            hint = ("that leaves out the updates right after a target refresh, where the KL is 0; they are part of "
                    "the saw-tooth ε_α bounds: average over all updates")
        elif close(answer, float(kl[-1]) / eps, rtol=1e-3, atol=1e-6)[0]:
            hint = "that is the last update only; average over all updates"
        elif close(answer, float(np.median(kl)) / eps, rtol=1e-3, atol=1e-6)[0]:
            hint = "that is the median; the exercise asks for the mean"
    verdict = report(ok, what, hint)
    if ok:
        factor = max(expected, 1 / expected) if expected > 0 else math.inf
        print(f"  (ratio {expected:.3f}: the mean KL is within a factor {factor:.1f} of ε_α, "
              f"{'below' if expected < 1 else 'above'} it)")
    return verdict


# ----------------------------------------------------------------------------- exercise 3


def fastest_points(sweep, threshold: float | None = None) -> list[tuple[float, float]]:
    """The (ε_η, ε_α) points of the sweep with the fewest median env steps to ``threshold`` (all of them
    if several tie), by :func:`rlkit.experiments.sweeps.sweep_grid`; [] if no point reaches it."""
    from rlkit.experiments.sweeps import sweep_grid

    threshold = sweep.meta.get("threshold") if threshold is None else threshold
    grid = sweep_grid(sweep, "steps_to_threshold", threshold)
    values = grid["values"]
    finite = np.isfinite(values)
    if not finite.any():
        return []
    best = values[finite].min()
    points = [(float(grid["x_values"][j]), float(grid["y_values"][i])) for i, j in zip(*np.nonzero(values == best))]
    return sorted(points) if grid["x"] == "eps_eta" else sorted((b, a) for a, b in points)


def check_fastest_point(answer, sweep, threshold: float | None = None) -> bool:
    """Exercise 3: ``(eps_eta, eps_alpha)`` of the swept point that reaches the threshold in the fewest
    median env steps."""
    threshold = sweep.meta.get("threshold") if threshold is None else threshold
    what = f"the (eps_eta, eps_alpha) with the fewest median steps to {threshold:g}"
    if answer is None:
        return report(False, what, NOT_DONE)
    best = fastest_points(sweep, threshold)
    if not best:
        return report(False, what, f"no point of this sweep reaches {threshold:g}")
    ok = any(close(answer, point, rtol=1e-3, atol=0.0)[0] for point in best)
    hint = close(answer, best[0], rtol=1e-3, atol=0.0)[1]
    if not ok:
        from rlkit.experiments.sweeps import sweep_grid

        grid = sweep_grid(sweep, "steps_to_threshold", threshold)
        fewest = grid["values"][np.isfinite(grid["values"])].min()
        steps = {(float(x), float(y)): grid["values"][i, j] for i, y in enumerate(grid["y_values"])
                 for j, x in enumerate(grid["x_values"])}
        if grid["x"] != "eps_eta":
            steps = {(b, a): v for (a, b), v in steps.items()}
        mine = [v for point, v in steps.items() if close(answer, point, rtol=1e-3, atol=0.0)[0]]
        if any(close(answer, point[::-1], rtol=1e-3, atol=0.0)[0] for point in best):
            hint = "the order: (eps_eta, eps_alpha)"
        elif close(answer, (0.1, 0.01), rtol=1e-3, atol=0.0)[0]:
            hint = (f"that is the classic preset's point (median {mine[0]:,.0f} steps); the fewest is "
                    f"{fewest:,.0f}: read the sweep")
        elif mine:
            needs = ("too few seeds reach it (median: never)" if not np.isfinite(mine[0])
                     else f"the median is {mine[0]:,.0f} steps")
            hint = f"at that point {needs}; the fewest is {fewest:,.0f}"
    verdict = report(ok, what, hint)
    if ok:
        from rlkit.experiments.sweeps import sweep_grid

        steps = sweep_grid(sweep, "steps_to_threshold", threshold)["values"]
        others = [p for p in best if not close(answer, p, rtol=1e-3, atol=0.0)[0]]
        print(f"  (median {np.nanmin(steps[np.isfinite(steps)]):,.0f} env steps over the sweep's seeds"
              + (f"; tied with {others}" if others else "") + ")")
    return verdict


# ----------------------------------------------------------------------------- exercise 4 (implementation)
#
# The student writes the loss of one learner step, L_τ + L_π + L_α, from the advantages, the selection rule,
# the policy's log-probabilities and the logits of π_old and π_θ. The check compares its value AND its gradients
# to the advantages, the log-probabilities, the new logits, τ and α with rlkit's (rlkit.vmpo), so that a missing
# detach or stop-gradient shows, and names the typical mistakes of public V-MPO ports (docs/design.md).

_GRAD_INPUTS = ("advantages", "log_probs", "new_logits", "temperature", "alpha")


def _with_gradients(loss_fn):
    """``loss_fn(**case)`` → (loss, ∂loss/∂advantages, ∂/∂log_probs, ∂/∂new_logits, ∂/∂τ, ∂/∂α), each input a fresh
    leaf that requires grad; an input the loss does not reach gets a zero gradient."""
    def run(**case):
        leaves = {name: case[name].detach().clone().requires_grad_(True) for name in _GRAD_INPUTS}
        loss = loss_fn(**{**case, **leaves})
        if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
            raise TypeError(f"the loss must be a 0-dim tensor, got {type(loss).__name__}"
                            + (f" of shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else ""))
        inputs = [leaves[name] for name in _GRAD_INPUTS]
        grads = (torch.autograd.grad(loss, inputs, allow_unused=True) if loss.requires_grad else [None] * len(inputs))
        return (loss.detach(), *[torch.zeros_like(x) if g is None else g for x, g in zip(inputs, grads)])
    return run


def _reference_loss(advantages, valid, log_probs, old_logits, new_logits, temperature, alpha, eps_eta, eps_alpha):
    """rlkit's L_τ + L_π + L_α (top half of the valid samples)."""
    from rlkit.vmpo import categorical_kl, e_step, kl_constraint_loss, policy_loss

    estep = e_step(advantages, temperature, eps_eta, 0.5, valid)
    kl = categorical_kl(old_logits, new_logits, valid)
    return estep.loss + policy_loss(log_probs, estep.weights) + kl_constraint_loss(kl, alpha, eps_alpha).total


def _loss_with(advantages, valid, log_probs, old_logits, new_logits, temperature, alpha, eps_eta, eps_alpha, *,
               detach=True, psi_from="selection", log_k=True, reduce_pi="sum", reduce_kl="mean", kl_reverse=False,
               stop_gradients=True, psi_tau_detached=True, rank_invalid=False):
    """L_τ + L_π + L_α with one rule changed (the typical mistakes below)."""
    adv = advantages.detach() if detach else advantages
    ranked = torch.ones_like(valid) if rank_invalid else valid
    index = torch.nonzero(ranked).reshape(-1)
    k = max(1, math.ceil(0.5 * index.numel()))
    top = index[torch.sort(adv.detach()[index], descending=True, stable=True).indices[:k]]
    tau_psi = temperature.detach() if psi_tau_detached else temperature
    loss_tau = temperature * eps_eta + temperature * (torch.logsumexp(adv[top] / temperature, 0)
                                                      - (math.log(k) if log_k else 0.0))
    over = top if psi_from == "selection" else torch.nonzero(valid).reshape(-1)
    psi = torch.exp(adv[top] / tau_psi) / torch.exp(adv[over] / tau_psi).sum()
    terms = psi * log_probs[top]
    loss_pi = -(terms.sum() if reduce_pi == "sum" else terms.mean())
    log_old, log_new = torch.log_softmax(old_logits.detach(), -1), torch.log_softmax(new_logits, -1)
    per_state = ((log_new.exp() * (log_new - log_old)) if kl_reverse else (log_old.exp() * (log_old - log_new))).sum(-1)
    kl = per_state[valid].mean() if reduce_kl == "mean" else per_state[valid].sum()
    if stop_gradients:
        loss_alpha = alpha.detach() * kl + alpha * (eps_alpha - kl.detach())
    else:
        loss_alpha = alpha * (eps_alpha - kl)
    return loss_tau + loss_pi + loss_alpha


def _learner_loss_cases() -> list[dict]:
    """Seeded batches whose invalid samples (reset steps) hold advantages LARGER than every valid one, so that
    a top-k that ranks them shows; odd numbers of valid samples; float64."""
    gen = torch.Generator().manual_seed(9)
    cases = []
    for n, actions, n_invalid, tau, alpha, eps_eta, eps_alpha in [(12, 2, 3, 0.7, 5.0, 0.1, 0.01),
                                                                  (9, 3, 2, 1.6, 0.3, 0.05, 0.003),
                                                                  (20, 4, 5, 0.4, 2.0, 0.2, 0.02)]:
        valid = torch.ones(n, dtype=torch.bool)
        valid[torch.randperm(n, generator=gen)[:n_invalid]] = False
        advantages = torch.randn(n, generator=gen, dtype=torch.float64)
        advantages = torch.where(valid, advantages, advantages.max() + 1.0 + torch.rand(n, generator=gen,
                                                                                        dtype=torch.float64))
        old_logits = torch.randn(n, actions, generator=gen, dtype=torch.float64)
        new_logits = old_logits + 0.3 * torch.randn(n, actions, generator=gen, dtype=torch.float64)
        log_probs = -torch.rand(n, generator=gen, dtype=torch.float64) * 2.0
        cases.append({"advantages": advantages, "valid": valid, "log_probs": log_probs, "old_logits": old_logits,
                      "new_logits": new_logits, "temperature": torch.tensor(tau, dtype=torch.float64),
                      "alpha": torch.tensor(alpha, dtype=torch.float64), "eps_eta": eps_eta, "eps_alpha": eps_alpha})
    return cases


_NOT_DETACHED = ("advantages not detached: L_τ (or ψ) sends gradient into Â = G − V_φ(s), i.e. into the critic; "
                 "the E-step must work on Â.detach()")
_LEARNER_LOSS_MISTAKES = [
    (_with_gradients(lambda **c: _loss_with(**c, psi_from="valid")),
     "ψ normalized over all valid samples instead of the selected half: the softmax's denominator runs over the "
     "top k only, so that ψ sums to 1 there"),
    (_with_gradients(lambda **c: _loss_with(**c, kl_reverse=True)),
     "the KL in the wrong direction: V-MPO bounds KL(π_old ‖ π_θ), an expectation under π_old (old first)"),
    (_with_gradients(lambda **c: _loss_with(**c, detach=False)), _NOT_DETACHED),
    (_with_gradients(lambda **c: _loss_with(**c, detach=False, psi_tau_detached=False)), _NOT_DETACHED),
    (_with_gradients(lambda **c: _loss_with(**c, reduce_pi="mean")),
     "a mean where a sum belongs: L_π = −Σ ψ log π over the selection (ψ already sums to 1); a mean divides the "
     "policy's step by k"),
    (_with_gradients(lambda **c: _loss_with(**c, log_k=False)),
     "log-sum-exp without − log k: L_τ = τ ε_η + τ log MEAN exp(Â/τ), the mean over the k selected samples; "
     "without it dL_τ/dτ is no longer ε_η − KL(ψ ‖ uniform)"),
    (_with_gradients(lambda **c: _loss_with(**c, stop_gradients=False)),
     "L_α without its stop-gradients: α (ε_α − KL) gives the policy the gradient −α ∂KL/∂θ, which pushes it AWAY "
     "from π_old; write α (ε_α − sg[KL]) + sg[α] KL"),
    (_with_gradients(lambda **c: _loss_with(**c, psi_tau_detached=False)),
     "ψ carries gradient to τ: compute ψ with a detached τ, so that only L_τ trains the temperature"),
    (_with_gradients(lambda **c: _loss_with(**c, rank_invalid=True)),
     "reset steps entered the top-k: rank only the samples where valid is True (their advantages are meaningless)"),
    (_with_gradients(lambda **c: _loss_with(**c, reduce_kl="sum")),
     "the KL summed over states: it is the mean over the valid states, E_s KL(π_old ‖ π_θ)"),
]


def check_learner_loss(learner_loss) -> bool:
    """Exercise 4: ``learner_loss(advantages, valid, log_probs, old_logits, new_logits, temperature, alpha, eps_eta,
    eps_alpha)`` → L_τ + L_π + L_α; its value and its gradients against rlkit's on seeded random batches."""
    return check_implementation(_with_gradients(learner_loss), _with_gradients(_reference_loss),
                                _learner_loss_cases(), what="learner_loss", mistakes=_LEARNER_LOSS_MISTAKES)
