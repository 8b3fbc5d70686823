"""K-FAC's options: the allowed values of each choice and the checks of each hyperparameter.

Every check raises ``ValueError`` naming the parameter and its valid range.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Callable, Sequence, Union

from torch import Tensor

DAMPING_MODES = ("factored", "eigen")
INVERSE_METHODS = ("cholesky", "eigh")
UNCOVERED_POLICIES = ("error", "identity", "zero")
LOSS_REDUCTIONS = ("sum", "mean")

#: A declared exact diagonal Fisher block: a number, a tensor of the parameter's shape, or
#: a callable ``param -> tensor``.
FisherDiagonal = Union[float, Tensor, Callable[[Tensor], Tensor]]


def _check_damping(value) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value < 0:
        raise ValueError(f"damping must be a finite number >= 0 (valid range [0, inf)); got {value!r}")
    return float(value)


def _check_decay(value) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not (0.0 <= value < 1.0):
        raise ValueError(f"stats_decay must be in [0, 1) (0: no averaging); got {value!r}")
    return float(value)


def _check_period(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1 (valid range [1, inf)); got {value!r}")
    return int(value)


def _check_choice(name: str, value, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}; got {value!r}")
    return value
