r"""The computations behind notebook 06 (the Gauss-Newton critic), as plain tested functions.

* :func:`value_net` / :func:`regression_batch`: a small tanh critic and a seeded regression batch.
* :func:`sampled_fisher_pass`: a Monte-Carlo estimate of the critic's Fisher from the sampled Fisher-pass
  loss of ``rlkit.critic`` (what ACKTR's K-FAC sees), and :func:`kfac_critic_step`: ACKTR's critic step
  with ``rlkit.kfac`` (an exact Fisher pass, so that it is deterministic).
* :func:`linear_least_squares`: a critic linear in its parameters: one Gauss-Newton step (η = 1) lands
  on the least-squares solution; gradient descent and Adam need many steps.
* :func:`mlp_fit`: the same on the nonlinear critic: Gauss-Newton steps (damped, η = 1) against Adam.
* :func:`sigma_scaling`: σ = 1 against baselines' σ = 0.5: same direction, Δ scaled by σ², q by σ², and
  the trust-region step ηΔ by σ (uncapped) or σ² (capped at η_max).
* :func:`critic_runs` and the readers :func:`steps_to_threshold`, :func:`final_return`,
  :func:`update_column`: ACKTR with either critic (the paper's Figure 5a/b) via ``rlkit.experiments.train``.

Conventions: the loss is a MEAN over the batch, as in ``rlkit.fisher`` (F = mean of JᵢᵀJᵢ/σ²).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, jacrev, vmap

from rlkit.critic import GaussNewtonCritic
from rlkit.experiments.report import run_final_return as final_return  # noqa: F401 - notebook 06 reads them from here
from rlkit.experiments.report import run_steps_to_threshold as steps_to_threshold  # noqa: F401
from rlkit.experiments.runs import read_csv
from rlkit.fisher import GaussianValue, flat_grad, flatten, natural_gradient
from rlkit.kfac import KFAC
from rlkit.trust_region import effective_step_size, predicted_kl

__all__ = ["value_net", "regression_batch", "dense_jtj", "sampled_fisher_pass", "kfac_critic_step",
           "linear_least_squares", "mlp_fit", "sigma_scaling", "critic_runs", "steps_to_threshold", "final_return",
           "update_column"]

DTYPE = torch.float64  # exact comparisons: double precision


class _Squeeze(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.squeeze(-1)


def value_net(in_dim: int = 3, hidden: int = 8, seed: int = 0) -> nn.Module:
    """A tanh critic in_dim → hidden → hidden → 1, output V(s) of shape (N,), float64, seeded."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                         nn.Linear(hidden, 1), _Squeeze()).to(DTYPE)


def regression_batch(n: int = 64, in_dim: int = 3, seed: int = 0) -> tuple[Tensor, Tensor]:
    """States s ~ N(0, I) and targets R = sin(s₀) + s₁·s₂ + noise 0.1: a smooth, nonlinear value."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, in_dim, generator=g, dtype=DTYPE)
    r = torch.sin(x[:, 0]) + x[:, 1] * x[:, 2] + 0.1 * torch.randn(n, generator=g, dtype=DTYPE)
    return x, r


def dense_jtj(model: nn.Module, x: Tensor) -> Tensor:
    """(1/N) Σᵢ JᵢᵀJᵢ with Jᵢ = ∂V(sᵢ)/∂θ (row-major parameter order, as rlkit.fisher), by torch.func."""
    params = {k: v.detach() for k, v in model.named_parameters()}

    def value(p, xi):
        return functional_call(model, p, (xi.unsqueeze(0),)).squeeze(0)

    jac = vmap(jacrev(value), in_dims=(None, 0))(params, x)
    J = torch.cat([jac[k].reshape(x.shape[0], -1) for k in params], dim=1)  # (N, P)
    return J.T @ J / x.shape[0]


def sampled_fisher_pass(model: nn.Module, x: Tensor, sigma: float = 1.0, draws: int = 2000,
                        seed: int = 0) -> Tensor:
    """Monte-Carlo estimate of the critic's Fisher from ACKTR's sampled Fisher-pass loss, (P, P).

    (1/N)·mean over ``draws`` of G Gᵀ, G = ∇θ of ``GaussNewtonCritic(σ).fisher_loss`` (v̂ = sg(V + σξ),
    summed over the batch; the cross terms between samples have zero mean). Unbiased for F = mean JᵀJ/σ².
    """
    critic = GaussNewtonCritic(sigma=sigma)
    params = [p for p in model.parameters() if p.requires_grad]
    g = torch.Generator().manual_seed(seed)
    total = None
    for _ in range(draws):
        grad = flatten(torch.autograd.grad(critic.fisher_loss(model(x), generator=g), params))
        total = torch.outer(grad, grad) if total is None else total + torch.outer(grad, grad)
    return total / (draws * x.shape[0])


def kfac_critic_step(model: nn.Module, states: Tensor, returns: Tensor, sigma: float, damping: float,
                     delta: float, eta_max: float, value_coef: float = 0.5) -> tuple[Tensor, float, float]:
    """ACKTR's critic step with ``rlkit.kfac``: returns (the step −ηΔ as one vector, q, η); the model is unchanged.

    As ``rlkit.agents.acktr`` (``damping_mode="eigen"``, the paper's trust-region rule): a Fisher pass,
    the gradient of c_V·mean (V − R)², ``KFAC.precondition()`` (Δ = F̂⁻¹g in ``.grad``, q = gᵀΔ) and
    η = min(η_max, sqrt(2δ/q)). One difference, so that the step is deterministic: the Fisher pass takes
    the expectation over v̂ ~ N(V, σ²) (``update_stats_exact`` with ``GaussNewtonCritic.fisher_sqrt``)
    where ACKTR samples one v̂ per state. For a critic that is one ``nn.Linear`` layer, F̂ is then F exactly.
    """
    kfac = KFAC(model, damping=damping, damping_mode="eigen")
    try:
        values = model(states)
        kfac.update_stats_exact([(values, GaussNewtonCritic(sigma=sigma).fisher_sqrt(values))])
        model.zero_grad(set_to_none=True)
        (value_coef * (values - returns).pow(2).mean()).backward()
        q = kfac.precondition()
        eta = effective_step_size(q, delta, eta_max, "paper")
        step = -eta * flat_grad(model)
    finally:
        kfac.remove()
        model.zero_grad(set_to_none=True)
    return step, q, eta


def _features(x: Tensor, k: int, seed: int) -> Tensor:
    """Fixed random tanh features φ(s) ∈ R^k (the last one a constant 1): a critic linear in θ."""
    g = torch.Generator().manual_seed(seed + 1)
    w = torch.randn(x.shape[1], k - 1, generator=g, dtype=x.dtype)
    return torch.cat([torch.tanh(x @ w), torch.ones(x.shape[0], 1, dtype=x.dtype)], dim=1)


def linear_least_squares(n: int = 64, k: int = 12, iterations: int = 200, adam_lr: float = 0.05,
                         seed: int = 0) -> dict:
    """V(s) = φ(s)·θ with fixed features: one Gauss-Newton step against gradient descent and Adam.

    The loss is L(θ) = ½ mean (V − R)² (σ = 1: F = ΦᵀΦ/N = the Hessian). From θ₀ = 0 the Gauss-Newton
    step θ₁ = θ₀ − F⁻¹∇L (computed with ``rlkit.fisher.natural_gradient``, η = 1) equals the least-squares
    solution of ``torch.linalg.lstsq``. Gradient descent uses the largest stable-and-fastest step 1/λ_max(F);
    its error shrinks like (1 − λ_min/λ_max)^t, so the condition number of F sets how slow it is.
    Returns the loss curves (length ``iterations + 1``), the optimum, the condition number and the
    distance ‖θ₁ − θ*‖.
    """
    x, r = regression_batch(n, seed=seed)
    phi = _features(x, k, seed)
    model = nn.Linear(k, 1, bias=False).to(DTYPE)
    seq = nn.Sequential(model, _Squeeze())
    nn.init.zeros_(model.weight)

    def loss_of(theta: Tensor) -> float:
        return float(0.5 * ((phi @ theta - r) ** 2).mean())

    theta_star = torch.linalg.lstsq(phi, r.unsqueeze(1)).solution.squeeze(1)
    loss = 0.5 * ((seq(phi) - r) ** 2).mean()
    loss.backward()
    grad = flat_grad(seq)
    direction = natural_gradient(seq, phi, GaussianValue(1.0), grad)  # F⁻¹∇L, F = ΦᵀΦ/N (pseudo-inverse)
    theta_gn = -direction  # θ₀ = 0, η = 1
    curvature = phi.T @ phi / n
    evals = torch.linalg.eigvalsh(curvature)
    lr = 1.0 / float(evals[-1])
    theta = torch.zeros(k, dtype=DTYPE)
    gd = [loss_of(theta)]
    for _ in range(iterations):
        theta = theta - lr * (phi.T @ (phi @ theta - r) / n)
        gd.append(loss_of(theta))
    param = torch.zeros(k, dtype=DTYPE, requires_grad=True)
    opt = torch.optim.Adam([param], lr=adam_lr)
    adam = [loss_of(param.detach())]
    for _ in range(iterations):
        opt.zero_grad()
        (0.5 * ((phi @ param - r) ** 2).mean()).backward()
        opt.step()
        adam.append(loss_of(param.detach()))
    return {
        "loss_start": loss_of(torch.zeros(k, dtype=DTYPE)),
        "loss_optimum": loss_of(theta_star),
        "gauss_newton": [loss_of(torch.zeros(k, dtype=DTYPE)), loss_of(theta_gn)],
        "gradient_descent": np.array(gd),
        "adam": np.array(adam),
        "gd_lr": lr,
        "condition_number": float(evals[-1] / evals[0]),
        "gn_distance_to_optimum": float((theta_gn - theta_star).norm()),
    }


def mlp_fit(iterations: int = 50, damping: float = 0.1, adam_lr: float = 0.01, n: int = 64,
            seed: int = 0) -> dict[str, np.ndarray]:
    """The nonlinear critic of :func:`value_net` on :func:`regression_batch`: ½ mean (V − R)² per iteration.

    ``gauss_newton``: θ ← θ − (F + λI)⁻¹∇L with the exact F = mean JᵀJ (σ = 1), η = 1
    (``natural_gradient``, dense); ``adam``: Adam with ``adam_lr``, one step per iteration, full batch.
    """
    x, r = regression_batch(n, seed=seed)
    curves = {}
    for method in ("gauss_newton", "adam"):
        model = value_net(seed=seed)
        opt = torch.optim.Adam(model.parameters(), lr=adam_lr) if method == "adam" else None
        losses = []
        for _ in range(iterations + 1):
            model.zero_grad(set_to_none=True)
            loss = 0.5 * ((model(x) - r) ** 2).mean()
            losses.append(float(loss.detach()))
            if len(losses) > iterations:
                break
            loss.backward()
            if opt is not None:
                opt.step()
                continue
            step = natural_gradient(model, x, GaussianValue(1.0), flat_grad(model), damping=damping)
            with torch.no_grad():
                offset = 0
                for p in model.parameters():
                    p -= step[offset:offset + p.numel()].view_as(p)
                    offset += p.numel()
        curves[method] = np.array(losses)
    return curves


def sigma_scaling(delta: float = 0.5, eta_max: float = 1.0, value_coef: float = 0.5, damping: float = 0.01,
                  seed: int = 0, sigmas: Sequence[float] = (1.0, 0.5)) -> dict[float, dict[str, float]]:
    """ACKTR's critic step for each σ, with the exact F = mean JᵀJ/σ² on the :func:`regression_batch`.

    The gradient g is that of ACKTR's critic loss c_V·mean (V − R)² (it does not depend on σ); Δ = F⁻¹g
    (damping λ/σ² added to F, λ = ``damping`` as ACKTR's critic_damping on the σ = 1 scale, so Δ ∝ σ² exactly),
    q = gᵀΔ, η = min(η_max, sqrt(2δ/q)) (paper rule), the step is ηΔ. Returns per σ: ``q``, ``eta``,
    ``capped``, ``delta_norm`` ‖Δ‖, ``step_norm`` ‖ηΔ‖, ``cosine`` of Δ with the σ = 1 direction,
    ``predicted_kl`` ½η²q and ``rms_value_change`` of the step.
    """
    x, r = regression_batch(seed=seed)
    model = value_net(seed=seed)
    model.zero_grad(set_to_none=True)
    (value_coef * ((model(x) - r) ** 2).mean()).backward()
    g = flat_grad(model)
    jtj = dense_jtj(model, x)
    lam = damping
    eye = torch.eye(jtj.shape[0], dtype=DTYPE)
    base = None
    out = {}
    for sigma in sigmas:
        fisher = jtj / sigma**2
        direction = torch.linalg.solve(fisher + lam / sigma**2 * eye, g)  # damping scaled with F: Δ ∝ σ² exactly
        q = float(g @ direction)
        eta = effective_step_size(q, delta, eta_max, "paper")
        base = direction if base is None else base
        step = eta * direction
        with torch.no_grad():
            v0 = model(x)
            params = {k: v.detach() - s for (k, v), s in zip(model.named_parameters(), _split(step, model))}
            v1 = functional_call(model, params, (x,))
        out[float(sigma)] = {
            "q": q, "eta": eta, "capped": eta == eta_max, "delta_norm": float(direction.norm()),
            "step_norm": float(step.norm()),
            "cosine": float(direction @ base / (direction.norm() * base.norm())),
            "predicted_kl": predicted_kl(q, eta),
            "rms_value_change": float(((v1 - v0) ** 2).mean().sqrt()),
        }
    return out


def _split(vector: Tensor, model: nn.Module) -> list[Tensor]:
    pieces, offset = [], 0
    for p in model.parameters():
        pieces.append(vector[offset:offset + p.numel()].view_as(p))
        offset += p.numel()
    return pieces


# ----------------------------------------------------------------------------- Figure 5a/b at small scale


def critic_runs(env: str, seeds: Sequence[int], steps: int, root: str | os.PathLike,
                critics: Sequence[str] = ("gauss_newton", "adam"), critic_lr: float = 1e-3,
                overrides: dict | None = None) -> dict[str, list[Path]]:
    """Train ACKTR (default preset of the env's family) with each critic and seed; returns run dirs per critic.

    The actor is ACKTR in every run; only ``critic_optimizer`` differs ("adam" with ``critic_lr``). Runs go
    to ``root/<critic>-s<seed>`` (overwritten).
    """
    from rlkit.experiments.train import (
        train,  # the training loop is a layer above this module's math
    )

    dirs: dict[str, list[Path]] = {}
    for critic in critics:
        extra = dict(overrides or {}, critic_optimizer=critic)
        if critic == "adam":
            extra["critic_lr"] = critic_lr
        for seed in seeds:
            run_dir = Path(root) / f"{critic}-s{seed}"
            train("acktr", env, steps=steps, seed=seed, overrides=extra, run_dir=run_dir, overwrite=True,
                  progress=False, checkpoint_every=10**9, keep_checkpoints=1)
            dirs.setdefault(critic, []).append(run_dir)
    return dirs


def update_column(run_dir: str | os.PathLike, column: str) -> tuple[np.ndarray, np.ndarray]:
    """(env_steps, values) of one diagnostic column of updates.csv."""
    _, rows = read_csv(Path(run_dir) / "updates.csv")
    return (np.array([int(row["env_steps"]) for row in rows]), np.array([float(row[column]) for row in rows]))
