"""The peers of the sample-efficiency benchmark (benchmarks/peers.py): Stable-Baselines3 and
sb3-contrib runs beside the kit's, read and reported as the kit's runs are.

Only the smoke run needs the optional ``peers`` extra; it skips, saying so, where it is missing.
"""
import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS = REPO / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import peers  # noqa: E402
import sample_efficiency as se  # noqa: E402

sys.path.remove(str(BENCHMARKS))


def run_script(*args: str, prelude: str = "pass") -> subprocess.CompletedProcess:
    code = (f"import sys, runpy; {prelude}; sys.argv = ['sample_efficiency.py', *{list(args)!r}]; "
            f"runpy.run_path({str(BENCHMARKS / 'sample_efficiency.py')!r}, run_name='__main__')")
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=600)


def read(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_zoo_settings_become_the_libraries_arguments():
    from torch import nn

    kwargs = peers.model_kwargs(peers.PEERS["sb3-ppo-zoo"].settings("CartPole-v1"))
    assert not {"n_envs", "n_timesteps", "normalize"} & set(kwargs)
    assert kwargs["learning_rate"](1.0) == pytest.approx(1e-3) and kwargs["learning_rate"](0.25) == pytest.approx(2.5e-4)
    assert kwargs["clip_range"](0.5) == pytest.approx(0.1) and kwargs["n_steps"] == 32
    cheetah = peers.model_kwargs(peers.PEERS["sb3-ppo-zoo"].settings("HalfCheetah-v5"))["policy_kwargs"]
    assert cheetah == dict(log_std_init=-2, ortho_init=False, activation_fn=nn.ReLU,
                           net_arch=dict(pi=[256, 256], vf=[256, 256]))
    pendulum = peers.model_kwargs(peers.PEERS["sb3-a2c-zoo"].settings("Pendulum-v1"))  # the V-MPO benchmark's env
    assert pendulum["policy_kwargs"] == dict(log_std_init=-2, ortho_init=False)
    assert pendulum["learning_rate"](0.5) == pytest.approx(3.5e-4) and pendulum["use_sde"] and pendulum["use_rms_prop"]
    assert peers.PEERS["sb3-ppo"].settings("CartPole-v1") == {}  # defaults: nothing passed


def test_budgets_shapes_and_presets_say_which_settings_ran():
    assert peers.horizon("sb3-ppo-zoo", "CartPole-v1", 500_000) == 100_000  # the zoo's schedules end at 1e5
    assert peers.horizon("sb3-ppo", "CartPole-v1", 500_000) == 500_000
    assert peers.horizon("sb3-ppo-zoo", "InvertedPendulum-v5", 300_000) == 300_000
    assert peers.horizon("sb3-ppo-zoo", "Pendulum-v1", 400_000) == 100_000
    assert peers.horizon("sb3-a2c-zoo", "Pendulum-v1", 400_000) == 400_000  # its schedule runs on to 1e6
    assert peers.batch_shape("sb3-ppo-zoo", "CartPole-v1") == {"num_envs": 8, "num_steps": 32}
    assert peers.batch_shape("sb3-a2c", "CartPole-v1") == {"num_envs": 1, "num_steps": 5}
    assert peers.PEERS["sb3-trpo-zoo"].preset("CartPole-v1") == f"zoo:CartPole-v1@{peers.ZOO_COMMIT[:7]}"
    assert peers.PEERS["sb3-ppo-zoo"].preset("Reacher-v5").startswith("zoo:Reacher-v2@")
    assert not peers.PEERS["sb3-a2c-zoo"].has_settings("InvertedPendulum-v5")
    with pytest.raises(KeyError, match="no a2c entry"):
        peers.PEERS["sb3-a2c-zoo"].settings("InvertedPendulum-v5")


def test_peer_rows_print_beside_the_kits_from_several_csvs(tmp_path):
    kit = [r for r in read(REPO / "data" / "benchmarks" / "sample_efficiency.csv") if r["env"] == "CartPole-v1"]
    twins = [{**r, "algorithm": "sb3-ppo", "preset": "sb3-defaults", "num_envs": "1", "num_steps": "2048"}
             for r in kit if r["algorithm"] == "acktr"]
    for path, rows in ((tmp_path / "kit.csv", kit), (tmp_path / "peers.csv", twins)):
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=se.CSV_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    result = run_script("--from-csv", str(tmp_path / "kit.csv"), str(tmp_path / "peers.csv"),
                        "--out", str(tmp_path / "both.csv"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(read(tmp_path / "both.csv")) == len(kit) + len(twins)
    assert "SB3-PPO/ACKTR 1.00" in result.stdout  # the same runs under another name: a ratio of exactly 1
    assert "settings: sb3-ppo sb3-defaults (1 env(s) x 2048 steps)" in result.stdout
    assert (tmp_path / "both.txt").read_text(encoding="utf-8") == result.stdout
    alone = run_script("--from-csv", str(tmp_path / "peers.csv"))  # peers without the kit's rows: no ratios
    assert alone.returncode == 0, alone.stderr[-3000:]
    assert "sb3-ppo" in alone.stdout and "SB3-PPO/ACKTR" not in alone.stdout


def test_peers_without_their_extra_are_refused_by_name(tmp_path):
    result = run_script("--quick", "--algorithms", "sb3-ppo", "--runs-root", str(tmp_path),
                        prelude="sys.modules['stable_baselines3'] = None")
    assert result.returncode != 0
    assert "sb3-ppo" in result.stderr and "pip install -e .[peers]" in result.stderr
    assert not any(tmp_path.iterdir())  # nothing trained, nothing written


def test_unknown_algorithm_names_the_kits_and_the_peers(tmp_path):
    result = run_script("--quick", "--algorithms", "ppo", "--runs-root", str(tmp_path))
    assert result.returncode != 0 and "sb3-ppo" in result.stderr and "acktr" in result.stderr


def test_peers_train_and_log_in_the_kits_columns(tmp_path):
    pytest.importorskip("stable_baselines3", reason="the peers' smoke run needs the optional 'peers' extra")
    pytest.importorskip("sb3_contrib", reason="the peers' smoke run needs the optional 'peers' extra")
    from rlkit.experiments.runs import EPISODE_COLUMNS

    out = tmp_path / "peers.csv"
    result = run_script("--quick", "--workers", "1", "--algorithms", "sb3-ppo", "sb3-trpo-zoo",
                        "--runs-root", str(tmp_path / "runs"), "--out", str(out))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = {r["algorithm"]: r for r in read(out)}
    assert set(rows) == {"sb3-ppo", "sb3-trpo-zoo"}
    assert rows["sb3-ppo"]["preset"] == "sb3-defaults" and rows["sb3-trpo-zoo"]["preset"].startswith("zoo:CartPole-v1@")
    assert rows["sb3-trpo-zoo"]["num_envs"] == "2" and rows["sb3-trpo-zoo"]["num_steps"] == "512"
    run_dir = REPO / rows["sb3-ppo"]["run_dir"]
    config = json.loads((run_dir / peers.PEER_FILE).read_text())
    assert config["versions"]["stable_baselines3"] and config["steps"] == se.QUICK_BUDGET
    episodes = read(run_dir / "episodes.csv")
    assert list(episodes[0]) == list(EPISODE_COLUMNS)
    # one env: an episode ends at the sum of the lengths of the episodes so far
    ends = [int(e["env_steps"]) for e in episodes]
    assert ends == list(__import__("itertools").accumulate(int(e["episode_length"]) for e in episodes))
    assert int(rows["sb3-ppo"]["env_steps_run"]) >= se.QUICK_BUDGET > ends[-1] - 500


def test_a_kit_agent_at_another_preset_is_reported_apart(tmp_path):
    from rlkit.experiments.results import labelled_by_preset

    rows = [{"env": "CartPole-v1", "algorithm": "a2c", "preset": "classic"},
            {"env": "CartPole-v1", "algorithm": "a2c", "preset": "classic-tuned"},
            {"env": "InvertedPendulum-v5", "algorithm": "trpo", "preset": "mujoco"},
            {"env": "Reacher-v5", "algorithm": "acktr", "preset": "mujoco-checked"},
            {"env": "CartPole-v1", "algorithm": "sb3-ppo", "preset": "sb3-defaults"}]
    assert [r["algorithm"] for r in labelled_by_preset(rows)] == [
        "a2c", "a2c@classic-tuned", "trpo", "acktr@mujoco-checked", "sb3-ppo"]
    assert labelled_by_preset(labelled_by_preset(rows)) == labelled_by_preset(rows)  # labelling twice changes nothing
    result = run_script("--quick", "--algorithms", "a2c", "--preset", "a2c=nope", "--runs-root", str(tmp_path))
    assert result.returncode != 0 and "unknown preset 'nope'" in result.stderr and "classic-tuned" in result.stderr
