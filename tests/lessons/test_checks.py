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
