"""Exercise checks for notebook 08 (V-MPO's EM).

Each check takes the student's answer (``None`` while the exercise is not done: the check then
says so and returns False, it does not raise), compares it with rlkit's own computation and
prints ✓ or ✗ with a hint naming the typical mistake. The problem data are module constants, so
the notebook's text and the check read the same numbers.
"""
from __future__ import annotations

import torch

from rlkit.lessons.checks import NOT_DONE, close, report
from rlkit.vmpo import decoupled_gaussian_kl, e_step, policy_loss

__all__ = [
    "ADVANTAGES", "ETA", "LOG_PROBS", "OLD_MEAN", "OLD_STD", "NEW_MEAN", "NEW_STD",
    "expected_weights", "check_weights", "check_policy_loss", "check_mean_part",
]


#: Exercises 1 and 2: six samples, top half selected, temperature η
ADVANTAGES = (2.0, -1.0, 0.5, 1.5, -0.5, 0.0)
ETA = 1.0
#: Exercise 2: log π_θ(a_i|s_i) of the six samples
LOG_PROBS = (-0.2, -1.5, -0.9, -0.4, -2.0, -1.1)
#: Exercise 3: one state, one action dimension: π_old = N(OLD_MEAN, OLD_STD²), π_θ = N(NEW_MEAN, NEW_STD²)
OLD_MEAN, OLD_STD = 0.0, 2.0
NEW_MEAN, NEW_STD = 0.5, 1.0



def _adv() -> torch.Tensor:
    return torch.tensor(ADVANTAGES, dtype=torch.float64)


def expected_weights() -> torch.Tensor:
    """ψ by rlkit: ``e_step(ADVANTAGES, ETA, ·).weights`` (top half, softmax over the selected)."""
    return e_step(_adv(), ETA, 0.1).weights


def check_weights(answer) -> bool:
    """Exercise 1: ψ for all six samples (0 outside the selection)."""
    what = f"ψ for A = {ADVANTAGES}, top half, η = {ETA}"
    if answer is None:
        return report(False, what, NOT_DONE)
    expected = expected_weights()
    ok, hint = close(answer, expected, rtol=1e-4, atol=1e-6)
    adv = _adv()
    if not ok and close(answer, torch.softmax(adv / ETA, 0), rtol=1e-4, atol=1e-6)[0]:
        hint = "that softmax runs over all six samples; ψ is normalized over the selected top half only"
    elif not ok and close(answer, (expected > 0).double() / 3, rtol=1e-4, atol=1e-6)[0]:
        hint = "uniform on the selection: that is η → ∞; weight each selected sample by exp(A/η)"
    elif not ok and close(answer, torch.exp(adv / ETA) * (expected > 0), rtol=1e-4, atol=1e-6)[0]:
        hint = "not normalized: ψ sums to 1 over the selection"
    verdict = report(ok, what, hint)
    if ok:
        print(f"  (rlkit: e_step(...).weights = {[round(float(w), 4) for w in expected]}; the two lowest and the "
              f"zero advantage get nothing)")
    return verdict


def check_policy_loss(answer) -> bool:
    """Exercise 2: L_π = −Σ ψ log π over the six samples."""
    what = "L_π = −Σ ψ_i log π_θ(a_i|s_i)"
    if answer is None:
        return report(False, what, NOT_DONE)
    psi = expected_weights()
    logp = torch.tensor(LOG_PROBS, dtype=torch.float64)
    expected = float(policy_loss(logp, psi))
    ok, hint = close(answer, expected, rtol=1e-4, atol=1e-8)
    if not ok and (close(answer, expected / 3, rtol=1e-4, atol=1e-8)[0] or close(answer, expected / 6, rtol=1e-4, atol=1e-8)[0]):
        hint = "a mean instead of a sum: ψ already sums to 1, a mean shrinks the M-step by 1/k"
    elif not ok and close(answer, -expected, rtol=1e-4, atol=1e-8)[0]:
        hint = "the sign: L_π is minimized, so it is the negative weighted log-likelihood"
    elif not ok and close(answer, -float(logp[psi > 0].mean()), rtol=1e-4, atol=1e-8)[0]:
        hint = "unweighted: each selected sample counts with its ψ"
    verdict = report(ok, what, hint)
    if ok:
        print(f"  (rlkit: policy_loss(log_probs, weights) = {expected:.4f})")
    return verdict


def check_mean_part(answer) -> bool:
    """Exercise 3: the mean part KL_μ of the decoupled Gaussian KL."""
    what = f"KL_μ for π_old = N({OLD_MEAN}, {OLD_STD}²), π_θ = N({NEW_MEAN}, {NEW_STD}²)"
    if answer is None:
        return report(False, what, NOT_DONE)
    t = lambda x: torch.tensor([[x]], dtype=torch.float64)  # noqa: E731
    parts = decoupled_gaussian_kl(t(OLD_MEAN), t(OLD_STD), t(NEW_MEAN), t(NEW_STD))
    expected = float(parts.mean)
    ok, hint = close(answer, expected, rtol=1e-4, atol=1e-8)
    d2 = (NEW_MEAN - OLD_MEAN) ** 2
    if not ok and close(answer, 0.5 * d2 / NEW_STD**2, rtol=1e-4, atol=1e-8)[0]:
        hint = "that uses the new variance; the mean part uses the OLD covariance, so it depends on μ_θ alone"
    elif not ok and close(answer, 0.5 * d2 / OLD_STD, rtol=1e-4, atol=1e-8)[0]:
        hint = "σ where σ² belongs"
    elif not ok and close(answer, d2 / OLD_STD**2, rtol=1e-4, atol=1e-8)[0]:
        hint = "the ½ is missing"
    verdict = report(ok, what, hint)
    if ok:
        print(f"  (rlkit: decoupled_gaussian_kl → mean part {expected:.5f}, covariance part "
              f"{float(parts.covariance):.5f}; the full KL is not their sum)")
    return verdict
