"""Build hook: the wheel carries the repository's data/ as the package data ``rlkit/_data``.

``data/`` stays the single source (nothing is copied in the source tree): when setuptools builds
the package (``pip wheel .``, ``python -m build``, ``pip install .``), the files the library and
the notebooks read at run time are copied from ``data/`` into ``<build>/rlkit/_data``.
``rlkit.experiments.data.data_dir`` finds them there with ``importlib.resources``. An editable
install copies nothing and reads ``data/`` of the checkout. Everything else is in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
DATA = ROOT / "data"

# What is read at run time (the rest of data/, e.g. the Pong run directories behind
# data/benchmarks/*.txt, stays in the repository). Keep in step with package-data in pyproject.toml.
PATTERNS = [
    "*.csv", "*.md",
    "sweeps/*.csv", "sweeps/*.json", "sweeps/*.md",
    "reproductions/*.md", "reproductions/*/*",
    "benchmarks/*.csv", "benchmarks/*.txt", "benchmarks/*.md",
]


def data_files() -> list[Path]:
    """The files of data/ that go into the package, relative to data/."""
    found = {p.relative_to(DATA) for pattern in PATTERNS for p in DATA.glob(pattern) if p.is_file()}
    return sorted(found)


class build_py_with_data(build_py):
    """build_py, then data/ → <build_lib>/rlkit/_data (not for editable installs: they read data/)."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        if not DATA.is_dir():
            raise SystemExit(f"setup.py: {DATA} not found: the package data are built from the repository's data/")
        target = Path(self.build_lib) / "rlkit" / "_data"
        for rel in data_files():
            dest = target / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(DATA / rel, dest)

    def get_outputs(self, include_bytecode=True):
        outputs = list(super().get_outputs(include_bytecode))
        if not getattr(self, "editable_mode", False):
            target = Path(self.build_lib) / "rlkit" / "_data"
            outputs += [str(target / rel) for rel in data_files()]
        return outputs


setup(cmdclass={"build_py": build_py_with_data})
