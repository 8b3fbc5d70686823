"""The command line: one end-to-end run in a subprocess, then flags and errors through ``rlkit.cli.main``."""
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rlkit.agents import AGENTS
from support.cli import cli, one_line_error
from rlkit.cli import RESERVED, build_parser, flag, main
from rlkit.experiments.runs import is_timing_column, read_csv

REPO = Path(__file__).resolve().parents[1]
SMALL = ["--num-envs", "4", "--num-steps", "16", "--hidden-sizes", "16", "16", "--no-progress"]


def snapshot(path):
    return {str(p.relative_to(path)): (p.read_bytes() if p.is_file() else None, p.stat().st_mtime_ns)
            for p in sorted(Path(path).rglob("*"))}


def test_train_then_resume_in_fresh_processes_equals_one_uninterrupted_run(tmp_path):
    """The real thing: `python -m rlkit` in subprocesses; the resumed run is a new process (new envs,
    new emulator/simulator objects, new RNG objects) and still matches an uninterrupted run exactly."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    hyper = ["--seed", "1", "--delta", "0.01", "--eta-max", "0.3", "--stats-decay", "0.95", *SMALL]
    first = [sys.executable, "-m", "rlkit", "train", "acktr", "--env", "InvertedPendulum-v5", "--steps", "200",
             "--run-dir", str(tmp_path / "run"), *hyper]
    done = subprocess.run(first, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "env steps" in done.stdout
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (config["agent"]["delta"], config["agent"]["eta_max"], config["agent"]["stats_decay"]) == (0.01, 0.3, 0.95)
    assert config["overrides"]["delta"] == 0.01 and config["command"].startswith("python -m rlkit train acktr")

    more = [sys.executable, "-m", "rlkit", "train", "--resume", str(tmp_path / "run"), "--steps", "500", "--no-progress"]
    done = subprocess.run(more, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr

    status = main(["train", "acktr", "--env", "InvertedPendulum-v5", "--steps", "500", "--run-dir",
                   str(tmp_path / "whole"), *hyper])
    assert status == 0
    for name in ("episodes.csv", "updates.csv"):
        (resumed_header, resumed), (whole_header, whole) = (read_csv(tmp_path / run / name) for run in ("run", "whole"))
        assert resumed_header == whole_header and len(whole) > 0
        assert without_timing(resumed) == without_timing(whole)


def without_timing(rows):
    return [{key: value for key, value in row.items() if not is_timing_column(key)} for row in rows]


def test_vmpo_train_then_resume_in_fresh_processes_equals_one_uninterrupted_run(tmp_path):
    """`python -m rlkit train vmpo`: run directory, CSVs with V-MPO's diagnostics, its flags in config.json,
    and a resume in a new process (target network, duals, ε_α stream restored) equal to an uninterrupted run."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    hyper = ["--seed", "2", "--eps-eta", "0.05", "--target-period", "3", "--eps-alpha-log-uniform",
             "--eps-alpha-low", "0.001", "--eps-alpha-high", "0.02", "--checkpoint-every", "2", *SMALL]
    first = [sys.executable, "-m", "rlkit", "train", "vmpo", "--env", "CartPole-v1", "--steps", "200",
             "--run-dir", str(tmp_path / "run"), *hyper]
    done = subprocess.run(first, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "env steps" in done.stdout
    run_dir = tmp_path / "run"
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoints", "config.json", "episodes.csv", "updates.csv"]
    config = json.loads((run_dir / "config.json").read_text())
    assert config["algorithm"] == "vmpo" and config["preset"] == "classic"
    agent = config["agent"]
    assert (agent["eps_eta"], agent["target_period"], agent["eps_alpha_log_uniform"], agent["eps_alpha_high"]) == \
        (0.05, 3, True, 0.02)
    header, rows = read_csv(run_dir / "updates.csv")
    assert {"temperature", "alpha", "eps_alpha", "estep_kl", "mstep_kl", "max_weight", "entropy", "value_loss",
            "explained_variance", "time_update"} <= set(header) and rows

    more = [sys.executable, "-m", "rlkit", "train", "--resume", str(run_dir), "--steps", "500", "--no-progress"]
    done = subprocess.run(more, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr

    status = main(["train", "vmpo", "--env", "CartPole-v1", "--steps", "500", "--run-dir", str(tmp_path / "whole"),
                   *hyper])
    assert status == 0
    for name in ("episodes.csv", "updates.csv"):
        (resumed_header, resumed), (whole_header, whole) = (read_csv(tmp_path / run / name) for run in ("run", "whole"))
        assert resumed_header == whole_header and len(whole) > 0
        assert without_timing(resumed) == without_timing(whole)


def test_every_config_field_has_a_kebab_case_flag():
    parser, names = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    flags = {option for action in train._actions for option in action.option_strings}
    for cls in AGENTS.values():
        for field in dataclasses.fields(cls.Config):
            assert field.name not in RESERVED, f"{cls.name}.{field.name} collides with a train flag"
            assert flag(field.name) in flags
    for concept in ("--delta", "--eta-max", "--damping", "--stats-decay", "--lr", "--num-envs", "--num-steps",
                    "--gae-lambda", "--initial-temperature"):
        assert concept in flags
    assert not {"--lam", "--initial-eta"} & flags  # renamed (old config.json keys still load: Config.RENAMED)


def test_flags_reach_the_agent_config(tmp_path, capsys):
    status, out, err = cli(capsys, "train", "acktr", "--env", "CartPole-v1", "--steps", "100", "--run-dir", tmp_path / "r",
                           "--damping", "0.05", "--no-normalize-advantages", "--hidden-sizes", "8", "8", "--num-envs", "2",
                           "--no-progress")
    assert status == 0, err
    agent = json.loads((tmp_path / "r" / "config.json").read_text())["agent"]
    assert (agent["damping"], agent["normalize_advantages"], agent["hidden_sizes"], agent["num_envs"]) == (0.05, False, [8, 8], 2)


def test_default_run_directory_is_named_after_algorithm_env_and_seed(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, out, err = cli(capsys, "train", "a2c", "--env", "CartPole-v1", "--steps", "50", "--seed", "7", *SMALL)
    assert status == 0, err
    assert (tmp_path / "runs" / "a2c-CartPole-v1-s7" / "config.json").is_file()


def test_resume_from_the_command_line_continues_and_refuses_changes(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert cli(capsys, "train", "a2c", "--env", "CartPole-v1", "--steps", "100", "--run-dir", run_dir, *SMALL)[0] == 0
    before = snapshot(run_dir)
    status, out, err = cli(capsys, "train", "--resume", run_dir, "--steps", "300", "--lr", "0.01", "--no-progress")
    one_line_error(status, err, "lr: given 0.01, the run has 0.0007")
    assert snapshot(run_dir) == before
    status, out, err = cli(capsys, "train", "a2c", "--env", "CartPole-v1", "--resume", run_dir, "--steps", "300",
                           "--overwrite")
    one_line_error(status, err, "--resume and --overwrite")
    # the original command line plus --resume and a larger --steps
    status, out, err = cli(capsys, "train", "a2c", "--env", "CartPole-v1", "--steps", "300", "--run-dir", run_dir,
                           *SMALL, "--resume", run_dir)
    assert status == 0, err
    assert int(read_csv(run_dir / "updates.csv")[1][-1]["env_steps"]) >= 300


@pytest.mark.parametrize("argv, fragments", [
    (["train", "acktr", "--env", "NoSuchEnv-v0", "--steps", "100"], ["NoSuchEnv-v0", "provided by gymnasium"]),
    (["train", "acktr", "--env", "ALE/NoSuchGame-v5", "--steps", "100"], ["provided by ale-py"]),
    (["train", "acktr", "--env", "CartPole-v1", "--steps", "0"], ["--steps", "positive integer", "got 0"]),
    (["train", "acktr", "--env", "CartPole-v1", "--steps", "-3"], ["--steps", "positive integer"]),
    (["train", "acktr", "--env", "CartPole-v1", "--steps", "100", "--delta", "-1"], ["delta must be > 0", "valid range"]),
    (["train", "acktr", "--env", "CartPole-v1", "--steps", "100", "--stats-decay", "1"], ["stats_decay must be in [0, 1)"]),
    (["train", "acktr", "--env", "CartPole-v1", "--steps", "100", "--delta", "abc"], ["delta must be of type float"]),
    (["train", "a2c", "--env", "CartPole-v1", "--steps", "100", "--delta", "0.1"],
     ["--delta (a hyperparameter of acktr/trpo): not a hyperparameter of a2c", "--lr"]),
    (["train", "trpo", "--env", "CartPole-v1", "--steps", "100", "--shared-trunk"], ["shared_trunk must be False"]),
    (["train", "vmpo", "--env", "CartPole-v1", "--steps", "100", "--eps-eta", "0"], ["eps_eta must be > 0", "valid range"]),
    (["train", "vmpo", "--env", "CartPole-v1", "--steps", "100", "--eps-alpha", "-1"], ["eps_alpha must be > 0"]),
    (["train", "vmpo", "--env", "CartPole-v1", "--steps", "100", "--top-k-fraction", "1.5"],
     ["top_k_fraction must be in (0, 1]"]),
    (["train", "vmpo", "--env", "CartPole-v1", "--steps", "100", "--target-period", "0"],
     ["target_period must be an integer >= 1"]),
    (["train", "vmpo", "--env", "CartPole-v1", "--steps", "100", "--delta", "0.1"],
     ["--delta (a hyperparameter of acktr/trpo): not a hyperparameter of vmpo", "--eps-eta"]),
    (["train", "vmpo", "--env", "Pendulum-v1", "--steps", "100", "--eps-alpha-log-uniform"],
     ["eps_alpha_log_uniform must be False for continuous actions"]),
    (["train", "ppo", "--env", "CartPole-v1", "--steps", "100"], ["invalid choice: 'ppo'"]),
    (["train", "acktr", "--steps", "100"], ["train needs --env"]),
    (["train", "acktr", "--env", "CartPole-v1", "--steps", "100", "--device", "tpu"], ["device"]),
    (["train", "--resume", "nowhere"], ["nowhere does not exist"]),
    (["evaluate", "nowhere"], ["nowhere does not exist"]),
    (["plot", "nowhere"], ["nowhere does not exist"]),
    (["evaluate", "nowhere", "--episodes", "0"], ["--episodes", "positive integer"]),
])
def test_errors_are_one_line_with_status_2_and_write_nothing(tmp_path, capsys, monkeypatch, argv, fragments):
    monkeypatch.chdir(tmp_path)
    status, out, err = cli(capsys, *argv)
    one_line_error(status, err, *fragments)
    assert list(tmp_path.iterdir()) == []


def test_cuda_without_cuda_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    status, out, err = cli(capsys, "train", "acktr", "--env", "CartPole-v1", "--steps", "100", "--device", "cuda")
    one_line_error(status, err, "CUDA is not available")


def test_plot_and_evaluate_from_the_command_line(tmp_path, capsys):
    for seed in (0, 1):
        assert cli(capsys, "train", "acktr", "--env", "CartPole-v1", "--steps", "200", "--seed", seed,
                   "--run-dir", tmp_path / f"s{seed}", *SMALL)[0] == 0
    status, out, err = cli(capsys, "plot", tmp_path / "s0", tmp_path / "s1", "--out", tmp_path / "curves.png")
    assert status == 0, err
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    status, out, err = cli(capsys, "evaluate", tmp_path / "s0", "--episodes", "2", "--seed", "3")
    assert status == 0, err
    assert "mean return" in out and "over 2 episodes" in out
    status, out, err = cli(capsys, "evaluate", tmp_path / "s0", "--episodes", "1", "--video", tmp_path / "play.mp4")
    assert status == 0, err
    assert f"video: {tmp_path / 'play.mp4'}" in out and (tmp_path / "play.mp4").stat().st_size > 0
