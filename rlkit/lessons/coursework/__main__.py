"""``python -m rlkit.lessons.coursework``: the student edition and grading (``python3 kit.py`` forwards here)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rlkit.lessons.coursework.editions import write_student_edition
from rlkit.lessons.coursework.grading import COLUMNS, DEFAULT_TIMEOUT, exercise_table, grade


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python3 kit.py", description="The student edition of the notebooks, and grading.")
    commands = parser.add_subparsers(dest="command", required=True)
    edition = commands.add_parser("student-edition", help="write the notebooks without their solutions")
    edition.add_argument("out_dir", type=Path)
    edition.add_argument("notebooks", nargs="*", help="notebook numbers (default: all), e.g. 01 05")
    grading = commands.add_parser("grade", help="grade SUBMISSIONS_DIR/<student>/NN_*.ipynb into a CSV")
    grading.add_argument("submissions", type=Path)
    grading.add_argument("--out", type=Path, default=Path("grades.csv"), help="the CSV to write (default grades.csv)")
    grading.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                         help=f"seconds per notebook (default {DEFAULT_TIMEOUT})")
    grading.add_argument("--notebooks", nargs="+", default=None,
                         help="the assigned notebooks' numbers (default: those anyone handed in)")
    commands.add_parser("exercises", help="print the graded exercises as the syllabus's markdown table")
    args = parser.parse_args(argv)
    if args.command == "exercises":
        print(exercise_table())
        return 0
    if args.command == "student-edition":
        written = write_student_edition(args.out_dir, args.notebooks or None)
        for path in written:
            print(path)
        print(f"{len(written)} notebooks without solutions in {args.out_dir}", file=sys.stderr)
        return 0
    if not args.submissions.is_dir():
        print(f"{args.submissions} is not a folder (expected SUBMISSIONS_DIR/<student>/NN_name.ipynb)", file=sys.stderr)
        return 2
    rows = grade(args.submissions, args.out, timeout=args.timeout, numbers=args.notebooks)
    totals = [r for r in rows if r["exercise"] == "total"]
    for row in totals:
        print(f"{row['student']}: {row['points']}/{row['max_points']}")
    print(f"{len(totals)} students graded; {args.out} ({', '.join(COLUMNS)})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
