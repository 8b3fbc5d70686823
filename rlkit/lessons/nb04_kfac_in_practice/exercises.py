"""Exercise checks for notebook 04 (K-FAC in practice).

Each check takes the student's answer (``None`` while the exercise is not done: the check then
says so and returns False, it does not raise), compares it with the expected value and prints ✓
or ✗ with a hint; on a right answer it also shows rlkit confirming the fact. The problem data are
module constants, so the notebook's text and the check read the same numbers.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from rlkit.critic import categorical_fisher_loss
from rlkit.kfac import KFAC
from rlkit.lessons.checks import NOT_DONE, close, report

__all__ = [
    "DAMPED_A",
    "DAMPED_S",
    "DAMPED_LAMBDA",
    "check_smallest_damped_eigenvalue",
    "AVERAGE_DECAY",
    "AVERAGE_PASSES",
    "check_newest_pass_weight",
    "PERIOD_LAYER",
    "check_inverse_period",
]


#: Exercise 1: the factors (diagonal) of a Linear(1, 2) layer (A's last entry is the bias coordinate)
#: and the damping λ, factored mode.
DAMPED_A = (4.0, 1.0)
DAMPED_S = (1.0, 0.25)
DAMPED_LAMBDA = 0.01
#: Exercise 2: stats_decay β and the number of Fisher passes so far.
AVERAGE_DECAY = 0.95
AVERAGE_PASSES = 3
#: Exercise 3: the Nature CNN's linear layer (d_in with the bias coordinate, d_out).
PERIOD_LAYER = (3137, 512)



def _layer_with_factors(damping_mode: str) -> tuple[KFAC, object]:
    kfac = KFAC(nn.Linear(1, 2).double(), damping=DAMPED_LAMBDA, damping_mode=damping_mode)
    kfac.remove()
    layer = next(iter(kfac.layers.values()))
    layer.A = torch.diag(torch.tensor(DAMPED_A, dtype=torch.float64))
    layer.S = torch.diag(torch.tensor(DAMPED_S, dtype=torch.float64))
    return kfac, layer


def smallest_damped_eigenvalue(damping_mode: str = "factored") -> float:
    """rlkit's answer: the smallest eigenvalue of ``dense_block(damped=True)`` for these factors."""
    _, layer = _layer_with_factors(damping_mode)
    return float(torch.linalg.eigvalsh(layer.dense_block(damped=True)).min())


def check_smallest_damped_eigenvalue(answer) -> bool:
    """Exercise 1: the smallest eigenvalue of the matrix K-FAC actually inverts (factored damping)."""
    what = (f"smallest eigenvalue of the damped factored block, A = diag{DAMPED_A}, S = diag{DAMPED_S}, "
            f"λ = {DAMPED_LAMBDA}")
    if answer is None:
        return report(False, what, NOT_DONE)
    expected = smallest_damped_eigenvalue("factored")
    ok, hint = close(answer, expected, rtol=1e-6, atol=1e-9)
    if not ok:
        root = math.sqrt(DAMPED_LAMBDA)
        if close(answer, smallest_damped_eigenvalue("eigen"), rtol=1e-6, atol=1e-9)[0]:
            hint = "that is the eigen mode, A ⊗ S + λI; the factored mode damps each factor"
        elif close(answer, (min(DAMPED_A) + root) * (min(DAMPED_S) + root), rtol=1e-6, atol=1e-9)[0]:
            hint = "π = 1 is not what rlkit uses: π = sqrt((tr A / dim A) / (tr S / dim S))"
        elif close(answer, min(DAMPED_A) * min(DAMPED_S), rtol=1e-6, atol=1e-9)[0]:
            hint = "that is the undamped smallest eigenvalue"
        else:
            hint = "the eigenvalues of (A + π√λ I) ⊗ (S + √λ/π I) are products of the damped factors' eigenvalues"
    verdict = report(ok, what, hint)
    if ok:
        eigen = smallest_damped_eigenvalue("eigen")
        print(f"  (rlkit: eigvalsh(layer.dense_block(damped=True)).min() = {expected:.4f}; "
              f"the eigen mode's would be {eigen:.4f})")
    return verdict


def newest_pass_weight_rlkit() -> float:
    """rlkit's answer: pass inputs 0, …, 0, 1 through KFAC(stats_decay=β); A[0, 0] is the newest weight."""
    layer = nn.Linear(1, 1).double()
    kfac = KFAC(layer, stats_decay=AVERAGE_DECAY)
    gen = torch.Generator().manual_seed(0)
    for k in range(AVERAGE_PASSES):
        value = 1.0 if k == AVERAGE_PASSES - 1 else 0.0
        x = torch.full((4, 1), value, dtype=torch.float64)
        kfac.update_stats(categorical_fisher_loss(torch.cat([layer(x), -layer(x)], 1), generator=gen), force=True,
                          retain_graph=False)
    kfac.remove()
    return float(next(iter(kfac.layers.values())).A[0, 0])


def check_newest_pass_weight(answer) -> bool:
    """Exercise 2: the weight of the newest batch in the bias-corrected running average."""
    what = f"weight of the newest batch after {AVERAGE_PASSES} passes with stats_decay = {AVERAGE_DECAY}"
    if answer is None:
        return report(False, what, NOT_DONE)
    beta, k = AVERAGE_DECAY, AVERAGE_PASSES
    expected = 1.0 / sum(beta**j for j in range(k))
    ok, hint = close(answer, expected, rtol=1e-6, atol=1e-9)
    if not ok:
        if close(answer, 1 - beta, rtol=1e-6, atol=1e-9)[0]:
            hint = "1 − β is the weight without bias correction (and the limit as k → ∞); rlkit corrects the warm-up"
        elif close(answer, 1 / k, rtol=1e-6, atol=1e-9)[0]:
            hint = "that is a plain mean of the passes; older passes are discounted by β per pass"
        else:
            hint = "after k passes A_k = Σ_j β^(k−j) Â_j / Σ_j β^(k−j)"
    verdict = report(ok, what, hint)
    if ok:
        print(f"  (rlkit, passes with inputs 0, 0, 1 through KFAC(stats_decay={beta}): A[0, 0] = {newest_pass_weight_rlkit():.4f})")
    return verdict


def check_inverse_period(answer) -> bool:
    """Exercise 3: the smallest inverse_every at which the amortized inversion costs no more than
    preconditioning, per step, for the layer PERIOD_LAYER (cost model in the notebook)."""
    d_in, d_out = PERIOD_LAYER
    what = f"smallest inverse_every for which inversion/Tf <= preconditioning, d_in = {d_in}, d_out = {d_out}"
    if answer is None:
        return report(False, what, NOT_DONE)
    ratio = (d_in**3 + d_out**3) / (d_out**2 * d_in + d_out * d_in**2)
    expected = math.ceil(ratio)
    try:
        value = float(answer)
    except (TypeError, ValueError):
        return report(False, what, "give a whole number")
    ok = value == expected
    hint = ""
    if not ok:
        if value == math.floor(ratio):
            hint = f"the ratio is {ratio:.2f}: round up, Tf = {math.floor(ratio)} leaves the inversion dearer"
        elif abs(value - ratio) < 0.01:
            hint = "inverse_every is a whole number of steps"
        elif value == math.ceil(d_in**3 / (d_out * d_in**2)):
            hint = "count both products of preconditioning, S⁻¹G (d_out²·d_in) and (·)A⁻¹ (d_out·d_in²)"
        else:
            hint = "compare (d_in³ + d_out³)/Tf with d_out²·d_in + d_out·d_in²"
    verdict = report(ok, what, hint)
    if ok:
        print(f"  (inversion {d_in**3 + d_out**3:.3g} multiply-adds, preconditioning {d_out**2 * d_in + d_out * d_in**2:.3g}"
              f" per step: ratio {ratio:.2f}; ACKTR's Tf = 10 makes the inversion about half the preconditioning)")
    return verdict
