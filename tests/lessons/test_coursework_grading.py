"""Grading real submissions built from notebook 06 (the cheapest to run): a correct one, an untouched student
edition, one with typical mistakes and a raising answer cell, one that cheats, one that hangs, one unreadable."""
import csv

import nbformat
import pytest

from rlkit.lessons.checks import NOT_DONE, NOT_IMPLEMENTED
from rlkit.lessons.coursework.__main__ import main
from rlkit.lessons.coursework.editions import NOTEBOOKS, answer_key, read, student_edition
from rlkit.lessons.coursework.grading import COLUMNS, exercises, grade

KIT = NOTEBOOKS / "06_gauss_newton_critic.ipynb"
STEP, SCALE, BY_HAND, RATIO = "gauss_newton_critic_step", "baselines_block_scale", "gauss_newton_step", "sigma_step_ratio"


def with_answers(notebook, answers: dict) -> nbformat.NotebookNode:
    """``notebook`` with the answer cell of each named exercise replaced by the given source."""
    notebook = nbformat.from_dict(notebook)
    by_id = {cell.get("id"): cell for cell in notebook.cells}
    kit = read(KIT)
    for item in exercises(kit):
        if item.name in answers:
            by_id[kit.cells[item.answers[0]]["id"]].source = answers[item.name]
    return notebook


def solution_of_the_step() -> str:
    key = answer_key(read(KIT))
    (item,) = [i for i in exercises(read(KIT)) if i.name == STEP]
    return key.cells[[c.get("id") for c in key.cells].index(read(KIT).cells[item.answers[0]]["id"])].source


def stub(name) -> str:
    kit = read(KIT)
    (item,) = [i for i in exercises(kit) if i.name == name]
    return kit.cells[item.answers[0]].source


def hand_in(folder, student, notebook, name=KIT.name):
    (folder / student).mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, str(folder / student / name))


def cheating() -> nbformat.NotebookNode:
    """Redefines the check in an answer cell, patches the kit's check module in another, edits a check cell
    and an expected value outside the answer cells, and adds a cell."""
    notebook = with_answers(student_edition(read(KIT)), {
        STEP: stub(STEP) + ("\n\ndef check_gauss_newton_critic_step(function):\n"
               "    print('✓ gauss_newton_critic_step: agrees with rlkit on 3 random inputs')\n"
               "    return True\n"),
        SCALE: ("import rlkit.lessons.nb06_gauss_newton_critic.exercises as ex\n"
                "ex.check_baselines_block_scale = lambda answer: print('✓ fine') or True\n"
                "answer = 123.0"),
        RATIO: ("import rlkit.lessons.checks as checks\n"
                "import rlkit.lessons.nb06_gauss_newton_critic.exercises as ex\n"
                "checks.close = ex.close = lambda answer, expected, **kw: (True, '')\n"
                "answer = 7.0"),
    })
    for cell in notebook.cells:
        if "check_gauss_newton_step(answer)" in cell.source:
            cell.source = "ok = True\nprint('✓ θ after one Gauss-Newton step')"
    notebook.cells.append(nbformat.v4.new_code_cell("print('✓ everything')"))
    return notebook


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("submissions")
    student = student_edition(read(KIT))
    hand_in(folder, "correct", answer_key(read(KIT)))
    hand_in(folder, "untouched", student)
    hand_in(folder, "mistakes", with_answers(student, {
        STEP: solution_of_the_step().replace("return -torch.linalg.solve", "return torch.linalg.solve"),
        SCALE: "answer = 2",
        BY_HAND: "answer = [4 / 3, 7 / 3] / 0",
        RATIO: "answer = 0.5",
    }), name="06_gauss_newton_critic (copy).ipynb")
    hand_in(folder, "cheater", cheating())
    out = folder / "grades.csv"
    rows = grade(folder, out, timeout=900)
    return {"rows": rows, "csv": out}


def rows_of(graded, student):
    return {r["exercise"]: r for r in graded["rows"] if r["student"] == student}


@pytest.mark.slow
def test_the_csv_has_a_row_per_student_and_exercise_and_a_total(graded):
    with open(graded["csv"], newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == COLUMNS
        rows = list(reader)
    names = [STEP, SCALE, BY_HAND, RATIO, "total"]
    for student in ("cheater", "correct", "mistakes", "untouched"):
        assert [r["exercise"] for r in rows if r["student"] == student] == names
    assert len(rows) == 4 * len(names)


@pytest.mark.slow
def test_the_answer_key_gets_full_marks(graded):
    rows = rows_of(graded, "correct")
    assert rows["total"]["points"] == rows["total"]["max_points"] == 6
    assert rows[STEP]["points"] == 3 and rows[STEP]["message"].startswith("✓ gauss_newton_critic_step: agrees")
    assert all(r["passed"] for r in rows.values())
    assert "note" not in rows[STEP]["message"]


@pytest.mark.slow
def test_an_untouched_student_edition_is_not_done_everywhere(graded):
    rows = rows_of(graded, "untouched")
    assert rows["total"]["points"] == 0
    assert NOT_IMPLEMENTED in rows[STEP]["message"]
    for name in (SCALE, BY_HAND, RATIO):
        assert NOT_DONE in rows[name]["message"] and not rows[name]["passed"]
    assert "note" not in rows[STEP]["message"]


@pytest.mark.slow
def test_typical_mistakes_are_named_and_a_raising_answer_cell_scores_zero(graded):
    rows = rows_of(graded, "mistakes")
    assert "the sign: this step climbs the loss" in rows[STEP]["message"] and rows[STEP]["points"] == 0
    assert "the block is its SECOND moment" in rows[SCALE]["message"]
    assert rows[BY_HAND]["message"].startswith("your answer cell raised TypeError")
    assert rows[RATIO]["passed"] and rows[RATIO]["points"] == 1  # the other answers still count
    assert rows["total"]["points"] == 1


@pytest.mark.slow
def test_redefined_checks_and_edited_expected_values_do_not_pass(graded):
    rows = rows_of(graded, "cheater")
    assert rows["total"]["points"] == 0
    assert NOT_IMPLEMENTED in rows[STEP]["message"]  # the kit's check ran on the stub
    assert "✗ the block scale c" in rows[SCALE]["message"]
    assert NOT_DONE in rows[BY_HAND]["message"]  # the edited check cell did not run: the kit's did
    assert "✗ step ratio" in rows[RATIO]["message"]
    note = rows[SCALE]["message"]
    assert "check_baselines_block_scale" in note and "rlkit.lessons.checks.close" in note
    assert "check_gauss_newton_critic_step (redefined in the notebook)" in note
    assert "edits outside the answer cells were not run" in note and "added cells" in note


@pytest.mark.slow
def test_a_hanging_an_unreadable_and_a_missing_notebook_each_get_their_rows(tmp_path):
    hanging = with_answers(student_edition(read(KIT)), {STEP: stub(STEP) + "\n\nimport time\nwhile True:\n    time.sleep(0.1)"})
    hand_in(tmp_path, "a_hangs", hanging)
    (tmp_path / "b_unreadable").mkdir()
    (tmp_path / "b_unreadable" / KIT.name).write_text("{ this is not a notebook")
    (tmp_path / "c_nothing").mkdir()
    rows = grade(tmp_path, tmp_path / "grades.csv", timeout=20, numbers=["06"])
    by = {(r["student"], r["exercise"]): r for r in rows}
    assert {s for s, _ in by} == {"a_hangs", "b_unreadable", "c_nothing"}
    for student, reason in (("a_hangs", "timed out after 20 s"), ("b_unreadable", "could not read the notebook"),
                            ("c_nothing", "not handed in")):
        assert by[(student, "total")]["points"] == 0
        for name in (STEP, SCALE, BY_HAND, RATIO):
            assert reason in by[(student, name)]["message"] and by[(student, name)]["points"] == 0


def test_grading_an_empty_folder_writes_a_header(tmp_path, capsys):
    assert main(["grade", str(tmp_path), "--out", str(tmp_path / "grades.csv")]) == 0
    assert (tmp_path / "grades.csv").read_text().strip() == ",".join(COLUMNS)
    assert main(["grade", str(tmp_path / "missing")]) == 2


def test_the_deadline_is_for_the_whole_notebook_and_stops_a_hanging_cell(tmp_path):
    from rlkit.lessons.coursework.grading import execute

    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import time\ntime.sleep(1)"),
        nbformat.v4.new_code_cell("while True:\n    time.sleep(0.1)"),
        nbformat.v4.new_code_cell("print('never')")])
    state = execute(notebook, timeout=4, cwd=tmp_path)
    assert state == {"done": {0}, "running": 1, "stopped": "timed out after 4 s"}
    assert notebook.cells[2].outputs == []
