"""Exercise checks of notebook 06. Numeric checks: right → True (also as the notebook prints it, rounded),
typical wrong → False with a hint, None → ✗ without raising. The implementation exercise
(gauss_newton_critic_step): a correct function passes, the stub is "not done", and each planted typical
mistake is named."""
import json
from pathlib import Path

import pytest
import torch
from torch.func import functional_call, jacrev, vmap

from rlkit.lessons.checks import NOT_IMPLEMENTED
from rlkit.lessons.nb06_gauss_newton_critic import exercises as ex
from rlkit.lessons.nb06_gauss_newton_critic.exercises import (check_baselines_block_scale, check_gauss_newton_step,
                                                              check_sigma_step_ratio)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("check,right,wrongs", [
    (check_baselines_block_scale, 4, [2, 1, 0.25, "four"]),
    (check_gauss_newton_step, [4 / 3, 7 / 3], [[5 / 3, 2.0], [5.0, 6.0], [9 / 8, 13 / 8], [4 / 3], "x"]),
    (check_sigma_step_ratio, 0.5, [0.25, 2, 1]),
])
def test_checks(check, right, wrongs, capsys):
    assert check(right) is True
    assert "✓" in capsys.readouterr().out
    for wrong in wrongs:
        assert check(wrong) is False
        assert "✗" in capsys.readouterr().out
    assert check(None) is False
    assert "✗" in capsys.readouterr().out


@pytest.mark.parametrize("check,rounded", [
    (check_gauss_newton_step, [1.3333, 2.3333]),  # as the check's rlkit line prints θ₁
    (check_gauss_newton_step, [1.33, 2.33]),
    (check_sigma_step_ratio, 0.5000),
])
def test_checks_accept_the_rounded_values_the_notebook_prints(check, rounded, capsys):
    assert check(rounded) is True
    assert capsys.readouterr().out.startswith("✓")


def test_gauss_newton_step_hints_name_the_mistakes(capsys):
    check_gauss_newton_step([1.67, 2.0])
    assert "gradient step" in capsys.readouterr().out
    check_gauss_newton_step([1.125, 1.625])
    assert "no damping" in capsys.readouterr().out


# ---------------------------------------------------------------- the implementation exercise


def _step(critic, states, returns, sigma, damping, *, block=None, empirical=False, gradient_scale=1.0,
          damped=True, mean=True, sign=-1.0, fisher=True):
    """sign·(M + λI)⁻¹(gradient_scale·g) with torch.func Jacobians; the keywords plant one slip each."""
    params = {n: p.detach() for n, p in critic.named_parameters()}

    def value(params, s):
        return functional_call(critic, params, (s[None],))[0]

    values = vmap(value, in_dims=(None, 0))(params, states)
    jac = vmap(jacrev(value), in_dims=(None, 0))(params, states)
    J = torch.cat([j.reshape(len(states), -1) for j in jac.values()], dim=1)
    n = len(states)
    g = gradient_scale * J.T @ (values - returns) / n  # ∇ ½ mean (V − R)²
    if not fisher:
        return sign * g / (damping if damped else 1.0)
    if empirical:  # the observed returns in the score: (R − V)/σ² per state
        scores = J * ((returns - values) / sigma**2)[:, None]
        M = scores.T @ scores / n
    else:
        M = J.T @ J * (1 / sigma**2 if block is None else block(sigma)) / (n if mean else 1)
    if damped:
        M = M + damping * torch.eye(len(g), dtype=g.dtype)
    return sign * torch.linalg.solve(M, g)


def right_step(critic, states, returns, sigma, damping):
    return _step(critic, states, returns, sigma, damping)


def in_place_step(critic, states, returns, sigma, damping):  # right, but moves the critic's parameters
    step = _step(critic, states, returns, sigma, damping)
    with torch.no_grad():
        offset = 0
        for p in critic.parameters():
            p += step[offset:offset + p.numel()].view_as(p)
            offset += p.numel()
    return step


def slightly_off_step(critic, states, returns, sigma, damping):  # no typical mistake: a bare error
    return 1.01 * right_step(critic, states, returns, sigma, damping)


CRITIC_STEP_MISTAKES = [
    (lambda **c: _step(**c, fisher=False, damped=False), "the gradient step −g"),
    (lambda **c: _step(**c, fisher=False), "only the damping is there"),
    (lambda **c: _step(**c, sign=1.0), "the sign"),
    (lambda **c: _step(**c, empirical=True), "the empirical Fisher"),
    (lambda **c: _step(**c, damped=False), "the damping is forgotten"),
    (lambda **c: _step(**c, block=lambda s: 1 / s), "σ where σ² belongs"),
    (lambda **c: _step(**c, block=lambda s: 1.0), "σ is missing"),
    (lambda **c: _step(**c, block=lambda s: 4 / s**2), "an extra factor 4"),
    (lambda **c: _step(**c, block=lambda s: 4.0), "F = 4JᵀJ is the block of baselines' loss, that is σ = 0.5 only"),
    (lambda **c: _step(**c, block=lambda s: s**2), "σ² multiplies JᵀJ"),
    (lambda **c: _step(**c, gradient_scale=1 / c["sigma"] ** 2), "the gradient was divided by σ² too"),
    (lambda **c: _step(**c, mean=False), "F is a sum over the states"),
]


@pytest.mark.parametrize("implementation", [right_step, in_place_step], ids=lambda f: f.__name__)
def test_critic_step_exercise_accepts_a_correct_implementation(implementation, capsys):
    assert ex.check_gauss_newton_critic_step(implementation) is True
    assert capsys.readouterr().out.startswith("✓ gauss_newton_critic_step: agrees with rlkit on 3 random inputs")


def test_critic_step_exercise_says_not_done_for_the_stub(capsys):
    def stub(critic, states, returns, sigma, damping):
        raise NotImplementedError

    assert ex.check_gauss_newton_critic_step(stub) is False
    assert NOT_IMPLEMENTED in capsys.readouterr().out


@pytest.mark.parametrize("mistake, words", CRITIC_STEP_MISTAKES, ids=[w for _, w in CRITIC_STEP_MISTAKES])
def test_critic_step_exercise_names_each_typical_mistake(mistake, words, capsys):
    assert ex.check_gauss_newton_critic_step(mistake) is False
    out = capsys.readouterr().out
    assert out.startswith("✗ gauss_newton_critic_step — case ") and words in out


def test_critic_step_exercise_reports_an_unknown_error_and_an_exception(capsys):
    assert not ex.check_gauss_newton_critic_step(slightly_off_step)
    assert "largest absolute error" in capsys.readouterr().out
    assert not ex.check_gauss_newton_critic_step(lambda critic, states, returns, sigma, damping: critic.nope)
    assert "raised AttributeError" in capsys.readouterr().out


def test_critic_step_cases_tell_the_mistakes_apart():
    cases = ex.critic_step_cases()
    assert cases[0]["sigma"] == 0.5 and any(c["sigma"] not in (0.5, 1.0) for c in cases)
    differs = [False] * len(CRITIC_STEP_MISTAKES)
    for case in cases:
        n_params = sum(p.numel() for p in case["critic"].parameters())
        assert len(case["states"]) > n_params and case["damping"] >= 0.01  # F invertible; damping visible
        reference = ex._reference_critic_step(**case)
        torch.testing.assert_close(right_step(**case), reference, rtol=1e-10, atol=1e-12)
        for i, (mistake, _) in enumerate(CRITIC_STEP_MISTAKES):
            differs[i] |= not torch.allclose(mistake(**case), reference, rtol=1e-3, atol=1e-6)
    assert all(differs), [w for (_, w), d in zip(CRITIC_STEP_MISTAKES, differs) if not d]


def test_critic_step_check_leaves_the_global_random_stream_alone():
    torch.manual_seed(123)
    reference = torch.rand(3)
    torch.manual_seed(123)
    ex.check_gauss_newton_critic_step(right_step)
    assert torch.equal(torch.rand(3), reference)


def test_notebook_solution_cell_passes_its_check():
    notebook = json.loads((ROOT / "notebooks" / "06_gauss_newton_critic.ipynb").read_text())
    tagged = {tag: [c for c in notebook["cells"] if tag in c["metadata"].get("tags", [])]
              for tag in ("exercise", "solution", "check")}
    stubs = ["".join(c["source"]) for c in tagged["exercise"] if "def gauss_newton_critic_step" in "".join(c["source"])]
    assert len(stubs) == 1 and "raise NotImplementedError" in stubs[0]
    outputs = [o for c in tagged["check"] if "check_gauss_newton_critic_step" in "".join(c["source"])
               for o in c["outputs"]]
    assert any("✓ gauss_newton_critic_step" in "".join(o.get("text", "")) for o in outputs)
