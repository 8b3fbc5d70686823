r"""Small plain pieces behind notebooks 03 (Kronecker factors) and 04 (K-FAC in practice).

Nothing here is an algorithm of its own: K-FAC's factors, damping, running averages and
inverses come from :mod:`rlkit.kfac`, exact Fisher matrices from :mod:`rlkit.fisher`, the
Fisher-pass losses and output square roots from :mod:`rlkit.critic`. This module sets up the
small problems the notebooks draw and measures things about them, so that the notebooks stay
short and the numbers behind their pictures are tested (``tests/test_kfac_demos.py``).

Conventions (DESIGN.md)
-----------------------
* Two output models, named by ``output``: ``"categorical"`` (the model outputs logits; Fisher of
  ``rlkit.fisher.Categorical()``; loss: mean cross-entropy) and ``"gaussian"`` (the model
  outputs the mean of N(y; f(x), I); Fisher of ``rlkit.fisher.GaussianValue(1.0)``, i.e. the
  Gauss-Newton matrix E[JᵀJ]; loss: ½ mean Σ_k (f_k − y_k)², the negative log-likelihood up to
  a constant).
* Exact Fishers are batch means over parameters in ``model.named_parameters()`` order, each
  flattened row-major (``rlkit.fisher``). ``KFACLayer.dense_block()`` is S ⊗ A in the same
  order (``[W.reshape(-1), b]``), so the two compare entry by entry.
* "Exact-expectation" K-FAC factors (:func:`exact_kfac`) come from ``KFAC.update_stats_exact``:
  S = E_n[J_sᵀ F_out J_s] with the exact output Fisher, no sampled labels. Against the exact
  Fisher block the only remaining difference is the Kronecker factorization itself,
  E[aaᵀ ⊗ ggᵀ] ≈ E[aaᵀ] ⊗ E[ggᵀ]. Training (:func:`train`) uses the sampled Fisher pass, as
  ACKTR does.
* Relative errors are Frobenius: ‖X − X*‖ / ‖X*‖.

The problems
------------
:func:`teacher_classification` (notebook 03) and :func:`teacher_regression` (notebook 04):
inputs x = z M (+ offset) with z ~ N(0, I) and a fixed matrix M whose singular values are
log-spaced from 1 down to 1/``condition`` (correlated, badly scaled inputs), targets from a
random tanh "teacher" network that sees the inputs mapped back to unit scale (so every input
direction matters).

:func:`train` minimizes the mean loss on minibatches with one of three methods sharing the
same minibatches:

* ``"sgd"``: SGD with momentum (``momentum``, 0.9 unless given) on the gradient g;
* ``"adam"``: Adam (``torch.optim.Adam``, default betas);
* ``"kfac"``: SGD (momentum 0 unless given) on the K-FAC direction F̂⁻¹g
  (``rlkit.kfac.KFAC``, Fisher pass with targets sampled from the model every step).
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
    categorical_fisher_sqrt,
    gaussian_fisher_sqrt,
    value_fisher_loss,
)
from rlkit.fisher import Categorical, GaussianValue, fisher_matrix, flat_grad, unflatten
from rlkit.kfac import KFAC
from rlkit.nets import mlp

__all__ = [
    "damping_panel_data",
    "OUTPUTS",
    "METHODS",
    "seeded_mlp",
    "relative_error",
    "cosine",
    "output_distribution",
    "mean_loss",
    "layer_slices",
    "exact_kfac",
    "kfac_direction",
    "kfac_blocks",
    "kfac_block_errors",
    "kfac_cost_table",
    "teacher_classification",
    "teacher_regression",
    "train",
    "lr_search",
    "damping_sweep",
    "kfac_spectrum",
    "factor_error",
    "running_average_errors",
    "inverse_time",
]

OUTPUTS = ("categorical", "gaussian")
METHODS = ("sgd", "adam", "kfac")


# ----------------------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------------------


def seeded_mlp(sizes: Sequence[int], seed: int, activation: Callable[[], nn.Module] | None = nn.Tanh,
               dtype: torch.dtype = torch.float64, bias: bool = True) -> nn.Sequential:
    """``rlkit.nets.mlp(sizes, activation)`` with PyTorch's default initialization drawn from a
    stream seeded with ``seed`` (the caller's global random stream is left untouched).

    ``activation=None`` gives a deep *linear* network (``nn.Linear`` layers only, with or
    without ``bias``).
    """
    if activation is not None and not bias:
        raise ValueError("bias=False is only offered for linear networks (activation=None)")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        if activation is None:
            model = nn.Sequential(*[nn.Linear(sizes[i], sizes[i + 1], bias=bias) for i in range(len(sizes) - 1)])
        else:
            model = mlp(sizes, activation)
    return model.to(dtype)


def relative_error(estimate: Tensor, exact: Tensor) -> float:
    """‖estimate − exact‖_F / ‖exact‖_F."""
    return float(torch.linalg.norm(estimate - exact) / torch.linalg.norm(exact))


def cosine(u: Tensor, v: Tensor) -> float:
    """uᵀv / (‖u‖‖v‖) of two flat vectors."""
    return float(u @ v / (torch.linalg.norm(u) * torch.linalg.norm(v)))


def _check_output(output: str) -> str:
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    return output


def output_distribution(output: str):
    """The ``rlkit.fisher`` output distribution of ``output``: ``Categorical()`` or ``GaussianValue(1.0)``."""
    return Categorical() if _check_output(output) == "categorical" else GaussianValue(1.0)


def _loss(out: Tensor, y: Tensor, output: str) -> Tensor:
    if output == "categorical":
        return nn.functional.cross_entropy(out, y)
    return 0.5 * ((out - y) ** 2).sum(-1).mean()


def _fisher_loss(out: Tensor, output: str, generator: torch.Generator) -> Tensor:
    if output == "categorical":
        return categorical_fisher_loss(out, generator=generator)
    return value_fisher_loss(out, 1.0, generator=generator)


def mean_loss(model: nn.Module, x: Tensor, y: Tensor, output: str = "categorical") -> float:
    """The mean loss on (x, y), no gradient: cross-entropy, or ½ mean Σ_k (f_k − y_k)²."""
    _check_output(output)
    with torch.no_grad():
        return float(_loss(model(x), y, output))


def layer_slices(model: nn.Module, kfac: KFAC) -> dict[str, slice]:
    """Where each K-FAC layer's parameters sit in the ``rlkit.fisher`` parameter vector."""
    offsets, start = {}, 0
    for name, p in model.named_parameters():
        if p.requires_grad:
            offsets[id(p)] = slice(start, start + p.numel())
            start += p.numel()
    out = {}
    for name, layer in kfac.layers.items():
        parts = sorted((offsets[id(p)] for p in layer.parameters), key=lambda s: s.start)
        sl = slice(parts[0].start, parts[-1].stop)
        if sl.stop - sl.start != layer.d_in * layer.d_out:
            raise ValueError(f"the parameters of layer {name!r} are not contiguous in the parameter vector")
        out[name] = sl
    return out


def exact_kfac(model: nn.Module, x: Tensor, output: str = "categorical", **kfac_options) -> KFAC:
    """A ``KFAC`` on ``model`` whose factors come from one exact-expectation pass on the batch x.

    S uses the output's exact Fisher square root (``categorical_fisher_sqrt``, or
    ``gaussian_fisher_sqrt`` with σ = 1). ``stats_decay`` defaults to 0. The hooks are removed
    afterwards: the factors stay readable, and ``precondition`` still works on gradients
    written into ``.grad`` (see :func:`kfac_direction`).
    """
    _check_output(output)
    kfac_options.setdefault("stats_decay", 0.0)
    kfac = KFAC(model, **kfac_options)
    out = model(x)
    sqrt = categorical_fisher_sqrt(out) if output == "categorical" else gaussian_fisher_sqrt(out, 1.0)
    kfac.update_stats_exact([(out, sqrt)], retain_graph=False)
    kfac.remove()
    return kfac


def kfac_direction(model: nn.Module, kfac: KFAC, g: Tensor) -> Tensor:
    """F̂⁻¹g for a flat gradient g (``rlkit.fisher`` layout) with fresh inverses.

    Writes g into ``.grad``, runs ``kfac.precondition(update_inverses=True)`` and reads the
    result back as a flat vector; the model's ``.grad`` is left holding F̂⁻¹g.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    for p, value in zip(params, unflatten(g, model).values()):
        p.grad = value.detach().clone()
    kfac.precondition(update_inverses=True)
    return flat_grad(model)


def kfac_blocks(model: nn.Module, x: Tensor, output: str = "categorical"):
    """The exact Fisher and K-FAC's view of it, on the batch x.

    Returns ``(F, blocks, slices)``: F the dense exact Fisher (``rlkit.fisher.fisher_matrix``),
    ``blocks = {layer: (exact diagonal block of F, K-FAC block S ⊗ A)}`` in the same parameter
    order (K-FAC from :func:`exact_kfac`), ``slices = {layer: slice of the parameter vector}``.
    """
    F = fisher_matrix(model, x, output_distribution(output))
    kfac = exact_kfac(model, x, output)
    slices = layer_slices(model, kfac)
    blocks = {name: (F[sl, sl], kfac.layers[name].dense_block()) for name, sl in slices.items()}
    return F, blocks, slices


def kfac_block_errors(model: nn.Module, x: Tensor, output: str = "categorical") -> dict[str, float]:
    """``{layer: ‖S⊗A − F_ℓ‖/‖F_ℓ‖}`` for exact-expectation factors on the batch x."""
    _, blocks, _ = kfac_blocks(model, x, output)
    return {name: relative_error(approx, exact) for name, (exact, approx) in blocks.items()}


# ----------------------------------------------------------------------------------------
# Storage and inversion cost (notebook 03)
# ----------------------------------------------------------------------------------------


def kfac_cost_table(model: nn.Module) -> list[dict]:
    """Per covered layer: sizes and the cost of K-FAC's factors against the dense block.

    Each row: ``name, kind, d_in, d_out, params`` (= d_in·d_out, bias included),
    ``factor_entries`` = d_in² + d_out² (A and S), ``block_entries`` = (d_in·d_out)² (the dense
    Fisher block), ``factor_inverse_flops`` = d_in³ + d_out³ and ``block_inverse_flops`` =
    (d_in·d_out)³ (multiply-adds of a Cholesky inverse, about d³ for a d×d matrix). Python
    ints (no overflow). The full dense Fisher has P² entries and costs about P³ to invert, P
    the number of trainable parameters.
    """
    kfac = KFAC(model, uncovered="identity")
    try:
        rows = []
        for name, layer in kfac.layers.items():
            d_in, d_out = layer.d_in, layer.d_out
            rows.append({
                "name": name, "kind": layer.kind, "d_in": d_in, "d_out": d_out, "params": d_in * d_out,
                "factor_entries": d_in**2 + d_out**2, "block_entries": (d_in * d_out) ** 2,
                "factor_inverse_flops": d_in**3 + d_out**3, "block_inverse_flops": (d_in * d_out) ** 3,
            })
    finally:
        kfac.remove()
    return rows


# ----------------------------------------------------------------------------------------
# The problems
# ----------------------------------------------------------------------------------------


def _inputs(gen: torch.Generator, n: int, dim: int, condition: float, dtype) -> tuple[Tensor, Tensor]:
    U, _ = torch.linalg.qr(torch.randn(dim, dim, generator=gen, dtype=dtype))
    V, _ = torch.linalg.qr(torch.randn(dim, dim, generator=gen, dtype=dtype))
    s = torch.logspace(0, -math.log10(condition), dim, dtype=dtype)
    M = U @ torch.diag(s) @ V.T
    return torch.randn(n, dim, generator=gen, dtype=dtype) @ M, M


def _teacher(dim: int, hidden: int, out: int, M: Tensor, offset: float, seed: int, dtype) -> nn.Sequential:
    """tanh teacher that sees 2·(x − offset) M⁻¹ (unit-scale features)."""
    teacher = seeded_mlp([dim, hidden, out], seed=seed, dtype=dtype)
    with torch.no_grad():
        W = teacher[0].weight @ torch.linalg.inv(M).T * 2.0
        teacher[0].bias.sub_(W @ torch.full((dim,), float(offset), dtype=dtype))
        teacher[0].weight.copy_(W)
    return teacher


def teacher_classification(n: int = 1024, dim: int = 4, classes: int = 3, hidden: int = 16,
                           condition: float = 1.0, sharpness: float = 3.0, seed: int = 0,
                           dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor, nn.Module]:
    """Seeded classification data: x = z M (z ~ N(0, I_dim), singular values of M log-spaced from
    1 to 1/condition), labels y ~ softmax(sharpness · teacher(x)) sampled. Returns (x, y, teacher)."""
    gen = torch.Generator().manual_seed(seed)
    x, M = _inputs(gen, n, dim, condition, dtype)
    teacher = _teacher(dim, hidden, classes, M, 0.0, seed + 1, dtype)
    with torch.no_grad():
        teacher[2].weight.mul_(sharpness)
        teacher[2].bias.mul_(sharpness)
        y = Categorical().sample(teacher(x), gen)
    return x, y, teacher


def teacher_regression(n: int = 4096, dim: int = 8, outputs: int = 4, hidden: int = 16,
                       condition: float = 30.0, offset: float = 3.0, seed: int = 0,
                       dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor, nn.Module]:
    """Seeded regression data with badly conditioned inputs: x = z M + offset (every coordinate
    shifted by ``offset``: inputs that are not centred, as raw observations often are), targets
    y = teacher(x) standardized to unit variance per output (noise-free). Returns (x, y, teacher)
    with the teacher's last layer rescaled so that ``teacher(x) == y``."""
    gen = torch.Generator().manual_seed(seed)
    z, M = _inputs(gen, n, dim, condition, dtype)
    x = z + offset
    teacher = _teacher(dim, hidden, outputs, M, offset, seed + 1, dtype)
    with torch.no_grad():
        raw = teacher(x)
        mean, std = raw.mean(0), raw.std(0)
        teacher[2].weight.div_(std[:, None])
        teacher[2].bias.sub_(mean).div_(std)
        y = teacher(x)
    return x, y, teacher


# ----------------------------------------------------------------------------------------
# Training (notebooks 03 and 04)
# ----------------------------------------------------------------------------------------


def train(model: nn.Module, x: Tensor, y: Tensor, method: str, lr: float, steps: int, *,
          output: str = "categorical", batch_size: int = 256, seed: int = 0, momentum: float | None = None,
          damping: float = 1e-3, stats_decay: float = 0.95, inverse_every: int = 1, eval_every: int = 10,
          callback: Callable[[int, nn.Module], None] | None = None) -> dict:
    """Train ``model`` in place on the mean loss of ``output`` with ``method`` in ``METHODS``.

    Minibatches of ``batch_size`` rows are drawn with replacement from a generator seeded with
    ``seed`` (the same sequence for every method); the K-FAC Fisher pass samples its targets from
    a second seeded generator. ``momentum`` defaults to 0.9 for ``"sgd"`` and 0 for ``"kfac"``.
    K-FAC options: ``damping``, ``stats_decay``, ``inverse_every`` (1 by default: this is a small
    network; notebook 04 shows what a longer period does at the start of training). At step 0,
    every ``eval_every`` steps and at the end the full-data loss is recorded and
    ``callback(step, model)`` runs. The wall clock counts the training steps only.

    Returns ``{"step", "loss", "wall"}`` (numpy arrays; wall = seconds of training so far),
    ``"kfac_timings"`` (a copy of ``KFAC.timings`` for ``"kfac"``, else None) and ``"diverged"``: True if the loss became non-finite or exceeded 10⁶, or K-FAC refused a
    non-finite gradient; the run stops there.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    _check_output(output)
    batches = torch.Generator().manual_seed(seed)
    samples = torch.Generator().manual_seed(seed + 10_000)
    kfac = None
    if method == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=lr)
    else:
        mom = (0.9 if method == "sgd" else 0.0) if momentum is None else momentum
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=mom)
        if method == "kfac":
            kfac = KFAC(model, damping=damping, stats_decay=stats_decay, inverse_every=inverse_every)
    log = {"step": [], "loss": [], "wall": []}
    clock, diverged = 0.0, False

    def record(step: int) -> bool:
        loss = mean_loss(model, x, y, output)
        log["step"].append(step)
        log["loss"].append(loss)
        log["wall"].append(clock)
        if callback is not None:
            callback(step, model)
        return math.isfinite(loss) and loss < 1e6

    try:
        record(0)
        for step in range(1, steps + 1):
            t0 = time.perf_counter()
            idx = torch.randint(0, x.shape[0], (batch_size,), generator=batches)
            out = model(x[idx])
            if kfac is not None and kfac.stats_due:
                kfac.update_stats(_fisher_loss(out, output, samples))
            loss = _loss(out, y[idx], output)
            opt.zero_grad()
            loss.backward()
            if kfac is not None:
                try:
                    kfac.precondition()
                except ValueError:  # non-finite gradient: the run has diverged
                    diverged = True
                    break
            opt.step()
            clock += time.perf_counter() - t0
            if step % eval_every == 0 or step == steps:
                if not record(step):
                    diverged = True
                    break
    finally:
        if kfac is not None:
            kfac.remove()
    out = {key: np.array(values) for key, values in log.items()}
    out["diverged"] = diverged
    out["kfac_timings"] = dict(kfac.timings) if kfac is not None else None
    return out


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


# ----------------------------------------------------------------------------------------
# Damping (notebook 04)
# ----------------------------------------------------------------------------------------


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
    _check_output(output)
    model.zero_grad()
    _loss(model(x), y, output).backward()
    g = flat_grad(model).detach().clone()
    F = fisher_matrix(model, x, output_distribution(output))
    evals, Q = torch.linalg.eigh(F)
    qg = Q.T @ g
    natural = [Q @ (qg / (evals.clamp_min(0) + lam)) for lam in dampings]
    out = {"damping": np.array(dampings), "natural_cos_gradient": np.array([cosine(n, g) for n in natural])}
    for mode in ("factored", "eigen"):
        kfac = exact_kfac(model, x, output, damping_mode=mode, damping=dampings[0])
        cos_g, cos_n, norms = [], [], []
        for lam, nat in zip(dampings, natural):
            kfac.damping = lam
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
    (S + √λ/π I) ⊗ (A + π√λ I), i.e. (λ_S,j + √λ/π)(λ_A,i + π√λ), with π as rlkit computes
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


def damping_panel_data(kfac: KFAC, sweep: dict, dampings: Sequence[float], gradient_norm: float,
                       damping: float) -> dict:
    """The numbers behind notebook 04's damping panel at one damping λ.

    ``kfac`` (factored damping) gives the spectrum at λ (:func:`kfac_spectrum`); ``sweep`` is
    :func:`damping_sweep` over ``dampings`` (precomputed once: the panel only marks λ on it);
    ``gradient_norm`` = ‖g‖ draws the gradient step's length ‖g‖/λ for comparison.
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
        "gradient_norm": float(gradient_norm),
    }


# ----------------------------------------------------------------------------------------
# Running averages (notebook 04)
# ----------------------------------------------------------------------------------------


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
    _check_output(output)
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
                fisher_loss = _fisher_loss(net(x[idx]), output, samples)
                kfac.update_stats(fisher_loss, retain_graph=False, force=True)
                errors.append(factor_error(kfac, reference))
        finally:
            kfac.remove()
        results[beta] = np.array(errors)
    return results


# ----------------------------------------------------------------------------------------
# Inverses (notebook 04)
# ----------------------------------------------------------------------------------------


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
