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


def report(ok: bool, what: str, hint: str = "") -> bool:
    """Print ``✓ what`` or ``✗ what — hint`` and return ``ok``."""
    print(f"✓ {what}" if ok else f"✗ {what}" + (f" — {hint}" if hint else ""))
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
