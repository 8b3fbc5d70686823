r"""Exact curvature matrices of small models: the ground truth for K-FAC and the notebooks.

Dense and exact (up to floating point), built on ``torch.func``, for models of up to a few
thousand parameters: the Fisher (:func:`fisher_matrix`), its empirical and Monte-Carlo estimates,
the Gauss-Newton matrix, Fisher-vector products, conjugate gradient and the natural gradient.
:mod:`rlkit.kfac` approximates what this module computes exactly.

Conventions (docs/design.md; derivations in docs/derivations.md):

* Output distribution: a model maps x to the parameters z of p(y | z), named by
  ``Categorical()`` (z = logits, F_out = diag(p) − ppᵀ), ``DiagonalGaussian()`` (z = [μ, log σ],
  F_out = diag(1/σ², 2); ``log_std=`` a state-independent ``nn.Parameter``) or
  ``GaussianValue(sigma)`` (z = V(s), F_out = I/σ²: the Gauss-Newton critic).
* Fisher: F = E_x E_{y~p(y|x,θ)}[∇log p ∇log pᵀ] = E_x[Jᵀ F_out J], J = ∂z/∂θ, with E_x the
  MEAN over the batch (N identical rows give the Fisher of one row).
* Parameter vector: the parameters that require grad, in ``named_parameters()`` order, each
  flattened row-major (``tensor.reshape(-1)``); see :func:`parameter_names`, :func:`flatten`.
* Models are called one sample at a time under ``vmap``: rows must be independent (no
  BatchNorm in train mode).

References: Amari, "Natural gradient works efficiently in learning", Neural Computation 1998;
Martens, "New insights and perspectives on the natural gradient method", JMLR 2020; Schulman et
al., "Trust region policy optimization", ICML 2015 (Fisher-vector products with CG).
"""

from __future__ import annotations

import math
from typing import Callable, Iterable, Mapping

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, hessian, jacrev, jvp, vjp, vmap

__all__ = [
    "Categorical",
    "DiagonalGaussian",
    "GaussianValue",
    "parameter_names",
    "flatten",
    "unflatten",
    "flat_grad",
    "fisher_matrix",
    "empirical_fisher",
    "monte_carlo_fisher",
    "gauss_newton_matrix",
    "fisher_vector_product",
    "conjugate_gradient",
    "natural_gradient",
]

# Per-sample Jacobians take chunk·K·P numbers; bound that so a notebook with a large batch
# does not exhaust a laptop's memory.
_MAX_JACOBIAN_ELEMENTS = 2**24


# ----------------------------------------------------------------------------------------
# Parameter vector helpers
# ----------------------------------------------------------------------------------------


def _trainable(model: nn.Module) -> dict[str, Tensor]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def parameter_names(model: nn.Module) -> list[str]:
    """Names of the parameters the Fisher is over: ``named_parameters()`` order, requires_grad only."""
    return list(_trainable(model))


def flatten(tensors: Mapping[str, Tensor] | Iterable[Tensor]) -> Tensor:
    """Concatenate tensors (a dict's values in order, or an iterable) row-major into one vector."""
    values = tensors.values() if isinstance(tensors, Mapping) else tensors
    return torch.cat([t.reshape(-1) for t in values])


def unflatten(vector: Tensor, like: nn.Module | Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Split a parameter vector back into ``{name: tensor}`` with the shapes of ``like``.

    ``like`` is a model (its trainable parameters) or a dict of tensors; the inverse of
    ``flatten``.
    """
    shapes = {n: t.shape for n, t in (_trainable(like) if isinstance(like, nn.Module) else like).items()}
    total = sum(math.prod(s) for s in shapes.values())
    if vector.dim() != 1 or vector.numel() != total:
        raise ValueError(
            f"vector must be 1-D with {total} entries (one per parameter), got shape {tuple(vector.shape)}"
        )
    out, start = {}, 0
    for name, shape in shapes.items():
        size = math.prod(shape)
        out[name] = vector[start : start + size].reshape(shape)
        start += size
    return out


def flat_grad(model: nn.Module) -> Tensor:
    """The model's ``.grad`` as one vector in the Fisher's layout (zeros where ``.grad`` is None)."""
    return flatten(p.grad if p.grad is not None else torch.zeros_like(p) for p in _trainable(model).values())


# ----------------------------------------------------------------------------------------
# Output distributions
# ----------------------------------------------------------------------------------------


def _model_output(model: nn.Module, params: Mapping[str, Tensor], x: Tensor) -> Tensor:
    """The model's output on a batch, as (N, K); a tuple output is concatenated along K."""
    out = functional_call(model, dict(params), (x,))
    if isinstance(out, (tuple, list)):
        return torch.cat([o.reshape(x.shape[0], -1) for o in out], dim=-1)
    return out.reshape(x.shape[0], -1)


class Categorical:
    r"""p(y | x) = softmax(z)_y with logits z = model(x) of shape (N, C); y are class indices (N,).

    Output Fisher: F_out = diag(p) − ppᵀ (singular: shifting all logits changes nothing).
    """

    def outputs(self, model: nn.Module, params: Mapping[str, Tensor], x: Tensor) -> Tensor:
        return _model_output(model, params, x)

    def log_prob(self, psi: Tensor, y: Tensor) -> Tensor:
        return torch.log_softmax(psi, dim=-1).gather(-1, y.long().reshape(-1, 1)).squeeze(-1)

    def sample(self, psi: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return torch.multinomial(torch.softmax(psi, dim=-1), 1, generator=generator).squeeze(-1)

    def output_fisher(self, psi: Tensor) -> Tensor:
        p = torch.softmax(psi, dim=-1)
        return torch.diag_embed(p) - p.unsqueeze(-1) * p.unsqueeze(-2)

    def torch_distribution(self, psi: Tensor) -> torch.distributions.Distribution:
        return torch.distributions.Categorical(logits=psi)


class DiagonalGaussian:
    r"""p(y | x) = Π_d N(y_d; μ_d(x), σ_d²), parametrized by z = [μ, log σ] (2D numbers per sample).

    ``log_std=None``: state-dependent; the model outputs [μ, log σ] (last dim 2D, or a tuple).
    ``log_std=<nn.Parameter of the model or its name>``: state-independent; the model outputs μ
    and log σ is that parameter, broadcast over the batch.

    Output Fisher: F_out = diag(1/σ², …, 1/σ², 2, …, 2) (mean and log-std decouple: the
    third central moment of a Gaussian is zero). Actions y have shape (N, D).
    """

    def __init__(self, log_std: nn.Parameter | str | None = None):
        self.log_std = log_std

    def _log_std_name(self, model: nn.Module) -> str:
        if isinstance(self.log_std, str):
            names = dict(model.named_parameters())
            if self.log_std not in names:
                raise ValueError(f"log_std must name a parameter of the model, got {self.log_std!r}")
            return self.log_std
        for name, p in model.named_parameters():
            if p is self.log_std:
                return name
        raise ValueError("log_std must be an nn.Parameter registered in the model (or its name)")

    def outputs(self, model: nn.Module, params: Mapping[str, Tensor], x: Tensor) -> Tensor:
        out = _model_output(model, params, x)
        if self.log_std is None:
            if out.shape[-1] % 2:
                raise ValueError(
                    f"state-dependent DiagonalGaussian needs an even output size [mean, log_std], got {out.shape[-1]}"
                )
            return out
        name = self._log_std_name(model)
        log_std = params[name] if name in params else dict(model.named_parameters())[name]
        return torch.cat([out, log_std.reshape(1, -1).expand(out.shape[0], -1)], dim=-1)

    @staticmethod
    def _split(psi: Tensor) -> tuple[Tensor, Tensor]:
        return psi.chunk(2, dim=-1)

    def log_prob(self, psi: Tensor, y: Tensor) -> Tensor:
        mean, log_std = self._split(psi)
        z = (y.reshape(mean.shape) - mean) * torch.exp(-log_std)
        return (-0.5 * z**2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)

    def sample(self, psi: Tensor, generator: torch.Generator | None = None) -> Tensor:
        mean, log_std = self._split(psi)
        noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
        return mean + torch.exp(log_std) * noise

    def output_fisher(self, psi: Tensor) -> Tensor:
        _, log_std = self._split(psi)
        return torch.diag_embed(torch.cat([torch.exp(-2 * log_std), torch.full_like(log_std, 2.0)], dim=-1))

    def torch_distribution(self, psi: Tensor) -> torch.distributions.Distribution:
        mean, log_std = self._split(psi)
        # Independent(..., 1): log_prob and KL sum over action dimensions, as the policy needs.
        return torch.distributions.Independent(torch.distributions.Normal(mean, torch.exp(log_std)), 1)


class GaussianValue:
    r"""A value head read as a distribution: p(v | s) = N(v; V(s), σ² I) with fixed σ (default 1).

    z = V(s) (the model output, (N,) or (N, K)); targets v have the same number of entries.
    Output Fisher: F_out = I/σ², so the Fisher is E[JᵀJ]/σ² (the Gauss-Newton critic). The
    baselines trick −(V − sg(V + ε))², ε ~ N(0, 1), corresponds to σ = 0.5 (block 4JᵀJ).
    """

    def __init__(self, sigma: float = 1.0):
        if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"sigma must be a finite number > 0, got {sigma!r}")
        self.sigma = float(sigma)

    def outputs(self, model: nn.Module, params: Mapping[str, Tensor], x: Tensor) -> Tensor:
        return _model_output(model, params, x)

    def log_prob(self, psi: Tensor, y: Tensor) -> Tensor:
        z = (y.reshape(psi.shape) - psi) / self.sigma
        return (-0.5 * z**2 - math.log(self.sigma) - 0.5 * math.log(2 * math.pi)).sum(-1)

    def sample(self, psi: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return psi + self.sigma * torch.randn(psi.shape, generator=generator, dtype=psi.dtype, device=psi.device)

    def output_fisher(self, psi: Tensor) -> Tensor:
        eye = torch.eye(psi.shape[-1], dtype=psi.dtype, device=psi.device) / self.sigma**2
        return eye.expand(psi.shape[0], -1, -1)

    def torch_distribution(self, psi: Tensor) -> torch.distributions.Distribution:
        return torch.distributions.Independent(torch.distributions.Normal(psi, torch.full_like(psi, self.sigma)), 1)


OutputDistribution = Categorical | DiagonalGaussian | GaussianValue


# ----------------------------------------------------------------------------------------
# Per-sample Jacobians, in bounded chunks of the batch
# ----------------------------------------------------------------------------------------


def _detached_params(model: nn.Module) -> dict[str, Tensor]:
    return {n: p.detach() for n, p in _trainable(model).items()}


def _jacobian_chunks(model: nn.Module, x: Tensor, output_map: Callable, *per_sample: Tensor):
    """Yield (J, z, *per_sample chunks): J = ∂z_i/∂θ of shape (n, K, P), z of shape (n, K)."""
    params = _detached_params(model)
    n_params = sum(p.numel() for p in params.values())
    if n_params == 0:
        raise ValueError("model has no parameters that require grad")

    def one_sample(p, xi):  # run the batched model on a batch of one
        return output_map(model, p, xi.unsqueeze(0)).squeeze(0)

    def jac_and_value(p, xi):
        jac = jacrev(one_sample)(p, xi)
        return torch.cat([j.reshape(j.shape[0], -1) for j in jac.values()], dim=-1), one_sample(p, xi)

    per_sample_jac = vmap(jac_and_value, in_dims=(None, 0))
    out_size = one_sample(params, x[0]).numel()
    chunk = max(1, _MAX_JACOBIAN_ELEMENTS // (out_size * n_params))
    for start in range(0, x.shape[0], chunk):
        stop = start + chunk
        yield (*per_sample_jac(params, x[start:stop]), *(t[start:stop] for t in per_sample))


def _check_batch(x: Tensor, *others: tuple[str, Tensor]) -> None:
    if x.dim() < 1 or x.shape[0] == 0:
        raise ValueError(f"x must hold a non-empty batch (first dimension = samples), got shape {tuple(x.shape)}")
    for name, t in others:
        if t.shape[0] != x.shape[0]:
            raise ValueError(f"{name} must have one row per input: expected {x.shape[0]}, got {t.shape[0]}")


def _sandwich(jac: Tensor, middle: Tensor) -> Tensor:
    """Σ_i J_iᵀ M_i J_i for J (n, K, P) and M (n, K, K)."""
    return torch.einsum("nkp,nkl,nlq->pq", jac, middle, jac)


def _score(dist: OutputDistribution, psi: Tensor, y: Tensor) -> Tensor:
    """∇_z log p(y_i | z_i) for every sample, shape (n, K): log_prob sums over independent rows."""
    return grad(lambda p: dist.log_prob(p, y).sum())(psi)


# ----------------------------------------------------------------------------------------
# Curvature matrices
# ----------------------------------------------------------------------------------------


def fisher_matrix(model: nn.Module, x: Tensor, dist: OutputDistribution) -> Tensor:
    r"""Exact Fisher F = (1/N) Σ_i J_iᵀ F_out(z_i) J_i, a dense (P, P) matrix.

    The expectation over y ~ p(y | x_i, θ) is taken in closed form through the output Fisher
    F_out (see the module docstring); only the mean over the N inputs is empirical. Rows and
    columns follow ``parameter_names(model)`` (row-major per parameter).
    """
    _check_batch(x)
    total = None
    for jac, psi in _jacobian_chunks(model, x, dist.outputs):
        part = _sandwich(jac, dist.output_fisher(psi))
        total = part if total is None else total + part
    return total / x.shape[0]


def empirical_fisher(model: nn.Module, x: Tensor, dist: OutputDistribution, y: Tensor) -> Tensor:
    r"""Empirical Fisher F_emp = (1/N) Σ_i g_i g_iᵀ with g_i = ∇_θ log p(y_i | x_i, θ), y_i observed.

    Uses the observed targets / actions instead of sampling them from the model, so it equals
    the Fisher only when the y_i are drawn from the model itself; on a miscalibrated model it
    is a different matrix (not centred: the mean gradient is not subtracted).
    """
    _check_batch(x, ("y", y))
    total = None
    for jac, psi, y_chunk in _jacobian_chunks(model, x, dist.outputs, y):
        per_sample_grads = torch.einsum("nkp,nk->np", jac, _score(dist, psi, y_chunk))
        part = per_sample_grads.T @ per_sample_grads
        total = part if total is None else total + part
    return total / x.shape[0]


def monte_carlo_fisher(
    model: nn.Module,
    x: Tensor,
    dist: OutputDistribution,
    n_samples: int = 1,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Monte-Carlo Fisher F_MC = (1/N) Σ_i (1/S) Σ_s g_is g_isᵀ, g_is = ∇_θ log p(ŷ_is | x_i, θ).

    ŷ_is ~ p(y | x_i, θ) are sampled from the model (S = ``n_samples`` per input) with
    ``generator`` (seed it for reproducibility). Unbiased for the exact Fisher; its error
    shrinks like 1/sqrt(N·S). This is what K-FAC and ACKTR estimate in practice.
    """
    _check_batch(x)
    if not (isinstance(n_samples, int) and n_samples >= 1):
        raise ValueError(f"n_samples must be an integer >= 1, got {n_samples!r}")
    total = None
    for jac, psi in _jacobian_chunks(model, x, dist.outputs):
        # Average the score outer products in output space first (K×K per input, not P×P),
        # drawing many samples per call: one Python iteration per draw would be slow.
        n, k = psi.shape
        draws_per_call = max(1, _MAX_JACOBIAN_ELEMENTS // (n * k * k))
        outer, remaining = 0, n_samples
        while remaining > 0:
            draws = min(remaining, draws_per_call)
            psi_rep = psi.repeat(draws, 1)  # draw-major: row d·n + i is input i
            s = _score(dist, psi_rep, dist.sample(psi_rep, generator)).reshape(draws, n, k)
            outer = outer + torch.einsum("dnk,dnl->nkl", s, s)
            remaining -= draws
        part = _sandwich(jac, outer / n_samples)
        total = part if total is None else total + part
    return total / x.shape[0]


def gauss_newton_matrix(
    model: nn.Module,
    x: Tensor,
    loss: Callable[..., Tensor],
    targets: Tensor | None = None,
) -> Tensor:
    r"""Gauss-Newton matrix G = (1/N) Σ_i J_iᵀ H_i J_i, H_i = ∂²ℓ(f_i, t_i)/∂f_i² (output space).

    ``loss(output, target)`` (or ``loss(output)`` when ``targets`` is None) receives **one
    sample**: the model's output for x_i flattened to shape (K,) and t_i; it returns a scalar.
    J_i = ∂f_i/∂θ is the Jacobian of the raw model output. For ℓ = −log p(t | f) with p in the
    exponential family with natural parameter f, H does not depend on t and G equals the
    Fisher: squared loss/(2σ²) ↔ ``GaussianValue(sigma)``, softmax cross-entropy ↔
    ``Categorical()``.
    """
    if targets is None:
        _check_batch(x)
        hess = vmap(hessian(loss))
        extra = ()
    else:
        _check_batch(x, ("targets", targets))
        hess = vmap(hessian(loss), in_dims=(0, 0))
        extra = (targets,)
    total = None
    for jac, out, *t in _jacobian_chunks(model, x, lambda m, p, xb: _model_output(m, p, xb), *extra):
        part = _sandwich(jac, hess(out, *t))
        total = part if total is None else total + part
    return total / x.shape[0]


# ----------------------------------------------------------------------------------------
# Matrix-free products and solvers
# ----------------------------------------------------------------------------------------


def _check_damping(damping: float) -> float:
    if not (isinstance(damping, (int, float)) and math.isfinite(damping) and damping >= 0):
        raise ValueError(f"damping must be a finite number >= 0, got {damping!r}")
    return float(damping)


def fisher_vector_product(
    model: nn.Module, x: Tensor, dist: OutputDistribution, vector: Tensor, damping: float = 0.0
) -> Tensor:
    r"""(F + λI) v without forming F: Jᵀ(F_out (J v)) / N + λ v (the TRPO way).

    J v is a forward-mode product (``torch.func.jvp``), Jᵀu a reverse-mode one (``vjp``), both
    on the whole batch; F is the batch-mean exact Fisher of ``fisher_matrix``. ``vector`` is in
    the layout of ``parameter_names(model)``; λ = ``damping`` >= 0.
    """
    _check_batch(x)
    damping = _check_damping(damping)
    params = _detached_params(model)
    tangent = unflatten(vector, params)

    def outputs(p):
        return dist.outputs(model, p, x)

    psi, jv = jvp(outputs, (params,), (tangent,))
    f_out_jv = torch.einsum("nkl,nl->nk", dist.output_fisher(psi), jv)
    _, pullback = vjp(outputs, params)
    (jt_u,) = pullback(f_out_jv / x.shape[0])
    return flatten(jt_u) + damping * vector


def conjugate_gradient(
    matvec: Callable[[Tensor], Tensor],
    b: Tensor,
    max_iters: int | None = None,
    tol: float = 1e-10,
    return_info: bool = False,
):
    r"""Solve A x = b for symmetric positive (semi-)definite A given only v ↦ A v.

    Starts from x = 0 and stops when ‖b − A x‖ <= tol·‖b‖ (relative residual) or after
    ``max_iters`` iterations (default: len(b), enough in exact arithmetic; TRPO uses 10).
    From x = 0 on a singular PSD A with b in its range, CG converges to the minimum-norm
    solution. Returns x, or (x, info) with info = {"iterations", "residual_norm", "converged"}.
    """
    n = b.numel()
    max_iters = n if max_iters is None else max_iters
    if not (isinstance(max_iters, int) and max_iters >= 1):
        raise ValueError(f"max_iters must be an integer >= 1, got {max_iters!r}")
    if not (isinstance(tol, (int, float)) and tol >= 0):
        raise ValueError(f"tol must be a number >= 0, got {tol!r}")
    if not torch.isfinite(b).all():
        raise ValueError("b must be finite, got non-finite entries")

    x = torch.zeros_like(b)
    r = b.clone()  # residual b − A x at x = 0
    p = r.clone()
    rr = r @ r
    threshold = tol * torch.sqrt(rr)
    iterations = 0
    while iterations < max_iters and torch.sqrt(rr) > threshold:
        ap = matvec(p)
        curvature = p @ ap
        if curvature <= 0:  # A is not positive definite along p: stop rather than diverge
            break
        alpha = rr / curvature
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
        iterations += 1
    if not return_info:
        return x
    residual = float(torch.sqrt(rr))
    return x, {"iterations": iterations, "residual_norm": residual, "converged": residual <= float(threshold)}


def natural_gradient(
    model: nn.Module,
    x: Tensor,
    dist: OutputDistribution,
    gradient: Tensor,
    damping: float = 0.0,
    method: str = "dense",
    max_iters: int | None = None,
    tol: float = 1e-10,
) -> Tensor:
    r"""Natural-gradient direction Δ = (F + λI)⁻¹ g for a gradient vector g (e.g. ``flat_grad``).

    ``method="dense"`` forms F with ``fisher_matrix`` and solves; with λ = 0 it uses the
    pseudo-inverse, because a Fisher is often singular (softmax is invariant to shifting all
    logits) and the minimum-norm Δ is then the natural choice. ``method="cg"`` runs
    ``conjugate_gradient`` on ``fisher_vector_product`` (never forms F). The step that follows
    is θ + ηΔ for ascent on an objective (θ − ηΔ for a loss); see ``rlkit.trust_region`` for η.
    """
    _check_batch(x)
    damping = _check_damping(damping)
    n_bad = int((~torch.isfinite(gradient)).sum())
    if n_bad:
        raise ValueError(f"gradient must be finite, got {n_bad} non-finite entries")
    if method == "dense":
        fisher = fisher_matrix(model, x, dist)
        if damping == 0:
            return torch.linalg.pinv(fisher, hermitian=True) @ gradient
        eye = torch.eye(fisher.shape[0], dtype=fisher.dtype, device=fisher.device)
        return torch.linalg.solve(fisher + damping * eye, gradient)
    if method == "cg":
        return conjugate_gradient(
            lambda v: fisher_vector_product(model, x, dist, v, damping), gradient, max_iters=max_iters, tol=tol
        )
    raise ValueError(f"method must be 'dense' or 'cg', got {method!r}")
