"""rlkit.experiments.grid on the local backend, rlkit.experiments.registry' grids, and the threshold rule of rlkit.experiments.report.

Every grid here is smoke-sized (a few updates of 16 env steps on CartPole), except the runs that a
worker kill interrupts: those need a checkpoint before their end, so they use a batch of 25,600 env
steps (a grid checkpoints about every 50,000 env steps) and three updates.
"""
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from support.grid import (BIG_BATCH, TINY, assert_same_results, big_run, expected_names, rows, snapshot,
                          tiny_run, tree_hashes)
from rlkit.experiments.registry import EXPERIMENTS, SCALES, experiment
from rlkit.experiments.grid import (CHECKPOINT_EVERY_STEPS, GRID_FILE, GridRun, KillWorker, _checkpoint_every,
                        read_grid_file, run_grid, run_status, summarize_outcomes, write_grid_file)
from rlkit.experiments.report import summarize_run, threshold_crossing
from rlkit.experiments.runs import RunError
from rlkit.experiments.sweeps import LOG_AXES, steps_to_threshold
from rlkit.experiments.train import train


# ----------------------------------------------------------------------------- the threshold rule


@pytest.mark.parametrize("returns, threshold, window, expected", [
    ([1, 5, 2, 7], 5, 1, 2),               # window 1: the first episode at or above the threshold
    ([1, 5, 2, 7], 6, 1, 4),
    ([1, 5, 2, 7], 7.5, 1, None),          # never reached
    ([0, 3, 6, 9, 0, 12, 12], 6, 3, 2),    # window means 3, 6, 5, 7, 8: equality counts
    ([0, 3, 6, 9, 0, 12, 12], 6.5, 3, 4),
    ([0, 3, 6, 9, 0, 12, 12], 8, 3, 5),
    ([0, 3, 6, 9, 0, 12, 12], 8.1, 3, None),
    ([10, 10], 0, 3, None),                # fewer episodes than the window: no full window
    ([], 0, 1, None),
    ([-5, -1, -3], -3, 3, 1),              # mean -3 of the only full window
])
def test_threshold_crossing_against_hand_computed_windows(returns, threshold, window, expected):
    assert threshold_crossing(returns, threshold, window) == expected


def test_threshold_crossing_refuses_an_empty_window():
    with pytest.raises(ValueError, match="window"):
        threshold_crossing([1.0, 2.0], 1.0, 0)


def test_summarize_run_on_hand_written_logs(tmp_path):
    """final return, episodes and env steps to threshold and steps/s of a run directory written by hand."""
    run = GridRun("acktr", "CartPole-v1", 0, 80, "r")
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    returns = [0, 3, 6, 9, 0, 12, 12]
    (run_dir / "episodes.csv").write_text("env_steps,wall_time_s,episode_return,episode_length,update\n" + "".join(
        f"{10 * (i + 1)},{i},{r},5,{i + 1}\n" for i, r in enumerate(returns)))
    (run_dir / "updates.csv").write_text("update,env_steps,wall_time_s\n1,40,2.0\n2,80,4.0\n")
    summary = summarize_run(run, tmp_path, threshold=6.5, window=3)
    assert summary.episodes == 7 and summary.env_steps == 80 and summary.wall_time_s == 4.0
    assert summary.final_return == pytest.approx((0 + 12 + 12) / 3)
    assert summary.episodes_to_threshold == 4                   # episodes 4, 5, 6: (9 + 0 + 12) / 3 = 7
    assert summary.steps_to_threshold == 60                     # episode 6 ended at 60 env steps
    assert summary.steps_per_second == pytest.approx(20.0)
    never = summarize_run(run, tmp_path, threshold=100, window=3)
    assert never.episodes_to_threshold is None and never.steps_to_threshold is None


@pytest.mark.parametrize("returns, threshold, expected", [
    ([math.nan, 3, 7, 5], 5, 300),
    ([math.nan, 3, 7, 5], 7, 300),
    ([math.nan, 3, 7, 5], 7.5, math.inf),
    ([math.nan, 3, 7, 5], -1e9, 200),   # a point without an episode yet (NaN) never counts as reached
    ([8, 3, 7, 5], 5, 100),
])
def test_sweeps_steps_to_threshold_is_the_first_curve_point_reaching_it(returns, threshold, expected):
    assert steps_to_threshold(np.array([100, 200, 300, 400.0]), np.array(returns, dtype=float), threshold) == expected


# ----------------------------------------------------------------------------- experiments' grids


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_every_scale_of_every_experiment_has_distinct_run_names(name):
    exp = EXPERIMENTS[name]
    for scale in exp.scales:
        runs = exp.runs(scale)
        names = [run.name for run in runs]
        assert len(set(names)) == len(names) > 0
        for run in runs:
            env, label, seed = run.name.split("/")
            assert env == run.env.replace("/", "_") and seed == f"s{run.seed}"
            assert exp.variant_of(label).algorithm == run.algorithm
            assert dict(run.overrides) == dict(sorted(dict(run.overrides).items()))


@pytest.mark.parametrize("name, scale, count", [
    # the smoke scales and the papers' grids, counted by hand (the laptop scales are tuned to the machine)
    ("acktr-table1", "smoke", 3), ("acktr-table1", "paper", 6 * 3 * 2),
    ("acktr-table2", "smoke", 3), ("acktr-table2", "paper", 8 * 3 * 8),
    # Table 3: the Atari variants (3 algorithms × 3 batches) on Pong, the MuJoCo ones on InvertedPendulum
    ("acktr-table3", "smoke", 4), ("acktr-table3", "paper", (9 + 9) * 3),
    ("acktr-figure5ab", "smoke", 3), ("acktr-figure5ab", "paper", 2 * 3 * 3),  # 2 envs × (2 critics + A2C) × 3 seeds
    ("acktr-figure5cd", "smoke", 2), ("acktr-figure5cd", "paper", 6 * 2),
    ("vmpo-vs-acktr", "smoke", 2 * 2), ("vmpo-vs-acktr", "paper", (6 + 8) * 2 * 3),
    ("acktr-delta-eta-max", "smoke", 2), ("vmpo-eps-eta-eps-alpha", "smoke", 2),
])
def test_grid_sizes_counted_by_hand(name, scale, count):
    exp = experiment(name)
    assert len(exp.runs(scale)) == count
    assert len(exp.runs(scale, seeds=3)) == count // exp.scales[scale].seeds * 3
    assert {run.seed for run in exp.runs(scale, seeds=3)} == {0, 1, 2}


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_grids_are_envs_times_variants_of_their_family_times_seeds(name):
    exp = experiment(name)
    for scale in exp.scales:
        for seeds in (None, 2):
            runs = exp.runs(scale, seeds)
            assert len(runs) == len(expected_names(exp, scale, seeds))
            assert {run.name for run in runs} == expected_names(exp, scale, seeds)
            steps = dict(exp.scales[scale].envs)
            assert all(run.steps == steps[run.env] for run in runs)


@pytest.mark.parametrize("name", ["acktr-delta-eta-max", "vmpo-eps-eta-eps-alpha"])
def test_a_sweep_grid_is_the_product_of_its_axes(name):
    exp = experiment(name)
    (x, xs), (y, ys) = exp.axes
    runs = exp.runs("laptop")
    assert len(runs) == len(xs) * len(ys) * exp.scales["laptop"].seeds
    points = {(dict(r.overrides)[x], dict(r.overrides)[y]) for r in runs}
    assert points == {(a, b) for a in xs for b in ys}
    for axis, values in exp.axes:
        if axis in LOG_AXES:  # log axes on half-decades (a FloatLogSlider with step 0.5)
            assert np.allclose(np.diff(np.log10(values)), 0.5)


def test_table3_runs_each_batch_on_its_own_family():
    runs = experiment("acktr-table3").runs("laptop")
    for run in runs:
        label = run.name.split("/")[1]
        batch = int(label.split("-b")[1])
        if run.env == "ALE/Pong-v5":
            assert batch in (80, 160, 640)
        else:
            assert run.env == "InvertedPendulum-v5" and batch in (1000, 2500, 25000)
        overrides = dict(run.overrides)
        assert overrides["num_envs"] * overrides["num_steps"] == batch


def test_smoke_overrides_win_over_the_variants_own():
    cd = {run.name: dict(run.overrides) for run in experiment("acktr-figure5cd").runs("smoke")}
    assert cd == {"CartPole-v1/acktr-b64/s0": {"num_envs": 2, "num_steps": 8},
                  "CartPole-v1/a2c-b64/s0": {"num_envs": 2, "num_steps": 8}}
    laptop = {run.name: dict(run.overrides) for run in experiment("acktr-figure5cd").runs("laptop")}
    assert laptop["CartPole-v1/acktr-b64/s0"] == {"num_envs": 4, "num_steps": 16}
    t3 = {run.name: dict(run.overrides) for run in experiment("acktr-table3").runs("smoke")}
    assert t3["ALE_Pong-v5/acktr-b640/s0"] == {"num_envs": 2, "num_steps": 8}
    assert t3["InvertedPendulum-v5/a2c-b2500/s0"] == {"num_envs": 2, "num_steps": 8}
    # what the smoke scale does not override stays the variant's
    ab = {run.name: dict(run.overrides) for run in experiment("acktr-figure5ab").runs("smoke")}
    assert ab["CartPole-v1/first-order-critic/s0"] == {"critic_optimizer": "adam", "num_envs": 2, "num_steps": 8}
    sweep = {run.name: dict(run.overrides) for run in experiment("acktr-delta-eta-max").runs("smoke")}
    assert sweep["CartPole-v1/delta=0.0001,eta_max=0.05/s0"] == {"delta": 1e-4, "eta_max": 0.05, "num_envs": 2,
                                                                 "num_steps": 8}


@pytest.mark.parametrize("seeds", [0, -1, 1.5, True, "2"])
def test_seeds_below_one_or_not_an_integer_are_refused(seeds):
    with pytest.raises(RunError, match="seeds"):
        experiment("acktr-figure5ab").runs("smoke", seeds)


def test_unknown_experiment_and_scale_list_the_valid_names():
    with pytest.raises(RunError, match="nope") as error:
        experiment("nope")
    for name in EXPERIMENTS:
        assert name in str(error.value)
    with pytest.raises(RunError, match="'huge'") as error:
        experiment("acktr-table1").runs("huge")
    assert ", ".join(SCALES) in str(error.value)
    with pytest.raises(RunError, match="'paper'") as error:
        experiment("acktr-delta-eta-max").runs("paper")
    assert "smoke, laptop" in str(error.value)


# ----------------------------------------------------------------------------- a tiny grid, twice


def tiny_grid():
    return [tiny_run(algorithm, seed) for algorithm in ("acktr", "a2c") for seed in (0, 1)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny grid (acktr and a2c, 2 seeds, 64 env steps = 4 updates each) run by 2 local workers."""
    root = tmp_path_factory.mktemp("tiny")
    seen = []
    outcomes = run_grid(tiny_grid(), root, workers=2, progress=False, about={"experiment": "none", "scale": "tiny"},
                        command="a command", on_outcome=seen.append)
    return root, outcomes, seen


def test_a_tiny_grid_trains_every_run_in_its_own_run_directory(tiny):
    root, outcomes, seen = tiny
    assert [o.run for o in outcomes] == tiny_grid()
    assert [o.action for o in outcomes] == ["trained"] * 4, [o.error for o in outcomes]
    assert sorted(o.run.name for o in seen) == sorted(r.name for r in tiny_grid())  # on_outcome: each once
    assert summarize_outcomes(outcomes) == "4 trained"
    for run in tiny_grid():
        config = json.loads((root / run.name / "config.json").read_text())
        assert (config["algorithm"], config["env"], config["seed"], config["steps"]) == (run.algorithm, run.env,
                                                                                         run.seed, 64)
        assert (config["agent"]["num_envs"], config["agent"]["num_steps"]) == (2, 8)
        # env steps count transitions: an autoreset step of a sub-env is none, so an update has at most 16
        updates = rows(root / run.name / "updates.csv")[1]
        steps = [int(u["env_steps"]) for u in updates]
        assert [int(u["update"]) for u in updates] == list(range(1, len(updates) + 1))
        assert all(0 < b - a <= 16 for a, b in zip([0] + steps, steps))
        assert steps[-1] >= 64 > steps[-2]  # trained until the target, not beyond
        outcome = next(o for o in outcomes if o.run == run)
        assert outcome.env_steps == steps[-1] and run_status(run, root) == ("finished", steps[-1])
    about, runs = read_grid_file(root)
    assert runs == tiny_grid()
    assert about == {"experiment": "none", "scale": "tiny", "command": "a command"}
    # the seeds differ: not the same run four times
    assert rows(root / "CartPole-v1/acktr/s0/episodes.csv")[1] != rows(root / "CartPole-v1/acktr/s1/episodes.csv")[1]


def test_running_a_finished_grid_again_skips_every_run_and_changes_no_byte(tiny):
    root, _, _ = tiny
    before = tree_hashes(root)
    assert any(path.endswith("episodes.csv") for path in before)
    outcomes = run_grid(tiny_grid(), root, progress=False, about={"experiment": "none", "scale": "tiny"},
                        command="a command")
    assert [o.action for o in outcomes] == ["skipped"] * 4
    assert [o.env_steps for o in outcomes] == [final_env_steps(root / run.name) for run in tiny_grid()]
    assert tree_hashes(root) == before


def test_a_half_finished_run_resumes_and_equals_the_uninterrupted_one(tiny, tmp_path):
    """The same run declared with 32 steps, then 64: the second grid resumes it from its checkpoint at 32."""
    root, _, _ = tiny
    short = tiny_run("acktr", 0, steps=32)
    assert run_grid([short], tmp_path, progress=False)[0].action == "trained"
    partial = final_env_steps(tmp_path / short.name)
    assert 32 <= partial < 64 and run_status(tiny_run("acktr", 0, steps=64), tmp_path) == ("partial", partial)
    outcome, = run_grid([tiny_run("acktr", 0, steps=64)], tmp_path, progress=False)
    assert (outcome.action, outcome.env_steps) == ("resumed", final_env_steps(root / short.name))
    assert_same_results(tmp_path / short.name, root / short.name)


def test_a_run_killed_before_its_first_checkpoint_is_trained_again(tiny, tmp_path):
    root, _, _ = tiny
    run = tiny_run("a2c", 1)
    shutil.copytree(root / run.name, tmp_path / run.name)
    shutil.rmtree(tmp_path / run.name / "checkpoints")  # config.json written, no checkpoint yet
    assert run_status(run, tmp_path) == ("absent", 0)
    outcome, = run_grid([run], tmp_path, progress=False)
    assert (outcome.action, outcome.env_steps) == ("trained", final_env_steps(root / run.name))
    assert_same_results(tmp_path / run.name, root / run.name)


def final_env_steps(run_dir):
    return int(rows(Path(run_dir) / "updates.csv")[1][-1]["env_steps"])


def test_run_status_of_an_absent_run(tmp_path):
    assert run_status(tiny_run(), tmp_path) == ("absent", 0)


# ----------------------------------------------------------------------------- a worker killed midway


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The big run and a tiny one, uninterrupted, in this process."""
    root = tmp_path_factory.mktemp("reference")
    outcomes = run_grid([big_run(), tiny_run("a2c", 0)], root, progress=False)
    assert [o.action for o in outcomes] == ["trained", "trained"], [o.error for o in outcomes]
    return root


def test_the_big_run_checkpoints_every_update():
    assert CHECKPOINT_EVERY_STEPS // BIG_BATCH == 1 and _checkpoint_every(big_run()) == 1
    assert _checkpoint_every(tiny_run()) == CHECKPOINT_EVERY_STEPS // 16


def test_a_killed_worker_without_retries_fails_its_run_and_the_next_grid_resumes_it(reference, tmp_path):
    run = big_run()
    marker = tmp_path / "killed"
    root = tmp_path / "grid"
    outcome, = run_grid([run], root, workers=2, retries=0, progress=False,
                        fault=KillWorker(run.name, after_updates=2, marker=str(marker)))
    assert outcome.failed and "retries=0" in outcome.error and "died" in outcome.error
    assert marker.read_text() == "killed after update 2\n"
    assert [int(u["update"]) for u in rows(root / run.name / "updates.csv")[1]] == [1, 2]
    assert run_status(run, root) == ("partial", final_env_steps(root / run.name))

    outcome, = run_grid([run], root, retries=0, progress=False)  # the same grid again (in this process)
    assert (outcome.action, outcome.env_steps) == ("resumed", final_env_steps(reference / run.name))
    assert_same_results(root / run.name, reference / run.name)


def test_a_killed_worker_is_retried_within_the_same_grid(reference, tmp_path):
    grid = [big_run(), tiny_run("a2c", 0)]
    marker = tmp_path / "killed"
    root = tmp_path / "grid"
    outcomes = run_grid(grid, root, workers=2, retries=1, progress=False,
                        fault=KillWorker(grid[0].name, after_updates=2, marker=str(marker)))
    assert marker.is_file()
    # killed right after its update-2 checkpoint: the retry resumes from there
    assert outcomes[0].action == "resumed", outcomes[0].error
    assert outcomes[0].env_steps == final_env_steps(reference / grid[0].name)
    assert outcomes[1].action in ("trained", "resumed"), outcomes[1].error
    for run in grid:
        assert run_status(run, root)[0] == "finished"
        assert_same_results(root / run.name, reference / run.name)


# ----------------------------------------------------------------------------- runs that must fail


def test_a_failing_run_is_reported_and_the_others_go_on(tmp_path):
    good, bad = tiny_run("acktr", 0, steps=16), tiny_run("acktr", 1, steps=16, extra=(("delta", -1),))
    outcomes = run_grid([bad, good], tmp_path, progress=False)
    assert outcomes[0].failed and "delta must be > 0" in outcomes[0].error
    assert not (tmp_path / bad.name).exists()
    assert outcomes[1].action == "trained" and run_status(good, tmp_path)[0] == "finished"


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished tiny run (acktr, seed 0, the classic preset's delta 0.002), in this process."""
    root = tmp_path_factory.mktemp("finished")
    outcome, = run_grid([tiny_run("acktr", 0, steps=16)], root, progress=False)
    assert outcome.action == "trained"
    return root


@pytest.mark.parametrize("declared, fragment", [
    (tiny_run("acktr", 1, steps=16, name="CartPole-v1/acktr/s0"), "seed 0 (grid: 1)"),
    (tiny_run("acktr", 0, steps=16, extra=(("delta", 0.01),)), "delta 0.002 (grid: 0.01)"),
    (tiny_run("a2c", 0, steps=16, name="CartPole-v1/acktr/s0"), "algorithm 'acktr' (grid: 'a2c')"),
    (GridRun("acktr", "CartPole-v1", 0, 16, "CartPole-v1/acktr/s0", TINY, preset="mujoco"), "preset 'classic' (grid: 'mujoco')"),
])
def test_a_run_directory_holding_another_run_is_refused_and_left_alone(finished, tmp_path, declared, fragment):
    root = tmp_path / "grid"
    shutil.copytree(finished, root)
    before = snapshot(root / declared.name)
    outcome, = run_grid([declared], root, progress=False)
    assert outcome.failed and fragment in outcome.error and "holds another run" in outcome.error
    assert snapshot(root / declared.name) == before


def test_a_run_directory_trained_with_other_defaults_is_refused(tmp_path):
    """The grid declares no delta (the preset's 0.002); the directory's run was trained with delta 0.01."""
    declared = tiny_run("acktr", 0, steps=16)
    train("acktr", "CartPole-v1", steps=16, seed=0, overrides={**dict(TINY), "delta": 0.01},
          run_dir=tmp_path / declared.name, progress=False)
    before = snapshot(tmp_path / declared.name)
    outcome, = run_grid([declared], tmp_path, progress=False)
    assert outcome.failed and "delta 0.01 (grid: 0.002)" in outcome.error
    assert snapshot(tmp_path / declared.name) == before


@pytest.mark.parametrize("kwargs, fragment", [
    ({"backend": "foo"}, "backend must be one of local, ray; got 'foo'"),
    ({"workers": 0}, "workers must be an integer >= 1"),
    ({"workers": 1.5}, "workers must be an integer >= 1"),
    ({"retries": -1}, "retries must be an integer >= 0"),
])
def test_invalid_arguments_are_refused_before_anything_is_written(tmp_path, kwargs, fragment):
    with pytest.raises(RunError) as error:
        run_grid([tiny_run()], tmp_path / "grid", progress=False, **kwargs)
    assert fragment in str(error.value)
    assert not (tmp_path / "grid").exists()


def test_repeated_run_names_are_refused(tmp_path):
    runs = [tiny_run("acktr", 0), tiny_run("acktr", 1, name="CartPole-v1/acktr/s0"), tiny_run("a2c", 0)]
    with pytest.raises(RunError, match="distinct; repeated: CartPole-v1/acktr/s0$"):
        run_grid(runs, tmp_path / "grid", progress=False)
    assert not (tmp_path / "grid").exists()


def test_read_grid_file_of_a_directory_without_one(tmp_path):
    with pytest.raises(RunError, match=GRID_FILE):
        read_grid_file(tmp_path)
    (tmp_path / GRID_FILE).write_text("{not json")
    with pytest.raises(RunError, match="not a valid grid file"):
        read_grid_file(tmp_path)


def test_grid_runs_round_trip_through_the_grid_file(tmp_path):
    runs = [GridRun("acktr", "ALE/Pong-v5", 3, 100, "a/b/s3", (("delta", 0.001), ("hidden_sizes", [8, 8])), "atari")]
    write_grid_file(Path(tmp_path), runs, {"experiment": "x"})
    about, back = read_grid_file(tmp_path)
    assert about == {"experiment": "x"} and back == runs
