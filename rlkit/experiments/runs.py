"""Run directories: the resolved config, the CSV logs, checkpoints, and the state that makes resume exact.

A run directory (``python -m rlkit train``, ``rlkit.experiments.train.train``) holds ``config.json``
(the resolved config; ``"rlkit_run"``: its format version), ``episodes.csv`` (one row per completed
episode), ``updates.csv`` (one row per update: the agent's diagnostics under its own names) and
``checkpoints/update-NNNNNN.pt`` (the newest ``keep_checkpoints`` of them).

Conventions:

* every file that must never be seen half-written goes through :func:`atomic_write` (a temporary
  file, fsync, ``os.replace``): a run killed at any instant leaves each checkpoint complete or absent;
* the CSVs are appended row by row; a checkpoint records their row counts and resuming truncates
  them back, so no row is duplicated or lost;
* the columns that measure time (:func:`is_timing_column`: ``wall_time_s``, ``time_*``) are the
  only ones that differ between two identical runs;
* :func:`env_state` / :func:`load_env_state` capture the whole vector env, wrapper by wrapper down to
  the simulators (MuJoCo's ``MjData``; the Atari emulator plus :class:`ALEActionLog`), and refuse
  what they cannot restore exactly (:class:`EnvStateError`);
* checkpoints are pickles: resume and evaluate only run directories you trust;
* one writer per run directory: :class:`RunLock` holds an OS lock (``flock``) on ``.rlkit-lock`` while
  a process trains or resumes it (the file is removed when it lets go); a second writer is refused at once, naming the
  holder's PID; a killed holder's lock dies with it;
* every file read back is validated (:func:`checked_csv_prefix`; a checkpoint records the size and
  SHA-256 of the CSV bytes it counts): an error names the file, the line and what was expected.

The columns, a checkpoint's contents and the env state in detail: docs/plumbing.md,
*rlkit.experiments.runs*.
"""
from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import os
import pickle
import random
import re
import tempfile
from pathlib import Path
from typing import Any, Iterable, Sequence

import gymnasium as gym
import numpy as np
import torch

from rlkit.agents.base import RENAMED_DIAGNOSTICS, Config

RUN_FORMAT = 1  # config.json's "rlkit_run"
CHECKPOINT_FORMAT = 1  # a checkpoint's "rlkit_checkpoint"
CONFIG_FILE = "config.json"
EPISODES_FILE = "episodes.csv"
UPDATES_FILE = "updates.csv"
CHECKPOINT_DIR = "checkpoints"
EPISODE_COLUMNS = ("env_steps", "wall_time_s", "episode_return", "episode_length", "update")
UPDATE_BASE_COLUMNS = ("update", "env_steps", "wall_time_s")
WALL_TIME_COLUMN = "wall_time_s"
TIMING_PREFIX = "time_"  # the agents' diagnostics that measure time (time_update, time_inverse, ...)
_CHECKPOINT_NAME = re.compile(r"^update-(\d+)\.pt$")
LOCK_FILE = ".rlkit-lock"  # the run directory's lock (RunLock): exists while a process holds it, with its PID
STAGING_DIR = ".rlkit-new"  # a new run is built here until its first update has succeeded
ASIDE_DIR = ".rlkit-old"  # --overwrite moves the old run's files here, then deletes them
CORRUPT_SUFFIX = ".corrupt"  # a corrupt checkpoint is renamed update-NNNNNN.pt.corrupt, never deleted
KIT_FILES = (CONFIG_FILE, EPISODES_FILE, UPDATES_FILE, CHECKPOINT_DIR)  # what --overwrite replaces
KIT_HIDDEN = (LOCK_FILE, STAGING_DIR, ASIDE_DIR)  # the kit's own bookkeeping (an "empty" run dir may hold them)
MAX_SEED = 2**32 - 1  # numpy's legacy global seed range, [0, 2**32 - 1]; gymnasium needs >= 0
DISK_FULL = (errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC))


def is_timing_column(name: str) -> bool:
    """Columns that measure time and so differ between identical runs: ``wall_time_s``, ``time_*``."""
    return name == WALL_TIME_COLUMN or name.startswith(TIMING_PREFIX)


class RunError(Exception):
    """A problem with the user's request (bad input, a run directory in the way, a corrupt or
    incompatible checkpoint). The command line prints it as one line and exits with status 2;
    nothing on disk has been changed when it is raised."""


class EnvStateError(RunError):
    """An env whose state cannot be saved or restored exactly."""


class CorruptCheckpointError(RunError):
    """A checkpoint file that cannot be read at all (truncated, bad pickle): resume falls back to an older one."""


class RunLockedError(RunError):
    """The run directory is locked by another process."""


class DiskError(RunError):
    """A file of the run could not be written (disk full, file size limit, permission): the message names it."""


def disk_error(path: str | os.PathLike, error: OSError) -> DiskError:
    """A one-line :class:`DiskError` for ``error`` raised while writing ``path``."""
    if error.errno in DISK_FULL:
        what = "the disk is full" if error.errno == errno.ENOSPC else (
            "the file size limit is reached" if error.errno == errno.EFBIG else "the disk quota is exceeded")
        return DiskError(f"cannot write {path}: {what} ({error.strerror}); nothing was half-written: free space, "
                         "then give the command again (a run with a checkpoint continues with --resume)")
    return DiskError(f"cannot write {path}: {error.strerror or error}")


def check_seed(seed: Any, name: str = "seed") -> None:
    """``RunError`` unless ``seed`` is an integer in [0, MAX_SEED] (what numpy's and gymnasium's seeding accept)."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise RunError(f"{name} must be an integer; got {seed!r}")
    if not 0 <= seed <= MAX_SEED:
        raise RunError(f"{name} must be an integer in [0, {MAX_SEED}] (numpy's and gymnasium's seed range); got {seed}")


def check_writable(path: str | os.PathLike) -> None:
    """``RunError`` unless ``path`` (a directory, maybe not made yet) can be created and written: the
    nearest existing ancestor must be a writable directory."""
    path = Path(path)
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise RunError(f"cannot write {path}: {probe} is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        why = "read-only file system" if _read_only_fs(probe) else "permission denied"
        raise RunError(f"cannot write {path}: {probe} is not writable ({why}); choose another directory")


def _read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & getattr(os, "ST_RDONLY", 1))
    except (OSError, AttributeError):
        return False


# ----------------------------------------------------------------------------- the lock


class RunLock:
    """An exclusive OS lock on ``run_dir/.rlkit-lock`` (``fcntl.flock``), held until :meth:`release`.

    ``acquire`` fails at once with a :class:`RunLockedError` naming the directory and the holder's PID
    (written into the file by the holder). The OS drops the lock when its process dies, however it
    dies, so a killed run never blocks the next one. Where ``fcntl`` does not exist (Windows) there
    is no lock.
    """

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir, self.path, self._fd = Path(run_dir), Path(run_dir) / LOCK_FILE, None

    def acquire(self) -> "RunLock":
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return self
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666 & ~_UMASK)
            except OSError as error:
                raise disk_error(self.path, error) from error
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                holder = _read_pid(fd)
                os.close(fd)
                if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise disk_error(self.path, error) from error
                raise RunLockedError(
                    f"{self.run_dir} is in use by another rlkit process ({f'PID {holder}' if holder else 'PID unknown'}"
                    f", holding {self.path}): one process at a time trains or resumes a run directory; wait for it "
                    "to finish or stop it") from None
            # The holder removes the file when it lets go: a lock taken on a file that is no longer (or no
            # longer this file at) the path protects nothing; take it again on the path's file.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:
            pass  # the PID is only for the message of a second process; the lock is what matters
        self._fd = fd
        return self

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Remove the lock file, then let go of the lock (in this order: see ``acquire``)."""
        if self._fd is not None:
            try:
                self.path.unlink(missing_ok=True)
            except OSError:
                pass
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_pid(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return text if text.isdigit() else ""


# ----------------------------------------------------------------------------- names and paths


def sanitize(name: str) -> str:
    """A file-name-safe form of an env id: ``"ALE/Pong-v5"`` -> ``"ALE-Pong-v5"``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")


def default_run_dir(algorithm: str, env_id: str, seed: int, root: str | os.PathLike = "runs") -> Path:
    """``runs/<algorithm>-<env id, sanitized>-s<seed>``."""
    return Path(root) / f"{algorithm}-{sanitize(env_id)}-s{seed}"


def checkpoint_path(run_dir: str | os.PathLike, update: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"update-{update:06d}.pt"


def list_checkpoints(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """``(update, path)`` of every checkpoint in the run, oldest first (temporary files ignored)."""
    directory = Path(run_dir) / CHECKPOINT_DIR
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), path) for path in directory.iterdir() if (m := _CHECKPOINT_NAME.match(path.name))]
    return sorted(found)


def latest_checkpoint(run_dir: str | os.PathLike) -> Path:
    """The newest checkpoint of a run, or a ``RunError`` saying there is none."""
    found = list_checkpoints(run_dir)
    if not found:
        raise RunError(f"{run_dir} has no checkpoint in {CHECKPOINT_DIR}/ (nothing to resume or evaluate; a run killed "
                       "before its first checkpoint starts again with --overwrite)")
    return found[-1][1]


# ----------------------------------------------------------------------------- atomic files and config.json


def atomic_write(path: str | os.PathLike, write: Any, mode: str = "wb") -> None:
    """Write ``path`` all or nothing: ``write(file)`` fills a temporary sibling, then ``os.replace``."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise disk_error(path, error) from error
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": ""})) as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except OSError as error:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise disk_error(path, error) from error
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it: done once, at import
    os.umask(mask)
    return mask


_UMASK = _umask()


def write_config(run_dir: str | os.PathLike, config: dict) -> None:
    atomic_write(Path(run_dir) / CONFIG_FILE, lambda f: f.write(json.dumps(config, indent=2, sort_keys=False) + "\n"), "w")


def read_config(run_dir: str | os.PathLike) -> dict:
    """config.json of an rlkit run, or a ``RunError`` saying why the directory is not one."""
    path = Path(run_dir) / CONFIG_FILE
    if not Path(run_dir).exists():
        raise RunError(f"run directory {run_dir} does not exist")
    if not Path(run_dir).is_dir():
        raise RunError(f"{run_dir} is not a directory")
    if not path.is_file():
        raise RunError(f"{run_dir} is not an rlkit run directory (no {CONFIG_FILE})")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise RunError(f"{path} is unreadable or not JSON ({error})") from error
    if not isinstance(config, dict) or "rlkit_run" not in config:
        raise RunError(f"{path} is not an rlkit run config (no 'rlkit_run' key)")
    if config["rlkit_run"] != RUN_FORMAT:
        raise RunError(f"{path} has run format {config['rlkit_run']!r}; this rlkit reads format {RUN_FORMAT}")
    for key, kind in _CONFIG_SCHEMA.items():  # what is there must have its type (readers of old runs need few keys)
        if key in config and (not isinstance(config[key], kind) or (kind is int and isinstance(config[key], bool))):
            raise RunError(f"{path} is damaged: {key!r} must be {_KIND_NAMES[kind]}; got {config[key]!r}")
    return current_config_names(config, path)


def require_config_keys(config: dict, run_dir: str | os.PathLike) -> dict:
    """``config`` (from :func:`read_config`) if it has every key resuming or evaluating needs, else a ``RunError``."""
    missing = [key for key in _CONFIG_SCHEMA if key not in config]
    if missing:
        raise RunError(f"{Path(run_dir) / CONFIG_FILE} is damaged: it has no {', '.join(map(repr, missing))} "
                       f"entr{'y' if len(missing) == 1 else 'ies'}")
    return config


_CONFIG_SCHEMA = {"algorithm": str, "env": str, "seed": int, "steps": int, "device": str, "agent": dict}
_KIND_NAMES = {str: "a string", int: "an integer", dict: "a JSON object"}


def current_config_names(config: dict, source: Any = CONFIG_FILE) -> dict:
    """A run config (or a checkpoint's copy of it) with its ``agent`` and ``overrides`` keys under
    today's names: a run written before a hyperparameter was renamed keeps the old name on disk
    (the alias table :attr:`rlkit.agents.base.Config.RENAMED`, e.g. ``lam`` → ``gae_lambda``)."""
    out = dict(config)
    for key in ("agent", "overrides"):
        if isinstance(config.get(key), dict):
            try:
                out[key] = Config.current_names(config[key])
            except ValueError as error:
                raise RunError(f"{source}: {error}") from error
    return out


def looks_like_run(run_dir: str | os.PathLike) -> bool:
    """True when ``run_dir`` has an rlkit config.json (the only kind of directory ``--overwrite`` replaces)."""
    try:
        read_config(run_dir)
        return True
    except RunError:
        return False


# ----------------------------------------------------------------------------- CSV logs


def format_value(value: Any) -> Any:
    """CSV cell: floats as ``repr`` (shortest round-trip, so logs compare exactly), tensors as numbers."""
    if isinstance(value, torch.Tensor):
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        return repr(value)
    return value


class CsvLog:
    """An append-only CSV with a header, flushed after every ``append``.

    ``columns`` may be ``None`` until the first row (updates.csv takes its diagnostics columns from
    the first update). A later row with a new key rewrites the file with the extended header
    (earlier rows get empty cells), atomically. :meth:`digest` is the size and SHA-256 of the bytes
    written so far (a checkpoint records it; resume checks the file against it). A row that cannot
    be written whole (disk full) is cut off again: the file never ends in half a row.
    """

    def __init__(self, path: str | os.PathLike, columns: Sequence[str] | None, rows: int = 0):
        self.path, self.columns, self.rows = Path(path), list(columns) if columns else None, rows
        self._file = None
        self._hash, self.bytes = hashlib.sha256(), 0
        if self.columns is not None and not self.path.exists():
            self._rewrite([])
        elif self.path.exists():
            content = self.path.read_bytes()
            self._hash.update(content)
            self.bytes = len(content)

    def append(self, rows: Iterable[dict]) -> None:
        rows = [{key: format_value(value) for key, value in row.items()} for row in rows]
        if not rows:
            return
        new = [key for row in rows for key in row if self.columns is None or key not in self.columns]
        if self.columns is None or new:
            old = read_csv(self.path)[1] if self.path.exists() else []
            self.columns = (self.columns or []) + list(dict.fromkeys(new))
            self._rewrite(old)
        buffer = io.StringIO(newline="")
        csv.DictWriter(buffer, fieldnames=self.columns, restval="").writerows(rows)
        data = buffer.getvalue().encode("utf-8")
        file = self._open()
        try:
            file.write(data)
            file.flush()
        except OSError as error:
            self._cut_back()
            raise disk_error(self.path, error) from error
        self._hash.update(data)
        self.bytes += len(data)
        self.rows += len(rows)

    def digest(self) -> dict:
        """``{"bytes": size, "sha256": hex}`` of everything written to the file so far."""
        return {"bytes": self.bytes, "sha256": self._hash.hexdigest()}

    def sync(self) -> None:
        """fsync, so that a checkpoint never counts rows that are not on disk."""
        if self._file is not None:
            try:
                self._file.flush()
                os.fsync(self._file.fileno())
            except OSError as error:
                self._cut_back()
                raise disk_error(self.path, error) from error

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass  # a failed flush was already reported by append
            self._file = None

    def _cut_back(self) -> None:
        """After a failed write: drop the buffered bytes, truncate the file to its last whole row."""
        file, self._file = self._file, None
        if file is not None:
            try:
                file.close()  # may try the buffered bytes once more: the truncation below cuts them off
            except OSError:
                pass
        try:
            os.truncate(self.path, self.bytes)
        except OSError:
            pass

    def _open(self):
        if self._file is None:
            try:
                self._file = open(self.path, "ab")
            except OSError as error:
                raise disk_error(self.path, error) from error
        return self._file

    def _rewrite(self, rows: list[dict]) -> None:
        self.close()
        buffer = io.StringIO(newline="")
        writer = csv.DictWriter(buffer, fieldnames=self.columns, restval="", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        data = buffer.getvalue().encode("utf-8")
        atomic_write(self.path, lambda f: f.write(data))
        self._hash, self.bytes = hashlib.sha256(data), len(data)


def read_csv(path: str | os.PathLike) -> tuple[list[str], list[dict]]:
    """(header, rows as dicts of strings)."""
    with open(path, encoding="utf-8", newline="") as file:
        reader = csv.DictReader(file)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def read_columns(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every column of a CSV log as a float array (NaN where a cell is empty)."""
    return _float_columns(*read_csv(path))


def _float_columns(header: Sequence[str], rows: list[dict]) -> dict[str, np.ndarray]:
    return {name: np.array([float(row[name]) if row[name] not in ("", None) else np.nan for row in rows])
            for name in header}


def read_updates(run_dir: str | os.PathLike) -> dict[str, np.ndarray]:
    """A run's ``updates.csv`` as ``{column: float array}``, one entry per update, under today's column
    names (:func:`read_update_rows`)."""
    return _float_columns(*read_update_rows(run_dir))


def read_update_rows(run_dir: str | os.PathLike) -> tuple[list[str], list[dict]]:
    """(header, rows as dicts of strings) of a run's ``updates.csv``, under today's column names: a run
    written before a diagnostic was renamed keeps the old name in its file (the table
    :data:`rlkit.agents.base.RENAMED_DIAGNOSTICS`, e.g. ACKTR's ``eta`` → ``step_size``)."""
    header, rows = read_csv(Path(run_dir) / UPDATES_FILE)
    try:
        algorithm = read_config(run_dir)["algorithm"]
    except (RunError, KeyError):  # a bare updates.csv (no rlkit config.json beside it): its names as they are
        return header, rows
    return current_update_columns(algorithm, header, rows)


def current_update_columns(algorithm: str, header: Sequence[str], rows: list[dict]) -> tuple[list[str], list[dict]]:
    """``header`` and ``rows`` of an ``algorithm`` run's updates.csv with old column names renamed, in place."""
    renamed = RENAMED_DIAGNOSTICS.get(algorithm, {})
    if not renamed.keys() & ({*header} | {key for row in rows for key in row}):
        return list(header), rows
    return ([renamed.get(name, name) for name in header],
            [{renamed.get(key, key): value for key, value in row.items()} for row in rows])


def read_episodes(run_dir: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(env steps at which each episode ended, its raw return) from a run's ``episodes.csv``; empty arrays
    before the file exists."""
    path = Path(run_dir) / EPISODES_FILE
    if not path.is_file():
        return np.zeros(0), np.zeros(0)
    columns = read_columns(path)
    return columns["env_steps"], columns["episode_return"]


def truncated_csv(path: str | os.PathLike, rows: int, columns: Sequence[str] | None,
                  digest: dict | None = None, required: Sequence[str] = ()) -> tuple[list[str], list[dict]]:
    """The first ``rows`` rows of a run's CSV, validated (nothing is written): a ``RunError`` naming the file
    and the line if it has fewer rows, a header other than ``columns``, a row of the wrong length, a cell
    that is not a number (empty cells are allowed except in the ``required`` columns), a last counted row
    cut short, or (``digest``: the checkpoint's record, :meth:`CsvLog.digest`) bytes other than those
    written. What follows the counted rows (rows written after the checkpoint, half a row of a killed
    process) is dropped by the caller."""
    path = Path(path)
    recover = ("restore the file from a copy, or resume from an older checkpoint (move the newer ones "
               "away), or start the run again with --overwrite")
    if rows == 0 and not path.exists():
        return list(columns or []), []
    try:
        content = path.read_bytes()
        text = content.decode("utf-8")
    except OSError as error:
        raise RunError(f"cannot read {path}: {error.strerror or error}") from error
    except UnicodeDecodeError as error:
        line = content[:error.start].count(b"\n") + 1
        raise RunError(f"{path}, line {line}: not UTF-8 text (a damaged file); {recover}") from error
    lines = text.splitlines(keepends=True)
    if not lines:
        raise RunError(f"{path} is empty (no header); the checkpoint counts {rows} rows; {recover}")
    header = next(csv.reader([lines[0]]))
    if columns is not None and header != list(columns):
        missing = [c for c in columns if c not in header]
        extra = [c for c in header if c not in columns]
        detail = (f"missing {', '.join(map(repr, missing))}" if missing else "") + \
                 ("; " if missing and extra else "") + (f"unexpected {', '.join(map(repr, extra))}" if extra else "")
        raise RunError(f"{path}, line 1: the header is not the one this run writes ({detail or 'columns reordered'}; "
                       f"expected {','.join(columns)}); {recover}")
    if len(lines) - 1 < rows:
        raise RunError(f"{path} has {len(lines) - 1} rows but the checkpoint recorded {rows}: the run directory "
                       f"is inconsistent with its checkpoint; {recover}")
    data = []
    for number, line in enumerate(lines[1:rows + 1], start=2):
        if not line.endswith("\n"):
            raise RunError(f"{path}, line {number}: the row is cut short (no end of line) although the checkpoint "
                           f"counts it; {recover}")
        cells = next(csv.reader([line]), [])
        if len(cells) != len(header):
            raise RunError(f"{path}, line {number}: {len(cells)} cells, the header has {len(header)} "
                           f"(a row cut short or a junk row); {recover}")
        for name, cell in zip(header, cells):
            if cell == "" and name not in required:
                continue
            try:
                float(cell)
            except ValueError:
                raise RunError(f"{path}, line {number}, column {name}: {cell!r} is not a number; {recover}") from None
        data.append(dict(zip(header, cells)))
    if digest is not None:
        size = int(digest.get("bytes", -1))
        if len(content) < size or hashlib.sha256(content[:size]).hexdigest() != digest.get("sha256"):
            raise RunError(f"{path} is not what the run wrote before its checkpoint (its first {size} bytes have "
                           f"another SHA-256: edited or damaged); {recover}")
    return list(columns) if columns is not None else header, data


def write_csv(path: str | os.PathLike, columns: Sequence[str], rows: list[dict]) -> None:
    def write(file):
        writer = csv.DictWriter(file, fieldnames=list(columns), restval="", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)

    atomic_write(path, write, "w")


# ----------------------------------------------------------------------------- checkpoints


def save_checkpoint(path: str | os.PathLike, checkpoint: dict) -> None:
    """``torch.save`` through :func:`atomic_write`: the file is complete or absent (serialized in memory
    first, so that a full disk is reported as such, not as a torch stream error)."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise disk_error(Path(path).parent, error) from error
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    data = buffer.getbuffer()
    atomic_write(path, lambda f: f.write(data))


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint written by :func:`save_checkpoint`, or a ``RunError`` for a corrupt one.

    Checkpoints hold pickled env state, so they are loaded with ``weights_only=False``: resume and
    evaluate only run directories you trust, as with any pickle.
    """
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as error:  # truncated zip, bad pickle, ...: all mean "corrupt"
        raise CorruptCheckpointError(f"corrupt checkpoint {path}: {type(error).__name__}: {error}".splitlines()[0]) from error
    if not isinstance(checkpoint, dict) or "rlkit_checkpoint" not in checkpoint:
        raise CorruptCheckpointError(f"{path} is not an rlkit checkpoint")
    if checkpoint["rlkit_checkpoint"] != CHECKPOINT_FORMAT:
        raise RunError(f"incompatible checkpoint {path}: format {checkpoint['rlkit_checkpoint']!r}, "
                       f"this rlkit reads format {CHECKPOINT_FORMAT}")
    return checkpoint


def newest_valid_checkpoint(run_dir: str | os.PathLike) -> tuple[Path, dict, list[tuple[Path, str]]]:
    """``(path, checkpoint, corrupt)``: the newest checkpoint of the run that loads, and the newer ones that
    do not (``(path, why)``, newest first). A ``RunError`` if there is none, or none loads."""
    corrupt: list[tuple[Path, str]] = []
    for _, path in reversed(list_checkpoints(run_dir)):
        try:
            return path, load_checkpoint(path), corrupt
        except CorruptCheckpointError as error:
            corrupt.append((path, str(error)))
    if not corrupt:
        latest_checkpoint(run_dir)  # raises "has no checkpoint"
    raise CorruptCheckpointError(f"{corrupt[0][1]}; and no older checkpoint of {run_dir} is readable "
                                 "(nothing to resume from: start again with --overwrite)")


def set_aside(path: str | os.PathLike) -> Path:
    """Rename a corrupt file to ``NAME.corrupt`` (``NAME.corrupt.1``, ... if taken); never deletes it."""
    path = Path(path)
    target, n = path.with_name(path.name + CORRUPT_SUFFIX), 0
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}{CORRUPT_SUFFIX}.{n}")
    os.replace(path, target)
    return target


def prune_checkpoints(run_dir: str | os.PathLike, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints (``keep <= 0`` keeps all)."""
    if keep > 0:
        for _, path in list_checkpoints(run_dir)[:-keep]:
            path.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- global RNGs


def rng_state() -> dict:
    """The global RNGs: ``random``, ``numpy.random`` (legacy global), ``torch`` (CPU) and CUDA."""
    state = {"random": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def load_rng_state(state: dict) -> None:
    random.setstate(state["random"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------- env state

# Attributes that are not state: links between layers, spaces (their RNGs are saved separately),
# registry spec and constructor arguments, metadata, simulator handles (saved by their own
# mechanism below) and render caches.
_NOT_STATE = frozenset({
    "env", "envs", "env_fns", "_saved_kwargs", "_ezpickle_args", "_ezpickle_kwargs", "spec", "_cached_spec",
    "metadata", "_metadata", "action_space", "observation_space", "_action_space", "_observation_space",
    "single_action_space", "single_observation_space", "_single_action_space", "_single_observation_space",
    "model", "data", "ale", "mujoco_renderer", "screen", "clock", "render_mode", "fullpath",
})
_SPACES = ("action_space", "observation_space", "_action_space", "_observation_space",
           "single_action_space", "single_observation_space")


def env_layers(envs: gym.vector.VectorEnv) -> list[Any]:
    """Every object whose state makes up ``envs``: vector wrappers, the vector env, then for each
    sub-env its wrappers down to the base env, outermost first."""
    layers = []
    while isinstance(envs, gym.vector.VectorWrapper):
        layers.append(envs)
        envs = envs.env
    layers.append(envs)
    if not isinstance(envs, gym.vector.SyncVectorEnv):
        raise EnvStateError(f"cannot checkpoint a {type(envs).__name__}: only SyncVectorEnv (rlkit.envs.make_vec_env)")
    for env in envs.envs:
        while isinstance(env, gym.Wrapper):
            layers.append(env)
            env = env.env
        layers.append(env)
    return layers


def _layer_state(layer: Any) -> bytes:
    state = {}
    for name, value in vars(layer).items():
        if name in _NOT_STATE or callable(value) or isinstance(value, (gym.Env, gym.vector.VectorEnv)):
            continue  # configuration, or a link to another env (ClipAction's helper wrapper)
        try:
            state[name] = pickle.dumps(value)
        except Exception as error:
            raise EnvStateError(f"cannot checkpoint attribute {name!r} of {type(layer).__name__}: "
                                f"{type(error).__name__}: {error}") from error
    spaces = {name: getattr(vars(layer).get(name), "_np_random", None) for name in _SPACES if vars(layer).get(name) is not None}
    state["__spaces_rng__"] = pickle.dumps({name: rng for name, rng in spaces.items() if rng is not None})
    simulator = _simulator_state(layer)
    if simulator is not None:
        state["__simulator__"] = simulator
    return pickle.dumps(state)


def _simulator_state(layer: Any) -> bytes | None:
    layer_vars = vars(layer)
    if "ale" in layer_vars:  # ale_py.env.AtariEnv
        ale = layer_vars["ale"]
        if not isinstance(ale, ALEActionLog) or ale.start is None:
            raise EnvStateError("cannot checkpoint an Atari env exactly without its action log: call "
                                "rlkit.experiments.runs.install_ale_action_logs(envs) right after make_vec_env, before any reset")
        strengths = None if all(s == 1.0 for s in ale.strengths) else np.array(ale.strengths, dtype=np.float64)
        return pickle.dumps(("ale", ale.cloneState(include_rng=True), ale.start, np.array(ale.actions, dtype=np.int16),
                             strengths))
    if "data" in layer_vars and "model" in layer_vars and type(layer_vars["data"]).__name__ == "MjData":
        return pickle.dumps(("mujoco", layer_vars["data"]))
    return None


def _load_simulator_state(layer: Any, blob: bytes) -> None:
    kind, *state = pickle.loads(blob)
    if kind == "ale":
        if not isinstance(layer.ale, ALEActionLog):
            raise EnvStateError("cannot restore an Atari env without its action log (install_ale_action_logs)")
        layer.ale.restore(*state)
    elif kind == "mujoco":
        import mujoco

        data, saved = layer.data, state[0]
        for field in ("qpos", "qvel", "act", "ctrl", "xpos", "qacc_warmstart"):
            if np.shape(getattr(saved, field)) != np.shape(getattr(data, field)):
                raise EnvStateError(f"MuJoCo state does not fit this model ({field} has shape "
                                    f"{np.shape(getattr(saved, field))}, the env's is {np.shape(getattr(data, field))})")
        mujoco.mj_copyData(data, layer.model, saved)
    else:
        raise EnvStateError(f"unknown simulator state kind {kind!r}")


class ALEActionLog:
    """A stand-in for an ``ale_py.ALEInterface`` that logs every ``act`` since the last ``reset_game``.

    Why: ``ALEInterface.cloneState(include_rng=True)`` saves the emulator and the sticky-action RNG
    but not the sticky-action *memory* (the action repeated when the RNG says "repeat": ALE's
    ``m_actions``, set only by ``act`` and reset to NOOP by ``reset_game``). Restoring the state
    alone continues identically only when the first frame after it happens to take the new action.
    The log makes it exact: :meth:`restore` resets the game (memory = NOOP), restores the state
    saved right after the last ``reset_game`` (RNG included), replays the logged ``act`` calls --
    the same calls with the same RNG stream, so the same memory -- and checks that it arrived at
    the saved state. Cost: emulating again the frames since the game started (at most ALE v5's
    episode limit of 108,000), once per sub-env per resume.

    Everything else is delegated to the real interface (``install_ale_action_logs`` puts one on
    every Atari sub-env).
    """

    def __init__(self, ale: Any):
        self._ale = ale
        self.start = None  # ALEState right after the last reset_game (RNG included)
        self.actions: list[int] = []
        self.strengths: list[float] = []

    def act(self, action, strength=1.0, *args):
        self.actions.append(int(getattr(action, "value", action)))
        self.strengths.append(float(strength))
        return self._ale.act(action, strength, *args)

    def reset_game(self):
        result = self._ale.reset_game()
        self.start = self._ale.cloneState(include_rng=True)
        self.actions.clear()
        self.strengths.clear()
        return result

    def restore(self, state, start, actions: np.ndarray, strengths: np.ndarray | None) -> None:
        """Bring the emulator, its RNG and its sticky-action memory to a state saved by ``env_state``."""
        from ale_py import Action

        if strengths is None:  # every act had strength 1 (discrete actions)
            strengths = np.ones(len(actions))
        ale = self._ale
        ale.reset_game()  # sticky-action memory := NOOP, as after the original reset_game
        ale.restoreState(start)
        for action, strength in zip(actions.tolist(), strengths.tolist()):
            ale.act(Action(action), strength)
        if not ale.cloneState(include_rng=True).equals(state):
            raise EnvStateError("Atari state replay did not reach the checkpoint's emulator state")
        self.start, self.actions, self.strengths = start, actions.tolist(), strengths.tolist()

    def __getattr__(self, name):
        return getattr(self._ale, name)


def install_ale_action_logs(envs: gym.vector.VectorEnv) -> None:
    """Put an :class:`ALEActionLog` on every Atari sub-env of ``envs`` (before its first reset)."""
    for env in envs.unwrapped.envs:
        base = env.unwrapped
        if "ale" in vars(base) and not isinstance(base.ale, ALEActionLog):
            base.ale = ALEActionLog(base.ale)


def env_state(envs: gym.vector.VectorEnv) -> dict:
    """Everything needed to continue ``envs`` exactly (docs/plumbing.md, *rlkit.experiments.runs*)."""
    layers = env_layers(envs)
    return {"layers": [type(layer).__qualname__ for layer in layers], "state": [_layer_state(layer) for layer in layers]}


def load_env_state(envs: gym.vector.VectorEnv, saved: dict) -> None:
    """Restore :func:`env_state` into an env built the same way; ``EnvStateError`` if it is not."""
    layers = env_layers(envs)
    names = [type(layer).__qualname__ for layer in layers]
    if names != saved.get("layers"):
        raise EnvStateError(f"the checkpoint's env ({_describe(saved.get('layers'))}) is not this env ({_describe(names)})")
    try:
        decoded = [pickle.loads(blob) for blob in saved["state"]]
        for layer, state in zip(layers, decoded):
            for name, blob in state.items():
                if name == "__simulator__":
                    _load_simulator_state(layer, blob)
                elif name == "__spaces_rng__":
                    for space_name, rng in pickle.loads(blob).items():
                        getattr(layer, space_name)._np_random = rng
                else:
                    value, current = pickle.loads(blob), vars(layer).get(name)
                    if isinstance(current, np.random.Generator) and isinstance(value, np.random.Generator):
                        current.bit_generator.state = value.bit_generator.state  # keep shared references valid
                    else:
                        setattr(layer, name, value)
    except EnvStateError:
        raise
    except Exception as error:
        raise EnvStateError(f"cannot restore the env state: {type(error).__name__}: {error}") from error


def _describe(layers: Sequence[str] | None) -> str:
    if not layers:
        return "unknown"
    return " > ".join(dict.fromkeys(layers))
