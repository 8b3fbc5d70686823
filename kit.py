#!/usr/bin/env python3
"""The kit's two set-up commands, with nothing but Python >= 3.10 and pip needed.

    python3 kit.py lab    create .venv if missing, install the pinned kit, start JupyterLab on notebooks/
    python3 kit.py test   the same set-up, then the unit tests and every notebook under nbval
                          (as root on Debian it also apt-get installs chromium, for the browser tests)

Set-up is idempotent: the installed state is recorded in a stamp file inside the virtual
environment holding a hash of pyproject.toml and constraints.txt, so a second run on a set-up
machine installs nothing. Extra arguments after ``test`` go to pytest (e.g. ``-k kfac``).

Coursework (docs/design.md, "Coursework"; the same set-up first, then rlkit.lessons.coursework):

    python3 kit.py student-edition OUT_DIR [NN ...]
        write the notebooks (all, or those numbered) without their solutions into OUT_DIR
    python3 kit.py grade SUBMISSIONS_DIR --out grades.csv [--timeout SECONDS] [--notebooks NN ...]
        run SUBMISSIONS_DIR/<student>/NN_*.ipynb with the kit's checks; one CSV row per student
        and exercise (student, notebook, exercise, points, max_points, passed, message) and a total

The book (the same set-up first): a static site of the committed notebooks, docs and API reference:

    python3 kit.py book [OUT_DIR]       default build/book; open OUT_DIR/index.html

A maintenance command, not part of set-up:

    python3 kit.py execute-notebooks   re-run every notebook in place (commit the outputs)

Standard library only: this file runs before anything is installed.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parent
VENV = REPO / ".venv"
CONSTRAINTS = REPO / "constraints.txt"
STAMP = VENV / "rlkit-install.stamp"
MIN_PYTHON = (3, 10)

# The browser tests (tests/test_browser.py) drive Debian's Chromium; `test` installs it when missing.
CHROMIUM = Path("/usr/bin/chromium")
DEBIAN_VERSION = Path("/etc/debian_version")

# pytest's exit code when it collected no test: a run that tested nothing has not passed.
PYTEST_NO_TESTS_COLLECTED = 5


def venv_executable(name: str) -> Path:
    """Path of an executable inside .venv (bin/ on POSIX, Scripts/ on Windows)."""
    folder = "Scripts" if os.name == "nt" else "bin"
    suffix = ".exe" if os.name == "nt" else ""
    return VENV / folder / f"{name}{suffix}"


def requirements_hash() -> str:
    """Hash of everything that decides what gets installed."""
    digest = hashlib.sha256()
    for path in (REPO / "pyproject.toml", CONSTRAINTS):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def run(command: list[str | Path], cwd: Path = REPO) -> int:
    print("+", " ".join(str(part) for part in command), flush=True)
    return subprocess.call([str(part) for part in command], cwd=cwd)


def ensure_environment() -> Path:
    """Create .venv and install the pinned dependencies plus the kit (editable), once."""
    if sys.version_info < MIN_PYTHON:
        sys.exit(f"rlkit needs Python >= {MIN_PYTHON[0]}.{MIN_PYTHON[1]}; this is {sys.version.split()[0]}")
    python = venv_executable("python")
    if not python.exists():
        print(f"Creating the virtual environment {VENV.relative_to(REPO)}/", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    wanted = requirements_hash()
    if STAMP.exists() and STAMP.read_text().strip() == wanted:
        return python
    # -c pins every package, direct or not, to the versions the committed notebook outputs
    # were made with; torch==2.13.0 there also keeps pip away from the multi-GB CUDA wheels
    # on a CPU machine that has the CPU build at hand.
    code = run([python, "-m", "pip", "install", "--disable-pip-version-check",
                "-c", CONSTRAINTS, "-e", ".[all,test]"])
    if code != 0:
        sys.exit(f"Installing the kit failed (pip exit code {code}); nothing was recorded, run again after fixing.")
    STAMP.write_text(wanted + "\n")
    return python


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def ensure_chromium() -> bool:
    """Install Debian's chromium for the browser tests when it is missing; True when it is there.

    Does nothing when /usr/bin/chromium exists. Installs only as root on Debian (apt-get update, then
    apt-get install -y chromium); elsewhere, or when apt-get fails, prints why and returns False:
    the browser tests then skip with that reason, the other tests run as usual.
    """
    if CHROMIUM.exists():
        return True
    why = None
    if not DEBIAN_VERSION.exists():
        why = "this is not Debian"
    elif not is_root():
        why = "installing it needs root (sudo apt-get install chromium)"
    elif shutil.which("apt-get") is None:
        why = "apt-get is not available"
    if why is None:
        print(f"{CHROMIUM} is missing: installing Debian's chromium for the browser tests", flush=True)
        os.environ.setdefault("DEBIAN_FRONTEND", "noninteractive")  # no questions from apt's packages
        code = run(["apt-get", "update"])
        if code == 0:
            code = run(["apt-get", "install", "-y", "chromium"])
        if code == 0 and CHROMIUM.exists():
            return True
        why = f"apt-get failed (exit code {code})" if code != 0 else f"apt-get did not install {CHROMIUM}"
    print(f"No Chromium at {CHROMIUM} and it was not installed: {why}. "
          "The browser tests (tests/test_browser.py) will be skipped.", file=sys.stderr, flush=True)
    return False


def lab_command(python: Path, port: int | None = None, extra: list[str] | None = None,
                root_dir: Path | None = None) -> list[str]:
    """The command that starts JupyterLab on notebooks/ (tests start the server the same way).

    ``root_dir`` replaces notebooks/ (the browser tests serve copies of the notebooks from a
    temporary folder; Jupyter refuses a second --ServerApp.root_dir in ``extra``).
    """
    root_dir = REPO / "notebooks" if root_dir is None else root_dir
    command = [str(python), "-m", "jupyterlab", f"--ServerApp.root_dir={root_dir}"]
    if port is not None:
        command.append(f"--ServerApp.port={port}")
    if is_root():
        # Jupyter refuses root unless told; root is the norm in containers and CI machines.
        command.append("--allow-root")
    return command + list(extra or [])


def pytest_command(python: Path, extra: list[str]) -> list[str]:
    """Unit tests plus every notebook under nbval (options live in pyproject's pytest section)."""
    return [str(python), "-m", "pytest", "tests", "notebooks", *extra]


# Commands of rlkit.lessons.coursework, run inside the environment.
COURSEWORK_COMMANDS = ("student-edition", "grade")


def coursework_command(python: Path, argv: list[str]) -> list[str]:
    """``student-edition ...`` or ``grade ...`` as a run of the coursework module in .venv."""
    return [str(python), "-m", "rlkit.lessons.coursework", *argv]


def main(argv: list[str]) -> int:
    commands = ("lab", "test", "execute-notebooks", "book") + COURSEWORK_COMMANDS
    if not argv or argv[0] not in commands:
        print(__doc__)
        return 2
    python = ensure_environment()
    if argv[0] in COURSEWORK_COMMANDS:
        # Run from the caller's folder, so that OUT_DIR, SUBMISSIONS_DIR and --out are theirs.
        return run(coursework_command(python, argv), cwd=Path.cwd())
    if argv[0] == "book":  # the static site, from the committed notebooks (not executed)
        out = argv[1] if len(argv) > 1 else str(REPO / "build" / "book")
        return run([python, REPO / "tools" / "book.py", out], cwd=Path.cwd())
    if argv[0] == "lab":
        return run(lab_command(python, extra=argv[1:]))
    if argv[0] == "execute-notebooks":
        notebooks = sorted((REPO / "notebooks").glob("*.ipynb"))
        return run([python, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                    "--inplace", "--ExecutePreprocessor.timeout=600", *argv[1:], *notebooks])
    ensure_chromium()
    code = run(pytest_command(python, argv[1:]))
    if code == PYTEST_NO_TESTS_COLLECTED:
        print("pytest collected no tests: that is a failure, not a pass.", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
