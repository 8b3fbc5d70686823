r"""Damping and inverses of one K-FAC block (F̂_ℓ ≈ S ⊗ A in PyTorch's row-major layout).

The damping algebra is written once, in :func:`damping_shifts`: every damped block is

    F̃_ℓ = (S + shift_S I) ⊗ (A + shift_A I) + shift_kron I,

with ``"factored"`` damping (Tikhonov with the κ correction, Martens & Grosse 2015 §6.3)
shift_A = κ√λ, shift_S = √λ/κ, shift_kron = 0, and ``"eigen"`` damping (exact, in the
Kronecker eigenbasis) shift_A = shift_S = 0, shift_kron = λ. :meth:`Damping.dense` forms F̃_ℓ
(for notebooks and tests); :func:`factored_inverses` and :func:`eigen_inverse` invert it
without forming it. An inverse is never silently non-finite: a failed factorization is
retried in float64 and then by eigh with an eigenvalue floor. Derivations: docs/derivations.md.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from .options import DAMPING_MODES, _check_choice


def compute_pi_correction(A: Tensor, S: Tensor) -> float:
    """κ = sqrt((tr A / dim A) / (tr S / dim S)), which balances the two factors; 1 if a trace is 0."""
    ta = float(torch.trace(A)) / A.shape[0]
    ts = float(torch.trace(S)) / S.shape[0]
    if ta > 0 and ts > 0 and math.isfinite(ta) and math.isfinite(ts):
        return math.sqrt(ta / ts)
    return 1.0


class Damping(NamedTuple):
    """How the damping λ enters one block: F̃ = (S + shift_S I) ⊗ (A + shift_A I) + shift_kron I.

    ``pi_correction`` is κ in ``"factored"`` mode and None in ``"eigen"`` mode.
    """

    pi_correction: float | None
    shift_A: float
    shift_S: float
    shift_kron: float

    def dense(self, A: Tensor, S: Tensor) -> Tensor:
        """F̃ as a dense (row-major) matrix: a Kronecker product, for small layers only."""
        if self.shift_A:
            A = A + self.shift_A * torch.eye(A.shape[0], dtype=A.dtype, device=A.device)
        if self.shift_S:
            S = S + self.shift_S * torch.eye(S.shape[0], dtype=S.dtype, device=S.device)
        K = torch.kron(S, A)
        if self.shift_kron:
            K = K + self.shift_kron * torch.eye(K.shape[0], dtype=K.dtype, device=K.device)
        return K


#: No damping at all: F̃ = S ⊗ A.
UNDAMPED = Damping(None, 0.0, 0.0, 0.0)


def damping_shifts(A: Tensor, S: Tensor, damping: float, mode: str) -> Damping:
    """The shifts of damping λ = ``damping`` in ``mode`` (one of ``DAMPING_MODES``) for factors A, S."""
    _check_choice("damping_mode", mode, DAMPING_MODES)
    if mode == "factored":
        pi_correction = compute_pi_correction(A, S)
        root = math.sqrt(damping)
        return Damping(pi_correction, pi_correction * root, root / pi_correction, 0.0)
    return Damping(None, 0.0, 0.0, damping)


def _floor_value(evals: Tensor, rel: float | None, dim: int) -> Tensor:
    """The eigenvalue floor: rel·λ_max (rel defaults to dim·eps), or 1 if λ_max = 0."""
    if rel is None:
        rel = dim * torch.finfo(evals.dtype).eps
    top = evals.max()
    return torch.where(top > 0, top * rel, torch.ones_like(top))


def _eigh_robust(M: Tensor, what: str) -> tuple[Tensor, Tensor]:
    """eigh, retried in float64 and then with a tiny diagonal jitter; eigenvalues clamped >= 0."""
    attempts = [M, M.double()]
    for X in attempts:
        try:
            e, Q = torch.linalg.eigh(X)
        except RuntimeError:  # torch.linalg.LinAlgError is a RuntimeError
            continue
        if torch.isfinite(e).all() and torch.isfinite(Q).all():
            return e.clamp_min(0), Q
    X = M.double()
    jitter = (X.diagonal().abs().mean() + 1.0) * 1e-10
    try:
        e, Q = torch.linalg.eigh(X + jitter * torch.eye(X.shape[0], dtype=X.dtype, device=X.device))
    except RuntimeError as err:
        raise ValueError(f"eigendecomposition of {what} failed even in float64 with jitter") from err
    return e.clamp_min(0), Q


def _spd_inverse(M: Tensor, shift: Tensor, method: str, floor_rel: float | None, what: str) -> Tensor:
    """(M + shift·I)⁻¹ for a PSD M, never non-finite (float64 retry, then eigenvalue floor)."""
    n = M.shape[0]
    if method == "cholesky":
        for X in (M, M.double()):
            Md = X.clone()
            Md.diagonal().add_(shift.to(X.dtype))
            L, info = torch.linalg.cholesky_ex(Md)
            if int(info) == 0:
                inv = torch.cholesky_inverse(L)
                if torch.isfinite(inv).all():
                    return inv.to(M.dtype)
    # eigh path (also the fallback of the Cholesky path): floor the damped eigenvalues.
    e, Q = _eigh_robust(M, what)
    d = e + shift.to(e.dtype)
    d = d.clamp_min(_floor_value(d, floor_rel, n))
    inv = (Q / d) @ Q.T
    return inv.to(M.dtype)


def factored_inverses(
    A: Tensor, S: Tensor, shifts: Damping, method: str, floor: float | None, name: str
) -> tuple[Tensor, Tensor]:
    """(A + shift_A I)⁻¹ and (S + shift_S I)⁻¹ by ``method`` ("cholesky" or "eigh")."""
    A_inv = _spd_inverse(A, A.new_tensor(shifts.shift_A), method, floor, f"A of {name!r}")
    S_inv = _spd_inverse(S, S.new_tensor(shifts.shift_S), method, floor, f"S of {name!r}")
    return A_inv, S_inv


def eigen_inverse(
    A: Tensor, S: Tensor, shifts: Damping, floor: float | None, name: str
) -> tuple[tuple[Tensor, Tensor, Tensor, Tensor], Tensor]:
    """The eigendecompositions ``(λ_A, Q_A, λ_S, Q_S)`` (eigh's order) and
    1 / (λ_S λ_Aᵀ + shift_kron), floored.

    The floor is ``floor``·max (default dim·eps of the dtype, dim = the larger factor's).
    """
    eA, QA = _eigh_robust(A, f"A of {name!r}")
    eS, QS = _eigh_robust(S, f"S of {name!r}")
    denom = torch.outer(eS, eA) + shifts.shift_kron
    if floor is None:
        floor = max(A.shape[0], S.shape[0]) * torch.finfo(denom.dtype).eps
    denom = denom.clamp_min(_floor_value(denom, floor, 1))
    dt = A.dtype
    return (eA.to(dt), QA.to(dt), eS.to(dt), QS.to(dt)), denom.reciprocal().to(dt)
