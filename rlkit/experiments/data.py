"""The papers' published tables, loaded from the CSV files in ``data/`` (no pandas needed).

Each CSV file is one table of a paper (ACKTR: Wu et al., NeurIPS 2017; V-MPO: Song et al.,
ICLR 2020); ``data/README.md`` says where every number comes from and what each column means.

>>> from rlkit.experiments.data import available_tables, load_table, find_row
>>> t = load_table("acktr_table1_atari")
>>> row = find_row(t, domain="Breakout")
>>> row["acktr_reward"], row["acktr_episodes_to_human"]
(735.7, 4094.0)

A table is a ``dict`` from column name to column, in the file's column order. A column whose
non-empty cells are all numbers is a float ``numpy`` array, with empty cells (the papers'
"N/A" or "—") as ``nan``; any other column is a ``list`` of ``str``, empty cells as ``""``.
A column with no value at all (e.g. TRPO's episodes in ACKTR Table 1: all "N/A") is all ``nan``.

Where ``data/`` is: the ``data_dir`` argument if given, else the environment variable
``RLKIT_DATA_DIR`` if set, else the package data ``rlkit/_data`` (an installed wheel carries a
copy of the repository's ``data/`` there, read with ``importlib.resources``), else the ``data/``
folder of the repository this package sits in (an editable install from a checkout).
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Union

import numpy as np

__all__ = ["ENV_VAR", "UnknownTableError", "TableFileError", "data_dir", "available_tables", "load_table", "find_row"]

ENV_VAR = "RLKIT_DATA_DIR"

Column = Union[np.ndarray, list]
Table = dict  # dict[str, Column]


class UnknownTableError(KeyError, ValueError):
    """No table of that name; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0])


class TableFileError(ValueError):
    """A table file that cannot be read as a table: the message names the file, the line and what was expected."""


def _packaged() -> Path | None:
    """``rlkit/_data`` of an installed wheel (see setup.py), or None (an editable install has none)."""
    from importlib.resources import files

    folder = files("rlkit") / "_data"
    return folder if isinstance(folder, Path) and folder.is_dir() else None


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """Return the folder that holds the tables.

    ``path`` wins if given; otherwise ``$RLKIT_DATA_DIR``; otherwise the package data
    ``rlkit/_data`` of an installed wheel; otherwise ``<repo>/data`` next to the ``rlkit``
    package. Raises ``FileNotFoundError`` saying what was tried if the chosen folder does not
    exist (an explicit choice never silently falls back to another folder).
    """
    if path is not None:
        chosen, why = Path(path), "the data_dir argument"
    elif os.environ.get(ENV_VAR):
        chosen, why = Path(os.environ[ENV_VAR]), f"${ENV_VAR}"
    elif (packaged := _packaged()) is not None:
        chosen, why = packaged, "the package data rlkit/_data"
    else:
        chosen, why = Path(__file__).resolve().parents[2] / "data", "the repository default"
    if not chosen.is_dir():
        raise FileNotFoundError(
            f"rlkit data folder not found: {chosen} (from {why}). An installed wheel carries it as "
            f"rlkit/_data, an editable install reads the repository's data/ folder; otherwise "
            f"set {ENV_VAR}=/path/to/rlkit/data or pass data_dir=..."
        )
    return chosen


_locate = data_dir  # so functions whose ``data_dir`` argument shadows the name can call it


def available_tables(data_dir: str | os.PathLike | None = None) -> list[str]:
    """Names of the tables (CSV file names without ``.csv``), sorted."""
    return sorted(p.stem for p in _locate(data_dir).glob("*.csv"))


def _parse_column(cells: list[str]) -> Column:
    """Float array if every non-empty cell is a number (empty -> nan), else the strings."""
    try:
        [float(c) for c in cells if c != ""]
    except ValueError:
        return list(cells)
    return np.array([float(c) if c != "" else math.nan for c in cells], dtype=float)


def load_table(name: str, data_dir: str | os.PathLike | None = None) -> Table:
    """Load table ``name`` (see :func:`available_tables`) as ``{column: values}``.

    Numbers become float arrays (missing -> ``nan``); text columns stay lists of ``str``.
    ``data_dir`` overrides where the CSV files are (see :func:`data_dir`). Raises
    :class:`UnknownTableError` (a ``KeyError``) naming the table and listing the valid names if
    ``name`` is unknown, and :class:`TableFileError` (a ``ValueError``) naming the file and the line
    if the file is not a table (not UTF-8, empty, a header without distinct names, a row with the
    wrong number of cells).
    """
    folder = _locate(data_dir)
    stem = name[:-4] if name.endswith(".csv") else name
    valid = available_tables(folder)
    if stem not in valid:
        raise UnknownTableError(
            f"unknown table {name!r} in {folder}; available tables: {', '.join(valid) or '(none)'}"
        )
    path = folder / f"{stem}.csv"
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = [r for r in csv.reader(f) if r]
    except UnicodeDecodeError as error:
        line = path.read_bytes()[:error.start].count(b"\n") + 1
        raise TableFileError(f"{path}, line {line}: not UTF-8 text (a damaged or binary file)") from None
    except csv.Error as error:  # a NUL byte, ...
        raise TableFileError(f"{path}: not a CSV file ({error})") from None
    except OSError as error:
        raise TableFileError(f"cannot read {path}: {error.strerror or error}") from None
    if not rows:
        raise TableFileError(f"{path} is empty: a table needs a header line and rows")
    header, body = [h.strip() for h in rows[0]], rows[1:]
    bad = [h for h in header if not h] or [h for h in header if header.count(h) > 1]
    if bad:
        raise TableFileError(f"{path}, line 1: the header needs distinct, non-empty column names; got {','.join(rows[0])}")
    for i, r in enumerate(body, start=2):
        if len(r) != len(header):
            raise TableFileError(f"{path}: line {i} has {len(r)} cells, the header has {len(header)}")
    return {col: _parse_column([r[j].strip() for r in body]) for j, col in enumerate(header)}


def find_row(table: Table, **match) -> dict:
    """The one row of ``table`` whose columns equal ``match``, as ``{column: value}``.

    Numbers come back as ``float``, text as ``str``. Raises ``LookupError`` if no row or more
    than one row matches, e.g. ``find_row(t, setting="eps_eta", task="multi_task")``.
    """
    unknown = [k for k in match if k not in table]
    if unknown:
        raise KeyError(f"no column {unknown}; columns: {', '.join(table)}")
    n = len(next(iter(table.values())))
    hits = [i for i in range(n) if all(table[k][i] == v for k, v in match.items())]
    if len(hits) != 1:
        raise LookupError(f"{len(hits)} rows match {match}, expected exactly 1")
    i = hits[0]
    return {k: (float(col[i]) if isinstance(col, np.ndarray) else col[i]) for k, col in table.items()}
