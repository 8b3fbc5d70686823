"""Exercise checks for notebook 02 (Fisher matrices).

``check_empirical_fisher_gaussian`` runs the student's function against ``rlkit.fisher`` on
seeded random regressors and names the typical mistakes. The numeric checks take the student's
answer (``None`` while the exercise is not done: the check then says so and returns False, it
does not raise), compare it with the expected value and print ✓ or ✗ with a hint; on a right
answer some also show rlkit confirming the fact on a small seeded example. The problem data are
module constants, so the notebook's text and the check read the same numbers.
"""
from __future__ import annotations

import torch
from torch import nn

from rlkit.fisher import (
    Categorical,
    GaussianValue,
    conjugate_gradient,
    empirical_fisher,
    fisher_matrix,
    fisher_vector_product,
    flat_grad,
    flatten,
)
from rlkit.lessons.checks import NOT_DONE, check_implementation, close, report
from rlkit.lessons.nb02_fisher_matrices.demos import dense_fisher_bytes

__all__ = [
    "EF_MODEL_SIGMA",
    "EF_DATA_NOISE",
    "MEMORY_PARAMS",
    "CG_INPUTS",
    "CG_CLASSES",
    "CG_DAMPING",
    "empirical_fisher_cases",
    "check_empirical_fisher_gaussian",
    "empirical_fisher_ratio",
    "cg_iterations_on_example",
    "check_empirical_fisher_factor",
    "check_fisher_memory_gib",
    "check_cg_iterations",
]

GIB = 2**30

#: Exercise 2: the model reads targets as N(t; f(x), σ²) with this σ; the data's noise has this std.
EF_MODEL_SIGMA = 0.5
EF_DATA_NOISE = 1.0
#: Exercise 3: parameters of the network whose dense float32 Fisher is stored.
MEMORY_PARAMS = 100_000
#: Exercise 4: CG on (F + λI)Δ = g for a softmax network on a batch of this many inputs and classes.
CG_INPUTS = 4
CG_CLASSES = 3
CG_DAMPING = 0.1


# ---------------------------------------------------------------- the implementation exercise


def empirical_fisher_cases() -> list[dict]:
    """Seeded inputs for ``empirical_fisher_gaussian(model, x, y, sigma)``: small float64 tanh
    regressors (1 or 2 outputs), a batch x, observed targets y = f(x) + noise whose std is not the
    model's σ (so F_emp and F differ), and σ ≠ 1 (so a missing σ² shows)."""
    cases = []
    for seed, (n, d_in, hidden, d_out, sigma) in enumerate([(7, 3, 4, 1, 0.5), (12, 2, 5, 2, 2.0), (5, 4, 3, 2, 0.8)]):
        gen = torch.Generator().manual_seed(100 + seed)
        with torch.random.fork_rng():  # nn.Linear's initialization draws from the global stream
            torch.manual_seed(100 + seed)
            model = nn.Sequential(nn.Linear(d_in, hidden), nn.Tanh(), nn.Linear(hidden, d_out)).double()
        x = torch.randn(n, d_in, generator=gen, dtype=torch.float64)
        with torch.no_grad():
            y = model(x) + 1.5 * torch.randn(n, d_out, generator=gen, dtype=torch.float64)
        cases.append(dict(model=model, x=x, y=y, sigma=sigma))
    return cases


def _reference_empirical_fisher(model, x, y, sigma):
    return empirical_fisher(model, x, GaussianValue(sigma), y)


def _mean_score(model, x, y, sigma):
    """ḡ = ∇_θ mean_i log N(y_i; f(x_i), σ²): the gradient of the mean log-likelihood."""
    params = [p for p in model.parameters() if p.requires_grad]
    log_lik = GaussianValue(sigma).log_prob(model(x), y).mean()
    return flatten(torch.autograd.grad(log_lik, params))


def _squared_batch_gradient(model, x, y, sigma):
    g = _mean_score(model, x, y, sigma)
    return torch.outer(g, g)


_EMPIRICAL_FISHER_MISTAKES = [
    (_squared_batch_gradient,
     "this is ḡḡᵀ, the outer product of the batch's mean gradient with itself: the empirical Fisher is "
     "the mean of the per-sample outer products g_i g_iᵀ (vmap the gradient over the batch)"),
    (lambda model, x, y, sigma: len(x) * _reference_empirical_fisher(model, x, y, sigma),
     "a sum over the batch: divide by N, the Fisher is a mean over the inputs"),
    (lambda model, x, y, sigma: fisher_matrix(model, x, GaussianValue(sigma)),
     "this is the exact Fisher F = mean JᵀJ/σ², an average over the model's own targets: the empirical "
     "Fisher uses the observed targets y, through the residuals y − f(x)"),
    (lambda model, x, y, sigma: _reference_empirical_fisher(model, x, y, sigma)
     - _squared_batch_gradient(model, x, y, sigma),
     "the mean gradient was subtracted (a covariance of the g_i): the empirical Fisher is the "
     "uncentred mean of g_i g_iᵀ"),
    (lambda model, x, y, sigma: sigma**4 * _reference_empirical_fisher(model, x, y, sigma),
     "σ² is missing: the score of N(y; f, σ²) with respect to f is (y − f)/σ²"),
    (lambda model, x, y, sigma: sigma**2 * _reference_empirical_fisher(model, x, y, sigma),
     "σ where σ² belongs: the score of N(y; f, σ²) with respect to f is (y − f)/σ², not (y − f)/σ"),
]


def check_empirical_fisher_gaussian(empirical_fisher_gaussian) -> bool:
    """The implementation exercise: ``empirical_fisher_gaussian(model, x, y, sigma)`` returns the dense
    F_emp = (1/N) Σ_i g_i g_iᵀ, g_i = ∇_θ log N(y_i; model(x_i), σ² I), checked against
    ``rlkit.fisher.empirical_fisher(model, x, GaussianValue(sigma), y)`` on seeded regressors."""
    return check_implementation(
        empirical_fisher_gaussian, _reference_empirical_fisher, empirical_fisher_cases(),
        what="empirical Fisher of a Gaussian regressor", mistakes=_EMPIRICAL_FISHER_MISTAKES,
        rtol=1e-6, atol=1e-9,
    )


# ---------------------------------------------------------------- the numeric exercises


def empirical_fisher_ratio(n_samples: int = 4000, seed: int = 0) -> float:
    """trace(F_emp)/trace(F) for a linear regression model read as N(t; f(x), EF_MODEL_SIGMA²) whose
    mean is exact, on targets whose noise has std EF_DATA_NOISE (seeded; float64)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():  # nn.Linear's initialization draws from the global stream
        model = nn.Linear(3, 1).double()
    with torch.no_grad():
        model.weight.copy_(torch.randn(1, 3, generator=gen, dtype=torch.float64))
        model.bias.zero_()
        x = torch.randn(n_samples, 3, generator=gen, dtype=torch.float64)
        targets = model(x) + EF_DATA_NOISE * torch.randn(n_samples, 1, generator=gen, dtype=torch.float64)
    dist = GaussianValue(EF_MODEL_SIGMA)
    return float(empirical_fisher(model, x, dist, targets).trace() / fisher_matrix(model, x, dist).trace())


def cg_iterations_on_example(seed: int = 0, tol: float = 1e-10) -> int:
    """Iterations rlkit's CG takes on (F + CG_DAMPING·I)Δ = g for a seeded 3→8→CG_CLASSES softmax
    network on CG_INPUTS inputs, g the gradient of the mean log-likelihood of random labels."""
    with torch.random.fork_rng():  # leave the caller's global random stream untouched
        torch.manual_seed(seed)
        net = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, CG_CLASSES)).double()
        x = torch.randn(CG_INPUTS, 3, dtype=torch.float64)
        labels = torch.randint(0, CG_CLASSES, (CG_INPUTS,))
    net.zero_grad()
    Categorical().log_prob(net(x), labels).mean().backward()
    g = flat_grad(net)
    _, info = conjugate_gradient(
        lambda v: fisher_vector_product(net, x, Categorical(), v, CG_DAMPING),
        g,
        max_iters=g.numel(),
        tol=tol,
        return_info=True,
    )
    return info["iterations"]


def check_empirical_fisher_factor(answer) -> bool:
    """Exercise 2: F_emp = c·F in expectation when the model's σ is wrong; c = (s/σ)²."""
    what = f"empirical Fisher / Fisher for a model with σ = {EF_MODEL_SIGMA} on data with noise std {EF_DATA_NOISE}"
    if answer is None:
        return report(False, what, NOT_DONE)
    expected = (EF_DATA_NOISE / EF_MODEL_SIGMA) ** 2
    ok, hint = close(answer, expected)
    if not ok and close(answer, EF_DATA_NOISE / EF_MODEL_SIGMA)[0]:
        hint = "the score (t − f)/σ² enters squared: square the whole ratio of variances, not of standard deviations"
    elif not ok and close(answer, 1 / expected)[0]:
        hint = "upside down: the empirical Fisher uses the data's residuals, the Fisher the model's own σ"
    verdict = report(ok, what, hint)
    if ok:
        print(f"  (rlkit on 4000 samples of a linear model: trace(F_emp)/trace(F) = {empirical_fisher_ratio():.2f})")
    return verdict


def check_fisher_memory_gib(answer) -> bool:
    """Exercise 3: GiB of a dense float32 Fisher of MEMORY_PARAMS parameters (1 GiB = 2³⁰ bytes)."""
    what = f"memory of the dense float32 Fisher of {MEMORY_PARAMS:,} parameters, in GiB"
    if answer is None:
        return report(False, what, NOT_DONE)
    expected = dense_fisher_bytes(MEMORY_PARAMS, 4) / GIB
    ok, hint = close(answer, expected, rtol=1e-3, atol=0.0)
    if not ok and close(answer, 2 * expected, rtol=1e-3, atol=0.0)[0]:
        hint = "that is float64 (8 bytes per entry); float32 takes 4"
    elif not ok and close(answer, dense_fisher_bytes(MEMORY_PARAMS, 4) / 1e9, rtol=1e-3, atol=0.0)[0]:
        hint = "that is in GB (10⁹ bytes); a GiB is 2³⁰ bytes"
    elif not ok and close(answer, MEMORY_PARAMS * 4 / GIB, rtol=1e-3, atol=0.0)[0]:
        hint = "that is one parameter vector; the Fisher has P² entries"
    return report(ok, what, hint)


def check_cg_iterations(answer) -> bool:
    """Exercise 4: at most N(K − 1) CG iterations for (F + λI)Δ = g with g the log-likelihood gradient."""
    what = (f"most CG iterations for (F + {CG_DAMPING}·I)Δ = g, softmax network, "
            f"{CG_INPUTS} inputs, {CG_CLASSES} classes")
    if answer is None:
        return report(False, what, NOT_DONE)
    expected = CG_INPUTS * (CG_CLASSES - 1)
    try:
        ok = float(answer) == expected
    except (TypeError, ValueError):
        return report(False, what, "give a whole number")
    hint = ""
    if not ok:
        if float(answer) == expected + 1:
            hint = "λ adds an eigenvalue only along F's null space, and g has no component there (why?)"
        elif float(answer) in (CG_INPUTS * CG_CLASSES, CG_INPUTS * CG_CLASSES + 1):
            hint = "each input's output Fisher diag(p) − ppᵀ is singular: shifting all logits changes nothing"
        else:
            hint = "CG needs at most as many iterations as A has distinct eigenvalues (in directions b touches)"
    verdict = report(ok, what, hint)
    if ok:
        print(f"  (rlkit's CG on a seeded example reaches relative residual 1e-10 in {cg_iterations_on_example()} iterations)")
    return verdict
