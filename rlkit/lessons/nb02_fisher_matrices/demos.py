"""What notebook 02 computes beside ``rlkit.fisher``: the memory of a dense Fisher and the residual
curve of conjugate gradient on a Fisher system.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import Tensor

from rlkit.fisher import (
    conjugate_gradient,
)


def dense_fisher_bytes(n_params: int, bytes_per_entry: int = 4) -> int:
    """Memory of one dense P×P matrix: P²·(bytes per entry); 4 for float32, 8 for float64."""
    if not (isinstance(n_params, int) and n_params >= 1):
        raise ValueError(f"n_params must be an integer >= 1, got {n_params!r}")
    return n_params**2 * bytes_per_entry


def cg_curve(
    matvec: Callable[[Tensor], Tensor], b: Tensor, max_iters: int, solution: Tensor | None = None
) -> dict[str, np.ndarray]:
    r"""Relative residual ‖b − A x_k‖/‖b‖ of ``rlkit.fisher.conjugate_gradient`` after k = 0…max_iters.

    x_k is what ``conjugate_gradient(matvec, b, max_iters=k, tol=0)`` returns. CG from x₀ = 0 is
    deterministic, so the runs for k = 1…max_iters ask for the same products A p_j in the same
    order: each product is computed once and replayed (checked bit for bit against the cached
    input), so a curve costs about 2·max_iters products, not max_iters²/2. The residual is
    recomputed with ``matvec``, not taken from CG's own recursion. With ``solution`` (e.g. the
    dense solve), also the relative error ‖x_k − x*‖/‖x*‖.
    Returns {"iterations", "residual"[, "error"]} as numpy arrays of length max_iters + 1.
    """
    if not (isinstance(max_iters, int) and max_iters >= 0):
        raise ValueError(f"max_iters must be an integer >= 0, got {max_iters!r}")
    cache: list[tuple[Tensor, Tensor]] = []

    def replaying_matvec(v: Tensor) -> Tensor:
        for cached_v, cached_av in cache:
            if torch.equal(cached_v, v):
                return cached_av
        av = matvec(v)
        cache.append((v.clone(), av))
        return av

    b_norm = float(torch.linalg.vector_norm(b))
    residual, error = [1.0], ([1.0] if solution is not None else None)
    for k in range(1, max_iters + 1):
        x = conjugate_gradient(replaying_matvec, b, max_iters=k, tol=0.0)
        residual.append(float(torch.linalg.vector_norm(b - matvec(x))) / b_norm)
        if solution is not None:
            error.append(float(torch.linalg.vector_norm(x - solution) / torch.linalg.vector_norm(solution)))
    out = {"iterations": np.arange(max_iters + 1), "residual": np.array(residual)}
    if error is not None:
        out["error"] = np.array(error)
    return out
