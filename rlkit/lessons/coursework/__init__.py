"""Coursework: the student edition of the notebooks and the grading of submissions.

The committed notebooks are the instructor edition. Their exercise cells carry cell tags
(docs/design.md, "Exercises"): ``exercise`` (the cell the student edits: a stub or ``answer = None``),
``solution`` (the worked solution: a code cell or a collapsed ``<details>`` markdown cell) and
``check`` (calls a ``check_...`` function of ``rlkit.lessons.nbNN_*.exercises``).

- :mod:`~rlkit.lessons.coursework.editions`: the student edition (solution cells dropped, outputs of
  exercise and check cells cleared, everything else kept) and the answer key.
- :mod:`~rlkit.lessons.coursework.grading`: runs each submission in a fresh kernel, as the kit's own
  notebook with only the student's ``exercise`` cells put in, collects every check's verdict and
  writes one CSV row per student and exercise plus a total.
- :mod:`~rlkit.lessons.coursework.points`: the points of each graded exercise (1 when not listed).

Command line (``python3 kit.py`` forwards to it)::

    python -m rlkit.lessons.coursework student-edition OUT_DIR [NOTEBOOK ...]
    python -m rlkit.lessons.coursework grade SUBMISSIONS_DIR --out grades.csv [--timeout 600]
    python -m rlkit.lessons.coursework exercises    (the syllabus's table of graded exercises)
"""
