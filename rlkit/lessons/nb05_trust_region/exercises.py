"""Exercise checks for notebook 05 (the trust region).

:func:`check_trust_region_step` runs the student's ``trust_region_step`` against rlkit
(:mod:`rlkit.trust_region`) on seeded random inputs and names the typical mistakes. The numeric
checks take the student's answer (``None`` while the exercise is not done: the check then says so
and returns False, it does not raise), compare it with the expected value and print ✓ or ✗ with a
hint; on a right answer they also show rlkit confirming the fact. The problem data are module
constants, so the notebook's text and the check read the same numbers.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from rlkit.fisher import Categorical, natural_gradient
from rlkit.lessons.checks import NOT_DONE, check_implementation, close, report
from rlkit.trust_region import effective_step_size, predicted_kl

__all__ = [
    "BASELINES_KL_CLIP",
    "CAP_QUADRATIC",
    "CAP_DELTA",
    "CAP_ETA_MAX",
    "RARE_PROB",
    "RARE_ADVANTAGE",
    "RARE_LR",
    "RARE_ARMS",
    "rare_arm_step",
    "trust_region_step_cases",
    "TRUST_REGION_STEP_MISTAKES",
    "check_trust_region_step",
    "check_paper_delta",
    "check_capped_predicted_kl",
    "check_rare_arm_logit_gap",
]


#: Exercise 1: the "kl_clip" of an openai/baselines ACKTR configuration.
BASELINES_KL_CLIP = 0.002
#: Exercise 2: q = ΔᵀF̂Δ, δ and η_max of one update.
CAP_QUADRATIC = 50.0
CAP_DELTA = 0.01
CAP_ETA_MAX = 0.01
#: Exercise 3: a tabular softmax policy over RARE_ARMS arms gives the pulled arm probability
#: RARE_PROB (the others share the rest equally); one pull, advantage RARE_ADVANTAGE, fixed step RARE_LR.
RARE_PROB = 0.01
RARE_ADVANTAGE = 1.0
RARE_LR = 0.1
RARE_ARMS = 3


# ---------------------------------------------------------------- the implementation exercise


def trust_region_step_cases(seed: int = 5, size: int = 6) -> list[dict]:
    """Seeded inputs of ``trust_region_step``: θ, g and Δ = F̂⁻¹g for a random positive-definite F̂,
    with δ and η_max such that the cases alternate uncapped (η_max twice √(2δ/q)) and capped
    (η_max half of it)."""
    gen = torch.Generator().manual_seed(seed)
    cases = []
    for number, delta in enumerate([0.01, 0.05, 0.001, 0.1]):
        theta, g = (torch.randn(size, generator=gen, dtype=torch.float64) for _ in range(2))
        root = torch.randn(size, size, generator=gen, dtype=torch.float64)
        fisher = root @ root.T / size + 0.1 * torch.eye(size, dtype=torch.float64)
        direction = torch.linalg.solve(fisher, g)
        uncapped = math.sqrt(2 * delta / float(g @ direction))
        eta_max = round(uncapped * (2.0 if number % 2 == 0 else 0.5), 4)
        cases.append({"theta": theta, "g": g, "direction": direction, "delta": delta, "eta_max": eta_max})
    return cases


def _reference_step(theta, g, direction, delta, eta_max):
    """rlkit's step: q = gᵀΔ, η = effective_step_size(q, δ, η_max) (the paper's rule), θ + ηΔ, ½η²q."""
    q = float(g @ direction)
    eta = effective_step_size(q, delta, eta_max, "paper")
    return theta + eta * direction, eta, predicted_kl(q, eta)


def _mistaken_step(*, budget: float = 2.0, q_from_gradient: bool = False, cap: bool = True, kl_power: int = 2,
                   kl_is_delta: bool = False, sign: float = 1.0):
    def step(theta, g, direction, delta, eta_max):
        q = float(g @ g) if q_from_gradient else float(g @ direction)
        eta = math.sqrt(budget * delta / q)
        eta = min(eta_max, eta) if cap else eta
        kl = delta if kl_is_delta else 0.5 * eta**kl_power * q
        return theta + sign * eta * direction, eta, kl
    return step


#: (mistaken step, what the check says): the typical mistakes it recognizes, in the order it tries them.
TRUST_REGION_STEP_MISTAKES = [
    (_mistaken_step(budget=1.0), "η = √(δ/q) is the openai/baselines code's rule (its kl_clip is twice the KL it "
                                 "reaches); the paper's rule, asked here, is η = min(η_max, √(2δ/q))"),
    (_mistaken_step(q_from_gradient=True), "q is gᵀΔ = ΔᵀF̂Δ, the curvature along the step; gᵀg, the gradient's "
                                           "squared norm, leaves the Fisher out"),
    (_mistaken_step(cap=False), "the cap is missing: η = min(η_max, √(2δ/q)), and in this case √(2δ/q) > η_max"),
    (_mistaken_step(kl_power=1), "the predicted KL is ½η²q: η enters squared"),
    (_mistaken_step(kl_is_delta=True), "the predicted KL is ½η²q of the step taken; it equals δ only while the "
                                       "cap η_max does not bind"),
    (_mistaken_step(sign=-1.0), "a step down: the policy ascends J, so θ ← θ + ηΔ"),
]


def check_trust_region_step(trust_region_step) -> bool:
    """Implementation exercise: ``trust_region_step(theta, g, direction, delta, eta_max)`` returns
    ``(new_theta, eta, predicted_kl)`` as rlkit computes them, on seeded random inputs (capped and not)."""
    cases = trust_region_step_cases()
    ok = check_implementation(trust_region_step, _reference_step, cases,
                              what="trust_region_step(theta, g, direction, delta, eta_max)",
                              mistakes=TRUST_REGION_STEP_MISTAKES)
    if ok:
        capped = sum(_reference_step(**case)[1] == case["eta_max"] for case in cases)
        print(f"  (rlkit: q = gᵀΔ, η = effective_step_size(q, δ, η_max), predicted_kl(q, η); "
              f"{capped} of the {len(cases)} steps were capped at η_max)")
    return ok


def check_paper_delta(answer) -> bool:
    """Exercise 1: the paper-convention δ that takes the same steps as baselines' kl_clip."""
    what = f"paper δ equivalent to baselines' kl_clip = {BASELINES_KL_CLIP}"
    if answer is None:
        return report(False, what, NOT_DONE)
    expected = BASELINES_KL_CLIP / 2
    ok, hint = close(answer, expected, rtol=1e-6, atol=0.0)
    if not ok and close(answer, 2 * BASELINES_KL_CLIP, rtol=1e-6, atol=0.0)[0]:
        hint = "the other way round: baselines' sqrt(kl_clip/q) is the smaller step for the same number"
    elif not ok and close(answer, BASELINES_KL_CLIP, rtol=1e-6, atol=0.0)[0]:
        hint = "same number, different rules: compare sqrt(2δ/q) with sqrt(kl_clip/q)"
    elif not ok and close(answer, BASELINES_KL_CLIP / math.sqrt(2), rtol=1e-6, atol=0.0)[0]:
        hint = "the factor 2 sits under the square root: match 2δ with kl_clip"
    verdict = report(ok, what, hint)
    if ok:
        q = 3.7  # any q: the two rules agree for every q when uncapped
        paper = effective_step_size(q, float(answer), 1e9, "paper")  # η_max = 1e9: uncapped
        baselines = effective_step_size(q, BASELINES_KL_CLIP, 1e9, "baselines")
        print(f"  (rlkit: η = {paper:.6f} (paper, δ = {float(answer):g}) and {baselines:.6f} (baselines, "
              f"kl_clip = {BASELINES_KL_CLIP:g}) at q = {q}; predicted KL {predicted_kl(q, paper):g} = kl_clip / 2)")
    return verdict


def check_capped_predicted_kl(answer) -> bool:
    """Exercise 2: the predicted KL ½η²q when η_max takes over."""
    what = f"predicted KL for q = {CAP_QUADRATIC:g}, δ = {CAP_DELTA:g}, η_max = {CAP_ETA_MAX:g} (paper rule)"
    if answer is None:
        return report(False, what, NOT_DONE)
    eta = effective_step_size(CAP_QUADRATIC, CAP_DELTA, CAP_ETA_MAX, "paper")
    expected = predicted_kl(CAP_QUADRATIC, eta)
    ok, hint = close(answer, expected, rtol=1e-6, atol=0.0)
    if not ok and close(answer, CAP_DELTA, rtol=1e-6, atol=0.0)[0]:
        hint = f"that is δ; but sqrt(2δ/q) = {math.sqrt(2 * CAP_DELTA / CAP_QUADRATIC):g} > η_max, so η = η_max"
    elif not ok and close(answer, 2 * expected, rtol=1e-6, atol=0.0)[0]:
        hint = "the quadratic model of the KL is ½η²q: you dropped the ½"
    elif not ok and close(answer, 0.5 * CAP_ETA_MAX * CAP_QUADRATIC, rtol=1e-6, atol=0.0)[0]:
        hint = "η enters squared"
    verdict = report(ok, what, hint)
    if ok:
        print(f"  (rlkit: effective_step_size → η = {eta:g} = η_max; predicted_kl → {expected:g}, "
              f"a quarter of δ: the cap, not δ, limits this step)")
    return verdict


class _TabularPolicy(nn.Module):
    """Logits θ ∈ R^K, the same for every input (a bandit's policy)."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = nn.Parameter(logits.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(x.shape[0], -1)


def rare_arm_step() -> dict[str, float]:
    """Exercise 3 by rlkit: the natural-gradient step after one pull of the rare arm.

    Returns the logit gap it opens (pulled arm minus any other), the pulled arm's probability
    after the fixed step RARE_LR·Δ, and the step size η the trust region (δ = 0.01, η_max = 1)
    would use instead, with the probability after that step.
    """
    k = RARE_ARMS
    probs = torch.full((k,), (1 - RARE_PROB) / (k - 1), dtype=torch.float64)
    probs[0] = RARE_PROB
    policy = _TabularPolicy(torch.log(probs))
    x = torch.zeros(1, 1, dtype=torch.float64)
    dist = Categorical()
    objective = RARE_ADVANTAGE * dist.log_prob(policy(x), torch.tensor([0])).sum()
    (g,) = torch.autograd.grad(objective, [policy.logits])
    direction = natural_gradient(policy, x, dist, g)  # damping 0: the pseudo-inverse of F = diag(p) − ppᵀ
    q = float(g @ direction)
    eta_tr = effective_step_size(q, 0.01, 1.0)
    after = lambda eta: float(torch.softmax(policy.logits.detach() + eta * direction, -1)[0])  # noqa: E731
    return {"gap": float(RARE_LR * (direction[0] - direction[1])), "prob_after": after(RARE_LR),
            "eta_trust_region": eta_tr, "prob_after_trust_region": after(eta_tr)}


def check_rare_arm_logit_gap(answer) -> bool:
    """Exercise 3: a fixed natural-gradient step after one lucky pull of a rare arm."""
    what = (f"logit gap opened by the step {RARE_LR}·Δ after one pull of an arm with p = {RARE_PROB}, "
            f"advantage {RARE_ADVANTAGE}")
    if answer is None:
        return report(False, what, NOT_DONE)
    expected = RARE_LR * RARE_ADVANTAGE / RARE_PROB
    ok, hint = close(answer, expected, rtol=1e-6, atol=0.0)
    other = (1 - RARE_PROB) / (RARE_ARMS - 1)
    # the plain gradient A(e_a − p) opens this gap (0.1485; the solution prints it rounded, 0.15)
    plain = RARE_LR * RARE_ADVANTAGE * (1 - RARE_PROB + other)
    if not ok and (close(answer, plain, rtol=0.02, atol=0.0)[0] or close(answer, RARE_LR * RARE_ADVANTAGE, rtol=1e-6, atol=0.0)[0]):
        hint = "that is the plain gradient's step, A(e_a − p); the natural gradient solves FΔ = g, F = diag(p) − ppᵀ"
    elif not ok and close(answer, RARE_LR * RARE_ADVANTAGE * RARE_PROB, rtol=1e-6, atol=0.0)[0]:
        hint = "multiplied by p where the Fisher's inverse divides by it"
    elif not ok and close(answer, RARE_ADVANTAGE / RARE_PROB, rtol=1e-6, atol=0.0)[0]:
        hint = "that is the natural gradient's gap; the step is RARE_LR times it"
    verdict = report(ok, what, hint)
    if ok:
        step = rare_arm_step()
        print(f"  (rlkit: gap {step['gap']:.4g}; the arm's probability goes from {RARE_PROB} to "
              f"{step['prob_after']:.3f} in one update. The trust region (δ = 0.01) takes η = "
              f"{step['eta_trust_region']:.4f} instead: probability {step['prob_after_trust_region']:.3f})")
    return verdict
