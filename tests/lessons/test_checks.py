"""The shared exercise-check helpers."""
import numpy as np
import torch

from rlkit.lessons.checks import close, report


def test_report_prints_a_verdict_and_returns_it(capsys):
    assert report(True, "Fisher of a Gaussian") is True
    assert report(False, "Fisher of a Gaussian", "check the factor 2") is False
    out = capsys.readouterr().out.splitlines()
    assert out == ["✓ Fisher of a Gaussian", "✗ Fisher of a Gaussian — check the factor 2"]


def test_close_accepts_right_answers_in_any_array_type_and_rejects_wrong_ones():
    expected = torch.tensor([[2.0, 0.0], [0.0, 0.5]])
    assert close(np.array([[2.0, 0.0], [0.0, 0.5]]), expected)[0]
    assert close(expected.tolist(), expected)[0]
    ok, hint = close(expected * 1.01, expected)
    assert not ok and "0.02" in hint
    ok, hint = close(expected[0], expected)
    assert not ok and "shape" in hint
    ok, hint = close(torch.full((2, 2), float("nan")), expected)
    assert not ok and "NaN" in hint


def test_close_treats_an_unreadable_answer_as_wrong_not_as_an_error():
    for answer in (None, "two", {"a": 1}):
        ok, hint = close(answer, 1.0)
        assert not ok and "could not read" in hint


def _softmax_cases():
    gen = torch.Generator().manual_seed(0)
    return [{"logits": torch.randn(4, n, generator=gen, dtype=torch.float64)} for n in (2, 3, 5)]


def _reference(logits):
    return torch.softmax(logits, dim=-1)


def test_check_implementation_accepts_a_correct_function(capsys):
    from rlkit.lessons.checks import check_implementation
    assert check_implementation(lambda logits: logits.exp() / logits.exp().sum(-1, keepdim=True), _reference,
                                _softmax_cases(), what="softmax")
    assert capsys.readouterr().out.strip() == "✓ softmax: agrees with rlkit on 3 random inputs"


def test_check_implementation_says_not_done_for_the_untouched_stub(capsys):
    from rlkit.lessons.checks import NOT_IMPLEMENTED, check_implementation

    def stub(logits):
        raise NotImplementedError

    assert not check_implementation(stub, _reference, _softmax_cases(), what="softmax")
    assert capsys.readouterr().out.strip() == f"✗ softmax — {NOT_IMPLEMENTED}"


def test_check_implementation_names_a_planted_mistake_and_reports_other_errors(capsys):
    from rlkit.lessons.checks import check_implementation
    over_the_wrong_axis = (lambda logits: torch.softmax(logits, dim=0), "normalized over the batch, not the actions")
    assert not check_implementation(over_the_wrong_axis[0], _reference, _softmax_cases(), what="softmax",
                                    mistakes=[over_the_wrong_axis])
    assert capsys.readouterr().out.strip() == "✗ softmax — case 1: normalized over the batch, not the actions"
    # an unknown wrong answer: the largest error; an exception: its type and message, never raised
    assert not check_implementation(lambda logits: 2 * _reference(logits), _reference, _softmax_cases(), what="s")
    assert "case 1: largest absolute error" in capsys.readouterr().out

    def broken(logits):
        raise ValueError("shapes do not match")

    assert not check_implementation(broken, _reference, _softmax_cases(), what="s")
    assert capsys.readouterr().out.strip() == "✗ s — case 1 raised ValueError: shapes do not match"
    # a tuple result is compared part by part
    assert not check_implementation(lambda logits: (_reference(logits), logits), lambda logits: (_reference(logits),
                                    2 * logits), _softmax_cases(), what="pair")
    assert "part 1: largest absolute error" in capsys.readouterr().out
