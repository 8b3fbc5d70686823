"""Exercise checks of notebook 08: the right answer passes (also rounded as the notebook prints it), typical
wrong answers and the notebook's placeholder fail without raising, and each planted mistake of the
implementation exercises is named."""

import math

import pytest
import torch

from rlkit.lessons.checks import NOT_IMPLEMENTED
from rlkit.lessons.nb08_vmpo_em import exercises as ex08

# ------------------------------------------------------------------ numeric exercises (1–3)

_e = [math.exp(2.0), math.exp(1.5), math.exp(0.5)]
PSI = [_e[0] / sum(_e), 0.0, _e[2] / sum(_e), _e[1] / sum(_e), 0.0, 0.0]  # by hand, independent of rlkit
LOSS = -sum(p * lp for p, lp in zip(PSI, ex08.LOG_PROBS))
RIGHT = {ex08.check_weights: PSI, ex08.check_policy_loss: LOSS, ex08.check_mean_part: 0.5 * 0.25 / 4}
# what the notebook's solutions print (four decimals)
PRINTED = {ex08.check_weights: [0.5465, 0, 0.1220, 0.3315, 0, 0], ex08.check_policy_loss: 0.3517,
           ex08.check_mean_part: 0.03125}
_all = [math.exp(a) for a in ex08.ADVANTAGES]
WRONG = {
    ex08.check_weights: [[x / sum(_all) for x in _all], [1 / 3, 0, 1 / 3, 1 / 3, 0, 0], [1, 0, 0, 0, 0, 0],
                         [0.547, 0, 0.122, 0.331, 0, 0]],
    ex08.check_policy_loss: [LOSS / 3, LOSS / 6, -LOSS, 0.352],
    ex08.check_mean_part: [0.125, 0.0625, 0.0625 * 1],
}


@pytest.mark.parametrize("check", list(RIGHT), ids=lambda c: c.__name__)
def test_right_answer_passes(check, capsys):
    assert check(RIGHT[check]) is True
    assert capsys.readouterr().out.startswith("✓")


@pytest.mark.parametrize("check", list(PRINTED), ids=lambda c: c.__name__)
def test_the_value_the_notebook_prints_passes(check, capsys):
    assert check(PRINTED[check]) is True
    assert capsys.readouterr().out.startswith("✓")


@pytest.mark.parametrize("check, answer", [(c, a) for c, answers in WRONG.items() for a in answers],
                         ids=lambda v: getattr(v, "__name__", repr(v)))
def test_typical_wrong_answer_fails(check, answer, capsys):
    assert check(answer) is False
    assert capsys.readouterr().out.startswith("✗")


@pytest.mark.parametrize("check", list(RIGHT), ids=lambda c: c.__name__)
@pytest.mark.parametrize("answer", [None, "abc", [1.0, 2.0]])
def test_placeholder_and_unreadable_answers_fail_without_raising(check, answer, capsys):
    assert check(answer) is False
    assert capsys.readouterr().out.startswith("✗")


def test_hints_name_the_pitfalls(capsys):
    ex08.check_weights(WRONG[ex08.check_weights][0])
    assert "all six" in capsys.readouterr().out
    ex08.check_policy_loss(LOSS / 3)
    assert "mean where a sum belongs" in capsys.readouterr().out
    ex08.check_mean_part(0.125)
    assert "OLD covariance" in capsys.readouterr().out
    ex08.check_mean_part(0.0625)
    assert "σ where σ² belongs" in capsys.readouterr().out


# ------------------------------------------------------------------ exercise 4: e_step_weights


def _flat_parts(advantages, valid, top_k_fraction):
    flat = advantages.detach().reshape(-1)
    index = torch.nonzero(valid.reshape(-1)).reshape(-1)
    k = max(1, math.ceil(top_k_fraction * index.numel()))
    return flat, index, k


def e_step_weights(advantages, valid, temperature, top_k_fraction=0.5):
    """A right answer, written independently of rlkit (the notebook's solution)."""
    tau = temperature.detach() if torch.is_tensor(temperature) else temperature
    flat, index, k = _flat_parts(advantages, valid, top_k_fraction)
    top = index[torch.topk(flat[index], k).indices]
    w = torch.exp((flat[top] - flat[top].max()) / tau)
    psi = torch.zeros_like(flat)
    psi[top] = w / w.sum()
    return psi.reshape(advantages.shape)


def _planted(*, normalize="selected", rank_valid=True, k_from_valid=True, k_rule=math.ceil, shift=True, detach=True,
             exponent=lambda a, t: a / t):
    def weights(advantages, valid, temperature, top_k_fraction=0.5):
        tau = temperature if not detach else (temperature.detach() if torch.is_tensor(temperature) else temperature)
        adv = advantages if not detach else advantages.detach()
        flat = adv.reshape(-1)
        ranked = valid.reshape(-1) if rank_valid else torch.ones_like(valid.reshape(-1))
        index = torch.nonzero(ranked).reshape(-1)
        n = int(valid.sum()) if k_from_valid else valid.numel()
        k = max(1, int(k_rule(top_k_fraction * n)))
        top = index[torch.topk(flat[index], k).indices]
        z = flat - (flat[top].max() if shift else 0.0)
        w = torch.exp(exponent(z, tau))
        denominator = {"selected": w[top].sum(), "valid": w[valid.reshape(-1)].sum(), "all": w.sum()}[normalize]
        psi = torch.zeros_like(flat).index_put((top,), w[top] / denominator)
        return psi.reshape(advantages.shape)

    return weights


def _stub(*args, **kwargs):
    raise NotImplementedError


E_STEP_PLANTED = [
    (_planted(normalize="valid"), "normalized over all samples instead of the selected ones"),
    (_planted(normalize="all"), "normalized over all samples instead of the selected ones"),
    (_planted(rank_valid=False), "padding/reset steps entered the top-k"),
    (_planted(rank_valid=False, k_from_valid=False), "padding/reset steps entered the top-k"),
    (_planted(k_rule=math.floor), "⌈fraction · n_valid⌉"),
    (_planted(shift=False), "the max-shift"),
    (_planted(detach=False), "ψ carries gradient"),
    (_planted(exponent=lambda a, t: a * t), "the temperature divides"),
]


def test_e_step_weights_right_answer_passes(capsys):
    assert ex08.check_e_step_weights(e_step_weights) is True
    assert capsys.readouterr().out.startswith("✓ e_step_weights")


def test_e_step_weights_stub_is_not_done(capsys):
    assert ex08.check_e_step_weights(_stub) is False
    assert NOT_IMPLEMENTED in capsys.readouterr().out


@pytest.mark.parametrize("planted, message", E_STEP_PLANTED, ids=[m for _, m in E_STEP_PLANTED])
def test_e_step_weights_planted_mistake_is_named(planted, message, capsys):
    assert ex08.check_e_step_weights(planted) is False
    out = capsys.readouterr().out
    assert out.startswith("✗") and message in out


def test_e_step_weights_error_is_reported_not_raised(capsys):
    def broken(advantages, valid, temperature, top_k_fraction=0.5):
        return advantages.numpy()[0]  # raises: a tensor that requires grad has no .numpy(); wrong anyway

    assert ex08.check_e_step_weights(broken) is False
    assert capsys.readouterr().out.startswith("✗")


# ------------------------------------------------------------------ exercise 5: gaussian_kl


def gaussian_kl(old_mean, old_std, new_mean, new_std):
    """A right answer, checked against torch.distributions below."""
    ratio = old_std**2 / new_std**2
    return (0.5 * (ratio - 1 - torch.log(ratio) + (new_mean - old_mean) ** 2 / new_std**2)).sum(-1).mean()


def test_reference_is_the_full_kl():
    for case in ex08._gaussian_cases():
        old = torch.distributions.Normal(case["old_mean"], case["old_std"])
        new = torch.distributions.Normal(case["new_mean"], case["new_std"])
        full = torch.distributions.kl_divergence(old, new).sum(-1).mean()
        assert float(ex08._reference_kl(**case)) == pytest.approx(float(full), rel=1e-12)


def _kl_planted(*, var=lambda s: s**2, quad=lambda o, n: n**2, reverse=False, over_states="mean", over_dims="sum",
                half=0.5):
    def kl(old_mean, old_std, new_mean, new_std):
        if reverse:
            old_mean, old_std, new_mean, new_std = new_mean, new_std, old_mean, old_std
        ratio = var(old_std) / var(new_std)
        per_dim = half * (ratio - 1 - torch.log(ratio) + (new_mean - old_mean) ** 2 / quad(old_std, new_std))
        per_state = per_dim.sum(-1) if over_dims == "sum" else per_dim.mean(-1)
        return per_state.mean() if over_states == "mean" else per_state.sum()

    return kl


GAUSSIAN_PLANTED = [
    (_kl_planted(var=lambda s: s, quad=lambda o, n: n), "σ where σ² belongs"),
    (_kl_planted(quad=lambda o, n: n), "σ where σ² belongs"),
    (_kl_planted(reverse=True), "direction is reversed"),
    (_kl_planted(quad=lambda o, n: o**2), "the sum of the decoupled parts"),
    (_kl_planted(over_states="sum"), "a sum over states"),
    (_kl_planted(over_dims="mean"), "averaged over action dimensions"),
    (_kl_planted(half=1.0), "the ½ is missing"),
]


def test_gaussian_kl_right_answer_passes(capsys):
    assert ex08.check_gaussian_kl(gaussian_kl) is True
    assert capsys.readouterr().out.startswith("✓ gaussian_kl")


def test_gaussian_kl_stub_is_not_done(capsys):
    assert ex08.check_gaussian_kl(_stub) is False
    assert NOT_IMPLEMENTED in capsys.readouterr().out


@pytest.mark.parametrize("planted, message", GAUSSIAN_PLANTED, ids=[m for _, m in GAUSSIAN_PLANTED])
def test_gaussian_kl_planted_mistake_is_named(planted, message, capsys):
    assert ex08.check_gaussian_kl(planted) is False
    out = capsys.readouterr().out
    assert out.startswith("✗") and message in out


def test_the_notebooks_solutions_pass(capsys):
    """The notebook's solution code cells, read from the committed notebook, pass their checks: the numeric
    answers as the notebook writes them (rounded), then the functions of exercises 4 and 5."""
    import json
    from pathlib import Path

    notebook = json.loads((Path(__file__).parents[2] / "notebooks" / "08_vmpo_em.ipynb").read_text())
    solutions = [cell for cell in notebook["cells"]
                 if cell["cell_type"] == "code" and "solution" in cell["metadata"].get("tags", [])]
    checks = [(ex08.check_weights, "answer"), (ex08.check_policy_loss, "answer"), (ex08.check_mean_part, "answer"),
              (ex08.check_e_step_weights, "e_step_weights"), (ex08.check_gaussian_kl, "gaussian_kl")]
    assert len(solutions) == len(checks)
    for cell, (check, name) in zip(solutions, checks):
        namespace = {"math": math, "torch": torch}
        exec("".join(cell["source"]), namespace)  # noqa: S102 — the repository's own notebook
        assert check(namespace[name]) is True, check.__name__
    capsys.readouterr()
