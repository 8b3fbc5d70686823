"""Check functions for the notebooks' exercises: each says right or wrong, and why.

One module per notebook topic (``rlkit.lessons.nb01_natural_gradient.exercises`` for notebook 01, ...).
Every check compares the student's answer with rlkit's own computation and reports through
:func:`report`, which prints a one-line verdict and returns it as a bool (so a notebook can
also ``assert`` it).
"""
from __future__ import annotations

import torch

# What a check says about the placeholder answer the notebook ships with.
NOT_DONE = "replace None with your answer"


#: Functions called as ``record(ok, line)`` with every verdict :func:`report` prints. Empty in a
#: notebook; the coursework grader (``rlkit.lessons.coursework``) adds one to collect the outcomes.
RECORDERS: list = []


def report(ok: bool, what: str, hint: str = "") -> bool:
    """Print ``✓ what`` or ``✗ what — hint`` and return ``ok``."""
    line = f"✓ {what}" if ok else f"✗ {what}" + (f" — {hint}" if hint else "")
    print(line)
    for record in list(RECORDERS):
        record(bool(ok), line)
    return bool(ok)


def close(answer, expected, *, rtol: float = 1e-4, atol: float = 1e-6) -> tuple[bool, str]:
    """Compare an answer with the expected value; returns (ok, hint naming the largest error).

    Accepts numbers, numpy arrays and tensors; a shape mismatch, or an answer that cannot be
    read as numbers (``None``, a string), is a wrong answer, not an error.
    """
    try:
        answer_t = torch.as_tensor(answer, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as error:
        return False, f"could not read the answer as numbers ({type(error).__name__})"
    expected_t = torch.as_tensor(expected, dtype=torch.float64)
    if answer_t.shape != expected_t.shape:
        return False, f"shape {tuple(answer_t.shape)}, expected {tuple(expected_t.shape)}"
    if not torch.isfinite(answer_t).all():
        return False, "the answer has NaN or inf entries"
    error = (answer_t - expected_t).abs().max().item() if answer_t.numel() else 0.0
    ok = torch.allclose(answer_t, expected_t, rtol=rtol, atol=atol)
    return ok, f"largest absolute error {error:.3g}"


# ---------------------------------------------------------------- implementation exercises
#
# An implementation exercise has three cells, marked with cell tags (docs/design.md,
# "Exercises"): the stub (tag ``exercise``: signature, docstring, ``raise NotImplementedError``),
# the solution (tag ``solution``: the same function, written out; a student edition drops it)
# and the check (tag ``check``: ``check_...(the_function)``), which runs the function against
# rlkit on several seeded random inputs.

#: What a check says while the function still raises NotImplementedError.
NOT_IMPLEMENTED = "not done yet: the function still raises NotImplementedError"


def _as_tuple(value) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def _matches(answer, expected, rtol: float, atol: float) -> tuple[bool, str]:
    """``close`` over a result that may be a tuple of tensors (each part compared in turn)."""
    answers, expecteds = _as_tuple(answer), _as_tuple(expected)
    if len(answers) != len(expecteds):
        return False, f"returned {len(answers)} value(s), expected {len(expecteds)}"
    for i, (a, e) in enumerate(zip(answers, expecteds)):
        ok, hint = close(a.detach() if isinstance(a, torch.Tensor) else a,
                         e.detach() if isinstance(e, torch.Tensor) else e, rtol=rtol, atol=atol)
        if not ok:
            return False, (f"part {i}: " if len(answers) > 1 else "") + hint
    return True, ""


def check_implementation(student, reference, cases, *, what: str, mistakes=(), rtol: float = 1e-6,
                         atol: float = 1e-8) -> bool:
    """Run ``student(**case)`` against ``reference(**case)`` for every case; report the first difference.

    ``cases`` is a list of keyword-argument dicts (seeded random inputs); ``reference`` computes the
    right answer with rlkit. ``mistakes`` is a list of ``(mistaken_function, message)``: when the
    student's result differs from the reference but equals what a typical mistake gives, the
    report names that mistake instead of printing a bare error. A student's function that raises
    ``NotImplementedError`` is "not done"; any other exception is reported with its message.
    Returns True when every case agrees.
    """
    for number, case in enumerate(cases, start=1):
        try:
            answer = student(**case)
        except NotImplementedError:
            return report(False, what, NOT_IMPLEMENTED)
        except Exception as error:  # the student's code failed: say how, do not raise
            return report(False, what, f"case {number} raised {type(error).__name__}: {error}")
        expected = reference(**case)
        ok, hint = _matches(answer, expected, rtol, atol)
        if ok:
            continue
        for mistaken, message in mistakes:
            if _matches(answer, mistaken(**case), rtol, atol)[0]:
                return report(False, what, f"case {number}: {message}")
        return report(False, what, f"case {number}: {hint}")
    return report(True, f"{what}: agrees with rlkit on {len(cases)} random inputs")
