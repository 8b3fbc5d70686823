"""Exercise checks for notebook 08 (V-MPO's EM).

Numeric exercises (1–3): each check takes the student's answer (``None`` while the exercise is not
done: the check then says so and returns False, it does not raise), compares it with rlkit's own
computation and prints ✓ or ✗ with a hint naming the typical mistake. The problem data are module
constants, so the notebook's text and the check read the same numbers. An answer rounded to the
four decimals the notebook's solution prints is accepted.

Implementation exercises (4–5): :func:`check_e_step_weights` and :func:`check_gaussian_kl` run the
student's function on seeded random inputs against rlkit (``rlkit.lessons.checks.check_implementation``)
and name the typical mistakes of public V-MPO ports (docs/design.md, "V-MPO's pitfalls").
"""
from __future__ import annotations

import math

import torch

from rlkit.lessons.checks import NOT_DONE, NOT_IMPLEMENTED, check_implementation, close, report
from rlkit.vmpo import decoupled_gaussian_kl, e_step, policy_loss

__all__ = [
    "ADVANTAGES", "ETA", "LOG_PROBS", "OLD_MEAN", "OLD_STD", "NEW_MEAN", "NEW_STD",
    "expected_weights", "check_weights", "check_policy_loss", "check_mean_part",
    "check_e_step_weights", "check_gaussian_kl",
]


#: Exercises 1 and 2: six samples, top half selected, temperature τ (rlkit's argument ``eta``)
ADVANTAGES = (2.0, -1.0, 0.5, 1.5, -0.5, 0.0)
ETA = 1.0
#: Exercise 2: log π_θ(a_i|s_i) of the six samples
LOG_PROBS = (-0.2, -1.5, -0.9, -0.4, -2.0, -1.1)
#: Exercise 3: one state, one action dimension: π_old = N(OLD_MEAN, OLD_STD²), π_θ = N(NEW_MEAN, NEW_STD²)
OLD_MEAN, OLD_STD = 0.0, 2.0
NEW_MEAN, NEW_STD = 0.5, 1.0

# Numeric answers are compared to this absolute tolerance: a value rounded to four decimals passes,
# and every typical mistake below is much further away.
_ROUNDED = 6e-5


def _adv() -> torch.Tensor:
    return torch.tensor(ADVANTAGES, dtype=torch.float64)


def expected_weights() -> torch.Tensor:
    """ψ by rlkit: ``e_step(ADVANTAGES, ETA, ·).weights`` (top half, softmax over the selected)."""
    return e_step(_adv(), ETA, 0.1).weights


def check_weights(answer) -> bool:
    """Exercise 1: ψ for all six samples (0 outside the selection)."""
    what = f"ψ for Â = {ADVANTAGES}, top half, τ = {ETA}"
    if answer is None:
        return report(False, what, NOT_DONE)
    expected = expected_weights()
    ok, hint = close(answer, expected, rtol=0.0, atol=_ROUNDED)
    adv = _adv()
    near = lambda x: close(answer, x, rtol=0.0, atol=_ROUNDED)[0]  # noqa: E731
    if not ok and near(torch.softmax(adv / ETA, 0)):
        hint = "that softmax runs over all six samples; ψ is normalized over the selected top half only"
    elif not ok and near((expected > 0).double() / 3):
        hint = "uniform on the selection: that is τ → ∞; weight each selected sample by exp(Â/τ)"
    elif not ok and near(torch.exp(adv / ETA) * (expected > 0)):
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
    ok, hint = close(answer, expected, rtol=0.0, atol=_ROUNDED)
    near = lambda x: close(answer, x, rtol=0.0, atol=_ROUNDED)[0]  # noqa: E731
    if not ok and (near(expected / 3) or near(expected / 6)):
        hint = "a mean where a sum belongs: ψ already sums to 1, a mean shrinks the M-step by 1/k"
    elif not ok and near(-expected):
        hint = "the sign: L_π is minimized, so it is the negative weighted log-likelihood"
    elif not ok and near(-float(logp[psi > 0].mean())):
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
    ok, hint = close(answer, expected, rtol=0.0, atol=_ROUNDED)
    near = lambda x: close(answer, x, rtol=0.0, atol=_ROUNDED)[0]  # noqa: E731
    d2 = (NEW_MEAN - OLD_MEAN) ** 2
    if not ok and near(0.5 * d2 / NEW_STD**2):
        hint = "that uses the new variance; the mean part uses the OLD covariance, so it depends on μ_θ alone"
    elif not ok and near(0.5 * d2 / OLD_STD):
        hint = "σ where σ² belongs"
    elif not ok and near(d2 / OLD_STD**2):
        hint = "the ½ is missing"
    verdict = report(ok, what, hint)
    if ok:
        print(f"  (rlkit: decoupled_gaussian_kl → mean part {expected:.5f}, covariance part "
              f"{float(parts.covariance):.5f}; the full KL is not their sum)")
    return verdict


# --------------------------------------------------------------------------- Exercise 4: the E-step weights


def _e_step_cases() -> list[dict]:
    """Seeded batches with invalid entries (padding, reset steps) that hold advantages LARGER than every
    valid one, so that a top-k which ranks them shows; odd numbers of valid samples, so that ⌈·⌉ ≠ ⌊·⌋."""
    gen = torch.Generator().manual_seed(8)
    cases = []
    for shape, fraction, temperature, n_invalid in [((7, 3), 0.5, 0.7, 4), ((9,), 0.5, 2.0, 2), ((4, 4), 0.25, 1.0, 3),
                                                    ((6, 2), 0.5, torch.tensor(0.3, dtype=torch.float64), 1)]:
        advantages = torch.randn(shape, generator=gen, dtype=torch.float64)
        valid = torch.ones(shape, dtype=torch.bool).reshape(-1)
        valid[torch.randperm(valid.numel(), generator=gen)[:n_invalid]] = False
        valid = valid.reshape(shape)
        advantages = torch.where(valid, advantages, advantages.max() + 1.0 + torch.rand(shape, generator=gen,
                                                                                         dtype=torch.float64))
        cases.append({"advantages": advantages, "valid": valid, "temperature": temperature, "top_k_fraction": fraction})
    return cases


def _overflow_case() -> dict:
    """Advantages of about a thousand at τ = 1: exp(Â/τ) is inf in float64 without the max-shift."""
    gen = torch.Generator().manual_seed(9)
    advantages = 1000.0 + 300.0 * torch.randn(5, 4, generator=gen, dtype=torch.float64)
    valid = torch.ones(5, 4, dtype=torch.bool)
    valid[4, 1] = False
    return {"advantages": advantages, "valid": valid, "temperature": 1.0, "top_k_fraction": 0.5}


def _reference_weights(advantages, valid, temperature, top_k_fraction):
    return e_step(advantages, temperature, 1.0, top_k_fraction, valid).weights


def _weights_with(advantages, valid, temperature, top_k_fraction, *, rank=None, k_rule=math.ceil, normalize="selected",
                  exponent=lambda a, t: a / t):
    """ψ computed with one rule changed (the typical mistakes below): which samples are ranked, how k is
    rounded, what the softmax's denominator runs over, how the temperature enters."""
    adv = advantages.detach().reshape(-1)
    ok = valid.reshape(-1) if rank is None else rank.reshape(-1)
    index = torch.nonzero(ok).reshape(-1)
    k = max(1, int(k_rule(top_k_fraction * int(valid.sum()))))
    top = index[torch.sort(adv[index], descending=True, stable=True).indices[:k]]
    t = float(temperature)
    shift = adv[valid.reshape(-1)].max()
    numerators = torch.exp(exponent(adv - shift, t))
    psi = torch.zeros_like(adv)
    psi[top] = numerators[top]
    if normalize == "selected":
        psi = psi / psi.sum()
    elif normalize == "valid":
        psi = psi / numerators[valid.reshape(-1)].sum()
    elif normalize == "all":
        psi = psi / numerators.sum()
    elif normalize == "uniform":
        psi = (psi > 0).double() / k
    elif normalize == "none":
        psi = psi * math.exp(exponent(shift, t)) if abs(exponent(shift, t)) < 700 else psi
    return psi.reshape(advantages.shape)


def _ranked_all(advantages, valid, temperature, top_k_fraction):
    return _weights_with(advantages, valid, temperature, top_k_fraction, rank=torch.ones_like(valid))


def _ranked_all_k_all(advantages, valid, temperature, top_k_fraction):
    everything = torch.ones_like(valid)
    return _weights_with(advantages, everything, temperature, top_k_fraction)


_E_STEP_MISTAKES = [
    (lambda **c: _weights_with(**c, normalize="valid"),
     "ψ normalized over all samples instead of the selected ones: the softmax's denominator runs over the top k only, "
     "so that ψ sums to 1 on the selection"),
    (lambda **c: _weights_with(**c, normalize="all"),
     "ψ normalized over all samples instead of the selected ones: the softmax's denominator runs over the top k only"),
    (lambda **c: _weights_with(**{**c, "top_k_fraction": 1.0}),
     "no top-k: ψ is a softmax over all valid samples; V-MPO keeps only the top ⌈fraction · n_valid⌉"),
    (lambda **c: _ranked_all(**c),
     "padding/reset steps entered the top-k: rank only the samples where valid is True (never read the others)"),
    (lambda **c: _ranked_all_k_all(**c),
     "padding/reset steps entered the top-k: rank only the samples where valid is True, and count k among them"),
    (lambda **c: _weights_with(**c, k_rule=math.floor),
     "k = ⌊fraction · n_valid⌋: V-MPO keeps ⌈fraction · n_valid⌉ samples (at least 1)"),
    (lambda **c: _weights_with(**c, normalize="uniform"),
     "uniform on the selection: that is τ → ∞; weight each selected sample by exp(Â/τ)"),
    (lambda **c: _weights_with(**c, exponent=lambda a, t: a * t),
     "exp(Â·τ): the temperature divides, ψ ∝ exp(Â/τ)"),
    (lambda **c: _weights_with(**c, normalize="none"),
     "not normalized: ψ sums to 1 over the selection"),
]


def check_e_step_weights(e_step_weights) -> bool:
    """Exercise 4: ``e_step_weights(advantages, valid, temperature, top_k_fraction)`` → ψ, against rlkit's ``e_step``.

    Before the random cases: ψ must carry no gradient (advantages and τ given with requires_grad),
    and must stay finite for advantages of about a thousand (the max-shift).
    """
    what = "e_step_weights"
    cases, overflow = _e_step_cases(), _overflow_case()
    try:
        e_step_weights(**cases[0])
    except NotImplementedError:
        return report(False, what, NOT_IMPLEMENTED)
    except Exception:  # noqa: BLE001 — check_implementation reports the student's error with its case
        return check_implementation(e_step_weights, _reference_weights, cases, what=what)
    grad_case = {**cases[0], "advantages": cases[0]["advantages"].clone().requires_grad_(True),
                 "temperature": torch.tensor(0.7, dtype=torch.float64, requires_grad=True)}
    try:
        psi = e_step_weights(**grad_case)
    except Exception as error:  # noqa: BLE001
        return report(False, what, f"raised {type(error).__name__} when the advantages require grad (as in an agent, "
                                   f"where Â = G − V_φ(s)): {error}")
    if isinstance(psi, torch.Tensor) and psi.requires_grad:
        return report(False, what, "ψ carries gradient: compute it from detached advantages (and a detached τ); "
                                   "it is a fixed target, and the critic must not be trained through it")
    try:
        psi = e_step_weights(**overflow)
        finite = not isinstance(psi, torch.Tensor) or bool(torch.isfinite(psi.detach()).all())
    except Exception:  # noqa: BLE001 — reported below, with its case
        finite = True
    if not finite:
        return report(False, what, "exp(Â/τ) overflowed for advantages of about 1000 (inf/inf = NaN): subtract the "
                                   "largest selected advantage before exponentiating (the max-shift)")
    return check_implementation(e_step_weights, _reference_weights, [*cases, overflow], what=what,
                                mistakes=_E_STEP_MISTAKES)


# --------------------------------------------------------------------------- Exercise 5: the full Gaussian KL


def _gaussian_cases() -> list[dict]:
    gen = torch.Generator().manual_seed(5)
    cases = []
    for states, dims in [(8, 3), (5, 2), (1, 1), (6, 4)]:
        def std():
            return 0.3 + 1.7 * torch.rand(states, dims, generator=gen, dtype=torch.float64)

        cases.append({"old_mean": torch.randn(states, dims, generator=gen, dtype=torch.float64), "old_std": std(),
                      "new_mean": torch.randn(states, dims, generator=gen, dtype=torch.float64), "new_std": std()})
    return cases


def _reference_kl(old_mean, old_std, new_mean, new_std):
    """KL(π_old ‖ π_θ) with rlkit's decoupled parts: KL_Σ + ½ Δμᵀ Σ_θ⁻¹ Δμ (the mean part taken with Σ_θ)."""
    return (decoupled_gaussian_kl(old_mean, old_std, new_mean, new_std).covariance
            + decoupled_gaussian_kl(old_mean, new_std, new_mean, new_std).mean)


def _kl_with(old_mean, old_std, new_mean, new_std, *, trace_var=None, quad_var=None, reverse=False, reduce="mean",
             half=0.5):
    """Per-state KL(N_old ‖ N_new) = half · Σ_d [r − 1 − log r + Δμ²/q], r = v_old/v_new, with one rule changed."""
    if reverse:
        old_mean, old_std, new_mean, new_std = new_mean, new_std, old_mean, old_std
    v_old, v_new = old_std**2, new_std**2
    if trace_var == "std":
        v_old, v_new = old_std, new_std
    r = v_old / v_new
    q = {None: new_std**2, "std": new_std, "old": old_std**2}[quad_var]
    per_dim = half * (r - 1 - torch.log(r) + (new_mean - old_mean) ** 2 / q)
    per_state = per_dim.mean(-1) if reduce == "dims_mean" else per_dim.sum(-1)
    return per_state.sum() if reduce == "sum" else per_state.mean()


_SIGMA = "σ where σ² belongs: Σ = diag(σ²), so the standard deviations are squared everywhere in the KL"
_GAUSSIAN_MISTAKES = [
    (lambda **c: _kl_with(**c, trace_var="std", quad_var="std"), _SIGMA),
    (lambda **c: _kl_with(**c, quad_var="std"), _SIGMA),
    (lambda **c: _kl_with(**c, trace_var="std"), _SIGMA),
    (lambda **c: _kl_with(**c, reverse=True),
     "the KL's direction is reversed: V-MPO bounds KL(π_old ‖ π_θ), an expectation under the old policy"),
    (lambda **c: _kl_with(**c, quad_var="old"),
     "that is KL_μ + KL_Σ, the sum of the decoupled parts: the full KL's quadratic term uses the NEW covariance Σ_θ"),
    (lambda **c: _kl_with(**c, reduce="sum"), "a sum over states: the KL is averaged over states"),
    (lambda **c: _kl_with(**c, reduce="dims_mean"),
     "averaged over action dimensions: a diagonal Gaussian's KL is the sum of the per-dimension KLs"),
    (lambda **c: _kl_with(**c, half=1.0), "the ½ is missing"),
]


def check_gaussian_kl(gaussian_kl) -> bool:
    """Exercise 5: ``gaussian_kl(old_mean, old_std, new_mean, new_std)`` → E_s KL(π_old ‖ π_θ), diagonal Gaussians."""
    return check_implementation(gaussian_kl, _reference_kl, _gaussian_cases(), what="gaussian_kl",
                                mistakes=_GAUSSIAN_MISTAKES)
