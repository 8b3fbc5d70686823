"""Exercise checks for notebook 06 (the Gauss-Newton critic).

Each check takes the student's answer (``None`` while the exercise is not done: the check then says so and
returns False, it does not raise), compares it with the expected value and prints ✓ or ✗ with a hint; on a
right answer it also shows rlkit confirming the fact. The problem data are module constants, so the
notebook's text and the check read the same numbers.
"""
from __future__ import annotations

import torch
from torch import nn

from rlkit.critic import GaussNewtonCritic
from rlkit.fisher import GaussianValue, natural_gradient
from rlkit.lessons.checks import NOT_DONE, close, report

__all__ = ["FEATURES", "TARGETS", "check_baselines_block_scale", "check_gauss_newton_step", "check_sigma_step_ratio"]


#: Exercise 2: a linear critic V(s) = φ(s)·θ on three states (rows of FEATURES), targets R, from θ₀ = 0.
FEATURES = ((1.0, 0.0), (0.0, 1.0), (1.0, 1.0))
TARGETS = (1.0, 2.0, 4.0)



def check_baselines_block_scale(answer) -> bool:
    """Exercise 1: c in F_V = c·E[JᵀJ] for the baselines Fisher-pass loss −(V − sg(V + ε))², ε ~ N(0, 1)."""
    what = "the block scale c of baselines' critic Fisher loss −(V − sg(V + ε))²"
    if answer is None:
        return report(False, what, NOT_DONE)
    ok, hint = close(answer, 4.0, rtol=1e-6, atol=0.0)
    if not ok and close(answer, 2.0, rtol=1e-6, atol=0.0)[0]:
        hint = "the gradient at V is 2ε; the block is its SECOND moment E[(2ε)²]"
    elif not ok and close(answer, 1.0, rtol=1e-6, atol=0.0)[0]:
        hint = "that is σ = 1's block; the square in the loss doubles the gradient"
    elif not ok and close(answer, 0.25, rtol=1e-6, atol=0.0)[0]:
        hint = "that is σ² for σ = 0.5; the block is 1/σ²"
    verdict = report(ok, what, hint)
    if ok:
        critic = GaussNewtonCritic(style="baselines")
        print(f"  (rlkit: GaussNewtonCritic(style='baselines').block_scale = {critic.block_scale:g}, "
              f"effective σ = {critic.effective_sigma:g})")
    return verdict


def _linear_problem():
    phi = torch.tensor(FEATURES, dtype=torch.float64)
    r = torch.tensor(TARGETS, dtype=torch.float64)
    model = nn.Sequential(nn.Linear(2, 1, bias=False).double(), nn.Flatten(0))
    nn.init.zeros_(model[0].weight)
    return model, phi, r


def check_gauss_newton_step(answer) -> bool:
    """Exercise 2: θ₁ after one Gauss-Newton step (η = 1) from θ₀ = 0 on the linear critic."""
    what = f"θ after one Gauss-Newton step on φ = {FEATURES}, R = {TARGETS}"
    if answer is None:
        return report(False, what, NOT_DONE)
    phi = torch.tensor(FEATURES, dtype=torch.float64)
    r = torch.tensor(TARGETS, dtype=torch.float64)
    expected = torch.linalg.solve(phi.T @ phi, phi.T @ r)
    ok, hint = close(answer, expected, rtol=1e-4, atol=1e-6)
    gradient_step = phi.T @ r / len(TARGETS)  # −∇L at θ = 0 for L = ½ mean (V − R)²
    if not ok and (close(answer, gradient_step, rtol=1e-4)[0] or close(answer, phi.T @ r, rtol=1e-4)[0]):
        hint = "that is a gradient step; Gauss-Newton divides by the curvature ΦᵀΦ first"
    elif not ok and close(answer, torch.linalg.solve(phi.T @ phi + torch.eye(2, dtype=torch.float64), phi.T @ r), rtol=1e-4)[0]:
        hint = "no damping here: solve ΦᵀΦ θ = ΦᵀR"
    verdict = report(ok, what, hint)
    if ok:
        model, phi, r = _linear_problem()
        loss = 0.5 * ((model(phi) - r) ** 2).mean()
        loss.backward()
        g = model[0].weight.grad.reshape(-1)
        step = -natural_gradient(model, phi, GaussianValue(1.0), g)
        lstsq = torch.linalg.lstsq(phi, r.unsqueeze(1)).solution.squeeze(1)
        print(f"  (rlkit: natural_gradient with GaussianValue(1) gives θ₁ = {[round(v, 4) for v in step.tolist()]}; "
              f"torch.linalg.lstsq: {[round(v, 4) for v in lstsq.tolist()]}: one step solves it)")
    return verdict


def check_sigma_step_ratio(answer) -> bool:
    """Exercise 3: ‖ηΔ‖(σ = 0.5) / ‖ηΔ‖(σ = 1) for ACKTR's critic, same gradient and δ, η_max not binding."""
    what = "step ratio σ = 0.5 (baselines) against σ = 1, same δ, uncapped"
    if answer is None:
        return report(False, what, NOT_DONE)
    ok, hint = close(answer, 0.5, rtol=1e-6, atol=0.0)
    if not ok and close(answer, 0.25, rtol=1e-6, atol=0.0)[0]:
        hint = "that is Δ's ratio σ²; η = sqrt(2δ/q) grows too, q shrinks by σ²"
    elif not ok and close(answer, 2.0, rtol=1e-6, atol=0.0)[0]:
        hint = "the other way round: F is 4 times larger, so Δ = F⁻¹g is smaller"
    elif not ok and close(answer, 1.0, rtol=1e-6, atol=0.0)[0]:
        hint = "δ bounds the KL of N(V, σ²), and that KL is (ΔV)²/(2σ²): the same KL is a smaller ΔV when σ is smaller"
    verdict = report(ok, what, hint)
    if ok:
        from rlkit.lessons.nb06_gauss_newton_critic.demos import sigma_scaling

        s = sigma_scaling(delta=1e-3)
        print(f"  (rlkit: sigma_scaling(delta=1e-3): ‖ηΔ‖ {s[1.0]['step_norm']:.4f} (σ = 1) and "
              f"{s[0.5]['step_norm']:.4f} (σ = 0.5), ratio {s[0.5]['step_norm'] / s[1.0]['step_norm']:.4f})")
    return verdict
