"""The training loop and run directories (Python API): contents, determinism, exact resume, errors that
change nothing on disk, env-state checkpoints (MuJoCo, Atari sticky actions), plots and evaluation."""
import hashlib
import json
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlkit.envs import make_vec_env, reset_with_seed
from rlkit.experiments.plots import learning_curves, plot_learning_curves
from rlkit.experiments.runs import (
    EPISODE_COLUMNS,
    LOCK_FILE,
    CsvLog,
    UPDATE_BASE_COLUMNS,
    EnvStateError,
    RunError,
    atomic_write,
    default_run_dir,
    env_state,
    install_ale_action_logs,
    is_timing_column,
    list_checkpoints,
    load_checkpoint,
    load_env_state,
    read_csv,
)
from rlkit.experiments.train import evaluate, resume, train

# Small batches so that a run of a few hundred steps makes several updates.
SMALL = {"num_envs": 4, "num_steps": 16, "hidden_sizes": [16, 16]}


def run(tmp_path, name="run", algorithm="a2c", env="CartPole-v1", steps=300, seed=0, overrides=SMALL, **kwargs):
    return train(algorithm, env, steps=steps, seed=seed, overrides=dict(overrides), run_dir=tmp_path / name,
                 progress=False, **kwargs)


def results(run_dir):
    """episodes.csv and updates.csv without the columns that measure time."""
    out = {}
    for name in ("episodes.csv", "updates.csv"):
        header, rows = read_csv(Path(run_dir) / name)
        out[name] = [{k: v for k, v in row.items() if not is_timing_column(k)} for row in rows]
    return out


def digest(path):
    """Every file and directory under ``path``, with content hash, size, mode and mtime (but the lock file,
    which every writer opens and stamps with its PID, refused or not)."""
    entries = {}
    for item in sorted(Path(path).rglob("*")):
        if item.name == LOCK_FILE:
            continue
        stat = item.stat()
        content = hashlib.sha256(item.read_bytes()).hexdigest() if item.is_file() else "dir"
        entries[str(item.relative_to(path))] = (content, stat.st_mode, stat.st_mtime_ns)
    return entries


def assert_same_state(a, b, where="state"):
    """Recursive exact equality of state dicts (tensors, arrays, numbers, NaN == NaN)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a, b) or (a.is_floating_point() and torch.equal(a.isnan(), b.isnan())
                                     and torch.equal(a.nan_to_num(), b.nan_to_num())), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same_state(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and np.isnan(a):
        assert isinstance(b, float) and np.isnan(b), where
    else:
        assert a == b, where


class SimulatedKill(Exception):
    """Raised from the callback: the process 'dies' right after an update's rows were written."""


def kill_after(update):
    def callback(info):
        if info.update == update:
            raise SimulatedKill

    return callback


# ----------------------------------------------------------------------------- the run directory


def test_run_directory_holds_config_csvs_and_checkpoints(tmp_path):
    result = run(tmp_path, algorithm="acktr", steps=300, checkpoint_every=2)
    run_dir = tmp_path / "run"
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoints", "config.json", "episodes.csv", "updates.csv"]

    config = json.loads((run_dir / "config.json").read_text())
    assert (config["algorithm"], config["env"], config["seed"], config["steps"], config["device"]) == \
        ("acktr", "CartPole-v1", 0, 300, "cpu")
    assert config["preset"] == "classic"
    assert config["agent"]["num_envs"] == 4 and config["agent"]["hidden_sizes"] == [16, 16]
    for key in ("delta", "eta_max", "damping", "stats_decay"):  # one name per concept
        assert key in config["agent"]
    assert {"rlkit", "torch", "gymnasium"} <= set(config["versions"])

    episodes_header, episodes = read_csv(run_dir / "episodes.csv")
    assert episodes_header == list(EPISODE_COLUMNS) == ["env_steps", "wall_time_s", "episode_return", "episode_length", "update"]
    assert episodes and all(float(e["episode_return"]) == int(e["episode_length"]) for e in episodes)  # CartPole: +1 a step
    updates_header, updates = read_csv(run_dir / "updates.csv")
    assert updates_header[:3] == list(UPDATE_BASE_COLUMNS)
    assert {"step_size", "quadratic", "predicted_kl", "measured_kl", "damping", "time_update"} <= set(updates_header)
    assert [int(u["update"]) for u in updates] == list(range(1, result.updates + 1))
    assert int(updates[-1]["env_steps"]) == result.env_steps >= 300

    updates_checkpointed = [update for update, _ in list_checkpoints(run_dir)]
    assert updates_checkpointed[-1] == result.updates  # the final checkpoint
    assert len(updates_checkpointed) <= 3  # keep_checkpoints
    assert not [p for p in (run_dir / "checkpoints").iterdir() if p.name.startswith(".")]  # no temporary files left


def test_default_run_dir_sanitizes_the_env_id():
    assert default_run_dir("acktr", "ALE/Pong-v5", 3) == Path("runs/acktr-ALE-Pong-v5-s3")


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "checkpoint.pt"
    atomic_write(path, lambda f: f.write(b"complete"))

    def half_then_die(f):
        f.write(b"half")
        raise KeyboardInterrupt  # a kill in the middle of a write

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, half_then_die)
    assert path.read_bytes() == b"complete" and [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


# ----------------------------------------------------------------------------- determinism


def test_the_same_seed_gives_identical_results_and_another_seed_does_not(tmp_path):
    run(tmp_path, "a", algorithm="acktr", seed=3)
    run(tmp_path, "b", algorithm="acktr", seed=3)
    run(tmp_path, "c", algorithm="acktr", seed=4)
    first, again, other = results(tmp_path / "a"), results(tmp_path / "b"), results(tmp_path / "c")
    assert first["episodes.csv"] and first == again
    assert first["episodes.csv"] != other["episodes.csv"]


# ----------------------------------------------------------------------------- resume equals uninterrupted


@pytest.mark.parametrize("algorithm, env", [
    ("acktr", "CartPole-v1"),
    ("acktr", "InvertedPendulum-v5"),
    ("trpo", "InvertedPendulum-v5"),
    ("a2c", "CartPole-v1"),
    ("vmpo", "CartPole-v1"),
    ("vmpo", "InvertedPendulum-v5"),
])
def test_a_killed_run_resumed_equals_an_uninterrupted_one(tmp_path, algorithm, env):
    steps = 500
    whole = run(tmp_path, "whole", algorithm, env, steps=steps, checkpoint_every=2)
    with pytest.raises(SimulatedKill):  # dies after update 5: its rows are on disk, its checkpoint is update 4
        run(tmp_path, "killed", algorithm, env, steps=steps, checkpoint_every=2, callback=kill_after(5))
    killed = tmp_path / "killed"
    assert list_checkpoints(killed)[-1][0] == 4 and len(read_csv(killed / "updates.csv")[1]) == 5

    resumed = resume(killed, progress=False)
    assert resumed.resumed_from_update == 4 and resumed.updates == whole.updates > 5
    assert results(killed) == results(tmp_path / "whole")  # rows of update 5 dropped and written again, identically
    assert_same_state(resumed.agent.state_dict(), whole.agent.state_dict())
    wall = [float(row["wall_time_s"]) for row in read_csv(killed / "updates.csv")[1]]
    assert wall == sorted(wall)  # wall time continues from the checkpoint


def test_a_run_killed_before_its_first_periodic_checkpoint_resumes_from_update_0(tmp_path):
    whole = run(tmp_path, "whole", steps=300)
    with pytest.raises(SimulatedKill):
        run(tmp_path, "killed", steps=300, callback=kill_after(1))
    assert [update for update, _ in list_checkpoints(tmp_path / "killed")] == [0]
    resumed = resume(tmp_path / "killed", progress=False)
    assert resumed.resumed_from_update == 0 and results(tmp_path / "killed") == results(tmp_path / "whole")
    assert_same_state(resumed.agent.state_dict(), whole.agent.state_dict())


def test_csv_log_extends_its_header_when_a_new_column_appears(tmp_path):
    log = CsvLog(tmp_path / "u.csv", None)
    log.append([{"update": 1, "x": 0.1}])
    log.append([{"update": 2, "x": float("nan"), "y": True}])
    log.close()
    assert read_csv(tmp_path / "u.csv") == (["update", "x", "y"], [{"update": "1", "x": "0.1", "y": ""},
                                                                    {"update": "2", "x": "nan", "y": "1"}])
    assert log.rows == 2


def test_a_finished_run_continued_with_more_steps_equals_a_longer_run(tmp_path):
    longer = run(tmp_path, "longer", "acktr", "InvertedPendulum-v5", steps=600, checkpoint_every=100)
    run(tmp_path, "short", "acktr", "InvertedPendulum-v5", steps=250, checkpoint_every=100)
    continued = resume(tmp_path / "short", steps=600, progress=False)
    assert results(tmp_path / "short") == results(tmp_path / "longer")
    assert_same_state(continued.agent.state_dict(), longer.agent.state_dict())
    assert json.loads((tmp_path / "short" / "config.json").read_text())["steps"] == 600


def test_resuming_a_run_that_already_reached_its_steps_changes_nothing(tmp_path):
    run(tmp_path, steps=200)
    before = digest(tmp_path / "run")
    result = resume(tmp_path / "run", progress=False)
    assert result.env_steps >= 200 and digest(tmp_path / "run") == before


# ----------------------------------------------------------------------------- env state: exact for every family


def random_steps(envs, actions):
    return [envs.step(a) for a in actions]


@pytest.mark.parametrize("env_id, steps", [("CartPole-v1", 200), ("InvertedPendulum-v5", 200), ("Ant-v5", 100),
                                           ("ALE/Pong-v5", 150)])
def test_env_state_restores_every_layer_exactly(env_id, steps, tmp_path, monkeypatch):
    """Save mid-episode, continue; restore into a fresh env that went elsewhere; same future, step for step.

    Ant-v5 reads a derived quantity (the torso's xpos) before ``mj_step``: restoring qpos/qvel alone
    diverges; the whole MjData does not. Pong has sticky actions (see ALEActionLog).
    """
    monkeypatch.chdir(tmp_path)  # MuJoCo writes its warnings (Ant's deprecated settotalmass) to ./MUJOCO_LOG.TXT
    original = make_vec_env(env_id, 2)
    install_ale_action_logs(original)
    reset_with_seed(original, 1)
    original.action_space.seed(1)
    random_steps(original, [original.action_space.sample() for _ in range(steps)])
    saved = env_state(original)
    actions = [original.action_space.sample() for _ in range(steps)]
    future = random_steps(original, actions)

    restored = make_vec_env(env_id, 2)
    install_ale_action_logs(restored)
    reset_with_seed(restored, 99)
    random_steps(restored, [restored.action_space.sample() for _ in range(7)])
    load_env_state(restored, saved)
    for t, (a, b) in enumerate(zip(future, random_steps(restored, actions))):
        for i in range(4):  # obs, reward, terminated, truncated
            np.testing.assert_array_equal(a[i], b[i], err_msg=f"step {t}")
        assert ("_episode" in a[4]) == ("_episode" in b[4])
    assert any("_episode" in step[4] for step in future) or env_id.startswith("ALE/")  # resets were crossed


@pytest.mark.parametrize("env_id", ["CartPole-v1", "InvertedPendulum-v5"])
def test_env_state_saved_while_a_reset_is_pending_continues_exactly(env_id):
    """NEXT_STEP: a sub-env whose episode just ended resets at the next step; that flag is state too."""
    original = make_vec_env(env_id, 3)
    reset_with_seed(original, 2)
    original.action_space.seed(2)
    while not original.unwrapped._autoreset_envs.any():
        original.step(original.action_space.sample())
    saved = env_state(original)
    actions = [original.action_space.sample() for _ in range(50)]
    future = random_steps(original, actions)
    restored = make_vec_env(env_id, 3)
    reset_with_seed(restored, 0)
    load_env_state(restored, saved)
    assert restored.unwrapped._autoreset_envs.any()
    for a, b in zip(future, random_steps(restored, actions)):
        for i in range(4):
            np.testing.assert_array_equal(a[i], b[i])


def test_atari_needs_the_action_log_because_ale_state_omits_sticky_actions():
    envs = make_vec_env("ALE/Pong-v5", 1)
    reset_with_seed(envs, 0)
    with pytest.raises(EnvStateError, match="install_ale_action_logs"):
        env_state(envs)


def test_env_state_refuses_another_env():
    cartpole, acrobot = make_vec_env("CartPole-v1", 2), make_vec_env("Acrobot-v1", 2)
    reset_with_seed(cartpole, 0)
    reset_with_seed(acrobot, 0)
    with pytest.raises(EnvStateError, match="is not this env"):
        load_env_state(acrobot, env_state(cartpole))
    with pytest.raises(EnvStateError, match="is not this env"):
        load_env_state(make_vec_env("CartPole-v1", 3), env_state(cartpole))


def test_a_killed_atari_run_resumed_equals_an_uninterrupted_one(tmp_path):
    small = {"num_envs": 2, "num_steps": 8}
    whole = run(tmp_path, "whole", "a2c", "ALE/Pong-v5", steps=120, overrides=small, checkpoint_every=2)
    with pytest.raises(SimulatedKill):
        run(tmp_path, "killed", "a2c", "ALE/Pong-v5", steps=120, overrides=small, checkpoint_every=2,
            callback=kill_after(3))
    resumed = resume(tmp_path / "killed", progress=False)
    assert results(tmp_path / "killed") == results(tmp_path / "whole")
    assert_same_state(resumed.agent.state_dict(), whole.agent.state_dict())


# ----------------------------------------------------------------------------- errors, with nothing lost


class MultiDiscreteActions(gym.Env):
    """A synthetic env whose action space no agent supports."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    action_space = gym.spaces.MultiDiscrete([2, 3])

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(3, np.float32), {}

    def step(self, action):
        return np.zeros(3, np.float32), 0.0, False, False, {}


gym.register(id="RlkitTest/MultiDiscreteActions-v0", entry_point=MultiDiscreteActions, max_episode_steps=10)


@pytest.mark.parametrize("kwargs, message", [
    (dict(env="NoSuchEnv-v0"), "provided by gymnasium"),
    (dict(env="NoSuchRobot-v5"), "MuJoCo"),
    (dict(env="ALE/NoSuchGame-v5"), "ale-py"),
    (dict(env="RlkitTest/MultiDiscreteActions-v0"), "does not support the MultiDiscrete action space"),
    (dict(overrides={"delta": -1.0}), "delta must be > 0"),
    (dict(overrides={"stats_decay": 1.5}), r"stats_decay must be in \[0, 1\)"),
    (dict(overrides={"no_such_parameter": 1}), "valid parameters: num_envs"),
    (dict(algorithm="ppo"), "valid algorithms: a2c, acktr, trpo"),
    (dict(steps=0), r"steps must be a positive integer \(valid range \[1, 1000000000000\]\)"),
    (dict(steps=-5), "steps must be a positive integer"),
    (dict(preset="nope"), "valid presets"),
])
def test_bad_input_is_refused_before_anything_is_written(tmp_path, kwargs, message):
    kwargs = {"algorithm": "acktr", "env": "CartPole-v1", "steps": 100, "overrides": {}, **kwargs}
    with pytest.raises(RunError, match=message):
        train(kwargs.pop("algorithm"), kwargs.pop("env"), run_dir=tmp_path / "new", progress=False, **kwargs)
    assert not (tmp_path / "new").exists()


@pytest.fixture
def finished_run(tmp_path):
    run(tmp_path, "done", algorithm="acktr", steps=200, checkpoint_every=1, keep_checkpoints=0)
    return tmp_path / "done"


def test_an_existing_run_directory_is_refused_without_resume_or_overwrite(finished_run):
    before = digest(finished_run)
    with pytest.raises(RunError, match="already exists: continue it with --resume"):
        run(finished_run.parent, "done", algorithm="acktr", steps=200)
    assert digest(finished_run) == before


def test_overwrite_replaces_only_an_rlkit_run_and_only_after_every_check(tmp_path, finished_run):
    before = digest(finished_run)
    with pytest.raises(RunError, match="delta must be > 0"):  # bad input: the old run survives
        run(tmp_path, "done", algorithm="acktr", overrides={"delta": -1.0}, overwrite=True)
    assert digest(finished_run) == before

    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.tex").write_text("important")
    with pytest.raises(RunError, match="not an rlkit run directory"):
        run(tmp_path, "thesis", overwrite=True)
    assert (precious / "chapter1.tex").read_text() == "important"

    result = run(tmp_path, "done", algorithm="a2c", steps=200, overwrite=True)
    assert json.loads((finished_run / "config.json").read_text())["algorithm"] == "a2c" and result.updates >= 1


def test_a_corrupt_checkpoint_is_refused_by_evaluate_and_the_run_left_as_it_was(finished_run):
    latest = list_checkpoints(finished_run)[-1][1]
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 2])  # a disk error, a bad copy
    before = digest(finished_run)
    with pytest.raises(RunError, match="corrupt checkpoint .* train --resume"):
        evaluate(finished_run, 1)
    assert digest(finished_run) == before


def test_when_every_checkpoint_is_corrupt_resume_is_refused_and_the_run_left_as_it_was(finished_run):
    for _, path in list_checkpoints(finished_run):
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    before = digest(finished_run)
    with pytest.raises(RunError, match="corrupt checkpoint .* no older checkpoint .* is readable"):
        resume(finished_run, steps=1000, progress=False)
    assert digest(finished_run) == before


def test_a_checkpoint_of_another_run_is_refused_and_the_run_left_as_it_was(tmp_path, finished_run):
    run(tmp_path, "other", algorithm="acktr", env="Acrobot-v1", steps=200)
    foreign = list_checkpoints(tmp_path / "other")[-1][1]
    shutil.copy(foreign, finished_run / "checkpoints" / "update-999999.pt")
    before = digest(finished_run)
    with pytest.raises(RunError, match="incompatible checkpoint .* belongs to another run"):
        resume(finished_run, steps=1000, progress=False)
    assert digest(finished_run) == before


def test_an_agent_state_that_does_not_load_is_refused_and_the_run_left_as_it_was(finished_run):
    latest = list_checkpoints(finished_run)[-1][1]
    checkpoint = load_checkpoint(latest)
    checkpoint["agent"]["model"] = {"no": torch.zeros(1)}
    torch.save(checkpoint, latest)
    before = digest(finished_run)
    with pytest.raises(RunError, match="incompatible checkpoint"):
        resume(finished_run, steps=1000, progress=False)
    assert digest(finished_run) == before


def test_csvs_shorter_than_the_checkpoint_are_refused_and_the_run_left_as_it_was(finished_run):
    episodes = finished_run / "episodes.csv"
    episodes.write_text("".join(episodes.read_text().splitlines(keepends=True)[:2]))
    before = digest(finished_run)
    with pytest.raises(RunError, match="inconsistent with its checkpoint"):
        resume(finished_run, steps=1000, progress=False)
    assert digest(finished_run) == before


@pytest.mark.parametrize("expect, message", [
    ({"seed": 1}, "seed: given 1, the run has 0"),
    ({"env": "Acrobot-v1"}, "env: given 'Acrobot-v1'"),
    ({"algorithm": "a2c"}, "algorithm: given 'a2c'"),
    ({"overrides": {"delta": "0.5"}}, "delta: given 0.5, the run has 0.002"),
    ({"preset": "mujoco"}, "preset: given 'mujoco', the run has 'classic'"),
])
def test_resume_refuses_arguments_that_change_the_run(finished_run, expect, message):
    before = digest(finished_run)
    with pytest.raises(RunError, match=message):
        resume(finished_run, steps=1000, progress=False, expect=expect)
    assert digest(finished_run) == before


def test_resume_accepts_the_original_arguments(finished_run):
    same = {"algorithm": "acktr", "env": "CartPole-v1", "seed": 0, "device": "cpu", "preset": "classic",
            "overrides": {"num_envs": "4", "delta": 0.002}}
    assert resume(finished_run, steps=300, progress=False, expect=same).env_steps >= 300


def test_a_directory_that_is_not_a_run_cannot_be_resumed(tmp_path):
    with pytest.raises(RunError, match="does not exist"):
        resume(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunError, match="not an rlkit run directory"):
        resume(tmp_path / "empty")


# ----------------------------------------------------------------------------- plot and evaluate


def test_plot_groups_seeds_and_writes_a_png(tmp_path):
    for seed in (0, 1):
        run(tmp_path, f"acktr-s{seed}", algorithm="acktr", steps=300, seed=seed)
    run(tmp_path, "a2c-s0", algorithm="a2c", steps=300)
    groups = learning_curves([tmp_path])
    assert sorted((g.algorithm, len(g.runs)) for g in groups) == [("a2c", 1), ("acktr", 2)]
    acktr = next(g for g in groups if g.algorithm == "acktr")
    assert (acktr.std["env_steps"] > 0).any() and len(acktr.x["wall_time_s"]) > 0
    figure = plot_learning_curves([tmp_path / "acktr-s0", tmp_path / "acktr-s1", tmp_path / "a2c-s0"],
                                  out=tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [ax.get_xlabel() for ax in figure.axes] == ["env steps", "wall time (s)"]


def test_evaluate_plays_episodes_with_raw_returns(tmp_path):
    run(tmp_path, algorithm="acktr", env="InvertedPendulum-v5", steps=200)
    result = evaluate(tmp_path / "run", 3, seed=5)
    # InvertedPendulum-v5 pays 1 per step while the pole is up: the raw return is the length, minus the falling step
    assert len(result.returns) == 3 and all(r in (length - 1, length) for r, length in zip(result.returns, result.lengths))
    assert evaluate(tmp_path / "run", 3, seed=5).returns == result.returns  # deterministic policy, seeded env


@pytest.mark.parametrize("suffix", [".gif", ".mp4", ".avi"])
def test_evaluate_writes_a_video_with_one_frame_per_step(tmp_path, suffix):
    import cv2

    run(tmp_path, steps=100)
    before = digest(tmp_path / "run")
    result = evaluate(tmp_path / "run", 2, video=tmp_path / f"play{suffix}")
    # frames: the reset frame, one per step of each episode, and the autoreset step between episodes
    # (NEXT_STEP autoreset: the step after an episode's end only resets)
    expected = 1 + sum(result.lengths) + len(result.lengths) - 1
    if suffix == ".gif":
        from PIL import Image, ImageSequence

        # Pillow merges identical consecutive frames into one of longer duration: count time, not frames
        with Image.open(result.video) as gif:
            milliseconds = sum(frame.info["duration"] for frame in ImageSequence.Iterator(gif))
            shape = gif.size[::-1]
        count = round(milliseconds / (1000 / 50))  # CartPole's render_fps is 50
    else:
        capture = cv2.VideoCapture(str(result.video))
        count, shape = 0, None
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            count, shape = count + 1, frame.shape[:2]
        capture.release()
    assert count == expected
    assert shape == (400, 600)  # CartPole's rgb_array: 600 x 400 pixels
    assert not list(tmp_path.glob(".play*"))  # the temporary sibling is gone
    assert digest(tmp_path / "run") == before  # evaluate only reads


def test_evaluate_refuses_an_unknown_video_format_before_playing(tmp_path):
    run(tmp_path, steps=100)
    with pytest.raises(RunError, match=r"unknown video format 'play.txt': use .gif, .mp4, .avi"):
        evaluate(tmp_path / "run", 1, video=tmp_path / "play.txt")
    assert not (tmp_path / "play.txt").exists()
