"""The training loop behind ``python -m rlkit train``, its exact resume, and ``evaluate``.

``train("acktr", "CartPole-v1", steps=50_000, seed=0)`` trains an agent of ``rlkit.agents`` and
writes a run directory (layout: ``rlkit.experiments.runs``); ``resume(run_dir, steps=...)`` continues
one; ``evaluate(run_dir, episodes=10)`` plays its latest checkpoint. Notebooks call these directly.

Conventions:

* one update at a time: collect ``num_envs × num_steps`` env steps, ``agent.update``, append the
  rollout's episodes and one updates.csv row, checkpoint every ``checkpoint_every`` updates and
  after the last; stop after the first update at which ``env_steps >= steps``;
* ``env_steps`` counts real transitions summed over the sub-envs (NEXT_STEP reset steps excluded);
* determinism (CPU): the same arguments on the same machine write identical CSVs apart from the
  columns that measure time (:func:`rlkit.experiments.runs.is_timing_column`); CUDA runs are not
  promised to be bit-identical;
* exact resume: a resumed run writes the same CSVs and parameters as one never killed; arguments
  that would change the results are refused (``RunError``), only run control may change;
* nothing on disk is written, removed or truncated before every check has passed;
* one process per run directory (:class:`rlkit.experiments.runs.RunLock`); a new run is built in
  ``RUN_DIR/.rlkit-new`` and moved into place only after its first update has succeeded, so that a
  run that fails at once leaves nothing and ``--overwrite`` never loses a good run to a bad one
  (files in the run directory that are not the kit's are kept);
* Ctrl-C (SIGINT) finishes the update under way, checkpoints it and raises :class:`Interrupted`
  (a ``KeyboardInterrupt`` that knows the run directory); a second Ctrl-C stops at once.

The loop, seeding and the resume rules in detail: docs/plumbing.md, *rlkit.experiments.train*.
"""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime
import os
import platform
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np
import torch

import rlkit
from rlkit.envs import (
    EnvSummary,
    HeadlessGLError,
    UnknownEnvError,
    family_of,
    load_obs_norm_state,
    make_vec_env,
    obs_norm_state,
    registered_spec,
    reset_with_seed,
)
from rlkit.rollout import Episode, RolloutCollector
from rlkit.experiments.runs import (
    ASIDE_DIR,
    CHECKPOINT_FORMAT,
    EPISODE_COLUMNS,
    EPISODES_FILE,
    KIT_FILES,
    KIT_HIDDEN,
    LOCK_FILE,
    RUN_FORMAT,
    STAGING_DIR,
    UPDATES_FILE,
    CsvLog,
    RunError,
    RunLock,
    check_seed,
    check_writable,
    disk_error,
    newest_valid_checkpoint,
    require_config_keys,
    set_aside,
    checkpoint_path,
    current_config_names,
    current_update_columns,
    default_run_dir,
    env_state,
    install_ale_action_logs,
    latest_checkpoint,
    load_checkpoint,
    load_env_state,
    load_rng_state,
    looks_like_run,
    prune_checkpoints,
    read_config,
    rng_state,
    save_checkpoint,
    seed_everything,
    truncated_csv,
    write_config,
    write_csv,
)

__all__ = ["train", "resume", "evaluate", "TrainResult", "UpdateInfo", "EvalResult", "Interrupted", "MAX_STEPS",
           "DEFAULT_CHECKPOINT_EVERY", "DEFAULT_KEEP_CHECKPOINTS", "RECENT_EPISODES", "env_family", "resolve_run_config",
           "package_versions"]

DEFAULT_CHECKPOINT_EVERY = 100  # updates
DEFAULT_KEEP_CHECKPOINTS = 3  # the newest checkpoints kept on disk (0: all)
RECENT_EPISODES = 100  # the progress bar's "recent mean return" window
MAX_STEPS = 10**12  # env steps: a thousand times the papers' longest runs
MAX_CHECKPOINT_EVERY = 10**9  # updates


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during training: the update under way was finished and checkpointed (``update``), so the run
    continues exactly with ``resume(run_dir)``; ``run_dir`` is None when nothing was kept (a new run
    stopped before its first update had finished)."""

    def __init__(self, run_dir: Path | None, update: int):
        super().__init__(f"interrupted after update {update}" if run_dir else "interrupted before the first update")
        self.run_dir, self.update = run_dir, update


@dataclass
class UpdateInfo:
    """What ``callback`` receives after each update (its rows are written, its checkpoint saved)."""

    update: int
    env_steps: int
    wall_time_s: float
    diagnostics: dict[str, float]
    episodes: list[Episode]
    checkpointed: bool
    agent: Any


@dataclass
class TrainResult:
    run_dir: Path
    updates: int
    env_steps: int
    wall_time_s: float
    agent: Any
    resumed_from_update: int | None = None
    recent_returns: list[float] = field(default_factory=list)


@dataclass
class EvalResult:
    returns: list[float]
    lengths: list[int]
    update: int
    env_steps: int
    video: Path | None = None

    @property
    def mean(self) -> float:
        return float(np.mean(self.returns))

    @property
    def std(self) -> float:
        return float(np.std(self.returns))


# ----------------------------------------------------------------------------- public entry points


def train(
    algorithm: str,
    env: str,
    *,
    steps: int,
    seed: int = 0,
    overrides: dict | None = None,
    preset: str | None = None,
    device: str = "cpu",
    run_dir: str | os.PathLike | None = None,
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
    keep_checkpoints: int = DEFAULT_KEEP_CHECKPOINTS,
    overwrite: bool = False,
    progress: bool = True,
    callback: Callable[[UpdateInfo], None] | None = None,
    command: str | None = None,
) -> TrainResult:
    """Train ``algorithm`` on ``env`` for ``steps`` env steps into a new run directory.

    ``overrides``: agent hyperparameters by their Config names (``{"delta": 0.001}``; strings are
    converted); ``preset``: one of the agent's presets (default: the env family's). ``run_dir``
    defaults to ``runs/<algorithm>-<env>-s<seed>``; an existing one is refused unless
    ``overwrite`` (which replaces only a directory that is an rlkit run). ``callback`` is called
    after every update with an :class:`UpdateInfo` (notebooks plot live with it).
    """
    _check_positive("steps", steps, MAX_STEPS)
    _check_positive("checkpoint_every", checkpoint_every, MAX_CHECKPOINT_EVERY)
    check_seed(seed)
    _check_int("keep_checkpoints", keep_checkpoints)
    if keep_checkpoints < 0:
        raise RunError(f"keep_checkpoints must be an integer >= 0 (0 keeps all); got {keep_checkpoints}")
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(algorithm, env, seed)
    _check_new_run_dir(run_dir, overwrite)
    agents = _agents()
    cls = _agent_class(agents, algorithm)
    device = _check_device(device)
    config, preset = resolve_run_config(algorithm, env, overrides, preset)
    check_writable(run_dir)

    # Everything is checked: now the disk. The directory is locked first (a second writer fails before
    # building anything); the run is built in RUN_DIR/.rlkit-new and moved into place after its first
    # update (_Session.commit): until then an old run stays as it was, and a failure leaves nothing.
    created = [path for path in (run_dir, *run_dir.parents) if not path.exists()]  # deepest first
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise disk_error(run_dir, error) from error
    lock, session = RunLock(run_dir), None
    try:
        lock.acquire()
        _check_new_run_dir(run_dir, overwrite)  # again, under the lock: another process may have been first
        with _deterministic(device):
            seed_everything(seed)
            session = _Session.build(cls, config, env, seed, device)
            run_config = {
                "rlkit_run": RUN_FORMAT,
                "algorithm": algorithm,
                "env": env,
                "seed": seed,
                "steps": steps,
                "device": str(device),
                "preset": preset,
                "checkpoint_every": checkpoint_every,
                "keep_checkpoints": keep_checkpoints,
                "agent": dataclasses.asdict(config),
                "overrides": {key: getattr(config, key) for key in config.current_names(overrides or {})},
                "env_summary": _summary_dict(session.summary),
                "versions": package_versions(),
                "torch_threads": torch.get_num_threads(),
                "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                "command": command,
            }
            staging = run_dir / STAGING_DIR
            shutil.rmtree(staging, ignore_errors=True)  # left by a process killed before its first update
            session.pending_commit = run_dir
            try:
                staging.mkdir()
            except OSError as error:
                raise disk_error(staging, error) from error
            write_config(staging, run_config)
            session.open_logs(staging, episodes_rows=0, updates_rows=0, updates_columns=None)
            session.run_config = run_config
            session.save_checkpoint()  # update 0: a run killed before its first periodic checkpoint resumes too
            return session.loop(steps, checkpoint_every, keep_checkpoints, progress, callback)
    except BaseException:
        if session is None or session.pending_commit is not None:  # before its first update was done: leave nothing
            if session is not None:
                session.close_logs()
            if lock.held:
                shutil.rmtree(run_dir / STAGING_DIR, ignore_errors=True)
                if created:
                    _remove_empty_run_dir(run_dir, created)
        raise
    finally:
        if session is not None:
            session.close()
        lock.release()


def _remove_empty_run_dir(run_dir: Path, created: list[Path]) -> None:
    """Remove a run directory this process made (and the parents it made), if it holds nothing but the kit's
    bookkeeping."""
    try:
        if all(entry.name in KIT_HIDDEN for entry in run_dir.iterdir()):
            (run_dir / LOCK_FILE).unlink(missing_ok=True)
            for directory in created:
                directory.rmdir()
    except OSError:
        pass


def resume(
    run_dir: str | os.PathLike,
    *,
    steps: int | None = None,
    checkpoint_every: int | None = None,
    keep_checkpoints: int | None = None,
    progress: bool = True,
    callback: Callable[[UpdateInfo], None] | None = None,
    expect: dict | None = None,
) -> TrainResult:
    """Continue the run in ``run_dir`` from its latest checkpoint, exactly.

    ``steps``: the new target (default: the run's). ``expect``: arguments the caller gave
    (``algorithm``, ``env``, ``seed``, ``device``, ``preset``, ``overrides``) that must agree with
    the run's config.json; a difference is refused with a ``RunError`` listing them all.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        read_config(run_dir)  # says why: missing, or not a directory
    with RunLock(run_dir):  # one writer: a second resume (or a train --overwrite) of this directory is refused
        run_config = require_config_keys(read_config(run_dir), run_dir)
        if steps is not None:
            _check_positive("steps", steps, MAX_STEPS)
        if checkpoint_every is not None:
            _check_positive("checkpoint_every", checkpoint_every, MAX_CHECKPOINT_EVERY)
        if keep_checkpoints is not None:
            _check_int("keep_checkpoints", keep_checkpoints)
            if keep_checkpoints < 0:
                raise RunError(f"keep_checkpoints must be an integer >= 0 (0 keeps all); got {keep_checkpoints}")
        steps = run_config["steps"] if steps is None else steps
        checkpoint_every = run_config.get("checkpoint_every", DEFAULT_CHECKPOINT_EVERY) if checkpoint_every is None else checkpoint_every
        keep_checkpoints = run_config.get("keep_checkpoints", DEFAULT_KEEP_CHECKPOINTS) if keep_checkpoints is None else keep_checkpoints
        agents = _agents()
        cls = _agent_class(agents, run_config["algorithm"])
        with _as_run_error(f"{run_dir}/config.json: "):
            config = cls.Config.from_dict(run_config["agent"]).validate()
        _check_expected(run_config, config, cls, expect or {})
        device = _check_device(run_config["device"])
        # The newest checkpoint that loads; newer corrupt ones are set aside (renamed) once every check has passed.
        path, checkpoint, corrupt = newest_valid_checkpoint(run_dir)  # on the CPU: RNG states stay there
        _check_checkpoint_matches(checkpoint, run_config, path)
        digests = checkpoint.get("csv_digest") or {}
        episodes_header, episode_rows = truncated_csv(
            run_dir / EPISODES_FILE, checkpoint["csv_rows"]["episodes"], EPISODE_COLUMNS,
            digest=digests.get("episodes"), required=EPISODE_COLUMNS)
        # A run written before a diagnostic was renamed: its updates.csv header is rewritten under
        # today's names (atomically, below), so that the resumed rows line up with it.
        updates_header, update_rows = current_update_columns(run_config["algorithm"], *truncated_csv(
            run_dir / UPDATES_FILE, checkpoint["csv_rows"]["updates"], checkpoint["updates_columns"],
            digest=digests.get("updates"), required=("update", "env_steps")))
        updates_columns = None if checkpoint["updates_columns"] is None else updates_header

        if run_config.get("torch_threads") not in (None, torch.get_num_threads()):
            print(f"warning: {run_dir} was trained with {run_config['torch_threads']} torch threads, this process has "
                  f"{torch.get_num_threads()}: CPU results may differ in the last bits from an uninterrupted run",
                  file=sys.stderr)
        with _deterministic(device):
            session = _Session.build(cls, config, run_config["env"], run_config["seed"], device)
            try:
                session.restore(checkpoint, path)
                session.run_dir = run_dir
                if session.collector.env_steps >= steps:
                    print(f"{run_dir}: the checkpoint is at {session.collector.env_steps} env steps >= steps={steps}; "
                          "nothing to train (give a larger --steps to continue)", file=sys.stderr)
                    return session.result(resumed_from=checkpoint["update"])
                # Everything is checked: now the disk.
                for bad, why in corrupt:
                    kept = set_aside(bad)
                    print(f"warning: {why}; kept as {kept}", file=sys.stderr)
                if corrupt:
                    print(f"{run_dir}: resuming from {path.name} (update {checkpoint['update']}), the newest readable "
                          "checkpoint", file=sys.stderr)
                write_csv(run_dir / EPISODES_FILE, episodes_header, episode_rows)
                if update_rows or (run_dir / UPDATES_FILE).exists():
                    write_csv(run_dir / UPDATES_FILE, updates_header, update_rows)
                if steps != run_config["steps"] or checkpoint_every != run_config.get("checkpoint_every") \
                        or keep_checkpoints != run_config.get("keep_checkpoints"):
                    # the agent's fields under today's names, fields added since with their defaults
                    run_config = {**run_config, "steps": steps, "checkpoint_every": checkpoint_every,
                                  "keep_checkpoints": keep_checkpoints, "agent": dataclasses.asdict(config)}
                    write_config(run_dir, run_config)
                session.run_config = run_config
                session.open_logs(run_dir, len(episode_rows), len(update_rows), updates_columns)
                return session.loop(steps, checkpoint_every, keep_checkpoints, progress, callback,
                                    resumed_from=checkpoint["update"])
            finally:
                session.close()


def evaluate(
    run_dir: str | os.PathLike,
    episodes: int = 10,
    *,
    seed: int | None = None,
    video: str | os.PathLike | None = None,
) -> EvalResult:
    """Play ``episodes`` episodes of the run's latest checkpoint with ``agent.act_deterministic``.

    The evaluation env is ``make_vec_env(env, 1, training=False)``: whole Atari games with raw
    rewards, observation normalization frozen at the checkpoint's statistics. ``seed`` defaults to
    the run's seed + 1,000,000 (episodes the agent did not train on). ``video``: a ``.gif``
    (imageio/Pillow), ``.mp4`` (mp4v) or ``.avi`` (MJPG; both with OpenCV) of every frame played:
    the reset frame, one per step, and the autoreset step between episodes. Rendering needs pygame
    for classic control (a kit dependency) and an off-screen OpenGL (``MUJOCO_GL=egl`` or
    ``osmesa``) for MuJoCo; Atari renders without either.
    """
    _check_positive("episodes", episodes, 10**9)
    if seed is not None:
        check_seed(seed)
    run_dir = Path(run_dir)
    run_config = require_config_keys(read_config(run_dir), run_dir)
    agents = _agents()
    cls = _agent_class(agents, run_config["algorithm"])
    with _as_run_error(f"{run_dir}/config.json: "):
        config = cls.Config.from_dict(run_config["agent"]).validate()
    device = _check_device(run_config["device"])
    path = latest_checkpoint(run_dir)
    try:
        checkpoint = load_checkpoint(path)  # on the CPU: RNG states must stay there; the agent moves its tensors
    except RunError as error:
        raise RunError(f"{error} (evaluate plays the latest checkpoint; train --resume {run_dir} sets a corrupt one "
                       "aside and continues from the newest readable one)") from error
    _check_checkpoint_matches(checkpoint, run_config, path)
    seed = run_config["seed"] + 1_000_000 if seed is None else seed
    video = Path(video) if video is not None else None
    writer_format = _video_format(video) if video is not None else None
    if video is not None:
        check_writable(video.parent)

    with _as_run_error():
        try:
            envs = make_vec_env(run_config["env"], 1, training=False, **({"render_mode": "rgb_array"} if video else {}))
        except HeadlessGLError as error:  # no off-screen OpenGL for the video: say what to install, in one line
            raise RunError(f"--video: {error}") from error
    try:
        summary = EnvSummary.of(envs)
        with _as_run_error(f"incompatible checkpoint {path}: "):
            agent = cls(summary, config, seed=run_config["seed"], device=device)
            agent.load_state_dict(checkpoint["agent"])
            load_obs_norm_state(envs, checkpoint["obs_norm"])
        obs, _ = reset_with_seed(envs, seed)
        frames = [_render(envs, run_config["env"])] if video else None
        returns, lengths = [], []
        while len(returns) < episodes:
            with torch.no_grad():
                tensor = torch.as_tensor(obs, device=device)
                actions = agent.act_deterministic(tensor.float() if tensor.is_floating_point() else tensor)
            obs, _, _, _, info = envs.step(actions.cpu().numpy())
            if video:
                frames.append(_render(envs, run_config["env"]))
            if "_episode" in info and info["_episode"][0]:
                returns.append(float(info["episode"]["r"][0]))
                lengths.append(int(info["episode"]["l"][0]))
        if video:
            _write_video(video, frames, writer_format, envs.metadata.get("render_fps") or 30)
    finally:
        envs.close()
    return EvalResult(returns, lengths, checkpoint["update"], checkpoint["env_steps"], video)


# ----------------------------------------------------------------------------- the session: envs, agent, logs


class _Session:
    """The objects of one training process and the loop that drives them."""

    def __init__(self, cls, config, env_id: str, seed: int, device: torch.device, envs, summary, agent, collector):
        self.cls, self.config, self.env_id, self.seed, self.device = cls, config, env_id, seed, device
        self.envs, self.summary, self.agent, self.collector = envs, summary, agent, collector
        self.update = 0
        self.wall_offset = 0.0
        self.start_time = time.perf_counter()
        self.recent_returns: collections.deque[float] = collections.deque(maxlen=RECENT_EPISODES)
        self.run_dir: Path | None = None
        self.run_config: dict = {}
        self.episodes_log: CsvLog | None = None
        self.updates_log: CsvLog | None = None
        self.pending_commit: Path | None = None  # the run directory a staged new run moves into after update 1

    @classmethod
    def build(cls_, agent_cls, config, env_id: str, seed: int, device: torch.device) -> "_Session":
        """Envs, agent and collector, in the same order for a new run and a resumed one."""
        with _as_run_error():
            envs = make_vec_env(env_id, config.num_envs)
        try:
            _check_spaces(envs, env_id, agent_cls)
            install_ale_action_logs(envs)
            summary = EnvSummary.of(envs)
            with _as_run_error():
                agent = agent_cls(summary, config, seed=seed, device=device)
            collector = RolloutCollector(envs, config.num_steps, seed=seed, device=device)
        except BaseException:
            envs.close()
            raise
        return cls_(agent_cls, config, env_id, seed, device, envs, summary, agent, collector)

    # ---- resume ---------------------------------------------------------------------------

    def restore(self, checkpoint: dict, path: Path) -> None:
        """Load a checkpoint into the freshly built objects (memory only; a ``RunError`` if it does not fit)."""
        with _as_run_error(f"incompatible checkpoint {path}: ", everything=True):
            self.agent.load_state_dict(checkpoint["agent"])
            load_env_state(self.envs, checkpoint["env"])
            load_obs_norm_state(self.envs, checkpoint["obs_norm"])
            collector = checkpoint["collector"]
            obs = collector["obs"].to(self.device)
            if tuple(obs.shape) != tuple(self.collector.obs.shape) or obs.dtype != self.collector.obs.dtype:
                raise ValueError(f"the saved observation batch has shape {tuple(obs.shape)}, the env's is "
                                 f"{tuple(self.collector.obs.shape)}")
            self.collector.obs = obs
            self.collector.next_valid = np.array(collector["next_valid"], dtype=bool, copy=True)
            self.collector.env_steps = int(collector["env_steps"])
            self.update = int(checkpoint["update"])
            self.wall_offset = float(checkpoint["wall_time_s"])
            self.recent_returns.extend(checkpoint["recent_returns"])
            load_rng_state(checkpoint["rng"])

    # ---- logs and checkpoints ---------------------------------------------------------------

    def open_logs(self, run_dir: Path, episodes_rows: int, updates_rows: int, updates_columns) -> None:
        self.run_dir = run_dir
        self.episodes_log = CsvLog(run_dir / EPISODES_FILE, EPISODE_COLUMNS, rows=episodes_rows)
        self.updates_log = CsvLog(run_dir / UPDATES_FILE, updates_columns, rows=updates_rows)
        self.start_time = time.perf_counter()

    def close_logs(self) -> None:
        for log in (self.episodes_log, self.updates_log):
            if log is not None:
                log.close()

    def commit(self) -> None:
        """Move a staged new run (RUN_DIR/.rlkit-new) into RUN_DIR, after its first update: the old run's
        files (an --overwrite) go aside and are deleted only once the new ones are in place; files that
        are not the kit's stay."""
        run_dir, staging = self.pending_commit, self.run_dir
        self.close_logs()
        aside = run_dir / ASIDE_DIR
        try:
            shutil.rmtree(aside, ignore_errors=True)
            old = [run_dir / name for name in KIT_FILES if (run_dir / name).exists()]
            if old:
                aside.mkdir()
                for entry in old:
                    os.replace(entry, aside / entry.name)
            for entry in list(staging.iterdir()):
                os.replace(entry, run_dir / entry.name)
            staging.rmdir()
        except OSError as error:
            raise disk_error(run_dir, error) from error
        shutil.rmtree(aside, ignore_errors=True)
        self.run_dir, self.pending_commit = run_dir, None
        self.episodes_log.path, self.updates_log.path = run_dir / EPISODES_FILE, run_dir / UPDATES_FILE

    def wall_time(self) -> float:
        return self.wall_offset + (time.perf_counter() - self.start_time)

    def save_checkpoint(self, keep: int = 0) -> None:
        self.episodes_log.sync()
        self.updates_log.sync()
        checkpoint = {
            "rlkit_checkpoint": CHECKPOINT_FORMAT,
            "run": _identity(self.run_config),
            "update": self.update,
            "env_steps": self.collector.env_steps,
            "wall_time_s": self.wall_time(),
            "csv_rows": {"episodes": self.episodes_log.rows, "updates": self.updates_log.rows},
            "csv_digest": {"episodes": self.episodes_log.digest(), "updates": self.updates_log.digest()},
            "updates_columns": self.updates_log.columns,
            "agent": self.agent.state_dict(),
            "env": env_state(self.envs),
            "obs_norm": obs_norm_state(self.envs),
            "collector": {"obs": self.collector.obs.detach().cpu().clone(),
                          "next_valid": self.collector.next_valid.copy(),
                          "env_steps": self.collector.env_steps},
            "rng": rng_state(),
            "recent_returns": list(self.recent_returns),
            "versions": package_versions(),
        }
        save_checkpoint(checkpoint_path(self.run_dir, self.update), checkpoint)
        prune_checkpoints(self.run_dir, keep)

    # ---- the loop ---------------------------------------------------------------------------

    def loop(self, steps: int, checkpoint_every: int, keep: int, progress: bool, callback, resumed_from=None) -> TrainResult:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, initial=min(self.collector.env_steps, steps), unit="step", unit_scale=True,
                   dynamic_ncols=True, disable=not progress,
                   desc=f"{self.cls.name} {self.env_id} s{self.seed}", smoothing=0.1)
        stop = _StopRequest()
        try:
            stop.install()
            while self.collector.env_steps < steps:
                with self.agent.acting():
                    rollout = self.collector.collect(self.agent.policy)
                self.update += 1
                diagnostics = self.agent.update(rollout)
                now = self.wall_time()
                self.episodes_log.append(
                    {"env_steps": e.env_steps, "wall_time_s": now, "episode_return": e.episode_return,
                     "episode_length": e.length, "update": self.update} for e in rollout.episodes)
                self.updates_log.append([{"update": self.update, "env_steps": self.collector.env_steps,
                                          "wall_time_s": now, **diagnostics}])
                self.recent_returns.extend(e.episode_return for e in rollout.episodes)
                done = self.collector.env_steps >= steps
                checkpointed = done or self.update % checkpoint_every == 0
                saved = checkpointed or stop.requested  # Ctrl-C: checkpoint this update, the last finished one
                if saved:
                    self.save_checkpoint(keep)
                if self.pending_commit is not None:
                    self.commit()
                bar.update(min(self.collector.env_steps, steps) - bar.n)
                if self.recent_returns:
                    bar.set_postfix_str(f"return {np.mean(self.recent_returns):.1f} (last {len(self.recent_returns)})",
                                        refresh=False)
                if callback is not None:
                    callback(UpdateInfo(self.update, self.collector.env_steps, now, diagnostics,
                                        list(rollout.episodes), checkpointed, self.agent))
                if stop.requested and not done:
                    if not saved:  # the Ctrl-C came after the checkpoint decision
                        self.save_checkpoint(keep)
                    raise Interrupted(self.run_dir, self.update)
        finally:
            stop.uninstall()
            bar.close()
        return self.result(resumed_from)

    def result(self, resumed_from=None) -> TrainResult:
        return TrainResult(self.run_dir, self.update, self.collector.env_steps, self.wall_time(), self.agent,
                           resumed_from, list(self.recent_returns))

    def close(self) -> None:
        self.close_logs()
        self.envs.close()


class _StopRequest:
    """Ctrl-C as a request: the first SIGINT lets the update under way finish (the loop then checkpoints it
    and raises :class:`Interrupted`), a second one raises ``KeyboardInterrupt`` at once. Installed only in
    the main thread and only over Python's default handler (a grid worker ignores SIGINT: it stays so)."""

    def __init__(self):
        self.requested, self._previous = False, None

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread() \
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\ninterrupt: finishing this update to checkpoint it (Ctrl-C again to stop at once)", file=sys.stderr)

    def uninstall(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


# ----------------------------------------------------------------------------- checks


def _agents():
    import rlkit.agents

    return rlkit.agents


def _agent_class(agents, algorithm: str):
    with _as_run_error():
        return agents.agent_class(algorithm)


@contextlib.contextmanager
def _as_run_error(prefix: str = "", everything: bool = False):
    """Turn the library's input errors (``ValueError``, ``UnknownEnvError``; with ``everything``, any
    ``Exception``: loading a checkpoint that does not fit can fail anywhere) into one-line ``RunError``\\ s."""
    try:
        yield
    except RunError:
        raise
    except Exception as error:
        if not (everything or isinstance(error, (ValueError, UnknownEnvError))):
            raise
        message = (str(error).splitlines() or [""])[0] or type(error).__name__
        raise RunError(prefix + message) from error


def _check_int(name: str, value) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise RunError(f"{name} must be an integer; got {value!r}")


def _check_positive(name: str, value, maximum: int | None = None) -> None:
    _check_int(name, value)
    if value <= 0 or (maximum is not None and value > maximum):
        limit = "inf)" if maximum is None else f"{maximum}]"
        raise RunError(f"{name} must be a positive integer (valid range [1, {limit}); got {value}")


def _check_spaces(envs, env_id: str, agent_cls) -> None:
    """A ``RunError`` naming the supported spaces unless the env's observations fit rlkit's networks."""
    import gymnasium as gym

    space = envs.single_observation_space
    if not isinstance(space, gym.spaces.Box) or len(space.shape) not in (1, 3):
        raise RunError(f"{env_id} has the observation space {space}; {agent_cls.name}'s networks take Box "
                       "observations only: flat vectors (D,) or images (C, H, W)")


def _check_device(device: str | torch.device) -> torch.device:
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise RunError(f"unknown device {device!r}: use cpu or cuda") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RunError(f"device {device} requested but CUDA is not available (torch {torch.__version__})")
    if device.type not in ("cpu", "cuda"):
        raise RunError(f"device {device} is not supported: use cpu or cuda")
    return device


def resolve_run_config(algorithm: str, env: str, overrides: dict | None = None, preset: str | None = None):
    """``(config, preset)`` a run of ``algorithm`` on ``env`` trains with: the agent's defaults, then
    ``preset`` (default: the env family's), then ``overrides``; a ``RunError`` for invalid values."""
    agents = _agents()
    family = env_family(env)
    preset = agents.default_preset(SimpleNamespace(family=family)) if preset is None else preset
    with _as_run_error():
        config = agents.resolve_config(algorithm, overrides or {}, preset=preset,
                                       env_summary=SimpleNamespace(family=family))
    return config, preset


def env_family(env: str) -> str:
    """The preset family of a registered env id: ``"atari"``, ``"mujoco"`` or ``"classic"`` (a ``RunError``
    naming the extra that provides an unknown id)."""
    with _as_run_error():
        return family_of(registered_spec(env))


def _check_new_run_dir(run_dir: Path, overwrite: bool) -> None:
    if run_dir.exists() and not run_dir.is_dir():
        raise RunError(f"run directory {run_dir} exists and is not a directory")
    try:
        if not run_dir.exists() or all(entry.name in KIT_HIDDEN for entry in run_dir.iterdir()):
            return  # absent, empty, or only the bookkeeping of a run killed before its first update
    except OSError as error:
        raise RunError(f"cannot read run directory {run_dir}: {error.strerror or error}") from error
    if not looks_like_run(run_dir):
        raise RunError(f"{run_dir} exists and is not an rlkit run directory (no rlkit config.json): "
                       "refusing to write into it, even with --overwrite; choose another --run-dir")
    if not overwrite:
        raise RunError(f"run directory {run_dir} already exists: continue it with --resume {run_dir}, "
                       "or start it again with --overwrite")


def _check_expected(run_config: dict, config, cls, expect: dict) -> None:
    """Refuse arguments that contradict the run being resumed (docs/plumbing.md, *rlkit.experiments.train*)."""
    differences = []
    for key in ("algorithm", "env", "seed", "device", "preset"):
        given = expect.get(key)
        if given is None:
            continue
        saved = run_config[key]
        if key == "device":
            given, saved = _device_name(given), _device_name(saved)
        if given != saved:
            differences.append(f"{key}: given {given!r}, the run has {saved!r}")
    overrides = expect.get("overrides") or {}
    if overrides:
        with _as_run_error(f"cannot resume a {run_config['algorithm']} run with these hyperparameters: "):
            given_config = cls.Config.from_dict(overrides, base=config)
        for key in cls.Config.current_names(overrides):
            if getattr(given_config, key) != getattr(config, key):
                differences.append(f"{key}: given {getattr(given_config, key)!r}, the run has {getattr(config, key)!r}")
    if differences:
        raise RunError("--resume keeps the run's configuration (config.json) and refuses arguments that change it: "
                       + "; ".join(differences) + " (leave them out, or start a new run)")


def _device_name(device) -> str:
    try:
        return str(torch.device(device))
    except (RuntimeError, TypeError):
        return str(device)


def _identity(run_config: dict) -> dict:
    """What a checkpoint must share with the run directory it is resumed in."""
    return {key: run_config[key] for key in ("algorithm", "env", "seed", "device", "agent")}


def _check_checkpoint_matches(checkpoint: dict, run_config: dict, path: Path) -> None:
    for key in ("run", "update", "env_steps", "wall_time_s", "csv_rows", "updates_columns", "agent", "env",
                "obs_norm", "collector", "rng", "recent_returns"):
        if key not in checkpoint:
            raise RunError(f"incompatible checkpoint {path}: it has no {key!r} entry")
    saved, here = current_config_names(checkpoint["run"], path), _identity(run_config)  # run_config: read_config's
    differences = [key for key in here if saved.get(key) != here[key]]
    if differences:
        raise RunError(f"incompatible checkpoint {path}: it belongs to another run "
                       f"({', '.join(f'{k}={saved.get(k)!r}' for k in differences if k != 'agent')}"
                       f"{' and a different agent config' if 'agent' in differences else ''}; config.json has "
                       f"{', '.join(f'{k}={here[k]!r}' for k in differences if k != 'agent')})")


# ----------------------------------------------------------------------------- small helpers


@contextlib.contextmanager
def _deterministic(device: torch.device):
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


def package_versions() -> dict:
    """The versions a run or a table was made with (config.json, data/sweeps/*.json)."""
    import gymnasium

    versions = {"rlkit": rlkit.__version__, "torch": torch.__version__, "gymnasium": gymnasium.__version__,
                "numpy": np.__version__, "python": platform.python_version()}
    for module in ("mujoco", "ale_py"):
        imported = sys.modules.get(module)
        if imported is not None:
            versions[module] = getattr(imported, "__version__", "unknown")
    return versions


def _summary_dict(summary: EnvSummary) -> dict:
    return {key: list(value) if isinstance(value, tuple) else value for key, value in dataclasses.asdict(summary).items()}


def _render(envs, env_id: str) -> np.ndarray:
    try:
        frames = envs.render()
    except Exception as error:  # missing pygame, no OpenGL context, ...: all mean "cannot render here"
        hint = ""
        if env_id.endswith("-v5") and not env_id.startswith("ALE/"):
            hint = " (MuJoCo renders off-screen with MUJOCO_GL=egl or MUJOCO_GL=osmesa, if the machine has one of them)"
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise RunError(f"cannot render {env_id} on this machine: {message}{hint}; evaluate without --video") from error
    frame = frames[0] if isinstance(frames, (tuple, list)) else frames
    if frame is None:
        raise RunError(f"{env_id} returned no frame (render_mode rgb_array unsupported)")
    return np.asarray(frame)


# Video containers and how each is written: GIF with imageio (a gymnasium[mujoco] dependency), the
# others with OpenCV's VideoWriter (opencv-python-headless, a kit dependency) and the codec named here.
VIDEO_CODECS = {".mp4": "mp4v", ".avi": "MJPG"}


def _video_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".gif" or suffix in VIDEO_CODECS:
        return suffix
    raise RunError(f"unknown video format {path.name!r}: use {', '.join(['.gif', *VIDEO_CODECS])}")


def _write_video(path: Path, frames: list[np.ndarray], writer_format: str, fps: float) -> None:
    """Write RGB ``frames`` to ``path`` all or nothing (a temporary sibling, then renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        if writer_format == ".gif":
            import imageio.v2 as imageio

            imageio.mimsave(tmp, frames, duration=1000.0 / fps, loop=0)
        else:
            import cv2

            height, width = frames[0].shape[:2]
            writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*VIDEO_CODECS[writer_format]), float(fps),
                                     (width, height))
            if not writer.isOpened():
                raise RunError(f"OpenCV cannot write {writer_format} video here; a .gif works without it")
            for frame in frames:
                writer.write(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR))  # OpenCV wants BGR
            writer.release()
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
