"""Grading: each submission runs as the kit's notebook with only the student's answer cells put in.

For a submitted notebook the grader takes the kit's notebook (the instructor edition), drops its
``solution`` cells, replaces each ``exercise`` cell by the student's (matched by cell id, else by
order), wraps each ``check`` cell so that the kit's check functions run and their verdicts are
recorded (:mod:`~rlkit.lessons.coursework.kernel`), and executes it in a fresh kernel with a
deadline for the whole notebook. Edits outside the answer cells are not run; the message says so.
Every exercise gets a row, whatever happened: a notebook that cannot be read, raises, hangs or kills
its kernel scores 0 on what did not run, with the reason. Output: one CSV row per student and
exercise (:data:`COLUMNS`) and a ``total`` row per student.
"""
from __future__ import annotations

import ast
import csv
import difflib
import json
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from rlkit.lessons.coursework.editions import CHECK, EXERCISE, SOLUTION, kit_notebooks, read, student_edition, tags
from rlkit.lessons.coursework.points import points

COLUMNS = ("student", "notebook", "exercise", "points", "max_points", "passed", "message")
DEFAULT_TIMEOUT = 600  # seconds per notebook: a kit notebook runs in at most 3 minutes
_KERNEL = "rlkit.lessons.coursework.kernel"
_IMPORT = re.compile(r"^rlkit\.lessons\.nb\d\d_\w+\.exercises$")


@dataclass
class Exercise:
    """One graded exercise: a ``check`` cell of the kit's notebook and the answer cells before it."""

    name: str
    check: int                       # index of the check cell in the kit's notebook
    answers: list[int]               # indices of the exercise cells it checks
    names: dict[str, str] = field(default_factory=dict)  # check names the cell uses → their module
    implementation: bool = False     # the answer cell defines a function (else: a numeric answer)


def _check_imports(notebook) -> dict[str, str]:
    """Every ``from rlkit.lessons.nbNN_*.exercises import name`` of the notebook: name → module."""
    names = {}
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and _IMPORT.match(node.module):
                for alias in node.names:
                    names[alias.asname or alias.name] = node.module
    return names


def exercises(notebook) -> list[Exercise]:
    """The graded exercises of a kit notebook, in order: one per ``check`` cell."""
    imported = _check_imports(notebook)
    found, pending = [], []
    for index, cell in enumerate(notebook.cells):
        if EXERCISE in tags(cell):
            pending.append(index)
        elif CHECK in tags(cell):
            used = {node.id for node in ast.walk(ast.parse(cell.source)) if isinstance(node, ast.Name)}
            calls = [node.func.id for node in ast.walk(ast.parse(cell.source))
                     if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                     and node.func.id.startswith("check_")]
            name = calls[0].removeprefix("check_") if calls else f"cell {index + 1}"
            implementation = any(isinstance(node, ast.FunctionDef)
                                 for i in pending for node in ast.walk(ast.parse(notebook.cells[i].source)))
            found.append(Exercise(name, index, pending, {n: imported[n] for n in sorted(used) if n in imported},
                                  implementation))
            pending = []
    return found


def _norm(source: str) -> str:
    return "\n".join(line.rstrip() for line in source.strip().splitlines())


def match_answers(kit, submission) -> tuple[dict[int, str], list[str]]:
    """The student's source for each exercise cell of ``kit`` (by cell id, else by order); notes.

    A kit exercise cell the submission lacks keeps its stub, with a note.
    """
    wanted = [i for i, cell in enumerate(kit.cells) if EXERCISE in tags(cell)]
    by_id = {cell.get("id"): cell for cell in submission.cells if cell.get("id")}
    tagged = [cell for cell in submission.cells if EXERCISE in tags(cell)]
    answers, notes = {}, []
    if all(kit.cells[i].get("id") in by_id for i in wanted):
        chosen = [by_id[kit.cells[i]["id"]] for i in wanted]
    elif len(tagged) == len(wanted):
        chosen = tagged
    else:
        chosen = [by_id.get(kit.cells[i].get("id")) for i in wanted]
    for index, cell in zip(wanted, chosen):
        if cell is None:
            answers[index] = kit.cells[index].source
            notes.append(f"answer cell {index + 1} of the kit's notebook is missing from the submission (the stub ran)")
        else:
            answers[index] = cell.source
    return answers, notes


def outside_edits(kit, submission, answer_ids: set) -> str:
    """A note on cells changed, added or deleted outside the answer cells ("" when none)."""
    edition = [c for c in student_edition(kit).cells if EXERCISE not in tags(c)]
    theirs = [(n, c) for n, c in enumerate(submission.cells, start=1)
              if EXERCISE not in tags(c) and c.get("id") not in answer_ids]
    matcher = difflib.SequenceMatcher(a=[_norm(c.source) for c in edition],
                                      b=[_norm(c.source) for _, c in theirs], autojunk=False)
    changed, added, deleted = [], [], 0
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "replace":
            changed += [theirs[j][0] for j in range(j1, j2)]
            deleted += max(0, (i2 - i1) - (j2 - j1))
        elif op == "insert":
            added += [theirs[j][0] for j in range(j1, j2)]
        elif op == "delete":
            deleted += i2 - i1
    parts = []
    if changed:
        parts.append(f"changed cells {', '.join(map(str, changed[:5]))}{'…' if len(changed) > 5 else ''}")
    if added:
        parts.append(f"added cells {', '.join(map(str, added[:5]))}{'…' if len(added) > 5 else ''}")
    if deleted:
        parts.append(f"deleted {deleted} cell(s)")
    if not parts:
        return ""
    return "edits outside the answer cells were not run, the kit's cells ran instead (" + "; ".join(parts) + ")"


def graded_notebook(kit, answers: dict[int, str], results: Path, items: list[Exercise]):
    """The notebook the grader runs, and for each of its cells the index of the kit's cell (-1: added)."""
    modules = sorted({m for item in items for m in item.names.values()})
    setup = nbformat.v4.new_code_cell(f"__import__({_KERNEL!r}, fromlist=['start']).start({str(results)!r}, {modules!r})")
    cells, origin = [setup], [-1]
    checks = {item.check: item for item in items}
    for index, cell in enumerate(kit.cells):
        if SOLUTION in tags(cell):
            continue
        new = nbformat.from_dict(json.loads(json.dumps(cell)))
        if new.cell_type == "code":
            new.outputs, new.execution_count = [], None
        if index in answers:
            new.source = answers[index]
        elif index in checks:
            item = checks[index]
            new.source = (f"__import__({_KERNEL!r}, fromlist=['begin']).begin({item.name!r}, {item.names!r}, globals())\n"
                          f"{cell.source}\n"
                          f"__import__({_KERNEL!r}, fromlist=['end']).end({item.name!r})")
        cells.append(new)
        origin.append(index)
    graded = nbformat.v4.new_notebook(cells=cells, metadata=kit.metadata)
    return graded, origin


def _kernel_manager_class():
    """An asynchronous kernel manager (nbclient's timeouts need one) whose kernel is this environment's
    Python, the kit's, whatever kernels are installed."""
    from jupyter_client.kernelspec import KernelSpec
    from jupyter_client.manager import AsyncKernelManager

    class ThisPythonKernel(AsyncKernelManager):
        @property
        def kernel_spec(self):
            if self._kernel_spec is None:
                self._kernel_spec = KernelSpec(
                    argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                    display_name="rlkit grader", language="python")
            return self._kernel_spec

    return ThisPythonKernel


def execute(notebook, timeout: float, cwd: Path) -> dict:
    """Run ``notebook`` in a fresh kernel, in place, within ``timeout`` seconds for the whole notebook.

    Returns ``{"done": set of executed cell indices, "running": index or None, "stopped": reason or ""}``.
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    state = {"done": set(), "running": None, "stopped": ""}
    deadline = [None]

    def remaining(cell):
        if deadline[0] is None:
            deadline[0] = time.monotonic() + timeout
        return max(1, int(deadline[0] - time.monotonic() + 0.999))

    def started(cell, cell_index):
        state["running"] = cell_index

    def finished(cell, cell_index, execute_reply):
        state["done"].add(cell_index)
        state["running"] = None

    client = NotebookClient(notebook, kernel_manager_class=_kernel_manager_class(), kernel_name="python3",
                            timeout_func=remaining, allow_errors=True,
                            shutdown_kernel="immediate", startup_timeout=120,
                            resources={"metadata": {"path": str(cwd)}},
                            on_cell_execute=started, on_cell_executed=finished)
    try:
        client.execute()
    except CellTimeoutError:
        state["stopped"] = f"timed out after {timeout:g} s"
    except DeadKernelError:
        state["stopped"] = "the kernel died (out of memory, or the notebook ended its process)"
    except Exception as error:  # a kernel that would not start, a broken notebook: never stop the others
        state["stopped"] = f"could not run: {type(error).__name__}: {error}"
    return state


def _error(cell) -> str:
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return f"{output.get('ename')}: {output.get('evalue')}"[:300]
    return ""


def _records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def _row(student, notebook, item_name, max_points, passed, message):
    return {"student": student, "notebook": notebook, "exercise": item_name,
            "points": max_points if passed else 0, "max_points": max_points, "passed": bool(passed),
            "message": message}


def _zero_rows(student, kit_path: Path, reason: str) -> list[dict]:
    number = kit_path.name[:2]
    return [_row(student, kit_path.stem, item.name, points(number, item.name, item.implementation), False, reason)
            for item in exercises(read(kit_path))]


def grade_notebook(student: str, kit_path: Path, submission_path: Path, timeout: float = DEFAULT_TIMEOUT) -> list[dict]:
    """One row per exercise of ``kit_path`` for the student's ``submission_path``."""
    kit = read(kit_path)
    number, notebook = kit_path.name[:2], kit_path.stem
    items = exercises(kit)
    try:
        submission = nbformat.read(str(submission_path), as_version=4)
        if not isinstance(submission.get("cells"), list):
            raise ValueError("no cells")
    except Exception as error:
        return _zero_rows(student, kit_path, f"could not read the notebook {submission_path.name}: "
                                             f"{type(error).__name__}: {str(error)[:200]}")
    answers, notes = match_answers(kit, submission)
    answer_ids = {kit.cells[i].get("id") for i in answers}
    edits = outside_edits(kit, submission, answer_ids)
    if edits:
        notes.append(edits)
    with tempfile.TemporaryDirectory(prefix="rlkit-grade-") as folder:
        results = Path(folder) / "verdicts.jsonl"
        graded, origin = graded_notebook(kit, answers, results, items)
        state = execute(graded, timeout, kit_path.parent)
        records = _records(results)
    position = {kit_index: n for n, kit_index in enumerate(origin) if kit_index >= 0}
    where = ""
    if state["stopped"] and state["running"] is not None:
        kit_index = origin[state["running"]]
        kind = "your answer cell" if kit_index in answers else "a cell of the kit"
        where = f" in cell {kit_index + 1} ({kind})" if kit_index >= 0 else " while starting"
    restored = sorted({name for r in records if r.get("event") == "restored" for name in r["names"]})
    if restored:
        notes.append("the notebook changed the kit's " + ", ".join(restored[:6]) + ("…" if len(restored) > 6 else "")
                     + ": the grader used the kit's version")
    kit_errors = [kit_index + 1 for n, kit_index in enumerate(origin)
                  if kit_index >= 0 and kit_index not in answers and kit_index not in {i.check for i in items}
                  and _error(graded.cells[n])]
    if kit_errors:
        first = _error(graded.cells[position[kit_errors[0] - 1]])
        notes.append(f"cells of the kit raised errors with this submission: {', '.join(map(str, kit_errors[:5]))} "
                     f"(first: {first})")
    rows = []
    for item in items:
        verdicts = [r for r in records if r.get("event") == "verdict" and r.get("exercise") == item.name]
        ended = any(r.get("event") == "end" and r.get("exercise") == item.name for r in records)
        answer_errors = [_error(graded.cells[position[i]]) for i in item.answers if _error(graded.cells[position[i]])]
        check_cell = graded.cells[position[item.check]]
        if answer_errors:
            passed, message = False, f"your answer cell raised {answer_errors[0]}"
        elif position[item.check] not in state["done"]:
            passed, message = False, "not run: " + (state["stopped"] + where if state["stopped"] else "the notebook stopped")
        elif _error(check_cell):
            passed, message = False, f"the check raised {_error(check_cell)}"
        elif not verdicts or not ended:
            passed, message = False, "the check gave no verdict"
        else:
            passed = all(r["ok"] for r in verdicts)
            message = " | ".join(r["line"] for r in verdicts)
        if notes:
            message += " [note: " + "; ".join(notes) + "]"
        rows.append(_row(student, notebook, item.name, points(number, item.name, item.implementation), passed, message))
    return rows


def find_submissions(folder: Path, kit_paths: list[Path]) -> tuple[dict[str, dict[str, list[Path]]], list[str]]:
    """``{student: {kit notebook stem: [files]}}`` from ``folder/<student>/*.ipynb``; warnings.

    A file belongs to the kit notebook whose two-digit number starts its name.
    """
    by_number = {p.name[:2]: p for p in kit_paths}
    students, warnings = {}, []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if not path.is_dir():
            warnings.append(f"ignored {path.name}: hand-ins go in one folder per student")
            continue
        mine = students.setdefault(path.name, {})
        for file in sorted(path.rglob("*.ipynb")):
            if ".ipynb_checkpoints" in file.parts:
                continue
            kit = by_number.get(file.name[:2])
            if kit is None:
                warnings.append(f"ignored {path.name}/{file.relative_to(path)}: its name does not start with "
                                "the number of a graded notebook")
                continue
            mine.setdefault(kit.stem, []).append(file)
    return students, warnings


def grade(folder, out, timeout: float = DEFAULT_TIMEOUT, numbers=None, log=sys.stderr) -> list[dict]:
    """Grade every student folder of ``folder``; write the rows to the CSV ``out`` and return them.

    ``numbers`` are the assigned notebooks (``["01", "05"]``); by default every kit notebook with a
    graded exercise that at least one student handed in. A student without a file for an assigned
    notebook gets its rows with 0 points.
    """
    folder = Path(folder)
    graded_kit = [p for p in kit_notebooks(numbers) if exercises(read(p))]
    students, warnings = find_submissions(folder, graded_kit)
    for warning in warnings:
        print(warning, file=log)
    handed_in = {stem for files in students.values() for stem in files}
    assigned = graded_kit if numbers else [p for p in graded_kit if p.stem in handed_in]
    rows = []
    for student, files in students.items():
        mine = []
        for kit_path in assigned:
            candidates = files.get(kit_path.stem, [])
            exact = [f for f in candidates if f.name == kit_path.name]
            began = time.monotonic()
            if not candidates:
                notebook_rows = _zero_rows(student, kit_path, "not handed in")
            elif len(candidates) > 1 and len(exact) != 1:
                names = ", ".join(str(f.relative_to(folder / student)) for f in candidates)
                notebook_rows = _zero_rows(student, kit_path, f"several files for this notebook ({names}): hand in one")
            else:
                submission = exact[0] if exact else candidates[0]
                try:
                    notebook_rows = grade_notebook(student, kit_path, submission, timeout)
                except Exception as error:  # a bug or a broken file must not stop the other students
                    notebook_rows = _zero_rows(student, kit_path, f"the grader failed: {type(error).__name__}: {error}")
            earned = sum(r["points"] for r in notebook_rows)
            print(f"{student}/{kit_path.name}: {earned}/{sum(r['max_points'] for r in notebook_rows)} points "
                  f"({time.monotonic() - began:.0f} s)", file=log, flush=True)
            mine += notebook_rows
        passed = sum(r["passed"] for r in mine)
        mine.append({"student": student, "notebook": "", "exercise": "total",
                     "points": sum(r["points"] for r in mine), "max_points": sum(r["max_points"] for r in mine),
                     "passed": bool(mine) and passed == len(mine),
                     "message": f"{passed} of {len(mine)} exercises passed"})
        rows += mine
    write_csv(rows, out)
    return rows


def write_csv(rows: list[dict], out) -> None:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def exercise_title(notebook, item: Exercise) -> str:
    """The ``### Exercise k: title`` heading above an exercise (its name when there is none)."""
    first = item.answers[0] if item.answers else item.check
    for cell in reversed(notebook.cells[:first]):
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("### "):
                    return line[4:].strip()
    return item.name


def exercise_table(numbers=None) -> str:
    """The syllabus's table of graded exercises, from the notebooks' check cells and :mod:`points`."""
    lines = ["| Notebook | Exercise | Graded as | Points |", "|---|---|---|---:|"]
    for path in kit_notebooks(numbers):
        notebook = read(path)
        for item in exercises(notebook):
            lines.append(f"| {path.name[:2]} | {exercise_title(notebook, item)} | `{item.name}` "
                         f"| {points(path.name[:2], item.name, item.implementation)} |")
    return "\n".join(lines)
