"""What notebook 03 computes beside ``rlkit.kfac``: seeded MLPs, the exact Fisher's diagonal blocks
beside K-FAC's A ⊗ S, directions, costs, teacher data and a small trainer (SGD, Adam, K-FAC).
"""
from __future__ import annotations

import math
import time
from typing import Callable, Sequence

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

OUTPUTS = ("categorical", "gaussian")


METHODS = ("sgd", "adam", "kfac")


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


def check_output(output: str) -> str:
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    return output


def output_distribution(output: str):
    """The ``rlkit.fisher`` output distribution of ``output``: ``Categorical()`` or ``GaussianValue(1.0)``."""
    return Categorical() if check_output(output) == "categorical" else GaussianValue(1.0)


def output_loss(out: Tensor, y: Tensor, output: str) -> Tensor:
    if output == "categorical":
        return nn.functional.cross_entropy(out, y)
    return 0.5 * ((out - y) ** 2).sum(-1).mean()


def sampled_fisher_loss(out: Tensor, output: str, generator: torch.Generator) -> Tensor:
    if output == "categorical":
        return categorical_fisher_loss(out, generator=generator)
    return value_fisher_loss(out, 1.0, generator=generator)


def mean_loss(model: nn.Module, x: Tensor, y: Tensor, output: str = "categorical") -> float:
    """The mean loss on (x, y), no gradient: cross-entropy, or ½ mean Σ_k (f_k − y_k)²."""
    check_output(output)
    with torch.no_grad():
        return float(output_loss(model(x), y, output))


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
    check_output(output)
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
    check_output(output)
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
                kfac.update_stats(sampled_fisher_loss(out, output, samples))
            loss = output_loss(out, y[idx], output)
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
