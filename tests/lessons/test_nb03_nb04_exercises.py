"""Exercise checks of notebooks 03 and 04: the right answer passes, typical wrong answers and the
notebooks' placeholder (None) fail without raising, and the facts the checks rely on hold in rlkit."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rlkit.lessons.nb04_kfac_in_practice import exercises as ex04
from rlkit.lessons.nb03_kronecker_factors import exercises as ex03


def _layout():
    p = ex03.layout_problem()
    return p["A"], p["S"], p["G"], torch.linalg.inv(p["A"]), torch.linalg.inv(p["S"])


A, S, G, A_INV, S_INV = _layout()

RIGHT = {
    ex03.check_preconditioned_gradient: S_INV @ G @ A_INV,
    ex03.check_conv_factor_entries: 257**2 + 32**2,
    ex03.check_two_sample_constant: 0.25,
    ex04.check_smallest_damped_eigenvalue: 0.36,
    ex04.check_newest_pass_weight: 1 / (1 + 0.95 + 0.95**2),
    ex04.check_inverse_period: 6,
}
WRONG = {
    ex03.check_preconditioned_gradient: [
        A_INV @ G @ S_INV,  # the paper's formula taken literally on PyTorch's layout
        (S_INV @ G @ A_INV).T,  # transposed
        G,  # not preconditioned
        S @ G @ A,  # multiplied instead of solved
    ],
    ex03.check_conv_factor_entries: [256**2 + 32**2, (257 * 32) ** 2, 5**2 + 32**2, 257**2, 12345],
    ex03.check_two_sample_constant: [0.5, -0.25, 1.0, 0.0],
    ex04.check_smallest_damped_eigenvalue: [0.26, 0.385, 0.25, 0.5],
    ex04.check_newest_pass_weight: [0.05, 1 / 3, 0.9],
    ex04.check_inverse_period: [5, 5.29, 11, 7],
}


@pytest.mark.parametrize("check", list(RIGHT), ids=lambda c: c.__name__)
def test_right_answer_passes(check, capsys):
    assert check(RIGHT[check]) is True
    assert capsys.readouterr().out.startswith("✓")


@pytest.mark.parametrize(
    "check, answer", [(c, a) for c, answers in WRONG.items() for a in answers], ids=lambda v: getattr(v, "__name__", "")
)
def test_typical_wrong_answer_fails_with_a_hint(check, answer, capsys):
    assert check(answer) is False
    out = capsys.readouterr().out
    assert out.startswith("✗") and " — " in out


@pytest.mark.parametrize("check", list(RIGHT), ids=lambda c: c.__name__)
@pytest.mark.parametrize("placeholder", [None, "my answer", [1.0, float("nan")]])
def test_placeholder_or_unreadable_answer_fails_without_raising(check, placeholder, capsys):
    assert check(placeholder) is False
    assert capsys.readouterr().out.startswith("✗")


def test_right_answers_accept_tensors_numpy_and_lists():
    assert ex03.check_preconditioned_gradient((S_INV @ G @ A_INV).numpy())
    assert ex03.check_preconditioned_gradient((S_INV @ G @ A_INV).tolist())
    assert ex03.check_conv_factor_entries(np.int64(67073))
    assert ex03.check_two_sample_constant(torch.tensor(0.25))
    assert ex04.check_inverse_period(6.0)


def test_specific_hints(capsys):
    ex03.check_preconditioned_gradient(A_INV @ G @ S_INV)
    assert "paper" in capsys.readouterr().out
    ex04.check_smallest_damped_eigenvalue(0.26)
    assert "eigen mode" in capsys.readouterr().out
    ex04.check_newest_pass_weight(0.05)
    assert "bias correction" in capsys.readouterr().out


# ---------------------------------------------------------------- the facts behind the checks


def test_layout_problem_is_square_and_the_papers_literal_formula_differs():
    assert A.shape == S.shape == G.shape == (6, 6)
    right, literal = S_INV @ G @ A_INV, A_INV @ G @ S_INV
    assert (right - literal).norm() > 0.1 * right.norm()
    torch.testing.assert_close(ex03._rlkit_preconditioned(), right, rtol=1e-8, atol=1e-10)


def test_two_sample_difference_is_a_quarter_of_the_kronecker_of_differences():
    p = ex03.two_sample_problem()
    (a1, a2), (S1, S2) = p["a"], p["S"]
    delta = torch.kron(S1 - S2, torch.outer(a1, a1) - torch.outer(a2, a2))
    order = [i * 4 + j for i in range(4) for j in range(3)] + [i * 4 + 3 for i in range(4)]
    torch.testing.assert_close(p["exact"] - p["kfac"], 0.25 * delta[order][:, order], rtol=1e-9, atol=1e-13)


# ---------------------------------------------------------------- notebook 03, exercise 1: kfac_statistics


def _statistics(model, x, y, generator, *, bias=True, fisher_labels="sampled", fisher_mean=False, A_sum=False,
                S_sum=False, fisher_backward=False, loss_sum=False, grad_labels="observed"):
    """A student's kfac_statistics written with hooks (independently of rlkit), with planted mistakes."""
    records, handles = [], []
    for module in model.modules():
        if isinstance(module, nn.Linear):
            record = {"module": module}

            def hook(module, inputs, output, record=record):
                a = inputs[0].detach()
                record["a"] = torch.cat([a, torch.ones(len(a), 1, dtype=a.dtype)], 1) if bias else a
                record["s"] = output

            handles.append(module.register_forward_hook(hook))
            records.append(record)
    logits = model(x)
    for h in handles:
        h.remove()
    y_hat = torch.multinomial(torch.softmax(logits.detach(), -1), 1, generator=generator)[:, 0]
    fisher_loss = F.cross_entropy(logits, y if fisher_labels == "observed" else y_hat,
                                  reduction="mean" if fisher_mean else "sum")
    gs = torch.autograd.grad(fisher_loss, [r["s"] for r in records], retain_graph=True)
    model.zero_grad()
    if fisher_backward:
        fisher_loss.backward(retain_graph=True)
    F.cross_entropy(logits, y if grad_labels == "observed" else y_hat, reduction="sum" if loss_sum else "mean").backward()
    n = len(x)
    out = []
    for r, g in zip(records, gs):
        m = r["module"]
        A = r["a"].T @ r["a"] / (1 if A_sum else n)
        S = g.T @ g / (1 if S_sum else n)
        out.append((A, S, torch.cat([m.weight.grad, m.bias.grad[:, None]], 1)))
    return out


def test_kfac_statistics_check_accepts_a_correct_implementation(capsys):
    assert ex03.check_kfac_statistics(_statistics) is True
    assert capsys.readouterr().out.startswith("✓")


def test_kfac_statistics_check_says_not_done_for_the_stub(capsys):
    def stub(model, x, y, generator):
        raise NotImplementedError

    assert ex03.check_kfac_statistics(stub) is False
    assert "not done" in capsys.readouterr().out


@pytest.mark.parametrize("mistake, words", [
    (dict(bias=False), "no bias coordinate"),
    (dict(fisher_mean=True), "N² too small"),
    (dict(fisher_mean=True, S_sum=True), "N times too small"),
    (dict(fisher_labels="observed"), "empirical Fisher"),
    (dict(A_sum=True), "A is N times too large"),
    (dict(S_sum=True), "S is N times too large"),
    (dict(A_sum=True, S_sum=True), "A and S are N times too large"),
    (dict(fisher_backward=True), "accumulated into .grad"),
    (dict(loss_sum=True), "G is N times too large"),
    (dict(grad_labels="sampled"), "G comes from the sampled labels"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_kfac_statistics_check_names_each_typical_mistake(mistake, words, capsys):
    def student(model, x, y, generator):
        return _statistics(model, x, y, generator, **mistake)

    assert ex03.check_kfac_statistics(student) is False
    out = capsys.readouterr().out
    assert out.startswith("✗") and words in out


def test_kfac_statistics_cases_draw_the_labels_rlkit_draws():
    # the check relies on sample_labels (softmax + multinomial) and rlkit's categorical_fisher_loss drawing the same ŷ
    from rlkit.critic import categorical_fisher_loss
    for case in ex03._statistics_cases():
        logits = case["model"](case["x"])
        seed = case["generator"].initial_seed()
        y_hat = torch.multinomial(torch.softmax(logits.detach(), -1), 1, generator=torch.Generator().manual_seed(seed))[:, 0]
        rlkit_loss = categorical_fisher_loss(logits, generator=torch.Generator().manual_seed(seed))
        assert rlkit_loss.item() == pytest.approx(F.cross_entropy(logits, y_hat, reduction="sum").item(), rel=1e-14)


def test_damped_factored_eigenvalue_and_rlkit_agree():
    assert ex04.smallest_damped_eigenvalue("factored") == pytest.approx(0.36, rel=1e-12)
    assert ex04.smallest_damped_eigenvalue("eigen") == pytest.approx(0.26, rel=1e-12)


def test_newest_pass_weight_from_rlkit_matches_the_formula():
    assert ex04.newest_pass_weight_rlkit() == pytest.approx(1 / (1 + 0.95 + 0.95**2), rel=1e-12)


def test_inverse_period_ratio():
    d_in, d_out = ex04.PERIOD_LAYER
    ratio = (d_in**3 + d_out**3) / (d_out**2 * d_in + d_out * d_in**2)
    assert 5 < ratio < 6 and math.ceil(ratio) == 6


# ---------------------------------------------------------------- notebook 04, exercise 1: damped_block


def _damped_block(A, S, damping, mode, *, order="SA", eigen_each_factor=False, eigen_root=False,
                  kappa_inverted=False, factored_lambda=False, kappa_one=False):
    """A student's damped_block written independently of rlkit, with planted mistakes."""
    eye = lambda n: torch.eye(n, dtype=A.dtype)  # noqa: E731
    kron = (lambda P, Q: torch.kron(P, Q)) if order == "SA" else (lambda P, Q: torch.kron(Q, P))
    if mode == "eigen":
        if eigen_each_factor:
            return kron(S + damping * eye(len(S)), A + damping * eye(len(A)))
        shift = math.sqrt(damping) if eigen_root else damping
        return kron(S, A) + shift * eye(len(S) * len(A))
    kappa = 1.0 if kappa_one else math.sqrt((torch.trace(A) / len(A)) / (torch.trace(S) / len(S)))
    if kappa_inverted:
        kappa = 1.0 / kappa
    root = damping if factored_lambda else math.sqrt(damping)
    return kron(S + root / kappa * eye(len(S)), A + kappa * root * eye(len(A)))


def test_damped_block_check_accepts_a_correct_implementation(capsys):
    assert ex04.check_damped_block(_damped_block) is True
    out = capsys.readouterr().out
    assert out.startswith("✓") and "relative difference < 1e-10: True" in out


def test_damped_block_check_says_not_done_for_the_stub(capsys):
    def stub(A, S, damping, mode):
        raise NotImplementedError

    assert ex04.check_damped_block(stub) is False
    assert "not done" in capsys.readouterr().out


@pytest.mark.parametrize("mistake, words", [
    (dict(eigen_each_factor=True), "λ added to each factor"),
    (dict(eigen_root=True), "√λ where λ belongs"),
    (dict(kappa_inverted=True), "κ correction is inverted"),
    (dict(factored_lambda=True), "λ where √λ belongs"),
    (dict(kappa_one=True), "κ = 1"),
    (dict(order="AS"), "column-major layout"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_damped_block_check_names_each_typical_mistake(mistake, words, capsys):
    def student(A, S, damping, mode):
        return _damped_block(A, S, damping, mode, **mistake)

    assert ex04.check_damped_block(student) is False
    out = capsys.readouterr().out
    assert out.startswith("✗") and words in out


def test_damped_block_reference_is_what_precondition_inverts():
    """The check's reference (damping_shifts(...).dense) is the matrix KFAC.precondition solves with."""
    from rlkit.kfac import KFAC

    for mode in ("factored", "eigen"):
        kfac = KFAC(nn.Linear(3, 3).double(), damping=0.04, damping_mode=mode)
        kfac.remove()
        layer = next(iter(kfac.layers.values()))
        case = ex04.damped_block_cases()[0]
        layer.A, layer.S = case["A"], case["S"]
        G = torch.randn(3, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        layer.weight.grad, layer.bias.grad = G[:, :3].clone(), G[:, 3].clone()
        kfac.precondition()
        step = torch.cat([layer.weight.grad, layer.bias.grad[:, None]], 1)
        solved = torch.linalg.solve(ex04.damped_block_rlkit(case["A"], case["S"], 0.04, mode), G.reshape(-1))
        torch.testing.assert_close(step.reshape(-1), solved, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------- notebook 04, exercise 3: the rounded weight


@pytest.mark.parametrize("rounded", [0.3506, 0.351, "0.3506"])
def test_newest_pass_weight_accepts_the_rounded_value_the_notebook_prints(rounded, capsys):
    assert ex04.check_newest_pass_weight(float(rounded)) is True
    assert capsys.readouterr().out.startswith("✓")


@pytest.mark.parametrize("wrong", [0.35, 0.352, 0.05, 1 / 3])
def test_newest_pass_weight_still_rejects_near_misses(wrong, capsys):
    assert ex04.check_newest_pass_weight(wrong) is False
