"""Exercise checks for notebook 07 (ACKTR written out and run).

:func:`check_actor_step` runs the student's ACKTR actor step (precondition, then scale) against rlkit on
seeded random inputs (:func:`rlkit.lessons.checks.check_implementation`) and names the typical mistake.
The numeric checks take the student's answer (``None`` while the exercise is not done: the check then says
so and returns False, it does not raise), compare it with rlkit's own computation on the same data (the
precomputed sweep, the committed benchmark) and print ✓ or ✗ with a hint naming the typical mistake.
"""
from __future__ import annotations

import math

import numpy as np

import torch

from rlkit.lessons.checks import NOT_DONE, check_implementation, close, report

__all__ = ["check_actor_step", "actor_step_cases", "check_sweep_steps", "check_sample_efficiency_ratio",
           "SWEEP_POINT", "RATIO_ENV"]

#: Exercise 2: the sweep point whose steps to 475 the student reads
SWEEP_POINT = {"delta": 1e-3, "eta_max": 0.25}
#: Exercise 3: the env of the sample-efficiency ratio (the paper's Table 2 has it)
RATIO_ENV = "InvertedPendulum-v5"


# ---------------------------------------------------------------- the implementation exercise


def actor_step_cases() -> list[dict]:
    """Seeded random inputs of ``actor_step``: two layers (5 → 4 → 3, bias as the last column), random
    SPD factors, float64. Case 1 is uncapped (√(2δ/q) < η_max), case 2 capped, case 3 uncapped with a
    larger damping; each typical mistake gives a different answer in at least one case."""
    cases = []
    for seed, damping, delta, eta_max in [(0, 1e-2, 1e-3, 1.0), (1, 1e-2, 0.5, 0.05), (2, 0.1, 2e-3, 1.0)]:
        gen = torch.Generator().manual_seed(700 + seed)
        grads, factors = [], []
        for d_in, d_out in [(5, 4), (4, 3)]:
            X = torch.randn(d_in + 1, 3 * (d_in + 1), generator=gen, dtype=torch.float64)
            Y = torch.randn(d_out, 3 * d_out, generator=gen, dtype=torch.float64)
            factors.append((X @ X.T / X.shape[1], Y @ Y.T / Y.shape[1]))
            grads.append(torch.randn(d_out, d_in + 1, generator=gen, dtype=torch.float64))
        cases.append(dict(grads=grads, factors=factors, damping=damping, delta=delta, eta_max=eta_max))
    return cases


def _kfac_direction(grads, factors, damping):
    """rlkit's F̃⁻¹∇L layer by layer (``KFAC.precondition`` with eigen damping) and q = Σ⟨G, F̃⁻¹G⟩: the
    factors are set on a KFAC over Linear layers of the grads' shapes, the grads written into .grad."""
    from torch import nn

    from rlkit.kfac import KFAC

    model = nn.Sequential(*[nn.Linear(G.shape[1] - 1, G.shape[0]) for G in grads]).double()
    kfac = KFAC(model, damping=damping, damping_mode="eigen", inverse_every=1)
    for layer, module, G, (A, S) in zip(kfac.layers.values(), model, grads, factors):
        layer.A, layer.S = A.clone(), S.clone()
        module.weight.grad, module.bias.grad = G[:, :-1].clone(), G[:, -1].clone()
    q = kfac.precondition()
    kfac.remove()
    return [torch.cat([m.weight.grad, m.bias.grad[:, None]], dim=1) for m in model], q


def _reference_actor_step(grads, factors, damping, delta, eta_max):
    from rlkit.trust_region import effective_step_size

    directions, q = _kfac_direction(grads, factors, damping)
    eta = effective_step_size(q, delta, eta_max, "paper")
    return [-eta * D for D in directions], eta


def _step_with(eta_rule, precondition=True, q_from_gradient=False, sign=-1.0, damp_factors=False):
    """A mistaken actor step: η from ``eta_rule(q, delta, eta_max)``, the direction preconditioned or not, q
    from ⟨G, Δ⟩ or from ⟨G, G⟩, the step's sign, and λ added to A and S instead of to the Kronecker eigenvalues."""
    def mistaken(grads, factors, damping, delta, eta_max):
        if damp_factors:
            directions = []
            for G, (A, S) in zip(grads, factors):
                eye_A, eye_S = torch.eye(len(A), dtype=A.dtype), torch.eye(len(S), dtype=S.dtype)
                directions.append(torch.linalg.solve(S + damping * eye_S, G) @ torch.linalg.inv(A + damping * eye_A))
            q = float(sum((G * D).sum() for G, D in zip(grads, directions)))
        elif precondition:
            directions, q = _kfac_direction(grads, factors, damping)
        else:
            directions, q = list(grads), None
        if q_from_gradient or q is None:
            q = float(sum((G * G).sum() for G in grads))
        eta = eta_rule(q, delta, eta_max)
        return [sign * eta * D for D in directions], eta
    return mistaken


def _paper(q, delta, eta_max):
    return min(eta_max, math.sqrt(2 * delta / q))


_ACTOR_STEP_MISTAKES = [
    (_step_with(lambda q, d, m: min(m, math.sqrt(d / q))),
     "η = min(η_max, √(δ/q)) is missing the factor 2 (that is baselines' kl_clip rule): the paper's η sets the "
     "predicted KL ½η²q equal to δ, so η = √(2δ/q)"),
    (_step_with(lambda q, d, m: min(m, 2 * d / q)),
     "2δ/q is η², not η: take the square root, η = min(η_max, √(2δ/q))"),
    (_step_with(lambda q, d, m: math.sqrt(2 * d / q)),
     "the cap η_max is ignored: η = min(η_max, √(2δ/q))"),
    (_step_with(_paper, precondition=False),
     "the gradient is not preconditioned: the direction is Δ = F̂⁻¹∇L, per layer "
     "Q_S [(Q_Sᵀ G Q_A) / (λ_S λ_Aᵀ + λ)] Q_Aᵀ, and q = Σ⟨G, Δ⟩"),
    (_step_with(_paper, q_from_gradient=True),
     "q is ĝᵀĝ = Σ⟨G, G⟩: the trust region needs q = ĝᵀF̂⁻¹ĝ = Σ⟨G, Δ⟩ with Δ the preconditioned gradient"),
    (_step_with(_paper, damp_factors=True),
     "λ is added to A and to S separately, (S + λI)⁻¹ G (A + λI)⁻¹: eigen damping adds λ to every Kronecker "
     "eigenvalue λ_S,i·λ_A,j instead"),
    (_step_with(_paper, sign=1.0),
     "the step has the wrong sign: G is the gradient of the loss, so the step is −ηΔ (descent)"),
]


def check_actor_step(actor_step) -> bool:
    """Implementation exercise: ``actor_step(grads, factors, damping, delta, eta_max)`` returns
    ``(steps, eta)``: per layer the step −ηΔ (Δ = (S ⊗ A + λI)⁻¹ vec(G), eigen damping) and
    η = min(η_max, √(2δ/q)), q = Σ⟨G, Δ⟩; checked against ``rlkit.kfac.KFAC.precondition`` and
    ``rlkit.trust_region.effective_step_size`` on seeded random factors and gradients (the function gets
    copies, so changing them in place does no harm)."""
    def on_copies(grads, factors, damping, delta, eta_max):
        steps, eta = actor_step([G.clone() for G in grads], [(A.clone(), S.clone()) for A, S in factors],
                                damping, delta, eta_max)
        return (*steps, eta)

    def flat(function):
        def flattened(**case):
            steps, eta = function(**case)
            return (*steps, eta)
        return flattened

    return check_implementation(on_copies, flat(_reference_actor_step), actor_step_cases(), what="actor_step",
                                mistakes=[(flat(m), message) for m, message in _ACTOR_STEP_MISTAKES],
                                rtol=1e-6, atol=1e-9)


# ---------------------------------------------------------------- the numeric exercises


def check_sweep_steps(answer, sweep=None, threshold: float = 475.0) -> bool:
    """Exercise 2: the median over seeds of the env steps to ``threshold`` at :data:`SWEEP_POINT` of the sweep
    (default: ``data/sweeps/acktr-delta-eta-max``), by :func:`rlkit.experiments.sweeps.steps_to_threshold` on each seed's curve."""
    from rlkit.experiments.sweeps import load_sweep, steps_to_threshold, sweep_point

    sweep = load_sweep("acktr-delta-eta-max") if sweep is None else sweep
    what = f"median steps to {threshold:g} at δ = {SWEEP_POINT['delta']:g}, η_max = {SWEEP_POINT['eta_max']:g}"
    if answer is None:
        return report(False, what, NOT_DONE)
    data = sweep_point(sweep, **SWEEP_POINT)
    per_seed = [steps_to_threshold(data["env_steps"], r, threshold) for r in data["returns"]]
    expected = float(np.median(per_seed))
    ok, hint = close(answer, expected, rtol=1e-9, atol=0.5)
    finite = [s for s in per_seed if math.isfinite(s)]
    if not ok and finite and close(answer, float(np.mean(per_seed)), rtol=1e-9, atol=0.5)[0]:
        hint = "that is the mean over seeds; the median is asked"
    elif not ok and finite and close(answer, min(finite), rtol=1e-9, atol=0.5)[0] and min(finite) != expected:
        hint = "that is the fastest seed; the median over the three is asked"
    elif not ok:
        mean_hit = steps_to_threshold(data["env_steps"], data["mean"], threshold)
        if math.isfinite(mean_hit) and close(answer, mean_hit, rtol=1e-9, atol=0.5)[0]:
            hint = "that is where the MEAN curve crosses; take each seed's crossing, then the median"
    verdict = report(ok, what, hint)
    if ok:
        print(f"  (rlkit: per seed {[int(s) if math.isfinite(s) else 'never' for s in per_seed]}; "
              f"sweep_grid(sweep, 'steps_to_threshold', threshold={threshold:g}) holds the same median)")
    return verdict


def _is_nan(answer) -> bool:
    try:
        return math.isnan(float(answer))
    except (TypeError, ValueError):
        return False


def check_sample_efficiency_ratio(answer, rows: list[dict] | None = None) -> bool:
    """Exercise 3: A2C's over ACKTR's median episodes to the threshold on :data:`RATIO_ENV`, from
    ``data/benchmarks/sample_efficiency.csv`` (``rows``: those rows, for tests).

    A seed that did not reach the threshold within its budget (empty ``episodes_to_threshold``) is
    censored: it needed more episodes than it ran, so it counts as +inf; the median over all seeds
    still exists when fewer than half the seeds are censored (the rule of
    :func:`rlkit.experiments.results.median_to_threshold`)."""
    from rlkit.experiments.results import (
        benchmark_rows,
        sample_efficiency_ratio,
    )

    rows = benchmark_rows("sample_efficiency") if rows is None else rows
    what = f"A2C/ACKTR median episodes to the threshold on {RATIO_ENV}"
    if answer is None:
        return report(False, what, NOT_DONE)
    expected = sample_efficiency_ratio(rows, RATIO_ENV, unit="episodes")
    ok, hint = close(answer, expected, rtol=2e-3, atol=0.0)
    steps = sample_efficiency_ratio(rows, RATIO_ENV, unit="steps")

    def reached(algorithm):
        values = [r["episodes_to_threshold"] for r in rows if r["env"] == RATIO_ENV and r["algorithm"] == algorithm]
        return [v for v in values if not math.isnan(v)], len(values)

    (a2c, n_a2c), (acktr, n_acktr) = reached("a2c"), reached("acktr")
    censored = len(a2c) < n_a2c or len(acktr) < n_acktr
    if not ok and close(answer, steps, rtol=2e-3, atol=0.0)[0]:
        hint = "that is the ratio of env steps; the paper's Table 2 (and this exercise) counts episodes"
    elif not ok and close(answer, 1 / expected, rtol=2e-3, atol=0.0)[0]:
        hint = "upside down: A2C's episodes over ACKTR's"
    elif not ok and close(answer, np.mean(a2c) / np.mean(acktr), rtol=2e-3, atol=0.0)[0]:
        hint = "that is the ratio of the means; use the medians over seeds"
        if censored:
            hint += " (a seed that never reached the threshold has no finite mean to join; it counts as +inf)"
    elif not ok and censored and _is_nan(answer):
        hint = ("NaN: the censored seed's empty episodes_to_threshold is NaN, and np.median of a list with a NaN is "
                "NaN; count that seed as +inf (it needed more episodes than it ran) before taking the median")
    elif not ok and censored and close(answer, np.median(a2c) / np.median(acktr), rtol=2e-3, atol=0.0)[0]:
        hint = ("you left out the seed that did not reach the threshold: it needed more episodes than it ran, "
                "so count it as +inf (censored) and take the median over all seeds")
    verdict = report(ok, what, hint)
    if ok:
        from rlkit.experiments.data import find_row, load_table

        paper = find_row(load_table("acktr_table2_mujoco"), gym_id=RATIO_ENV)
        print(f"  (rlkit: sample_efficiency_ratio = {expected:.3f} in episodes, {steps:.3f} in env steps; the paper's "
              f"Table 2: {paper['a2c_episodes_to_threshold']:.0f} / {paper['acktr_episodes_to_threshold']:.0f} = "
              f"{paper['a2c_episodes_to_threshold'] / paper['acktr_episodes_to_threshold']:.3f})")
    return verdict
