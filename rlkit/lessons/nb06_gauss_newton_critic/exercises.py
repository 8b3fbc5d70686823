"""Exercise checks for notebook 06 (the Gauss-Newton critic).

``check_gauss_newton_critic_step`` runs the student's function against ``rlkit.fisher`` on seeded tanh
critics and names the typical mistakes. Each numeric check takes the student's answer (``None`` while the
exercise is not done: the check then says so and returns False, it does not raise), compares it with the
expected value and prints ✓ or ✗ with a hint; on a right answer it also shows rlkit confirming the fact. The
problem data are module constants, so the notebook's text and the check read the same numbers.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from rlkit.critic import GaussNewtonCritic
from rlkit.fisher import GaussianValue, empirical_fisher, flatten, natural_gradient
from rlkit.lessons.checks import NOT_DONE, check_implementation, close, report

__all__ = ["FEATURES", "TARGETS", "VALUE_COEF", "critic_step_cases", "check_gauss_newton_critic_step",
           "check_baselines_block_scale", "check_gauss_newton_step", "check_sigma_step_ratio"]


#: Exercise 3: a linear critic V(s) = φ(s)·θ on three states (rows of FEATURES), targets R, from θ₀ = 0.
FEATURES = ((1.0, 0.0), (0.0, 1.0), (1.0, 1.0))
TARGETS = (1.0, 2.0, 4.0)
#: ACKTR's c_V: the critic descends c_V·mean (V − R)² = ½ mean (V − R)² (``ACKTRConfig.value_coef``).
VALUE_COEF = 0.5


# ---------------------------------------------------------------- the implementation exercise


def critic_step_cases() -> list[dict]:
    """Seeded inputs for ``gauss_newton_critic_step(critic, states, returns, sigma, damping)``: float64 tanh
    critics with fewer parameters than states (F is invertible, so a forgotten damping shows as F⁻¹g),
    returns far from the critic's values (the empirical Fisher differs from F), σ = 0.5 first (every σ
    slip shows; the factor 4 of baselines' loss is right there) and σ = 2.5 (4JᵀJ is wrong there)."""
    cases = []
    for seed, (n, d_in, hidden, sigma, damping) in enumerate([(40, 3, 4, 0.5, 0.03), (30, 2, 5, 2.5, 0.1),
                                                              (50, 4, 3, 1.0, 0.01)]):
        gen = torch.Generator().manual_seed(600 + seed)
        with torch.random.fork_rng():  # nn.Linear's initialization draws from the global stream
            torch.manual_seed(600 + seed)
            critic = nn.Sequential(nn.Linear(d_in, hidden), nn.Tanh(), nn.Linear(hidden, 1), nn.Flatten(0)).double()
        states = torch.randn(n, d_in, generator=gen, dtype=torch.float64)
        returns = 2.0 + torch.randn(n, generator=gen, dtype=torch.float64)
        cases.append(dict(critic=critic, states=states, returns=returns, sigma=sigma, damping=damping))
    return cases


def _values_and_jacobian(critic, states):
    """V (N,) and J (N, P) by autograd, one row per state (the cases are small)."""
    params = [p for p in critic.parameters() if p.requires_grad]
    values = critic(states)
    rows = [flatten(torch.autograd.grad(v, params, retain_graph=True)) for v in values]
    return values.detach(), torch.stack(rows)


def _loss_gradient(critic, states, returns):
    """g = ∇θ c_V·mean (V − R)²."""
    params = [p for p in critic.parameters() if p.requires_grad]
    return flatten(torch.autograd.grad(VALUE_COEF * (critic(states) - returns).pow(2).mean(), params))


def _reference_critic_step(critic, states, returns, sigma, damping):
    """−(F + λI)⁻¹g with F = mean JᵀJ/σ² (``rlkit.fisher.natural_gradient``, ``GaussianValue(σ)``)."""
    g = _loss_gradient(critic, states, returns)
    return -natural_gradient(critic, states, GaussianValue(sigma), g, damping=damping)


def _step_with(critic, states, returns, sigma, damping, *, block=None, weights=None, gradient_scale=1.0,
               damped=True, mean=True, sign=-1.0):
    """sign·(M + λI)⁻¹ (gradient_scale·g) with M = (1/N) Σ wᵢ JᵢᵀJᵢ · block: the right step and its slips."""
    values, J = _values_and_jacobian(critic, states)
    if weights is not None:
        J = J * weights(values, returns).sqrt()[:, None]
    M = J.T @ J * (1.0 / sigma**2 if block is None else block) / (len(states) if mean else 1)
    if damped:
        M = M + damping * torch.eye(M.shape[0], dtype=M.dtype)
    g = gradient_scale * _loss_gradient(critic, states, returns)
    return sign * (torch.linalg.solve(M, g) if damped else torch.linalg.pinv(M, hermitian=True) @ g)


def _empirical(critic, states, returns, sigma, damping):
    g = _loss_gradient(critic, states, returns)
    f_emp = empirical_fisher(critic, states, GaussianValue(sigma), returns)
    return -torch.linalg.solve(f_emp + damping * torch.eye(len(g), dtype=g.dtype), g)


_CRITIC_STEP_MISTAKES = [
    (lambda critic, states, returns, sigma, damping: -_loss_gradient(critic, states, returns),
     "this is the gradient step −g: the Fisher is missing, solve (F + λI)Δ = g"),
    (lambda critic, states, returns, sigma, damping: -_loss_gradient(critic, states, returns) / damping,
     "this is −g/λ: only the damping is there, the Fisher F = mean JᵀJ/σ² is missing"),
    (lambda **case: _step_with(**case, sign=1.0),
     "the sign: this step climbs the loss; the step is −Δ (θ ← θ − Δ)"),
    (_empirical,
     "this is the empirical Fisher, built from the observed returns: it weighs JᵢᵀJᵢ by (Rᵢ − Vᵢ)²/σ⁴. The "
     "critic's Fisher averages over v ~ N(V, σ²) instead: JᵀJ/σ², no return in it"),
    (lambda **case: _step_with(**case, damped=False),
     "the damping is forgotten: solve (F + λI)Δ = g, not FΔ = g"),
    (lambda **case: _step_with(**case, block=1.0 / case["sigma"]),
     "σ where σ² belongs: the Fisher of N(V, σ²) is JᵀJ/σ²"),
    (lambda **case: _step_with(**case, block=1.0),
     "σ is missing: JᵀJ is the Fisher of σ = 1 only; for N(V, σ²) it is JᵀJ/σ² (baselines' loss, σ = 0.5: 4JᵀJ)"),
    (lambda **case: _step_with(**case, block=4.0 / case["sigma"] ** 2),
     "an extra factor 4: the block 4JᵀJ of baselines' loss −(V − sg(V + ξ))² IS σ = 0.5's JᵀJ/σ², not a "
     "factor on top of 1/σ² (σ = 1 has JᵀJ)"),
    (lambda **case: _step_with(**case, block=4.0),
     "F = 4JᵀJ is the block of baselines' loss, that is σ = 0.5 only: for N(V, σ²) it is JᵀJ/σ²"),
    (lambda **case: _step_with(**case, block=case["sigma"] ** 2),
     "σ² multiplies JᵀJ: it divides it, F = JᵀJ/σ² (a smaller σ is a more confident critic, a larger F)"),
    (lambda **case: _step_with(**case, gradient_scale=1.0 / case["sigma"] ** 2),
     "the gradient was divided by σ² too: the loss is ½ mean (V − R)², with no σ (ACKTR's c_V·mean (V − R)²); "
     "σ enters only F"),
    (lambda **case: _step_with(**case, mean=False),
     "F is a sum over the states: make it a mean, (1/N) Σ JᵢᵀJᵢ/σ², as the loss is a mean"),
]


def check_gauss_newton_critic_step(gauss_newton_critic_step) -> bool:
    """Exercise 1: ``gauss_newton_critic_step(critic, states, returns, sigma, damping)`` returns the step
    −(F + λI)⁻¹g, F = mean JᵀJ/σ², g = ∇θ ½ mean (V − R)², as one vector; checked against
    ``rlkit.fisher.natural_gradient`` on seeded critics (the function gets a copy of each critic, so
    changing it in place does no harm)."""
    def on_a_copy(critic, **arguments):
        return gauss_newton_critic_step(critic=copy.deepcopy(critic), **arguments)

    return check_implementation(on_a_copy, _reference_critic_step, critic_step_cases(),
                                what="gauss_newton_critic_step", mistakes=_CRITIC_STEP_MISTAKES,
                                rtol=1e-6, atol=1e-9)


# ---------------------------------------------------------------- the numeric exercises



def check_baselines_block_scale(answer) -> bool:
    """Exercise 2: c in F_V = c·E[JᵀJ] for the baselines Fisher-pass loss −(V − sg(V + ξ))², ξ ~ N(0, 1)."""
    what = "the block scale c of baselines' critic Fisher loss −(V − sg(V + ξ))²"
    if answer is None:
        return report(False, what, NOT_DONE)
    ok, hint = close(answer, 4.0, rtol=1e-6, atol=0.0)
    if not ok and close(answer, 2.0, rtol=1e-6, atol=0.0)[0]:
        hint = "the gradient at V is 2ξ; the block is its SECOND moment E[(2ξ)²]"
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
    """Exercise 3: θ₁ after one Gauss-Newton step (η = 1) from θ₀ = 0 on the linear critic."""
    what = f"θ after one Gauss-Newton step on φ = {FEATURES}, R = {TARGETS}"
    if answer is None:
        return report(False, what, NOT_DONE)
    phi = torch.tensor(FEATURES, dtype=torch.float64)
    r = torch.tensor(TARGETS, dtype=torch.float64)
    expected = torch.linalg.solve(phi.T @ phi, phi.T @ r)
    ok, hint = close(answer, expected, rtol=5e-3, atol=1e-6)  # accepts two decimals: [1.33, 2.33]
    gradient_step = phi.T @ r / len(TARGETS)  # −∇L at θ = 0 for L = ½ mean (V − R)²
    damped = torch.linalg.solve(phi.T @ phi + torch.eye(2, dtype=torch.float64), phi.T @ r)
    if not ok and (close(answer, gradient_step, rtol=5e-3)[0] or close(answer, phi.T @ r, rtol=5e-3)[0]):
        hint = "that is a gradient step; Gauss-Newton divides by the curvature ΦᵀΦ first"
    elif not ok and close(answer, damped, rtol=5e-3)[0]:
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
    """Exercise 4: ‖ηΔ‖(σ = 0.5) / ‖ηΔ‖(σ = 1) for ACKTR's critic, same gradient and δ, η_max not binding."""
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
