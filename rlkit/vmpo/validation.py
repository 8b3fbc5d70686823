"""Checks shared by V-MPO's E-step, M-step and duals: tensors, positive scalars, ``valid`` masks.

Each raises ``ValueError`` naming the parameter and its valid range.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _check_tensor(name: str, x, floating: bool = True) -> Tensor:
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if floating and not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    return x


def _check_pair(name_a: str, a, name_b: str, b, last: str) -> tuple[Tensor, Tensor]:
    """Two floating-point tensors of one shape (..., ``last``), at least 1-D (old and new policy outputs)."""
    a, b = _check_tensor(name_a, a), _check_tensor(name_b, b)
    if a.shape != b.shape or a.dim() < 1:
        raise ValueError(f"{name_a} and {name_b} must have the same shape (..., {last}), got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    return a, b


def _scalar_value(name: str, x) -> float:
    """The float value of a Python number or one-element tensor (no gradient, no graph)."""
    if isinstance(x, Tensor):
        if x.numel() != 1:
            raise ValueError(f"{name} must be a scalar, got a tensor of shape {tuple(x.shape)}")
        return float(x.detach())
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise ValueError(f"{name} must be a real number or a one-element tensor, got {x!r}")
    return float(x)


def _check_positive(name: str, x) -> float:
    v = _scalar_value(name, x)
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be finite and > 0 (valid range (0, inf)), got {v!r}")
    return v


def _check_valid(valid, shape: torch.Size, what: str) -> Tensor | None:
    if valid is None:
        return None
    if not isinstance(valid, Tensor) or valid.dtype != torch.bool:
        got = valid.dtype if isinstance(valid, Tensor) else type(valid).__name__
        raise ValueError(
            f"valid must be a bool tensor (True = a real sample; pass e.g. `mask.bool()`), got {got}"
        )
    if valid.shape != shape:
        raise ValueError(f"valid must have the shape of {what} {tuple(shape)}, got {tuple(valid.shape)}")
    return valid
