"""Grids of training runs: declared once, run here (a process pool) or on a Ray cluster, resumable.

A grid is a list of :class:`GridRun` (algorithm, env, seed, steps, hyperparameter overrides) and a
root directory; each run trains into its own ordinary run directory ``ROOT/<run.name>``, so every
tool that reads a run (``plot``, ``evaluate``, ``--resume``) reads a grid's runs too.

Conventions:

* running a grid again continues it, whatever stopped it: a finished run is not redone, a
  half-finished one resumes exactly from its latest checkpoint, an absent one trains from the start;
* a run that fails is reported with its error and the others go on; a run directory whose
  config.json does not match the grid's declaration is never touched;
* backends: ``local`` (a ``ProcessPoolExecutor`` of ``workers`` spawned processes, one torch thread
  each; ``workers=1`` runs in this process) and ``ray`` (one Ray task per run; ``ROOT`` on a file
  system every node sees; ``pip install 'rlkit-natgrad[ray]'``); a dead worker's runs are retried
  up to ``retries`` times.

Both backends in detail: docs/plumbing.md, *rlkit.experiments.grid*.
"""
from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import signal
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from rlkit.experiments.runs import (
    CONFIG_FILE,
    UPDATES_FILE,
    RunError,
    atomic_write,
    list_checkpoints,
    read_config,
    read_csv,
)

__all__ = ["GridRun", "RunOutcome", "KillWorker", "run_grid", "run_one", "run_status", "GRID_FILE", "BACKENDS"]

GRID_FILE = "grid.json"  # ROOT/grid.json: what the grid is (experiment, scale, command, runs)
BACKENDS = ("local", "ray")
CHECKPOINT_EVERY_STEPS = 50_000  # a grid run checkpoints about this often (env steps), and after its last update


@dataclass(frozen=True)
class GridRun:
    """One run of a grid: what ``python -m rlkit train`` would be given, and where it goes.

    ``overrides`` are agent hyperparameters by their Config names, as ``((name, value), ...)``
    (a tuple, so that a run is hashable and its order fixed); ``name`` is the run directory
    relative to the grid's root.
    """

    algorithm: str
    env: str
    seed: int
    steps: int
    name: str
    overrides: tuple[tuple[str, Any], ...] = ()
    preset: str | None = None

    @property
    def hyperparameters(self) -> dict[str, Any]:
        return dict(self.overrides)

    def run_dir(self, root: str | os.PathLike) -> Path:
        return Path(root) / self.name

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "overrides": self.hyperparameters}

    @classmethod
    def from_dict(cls, entry: dict) -> "GridRun":
        return cls(**{**entry, "overrides": tuple(entry.get("overrides", {}).items())})


@dataclass
class RunOutcome:
    """What happened to one run: ``action`` is ``trained``, ``resumed``, ``skipped`` (already finished) or ``failed``."""

    run: GridRun
    action: str
    seconds: float = 0.0
    env_steps: int = 0
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.action == "failed"


@dataclass(frozen=True)
class KillWorker:
    """Fault injection for tests of a grid's resilience: the worker training ``run_name`` kills itself
    (SIGKILL, as an out-of-memory killer or a lost node would) after ``after_updates`` updates, once:
    the file ``marker`` records that it happened, so the retry runs through."""

    run_name: str
    after_updates: int
    marker: str

    def callback(self, run: GridRun) -> Callable | None:
        if run.name != self.run_name or Path(self.marker).exists():
            return None

        def kill(info) -> None:
            if info.update >= self.after_updates and info.checkpointed:
                Path(self.marker).write_text(f"killed after update {info.update}\n")
                os.kill(os.getpid(), signal.SIGKILL)

        return kill


# ----------------------------------------------------------------------------- one run (in a worker)


def run_status(run: GridRun, root: str | os.PathLike) -> tuple[str, int]:
    """``("absent" | "partial" | "finished", env steps of its latest checkpoint)`` of ``run`` under ``root``.

    Finished means the latest checkpoint is the run's last update and is at ``run.steps`` or beyond
    (the training loop checkpoints after its last update, so a run killed after that is finished).
    """
    run_dir = run.run_dir(root)
    if not (run_dir / CONFIG_FILE).is_file():
        return "absent", 0
    checkpoints = list_checkpoints(run_dir)
    if not checkpoints:
        return "absent", 0  # killed between config.json and the update-0 checkpoint: nothing to keep
    latest_update = checkpoints[-1][0]
    env_steps = 0
    if (run_dir / UPDATES_FILE).is_file():
        rows = read_csv(run_dir / UPDATES_FILE)[1]
        at_checkpoint = [row for row in rows if int(row["update"]) == latest_update]
        env_steps = int(at_checkpoint[-1]["env_steps"]) if at_checkpoint else 0
    return ("finished" if env_steps >= run.steps else "partial"), env_steps


def _check_matches(run: GridRun, run_dir: Path) -> None:
    """Refuse a run directory made by another declaration (never overwrite somebody's run)."""
    config = read_config(run_dir)
    mine = {"algorithm": run.algorithm, "env": run.env, "seed": run.seed}
    differ = [f"{key} {config.get(key)!r} (grid: {value!r})" for key, value in mine.items() if config.get(key) != value]
    theirs = config.get("agent", {})
    wanted = json.loads(json.dumps(dataclasses.asdict(_resolved_config(run))))  # every hyperparameter, not only the overrides
    differ += [f"{name} {theirs.get(name)!r} (grid: {value!r})" for name, value in wanted.items()
               if name in theirs and not _same(theirs.get(name), value)]
    if run.preset is not None and config.get("preset") != run.preset:
        differ.append(f"preset {config.get('preset')!r} (grid: {run.preset!r})")
    if differ:
        raise RunError(f"{run_dir} holds another run than the grid declares: {', '.join(differ)}; "
                       "move it away or choose another --out")


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return abs(float(a) - float(b)) <= 1e-12 * max(1.0, abs(float(b)))
        except (TypeError, ValueError):
            return False
    return a == b


def _resolved_config(run: GridRun):
    """The agent Config the run trains with (its preset, default: the env family's, and its overrides)."""
    from rlkit.experiments.train import resolve_run_config

    return resolve_run_config(run.algorithm, run.env, run.hyperparameters, run.preset)[0]


def _checkpoint_every(run: GridRun) -> int:
    """Updates between checkpoints: about every ``CHECKPOINT_EVERY_STEPS`` env steps."""
    config = _resolved_config(run)
    batch = config.num_envs * config.num_steps
    return max(1, CHECKPOINT_EVERY_STEPS // batch)


def run_one(run: GridRun, root: str, command: str | None = None, fault: KillWorker | None = None) -> RunOutcome:
    """Bring ``run`` to its ``steps``: skip it if finished, resume it if half-finished, else train it.

    Never raises for a failure of the run itself: the outcome says ``failed`` with the error, so that
    one bad run does not take a grid down (a worker's death is the backend's business: retries).
    """
    import torch

    from rlkit.experiments.train import resume, train

    torch.set_num_threads(1)
    start = time.perf_counter()
    run_dir = run.run_dir(root)
    callback = fault.callback(run) if fault is not None else None
    try:
        status, env_steps = run_status(run, root)
        if status != "absent" or (run_dir / CONFIG_FILE).is_file():
            _check_matches(run, run_dir)
        if status == "finished":
            return RunOutcome(run, "skipped", 0.0, env_steps)
        if status == "partial":
            result = resume(run_dir, steps=run.steps, progress=False, callback=callback)
            action = "resumed"
        else:
            train(run.algorithm, run.env, steps=run.steps, seed=run.seed, overrides=run.hyperparameters,
                  preset=run.preset, run_dir=run_dir, checkpoint_every=_checkpoint_every(run), keep_checkpoints=1,
                  overwrite=run_dir.exists(), progress=False, callback=callback, command=command)
            action = "trained"
            result = None
        env_steps = run_status(run, root)[1] if result is None else result.env_steps
        return RunOutcome(run, action, time.perf_counter() - start, env_steps)
    except Exception as error:  # noqa: BLE001 - reported in the outcome, the grid goes on
        detail = str(error) if isinstance(error, RunError) else "".join(
            traceback.format_exception_only(type(error), error)).strip()
        return RunOutcome(run, "failed", time.perf_counter() - start, 0, detail)


# ----------------------------------------------------------------------------- the grid


def write_grid_file(root: Path, runs: Sequence[GridRun], about: dict) -> None:
    """``ROOT/grid.json``: the declaration (what ``report`` reads); rewritten only when it changed."""
    content = json.dumps({**about, "runs": [run.to_dict() for run in runs]}, indent=1, sort_keys=True) + "\n"
    path = root / GRID_FILE
    if not path.is_file() or path.read_text(encoding="utf-8") != content:
        atomic_write(path, lambda file: file.write(content), mode="w")


def read_grid_file(root: str | os.PathLike) -> tuple[dict, list[GridRun]]:
    path = Path(root) / GRID_FILE
    if not path.is_file():
        raise RunError(f"{root} is not a grid directory (no {GRID_FILE}; made by python -m rlkit reproduce or sweep)")
    try:
        about = json.loads(path.read_text(encoding="utf-8"))
        runs = [GridRun.from_dict(entry) for entry in about.pop("runs")]
    except (ValueError, KeyError, TypeError) as error:
        raise RunError(f"{path} is not a valid grid file: {error}") from None
    return about, runs


def run_grid(
    runs: Sequence[GridRun],
    root: str | os.PathLike,
    *,
    backend: str = "local",
    workers: int = 1,
    address: str | None = None,
    retries: int = 2,
    progress: bool = True,
    about: dict | None = None,
    command: str | None = None,
    fault: KillWorker | None = None,
    on_outcome: Callable[[RunOutcome], None] | None = None,
) -> list[RunOutcome]:
    """Bring every run of the grid to its steps under ``root``; return one outcome per run (grid order).

    Args:
        runs: the grid (names must be distinct).
        root: the grid's directory; each run trains into ``root/run.name``; ``root/grid.json`` records
            the declaration and ``about`` (experiment, scale, command) for ``report``.
        backend: ``"local"`` (process pool) or ``"ray"`` (see the module docstring).
        workers: local processes (1: in this process); ignored by ``ray`` (the cluster's CPUs decide).
        address: the Ray cluster (``None``: start a local one; ``"auto"``; ``"ray://host:10001"``).
        retries: how often a run whose worker died is started again (it resumes from its checkpoint).
        progress: a tqdm bar over the grid.
        fault: a :class:`KillWorker` (tests only).
        on_outcome: called in this process with each outcome as it arrives.
    """
    if backend not in BACKENDS:
        raise RunError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    if not isinstance(workers, int) or workers < 1:
        raise RunError(f"workers must be an integer >= 1 (valid range [1, inf)); got {workers!r}")
    if not isinstance(retries, int) or retries < 0:
        raise RunError(f"retries must be an integer >= 0; got {retries!r}")
    names = [run.name for run in runs]
    if len(set(names)) != len(names):
        raise RunError("a grid's run names must be distinct; repeated: "
                       + ", ".join(sorted({n for n in names if names.count(n) > 1})))
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    write_grid_file(root, runs, {**(about or {}), "command": command})

    from tqdm.auto import tqdm

    outcomes: dict[str, RunOutcome] = {}
    bar = tqdm(total=len(runs), unit="run", desc=f"grid {root.name}", disable=not progress, dynamic_ncols=True)

    def record(outcome: RunOutcome) -> None:
        outcomes[outcome.run.name] = outcome
        bar.update(1)
        failed = sum(o.failed for o in outcomes.values())
        bar.set_postfix_str(f"{outcome.action} {outcome.run.name}" + (f", {failed} failed" if failed else ""))
        if on_outcome is not None:
            on_outcome(outcome)

    try:
        if backend == "ray":
            _run_ray(runs, str(root), address, retries, command, fault, record)
        elif workers == 1:
            for run in runs:
                record(run_one(run, str(root), command, fault))
        else:
            _run_pool(runs, str(root), workers, retries, command, fault, record)
    finally:
        bar.close()
    return [outcomes[run.name] for run in runs]


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it stops the grid, workers die with it
    _die_with_parent()


def _die_with_parent() -> None:
    """Linux: the kernel sends this worker SIGTERM when the grid's process dies, however it dies (a worker
    left behind would go on training and writing a run directory that a new grid then resumes)."""
    if not os.uname().sysname == "Linux":
        return
    import ctypes

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except OSError:
        pass


def _run_pool(runs, root: str, workers: int, retries: int, command, fault, record) -> None:
    pending = list(runs)
    deaths: dict[str, int] = {}
    context = multiprocessing.get_context("spawn")
    while pending:
        with ProcessPoolExecutor(min(workers, len(pending)), mp_context=context, initializer=_init_worker) as pool:
            futures = {pool.submit(run_one, run, root, command, fault): run for run in pending}
            pending = []
            try:
                for future in as_completed(futures):
                    run = futures[future]
                    try:
                        record(future.result())
                    except BrokenProcessPool:
                        # A worker died (killed, out of memory): every run the pool held is in limbo. Those that
                        # died fewer than `retries` times go to a fresh pool and resume from their checkpoint.
                        deaths[run.name] = deaths.get(run.name, 0) + 1
                        if deaths[run.name] > retries:
                            record(RunOutcome(run, "failed", 0.0, run_status(run, root)[1],
                                              f"its worker pool broke {deaths[run.name]} times, a worker process "
                                              f"died (retries={retries})"))
                        else:
                            pending.append(run)
            except KeyboardInterrupt:
                _stop(pool)
                raise


def _stop(pool: ProcessPoolExecutor) -> None:
    """Ctrl-C: terminate the workers at once instead of letting them finish their runs (nothing is lost:
    a run resumes from its latest checkpoint when the grid is run again)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # the executor has no public kill
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout=10)
        if process.is_alive():
            process.kill()


def _run_ray(runs, root: str, address, retries: int, command, fault, record) -> None:
    try:
        import ray
    except ImportError:
        raise RunError("--backend ray needs Ray: pip install 'rlkit-natgrad[ray]' (or pip install ray)") from None
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    try:
        remote = ray.remote(num_cpus=1, max_retries=retries)(run_one)
        futures = {remote.remote(run, root, command, fault): run for run in runs}
        waiting = list(futures)
        while waiting:
            done, waiting = ray.wait(waiting, num_returns=1)
            for ref in done:
                run = futures[ref]
                try:
                    record(ray.get(ref))
                except Exception as error:  # noqa: BLE001 - the worker died more than `retries` times
                    record(RunOutcome(run, "failed", 0.0, run_status(run, root)[1],
                                      f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"))
    finally:
        if started_here:
            ray.shutdown()


def summarize_outcomes(outcomes: Iterable[RunOutcome]) -> str:
    """One line: how many runs were trained, resumed, skipped, failed."""
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.action] = counts.get(outcome.action, 0) + 1
    return ", ".join(f"{counts[action]} {action}" for action in ("trained", "resumed", "skipped", "failed")
                     if action in counts) or "no runs"
