"""Points per graded exercise, kept here rather than in the notebooks.

Every check cell is a graded exercise, named by its notebook's number and its check function
without ``check_`` (``check_trust_region_step`` in notebook 05 is ``("05", "trust_region_step")``).
An implementation exercise (its answer cell defines a function) is worth
:data:`IMPLEMENTATION_POINTS`, a numeric one :data:`NUMERIC_POINTS`; :data:`POINTS` overrides
either for a named exercise.
"""
from __future__ import annotations

IMPLEMENTATION_POINTS = 3
NUMERIC_POINTS = 1

#: ``(notebook number, exercise) → points``, for exercises that the rule above gets wrong.
POINTS: dict[tuple[str, str], int] = {}


def points(notebook: str, exercise: str, implementation: bool = False) -> int:
    """The points of one exercise (``notebook``: its file name or two-digit number)."""
    default = IMPLEMENTATION_POINTS if implementation else NUMERIC_POINTS
    return POINTS.get((notebook[:2], exercise), default)
