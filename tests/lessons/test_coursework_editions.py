"""The student edition (solutions out, stubs in) and the answer key, on the kit's real notebooks."""
import contextlib
import hashlib
import io
import re
from pathlib import Path

import pytest

from rlkit.lessons.checks import NOT_DONE, NOT_IMPLEMENTED
from rlkit.lessons.coursework.__main__ import main
from rlkit.lessons.coursework.editions import (CHECK, EXERCISE, NOTEBOOKS, SOLUTION, answer_key, kit_notebooks,
                                               read, student_edition, tags)
from rlkit.lessons.coursework.grading import exercise_table, exercises

GRADED = [p for p in kit_notebooks() if exercises(read(p))]


def text(notebook) -> str:
    """Everything a reader of the notebook sees: sources and outputs."""
    return cells_text(notebook.cells)


def cells_text(cells) -> str:
    parts = []
    for cell in cells:
        parts.append(cell.source)
        for output in cell.get("outputs", []):
            parts.append(str(output.get("text", "")))
            parts.extend(str(v) for v in output.get("data", {}).values())
    return "\n".join(parts)


def test_there_are_graded_notebooks():
    assert {p.name[:2] for p in GRADED} >= {"01", "02", "03", "04", "05", "06", "08"}


@pytest.mark.parametrize("path", GRADED, ids=lambda p: p.name[:2])
def test_the_student_edition_drops_solutions_clears_answers_and_keeps_everything_else(path):
    instructor = read(path)
    student = student_edition(instructor)
    kept = [c for c in instructor.cells if SOLUTION not in tags(c)]
    assert not any(SOLUTION in tags(c) for c in student.cells)
    assert [c.get("id") for c in student.cells] == [c.get("id") for c in kept]
    for theirs, ours in zip(student.cells, kept):
        assert theirs.source == ours.source  # stubs stay stubs, narrative stays
        if EXERCISE in tags(ours) or CHECK in tags(ours):
            assert theirs.outputs == [] and theirs.execution_count is None
        elif ours.cell_type == "code":
            assert theirs.outputs == ours.outputs  # figures and checked outputs kept
    assert read(path) == instructor  # the instructor edition is not touched


@pytest.mark.parametrize("path", GRADED, ids=lambda p: p.name[:2])
def test_the_student_edition_contains_no_solution_text(path):
    instructor = read(path)
    student_text = text(student_edition(instructor))
    # Everything outside the solutions (a solution shares its def line with the stub, and may repeat a line of
    # the notebook's own cells): what is left of a solution is its own text.
    public = cells_text([c for c in instructor.cells if SOLUTION not in tags(c)])
    solutions = [c for c in instructor.cells if SOLUTION in tags(c)]
    secrets = [[line.strip() for line in cell.source.splitlines() if len(line.strip()) > 8 and line.strip() not in public]
               for cell in solutions]
    assert solutions and any(secrets)
    for cell, secret in zip(solutions, secrets):
        for line in secret:
            assert line not in student_text, f"{path.name}: solution text in the student edition: {line!r}"
        for answer in re.findall(r"`(answer\s*=\s*[^`]+)`", cell.source):
            assert answer not in student_text


def run_cells(sources: list[str], item) -> str:
    """Run the cells in a namespace with torch, numpy and the check's names (a notebook may import them
    earlier, in one cell at the top)."""
    namespace = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec("import torch\nimport numpy as np", namespace)
        for name, module in item.names.items():
            exec(f"from {module} import {name}", namespace)
        for source in sources:
            exec(compile(source, "<cell>", "exec"), namespace)
    return out.getvalue()


@pytest.mark.parametrize("path", GRADED, ids=lambda p: p.name[:2])
def test_every_check_says_not_done_on_the_untouched_stubs(path):
    """Without the notebook's earlier cells: a numeric check that reads the notebook's results is left to the
    grading tests and to notebook 05's run below."""
    student = student_edition(read(path))
    for item in exercises(student):
        try:
            printed = run_cells([student.cells[i].source for i in item.answers] + [student.cells[item.check].source],
                                item)
        except NameError:
            if item.implementation:  # an implementation check takes the function alone
                raise
            continue
        assert printed.startswith("✗") and (NOT_DONE in printed or NOT_IMPLEMENTED in printed), (item.name, printed)


@pytest.mark.parametrize("path", GRADED, ids=lambda p: p.name[:2])
def test_the_answer_key_passes_every_numeric_check(path):
    """Implementation answers need the notebook's earlier cells: the grading tests run those."""
    key = answer_key(read(path))
    assert not any(SOLUTION in tags(c) for c in key.cells)
    for item in exercises(key):
        if item.implementation:
            continue
        try:
            printed = run_cells([key.cells[i].source for i in item.answers] + [key.cells[item.check].source], item)
        except NameError:  # the answer reads the notebook's earlier results: the grading tests run those
            continue
        assert printed.startswith("✓"), (item.name, printed)


def digest(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.ipynb"))}


def test_the_command_writes_every_notebook_and_leaves_the_instructor_edition_alone(tmp_path, capsys):
    before = digest(NOTEBOOKS)
    assert main(["student-edition", str(tmp_path / "handout")]) == 0
    assert digest(NOTEBOOKS) == before
    written = sorted(p.name for p in (tmp_path / "handout").glob("*.ipynb"))
    assert written == sorted(before)
    for name in written:
        assert not any(SOLUTION in tags(c) for c in read(tmp_path / "handout" / name).cells)


def test_the_command_writes_only_the_notebooks_asked_for(tmp_path, capsys):
    assert main(["student-edition", str(tmp_path), "1", "05"]) == 0
    assert sorted(p.name[:2] for p in tmp_path.glob("*.ipynb")) == ["01", "05"]


def test_the_student_edition_is_never_written_over_the_instructor_edition():
    with pytest.raises(ValueError, match="instructor edition"):
        main(["student-edition", str(NOTEBOOKS), "05"])


def test_the_syllabus_lists_every_graded_exercise():
    syllabus = (NOTEBOOKS / "README.md").read_text()
    table = syllabus.split("<!-- graded-exercises:start -->\n")[1].split("<!-- graded-exercises:end -->")[0]
    assert table.strip() == exercise_table(), (
        "notebooks/README.md's table of graded exercises is out of date: paste the output of "
        "`python -m rlkit.lessons.coursework exercises` between its graded-exercises markers")


@pytest.mark.slow
def test_notebook_05s_student_edition_runs_and_its_checks_say_not_done():
    from nbclient import NotebookClient

    from rlkit.lessons.coursework.grading import _kernel_manager_class

    student = student_edition(read(NOTEBOOKS / "05_trust_region.ipynb"))
    NotebookClient(student, kernel_manager_class=_kernel_manager_class(), kernel_name="python3", timeout=600,
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    checks = [c for c in student.cells if CHECK in tags(c)]
    assert len(checks) == 4
    for cell in checks:
        printed = "".join(o.get("text", "") for o in cell.outputs)
        assert printed.startswith("✗") and (NOT_DONE in printed or NOT_IMPLEMENTED in printed), printed
