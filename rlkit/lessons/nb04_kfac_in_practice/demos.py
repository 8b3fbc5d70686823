"""What notebook 04 computes: K-FAC's damping sweep and spectrum, the running average's error,
the cost of an inverse, a learning-rate search.
"""
from __future__ import annotations

import copy
import math
import time
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from rlkit.critic import (
    categorical_fisher_loss,
)
from rlkit.fisher import fisher_matrix, flat_grad
from rlkit.kfac import KFAC
from rlkit.lessons.nb03_kronecker_factors.demos import (
    check_output,
    cosine,
    exact_kfac,
    kfac_direction,
    output_distribution,
    output_loss,
    sampled_fisher_loss,
    train,
)


def lr_search(make_model: Callable[[], nn.Module], x: Tensor, y: Tensor, method: str, lrs: Iterable[float],
              steps: int, **train_options) -> tuple[float, dict[float, dict]]:
    """Train a fresh ``make_model()`` with each learning rate; return ``(best lr, {lr: history})``.

    Best: the lowest mean full-data loss over the recorded evaluations of the second half of the
    run (a diverged run counts as infinitely bad; ties go to the first lr given).
    """
    runs = {lr: train(make_model(), x, y, method, lr, steps, **train_options) for lr in lrs}

    def score(run: dict) -> float:
        if run["diverged"]:
            return math.inf
        return float(np.mean(run["loss"][len(run["loss"]) // 2:]))

    return min(runs, key=lambda lr: score(runs[lr])), runs


def damping_sweep(model: nn.Module, x: Tensor, y: Tensor, dampings: Sequence[float],
                  output: str = "categorical") -> dict:
    """How damping λ changes K-FAC's direction, for the gradient g of the mean loss on (x, y).

    K-FAC factors from one exact-expectation pass on x (:func:`exact_kfac`); F the dense exact
    Fisher on x. For each λ, per damping mode (keys ``"factored"`` and ``"eigen"``):
    ``cos_gradient`` = cos(F̂_λ⁻¹g, g) (→ 1 as λ → ∞: F̂_λ⁻¹g → g/λ), ``cos_natural`` =
    cos(F̂_λ⁻¹g, (F + λI)⁻¹g) (K-FAC against the exact damped natural gradient), ``norm`` =
    ‖F̂_λ⁻¹g‖. ``"natural_cos_gradient"`` = cos((F + λI)⁻¹g, g). (F + λI)⁻¹g comes from one
    eigendecomposition of F. Numpy arrays over ``dampings``; ``.grad`` is zeroed afterwards.
    """
    dampings = [float(d) for d in dampings]
    check_output(output)
    model.zero_grad()
    output_loss(model(x), y, output).backward()
    g = flat_grad(model).detach().clone()
    F = fisher_matrix(model, x, output_distribution(output))
    evals, Q = torch.linalg.eigh(F)
    qg = Q.T @ g
    natural = [Q @ (qg / (evals.clamp_min(0) + damping)) for damping in dampings]
    out = {"damping": np.array(dampings), "natural_cos_gradient": np.array([cosine(n, g) for n in natural])}
    for mode in ("factored", "eigen"):
        kfac = exact_kfac(model, x, output, damping_mode=mode, damping=dampings[0])
        cos_g, cos_n, norms = [], [], []
        for damping, nat in zip(dampings, natural):
            kfac.damping = damping
            d = kfac_direction(model, kfac, g)
            cos_g.append(cosine(d, g))
            cos_n.append(cosine(d, nat))
            norms.append(float(torch.linalg.norm(d)))
        out[mode] = {"cos_gradient": np.array(cos_g), "cos_natural": np.array(cos_n), "norm": np.array(norms)}
    model.zero_grad()
    return out


def kfac_spectrum(kfac: KFAC, damping: float) -> dict[str, np.ndarray]:
    """Eigenvalues of K-FAC's block-diagonal F̂ (all layers), each array sorted decreasing.

    ``"undamped"``: the products λ_A,i·λ_S,j of the factors' eigenvalues (the eigenvalues of
    S ⊗ A); ``"eigen"``: those of S ⊗ A + λI (each + λ); ``"factored"``: those of
    (S + √λ/κ I) ⊗ (A + κ√λ I), i.e. (λ_S,j + √λ/κ)(λ_A,i + κ√λ), with κ as rlkit computes
    it (``layer.pi`` after ``update_inverses`` at this λ). ``kfac`` must use factored damping;
    its ``damping`` is set to ``damping``.
    """
    if kfac.damping_mode != "factored":
        raise ValueError("kfac_spectrum needs a KFAC with damping_mode='factored' (it reads layer.pi)")
    kfac.damping = damping
    kfac.update_inverses()
    root = math.sqrt(float(damping))
    undamped, factored = [], []
    for layer in kfac.layers.values():
        eA, _, eS, _ = layer.eigendecomposition()
        eA, eS = eA.clamp_min(0), eS.clamp_min(0)
        undamped.append(torch.outer(eS, eA).reshape(-1))
        factored.append(torch.outer(eS + root / layer.pi, eA + layer.pi * root).reshape(-1))
    undamped = torch.cat(undamped).sort(descending=True).values.numpy()
    factored = torch.cat(factored).sort(descending=True).values.numpy()
    return {"undamped": undamped, "eigen": undamped + float(damping), "factored": factored}


def damping_panel_data(kfac: KFAC, sweep: dict, dampings: Sequence[float], damping: float) -> dict:
    """The numbers behind notebook 04's damping panel at one damping λ.

    ``kfac`` (factored damping) gives the spectrum at λ (:func:`kfac_spectrum`); ``sweep`` is
    :func:`damping_sweep` over ``dampings`` (precomputed once: the panel only marks λ on it).
    ``fraction_below`` is the fraction of F̂'s (undamped) eigenvalues below λ: the directions
    in which damping, not curvature, sets the step.
    """
    spectrum = kfac_spectrum(kfac, damping)
    return {
        "damping": float(damping),
        "spectrum": spectrum,
        "fraction_below": float(np.mean(spectrum["undamped"] < damping)),
        "dampings": np.asarray(dampings, dtype=float),
        "sweep": sweep,
    }


def factor_error(kfac: KFAC, reference: KFAC) -> float:
    """Relative error of the block-diagonal S ⊗ A of ``kfac`` against ``reference``'s, over all layers:
    sqrt(Σ_ℓ ‖S_ℓ⊗A_ℓ − S'_ℓ⊗A'_ℓ‖²) / sqrt(Σ_ℓ ‖S'_ℓ⊗A'_ℓ‖²).

    Uses ‖S⊗A‖² = ‖S‖²‖A‖² and ⟨S⊗A, S'⊗A'⟩ = ⟨S, S'⟩⟨A, A'⟩ (no Kronecker product formed).
    """
    num = den = 0.0
    for name, layer in kfac.layers.items():
        ref = reference.layers[name]
        A, S, A0, S0 = layer.A, layer.S, ref.A, ref.S
        own = float((A * A).sum()) * float((S * S).sum())
        target = float((A0 * A0).sum()) * float((S0 * S0).sum())
        cross = float((A * A0).sum()) * float((S * S0).sum())
        num += own - 2 * cross + target
        den += target
    return math.sqrt(max(num, 0.0) / den)


def running_average_errors(model: nn.Module, x: Tensor, decays: Sequence[float], passes: int, batch_size: int,
                           *, output: str = "categorical", change_at: int | None = None,
                           change: Callable[[nn.Module], None] | None = None, seed: int = 0) -> dict[float, np.ndarray]:
    """Error of K-FAC's running-average factors over sampled Fisher passes, per ``stats_decay``.

    Pass k (k = 1..passes) draws ``batch_size`` rows of x and sampled targets (the same rows and
    samples for every decay β) and updates ``KFAC(stats_decay=β)``; after it, the block-diagonal
    S ⊗ A is compared with the exact-expectation factors on all of x at the current weights
    (relative Frobenius error over all layers). If ``change_at`` is given, ``change(model)``
    modifies the weights in place (under no_grad) just before pass ``change_at``: the averages
    then lag behind. The model is copied; the caller's is not modified. Returns
    ``{β: errors (passes,)}``.
    """
    check_output(output)
    if (change_at is None) != (change is None):
        raise ValueError("give both change_at and change, or neither")
    results = {}
    for beta in decays:
        net = copy.deepcopy(model)
        reference = exact_kfac(net, x, output)
        kfac = KFAC(net, stats_decay=beta)
        rows = torch.Generator().manual_seed(seed)
        samples = torch.Generator().manual_seed(seed + 1)
        errors = []
        try:
            for k in range(1, passes + 1):
                if change_at is not None and k == change_at:
                    with torch.no_grad():
                        change(net)
                    reference = exact_kfac(net, x, output)
                idx = torch.randint(0, x.shape[0], (batch_size,), generator=rows)
                fisher_loss = sampled_fisher_loss(net(x[idx]), output, samples)
                kfac.update_stats(fisher_loss, retain_graph=False, force=True)
                errors.append(factor_error(kfac, reference))
        finally:
            kfac.remove()
        results[beta] = np.array(errors)
    return results


def inverse_time(d: int, inverse_method: str = "cholesky", damping_mode: str = "factored", repeats: int = 3,
                 seed: int = 0, dtype: torch.dtype = torch.float32) -> float:
    """Best-of-``repeats`` seconds of ``KFAC.update_inverses()`` for one layer whose A is d×d.

    The layer is ``nn.Linear(d − 1, 2)`` (A is d×d with the bias coordinate, S is 2×2, so A
    dominates); its factors come from one Fisher pass on 2d random inputs (A has full rank).
    """
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        layer = nn.Linear(d - 1, 2).to(dtype)
        xb = torch.randn(2 * d, d - 1, dtype=dtype)
    kfac = KFAC(layer, damping=1e-3, damping_mode=damping_mode, inverse_method=inverse_method, stats_decay=0.0)
    kfac.update_stats(categorical_fisher_loss(layer(xb), generator=torch.Generator().manual_seed(seed)),
                      retain_graph=False)
    kfac.remove()
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        kfac.update_inverses()
        best = min(best, time.perf_counter() - t0)
    return best
