"""Exercise checks for notebook 04 (K-FAC in practice).

:func:`check_damped_block` runs the student's function against rlkit on seeded random factors
(:func:`rlkit.lessons.checks.check_implementation`) and names the typical mistakes. The numeric
checks take the student's answer (``None`` while the exercise is not done: the check then says
so and returns False, it does not raise), compare it with the expected value and print ✓ or ✗
with a hint; on a right answer they also show rlkit confirming the fact. The problem data are
module constants, so the notebook's text and the check read the same numbers.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from rlkit.critic import categorical_fisher_loss
from rlkit.kfac import KFAC
from rlkit.kfac.damping import damping_shifts
from rlkit.lessons.checks import NOT_DONE, check_implementation, close, report

__all__ = [
    "check_damped_block",
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


#: Exercise 2: the factors (diagonal) of a Linear(1, 2) layer (A's last entry is the bias coordinate)
#: and the damping λ, factored mode.
DAMPED_A = (4.0, 1.0)
DAMPED_S = (1.0, 0.25)
DAMPED_LAMBDA = 0.01
#: Exercise 3: stats_decay β and the number of Fisher passes so far.
AVERAGE_DECAY = 0.95
AVERAGE_PASSES = 3
#: Exercise 4: the Nature CNN's linear layer (d_in with the bias coordinate, d_out).
PERIOD_LAYER = (3137, 512)
#: Exercise 3 accepts the weight rounded to three decimals (the notebook prints it to four).
WEIGHT_ATOL = 5e-4


# ---------------------------------------------------------------- implementation exercise


def _eye(n: int, like: torch.Tensor) -> torch.Tensor:
    return torch.eye(n, dtype=like.dtype, device=like.device)


def _kappa(A: torch.Tensor, S: torch.Tensor) -> torch.Tensor:
    return torch.sqrt((torch.trace(A) / A.shape[0]) / (torch.trace(S) / S.shape[0]))


def _block(A, S, shift_A, shift_S, shift_kron, order: str = "SA"):
    """(S + shift_S I) ⊗ (A + shift_A I) + shift_kron I, or with the factors swapped (order "AS")."""
    A_d, S_d = A + shift_A * _eye(A.shape[0], A), S + shift_S * _eye(S.shape[0], S)
    K = torch.kron(S_d, A_d) if order == "SA" else torch.kron(A_d, S_d)
    return K + shift_kron * _eye(K.shape[0], K)


def damped_block_rlkit(A, S, damping, mode):
    """rlkit's damped block: ``damping_shifts(A, S, damping, mode).dense(A, S)``."""
    return damping_shifts(A, S, damping, mode).dense(A, S)


def _right_shifts(A, S, damping, mode):
    if mode == "eigen":
        return 0.0, 0.0, damping
    k, root = _kappa(A, S), math.sqrt(damping)
    return k * root, root / k, 0.0


def _only(wrong_mode, mistaken):
    """A mistake made in one damping mode; in the other mode it gives the right answer (never a false match)."""
    def mistake(A, S, damping, mode):
        return mistaken(A, S, damping) if mode == wrong_mode else damped_block_rlkit(A, S, damping, mode)

    return mistake


def _mistakes():
    def column_major(A, S, damping, mode):
        return _block(A, S, *_right_shifts(A, S, damping, mode), order="AS")

    root = math.sqrt
    return [
        (column_major, "A ⊗ S is the column-major layout; for PyTorch's row-major [W | b] the block is "
                       "S ⊗ A (notebook 03)"),
        (lambda A, S, damping, mode: torch.kron(S, A),
         "no damping: the undamped S ⊗ A (λ must enter the block)"),
        (lambda A, S, damping, mode: torch.linalg.inv(damped_block_rlkit(A, S, damping, mode)),
         "that is the inverse F̃⁻¹; return the damped matrix itself"),
        (_only("eigen", lambda A, S, d: _block(A, S, d, d, 0.0)),
         "eigen mode: λ added to each factor, (S + λI) ⊗ (A + λI); the eigen mode adds λ to the "
         "Kronecker eigenvalues: S ⊗ A + λI"),
        (_only("eigen", lambda A, S, d: _block(A, S, 0.0, 0.0, root(d))),
         "eigen mode: √λ where λ belongs: S ⊗ A + λI"),
        (_only("eigen", lambda A, S, d: _block(A, S, *_right_shifts(A, S, d, "factored"))),
         "that is the factored mode; the eigen mode is S ⊗ A + λI"),
        (_only("factored", lambda A, S, d: _block(A, S, root(d) / _kappa(A, S), _kappa(A, S) * root(d), 0.0)),
         "factored mode: the κ correction is inverted; A gets κ√λ and S gets √λ/κ"),
        (_only("factored", lambda A, S, d: _block(A, S, _kappa(A, S) * d, d / _kappa(A, S), 0.0)),
         "factored mode: λ where √λ belongs; each factor gets a share of √λ, so that the product's "
         "cross term is λ"),
        (_only("factored", lambda A, S, d: _block(A, S, root(d), root(d), 0.0)),
         "factored mode: κ = 1; rlkit splits √λ with κ = sqrt((tr A / dim A) / (tr S / dim S))"),
        (_only("factored", lambda A, S, d: _block(
            A, S, root(d * torch.trace(A) / torch.trace(S)), root(d * torch.trace(S) / torch.trace(A)), 0.0)),
         "factored mode: κ uses the mean eigenvalue of each factor, tr A / dim A and tr S / dim S, not "
         "the bare traces"),
        (_only("factored", lambda A, S, d: _block(A, S, 0.0, 0.0, d)),
         "that is the eigen mode; the factored mode damps each factor: (S + √λ/κ I) ⊗ (A + κ√λ I)"),
    ]


def damped_block_cases() -> list[dict]:
    """Seeded random factors of two layers (d_out ≠ d_in, traces far apart so that κ ≠ 1) in both modes."""
    gen = torch.Generator().manual_seed(4)
    cases = []
    for (d_out, d_in, scale), damping, mode in [((3, 4, 5.0), 0.04, "factored"), ((3, 4, 5.0), 0.04, "eigen"),
                                                 ((5, 3, 0.1), 0.3, "eigen"), ((5, 3, 0.1), 0.3, "factored")]:
        X = torch.randn(d_in, 2 * d_in, generator=gen, dtype=torch.float64)
        Y = torch.randn(d_out, 2 * d_out, generator=gen, dtype=torch.float64)
        cases.append({"A": scale * X @ X.T / (2 * d_in), "S": Y @ Y.T / (2 * d_out), "damping": damping,
                      "mode": mode})
    return cases


def check_damped_block(damped_block) -> bool:
    """Exercise 1 (implementation): ``damped_block(A, S, damping, mode)`` is the dense matrix F̃ that
    ``KFAC.precondition`` inverts for one layer, rows and columns in PyTorch's row-major order of
    [W | b]: (S + √λ/κ I) ⊗ (A + κ√λ I) (``mode="factored"``) or S ⊗ A + λI (``mode="eigen"``)."""
    cases = damped_block_cases()
    ok = check_implementation(damped_block, damped_block_rlkit, cases,
                              what="damped_block(A, S, damping, mode)", mistakes=_mistakes(),
                              rtol=1e-9, atol=1e-12)
    if ok:  # what the block is for: solving with it is rlkit's preconditioning of a gradient G
        case = cases[0]
        A, S = case["A"], case["S"]
        G = torch.randn(S.shape[0], A.shape[0], generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        shifts = damping_shifts(A, S, case["damping"], case["mode"])
        rlkit = torch.linalg.inv(S + shifts.shift_S * _eye(S.shape[0], S)) @ G @ torch.linalg.inv(
            A + shifts.shift_A * _eye(A.shape[0], A))
        solved = torch.linalg.solve(damped_block(**case), G.reshape(-1)).reshape(G.shape)
        print(f"  (solve(your F̃, vec G) = (S + √λ/κ I)⁻¹ G (A + κ√λ I)⁻¹, relative difference < 1e-10: "
              f"{bool((solved - rlkit).norm() / rlkit.norm() < 1e-10)})")
    return ok



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
    """Exercise 2: the smallest eigenvalue of the matrix K-FAC actually inverts (factored damping)."""
    what = (f"smallest eigenvalue of the damped factored block, A = diag{DAMPED_A}, S = diag{DAMPED_S}, "
            f"λ = {DAMPED_LAMBDA}")
    if answer is None:
        return report(False, what, NOT_DONE)
    expected = smallest_damped_eigenvalue("factored")
    ok, hint = close(answer, expected, rtol=1e-6, atol=1e-9)
    if not ok:
        root = math.sqrt(DAMPED_LAMBDA)
        if close(answer, smallest_damped_eigenvalue("eigen"), rtol=1e-6, atol=1e-9)[0]:
            hint = "that is the eigen mode, S ⊗ A + λI; the factored mode damps each factor"
        elif close(answer, (min(DAMPED_A) + root) * (min(DAMPED_S) + root), rtol=1e-6, atol=1e-9)[0]:
            hint = "κ = 1 is not what rlkit uses: κ = sqrt((tr A / dim A) / (tr S / dim S))"
        elif close(answer, min(DAMPED_A) * min(DAMPED_S), rtol=1e-6, atol=1e-9)[0]:
            hint = "that is the undamped smallest eigenvalue"
        else:
            hint = "the eigenvalues of (S + √λ/κ I) ⊗ (A + κ√λ I) are products of the damped factors' eigenvalues"
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
    """Exercise 3: the weight of the newest batch in the bias-corrected running average."""
    what = f"weight of the newest batch after {AVERAGE_PASSES} passes with stats_decay = {AVERAGE_DECAY}"
    if answer is None:
        return report(False, what, NOT_DONE)
    beta, k = AVERAGE_DECAY, AVERAGE_PASSES
    expected = 1.0 / sum(beta**j for j in range(k))
    ok, hint = close(answer, expected, rtol=0.0, atol=WEIGHT_ATOL)  # accepts 0.3506 and 0.351
    if not ok:
        if close(answer, 1 - beta, rtol=0.0, atol=WEIGHT_ATOL)[0]:
            hint = "1 − β is the weight without bias correction (and the limit as k → ∞); rlkit corrects the warm-up"
        elif close(answer, 1 / k, rtol=0.0, atol=WEIGHT_ATOL)[0]:
            hint = "that is a plain mean of the passes; older passes are discounted by β per pass"
        else:
            hint = "after k passes A_k = Σ_j β^(k−j) Â_j / Σ_j β^(k−j)"
    verdict = report(ok, what, hint)
    if ok:
        print(f"  (rlkit, passes with inputs 0, 0, 1 through KFAC(stats_decay={beta}): A[0, 0] = {newest_pass_weight_rlkit():.4f})")
    return verdict


def check_inverse_period(answer) -> bool:
    """Exercise 4: the smallest inverse_every at which the amortized inversion costs no more than
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
