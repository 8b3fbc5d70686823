"""The two editions of a notebook, from one source, by cell tags (never by matching text).

- instructor edition: the committed notebook, solutions and all;
- student edition: :func:`student_edition`: ``solution`` cells dropped, ``exercise`` and ``check``
  cells kept with their outputs cleared, every other cell (narrative, figures, checked outputs) kept
  as it is;
- answer key: :func:`answer_key`: the student edition with each ``exercise`` cell completed by its
  solution (what a student who solved everything hands in); the grader gives it full marks.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path

import nbformat

EXERCISE, SOLUTION, CHECK = "exercise", "solution", "check"

#: The notebooks of the kit (the instructor edition).
NOTEBOOKS = Path(__file__).resolve().parents[3] / "notebooks"

# A collapsed markdown solution states the answer as `answer = ...` in inline code.
_MARKDOWN_ANSWER = re.compile(r"`(answer\s*=\s*[^`]+)`")


def tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def kit_notebooks(numbers=None) -> list[Path]:
    """The kit's notebooks (``NN_name.ipynb``), all or those whose number (``"05"`` or ``5``) is given."""
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if numbers:
        wanted = {f"{int(n):02d}" for n in numbers}
        paths = [p for p in paths if p.name[:2] in wanted]
    return paths


def read(path) -> nbformat.NotebookNode:
    return nbformat.read(str(path), as_version=4)


def clear_outputs(cell) -> None:
    if cell.get("cell_type") == "code":
        cell["outputs"] = []
        cell["execution_count"] = None
        cell.get("metadata", {}).pop("execution", None)


def student_edition(notebook) -> nbformat.NotebookNode:
    """A copy of ``notebook`` without its ``solution`` cells, exercise and check outputs cleared."""
    edition = copy.deepcopy(notebook)
    cells = []
    for cell in edition.cells:
        if SOLUTION in tags(cell):
            continue
        if EXERCISE in tags(cell) or CHECK in tags(cell):
            clear_outputs(cell)
        cells.append(cell)
    edition.cells = cells
    return edition


def write_student_edition(out_dir, numbers=None) -> list[Path]:
    """Write the student edition of the kit's notebooks (all, or the numbers given) into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in kit_notebooks(numbers):
        target = out_dir / path.name
        if target.resolve() == path.resolve():
            raise ValueError(f"refusing to overwrite the instructor edition {path}")
        nbformat.write(student_edition(read(path)), str(target))
        written.append(target)
    return written


def exercise_groups(notebook) -> list[dict]:
    """Each ``exercise`` cell with the ``solution`` cells that follow it (up to the next exercise cell).

    Returns dicts ``{"exercise": index, "solutions": [indices]}``, indices into ``notebook.cells``.
    """
    groups = []
    for index, cell in enumerate(notebook.cells):
        if EXERCISE in tags(cell):
            groups.append({"exercise": index, "solutions": []})
        elif SOLUTION in tags(cell) and groups:
            groups[-1]["solutions"].append(index)
    return groups


def solution_code(notebook, group) -> str:
    """The code a solved exercise cell ends with: its solution code cells, else the ``answer = ...`` of
    its collapsed markdown solution; ``""`` when the solution gives neither."""
    cells = [notebook.cells[i] for i in group["solutions"]]
    code = [c.source for c in cells if c.cell_type == "code"]
    if code:
        return "\n\n".join(code)
    for cell in reversed(cells):
        found = _MARKDOWN_ANSWER.findall(cell.source)
        if found:
            return found[-1]
    return ""


def answer_key(notebook) -> nbformat.NotebookNode:
    """The student edition with every exercise cell solved: the stub followed by its solution."""
    solved = copy.deepcopy(notebook)
    for group in exercise_groups(notebook):
        cell = solved.cells[group["exercise"]]
        cell.source = cell.source.rstrip() + "\n\n" + solution_code(notebook, group)
    return student_edition(solved)
