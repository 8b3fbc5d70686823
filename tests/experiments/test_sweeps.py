"""rlkit.experiments.sweeps on a sweep table written by hand (every number below is computed by hand from it),
the sweep panel of rlkit.widgets on it, and rlkit.experiments.report.write_sweep_table on a real (tiny) sweep grid."""
import csv
import dataclasses
import json
import math
import shutil

import numpy as np
import pytest

from support.grid import episodes, rows
from rlkit.experiments.registry import experiment
from rlkit.experiments.grid import run_grid
from rlkit.experiments.report import SWEEP_DIAGNOSTICS, sweep_rows, write_sweep_table
from rlkit.experiments.runs import RunError
from rlkit.experiments.sweeps import load_sweep, sweep_grid, sweep_point

NAN = math.nan
STEPS = (100, 200, 300)
# (delta, eta_max, seed) -> episode_return at env steps 100, 200, 300 (NaN: no episode finished yet)
RETURNS = {
    (1e-4, 0.1, 0): [NAN, 10, 20], (1e-4, 0.1, 1): [5, 15, 40],
    (1e-4, 0.5, 0): [1, 2, 3], (1e-4, 0.5, 1): [2, 4, 6],
    (1e-3, 0.1, 0): [50, 100, 200], (1e-3, 0.1, 1): [30, 90, 150],
    (1e-3, 0.5, 0): [NAN, NAN, 7], (1e-3, 0.5, 1): [9, 11, 13],
}


def kl(delta, eta_max, seed, k):
    """The diagnostic measured_kl: delta × (1 + seed) × (k + 1); NaN at one cell."""
    return NAN if (delta, eta_max, seed, k) == (1e-4, 0.1, 0, 0) else delta * (1 + seed) * (k + 1)


def write_sweep(directory, name="synthetic", skip=()):
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.csv"
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["env", "delta", "eta_max", "seed", "env_steps", "episode_return", "episodes", "measured_kl"])
        for (delta, eta_max, seed), returns in RETURNS.items():
            if (delta, eta_max) in skip:
                continue
            for k, (steps, value) in enumerate(zip(STEPS, returns)):
                cell = "" if math.isnan(value) else repr(float(value))
                diag = kl(delta, eta_max, seed, k)
                writer.writerow(["CartPole-v1", repr(delta), repr(eta_max), seed, steps, cell, k + seed,
                                 "" if math.isnan(diag) else repr(diag)])
    meta = {"experiment": name, "axes": {"delta": [1e-4, 1e-3], "eta_max": [0.1, 0.5]}, "algorithm": "acktr",
            "env": "CartPole-v1", "threshold": 15, "steps": 300, "seeds": [0, 1]}
    path.with_suffix(".json").write_text(json.dumps(meta), encoding="utf-8")
    return path


@pytest.fixture
def sweep(tmp_path):
    return load_sweep(write_sweep(tmp_path / "sweeps"))


def test_load_sweep_reads_columns_axes_and_meta(sweep, tmp_path):
    assert sweep.name == "synthetic"
    assert list(sweep.axes) == ["delta", "eta_max"]
    assert sweep.axes["delta"].tolist() == [1e-4, 1e-3] and sweep.axes["eta_max"].tolist() == [0.1, 0.5]
    assert sweep.seeds.tolist() == [0, 1] and sweep.diagnostics == ["measured_kl"]
    assert len(sweep.columns["seed"]) == 8 * 3 and np.isnan(sweep.columns["episode_return"]).sum() == 3
    assert sweep.meta["env"] == "CartPole-v1"
    by_name = load_sweep("synthetic", data_dir=tmp_path)  # NAME -> data_dir/sweeps/NAME.csv
    np.testing.assert_array_equal(by_name.columns["episode_return"], sweep.columns["episode_return"])
    with pytest.raises(RunError, match="python -m rlkit sweep nope"):
        load_sweep("nope", data_dir=tmp_path)


@pytest.mark.parametrize("delta, eta_max, point", [
    (1e-3, 0.1, (1e-3, 0.1)),
    (0.0009, 0.1, (1e-3, 0.1)),   # log10 distances 0.046 (1e-3) and 0.954 (1e-4)
    (3e-4, 0.1, (1e-4, 0.1)),     # log10 3e-4 = -3.523: 0.477 from 1e-4, 0.523 from 1e-3
    (3.3e-4, 0.1, (1e-3, 0.1)),   # -3.481: 0.519 from 1e-4, 0.481 from 1e-3
    (5e-4, 0.1, (1e-3, 0.1)),     # in log space (0.301 against 0.699), not linearly (5e-4 against 4e-4)
    (1e-4, 0.29, (1e-4, 0.1)),    # eta_max is linear: 0.19 against 0.21
    (1e-4, 0.31, (1e-4, 0.5)),
    (1e-6, 5.0, (1e-4, 0.5)),     # outside the grid: its corner
])
def test_sweep_point_picks_the_nearest_grid_point(sweep, delta, eta_max, point):
    data = sweep_point(sweep, delta=delta, eta_max=eta_max)
    assert data["point"] == {"delta": point[0], "eta_max": point[1]}
    assert data["asked"] == {"delta": delta, "eta_max": eta_max}
    np.testing.assert_array_equal(data["returns"], [RETURNS[(*point, seed)] for seed in (0, 1)])


@pytest.mark.parametrize("point, mean, std", [
    ((1e-4, 0.1), [5, 12.5, 30], [0, 2.5, 10]),
    ((1e-3, 0.5), [9, 11, 10], [0, 0, 3]),
    ((1e-3, 0.1), [40, 95, 175], [10, 5, 25]),
])
def test_sweep_point_mean_and_std_over_seeds_skip_missing_values(sweep, point, mean, std):
    data = sweep_point(sweep, delta=point[0], eta_max=point[1])
    hand = np.array([RETURNS[(*point, seed)] for seed in (0, 1)], dtype=float)
    assert data["mean"].tolist() == pytest.approx(mean) and data["std"].tolist() == pytest.approx(std)
    assert data["mean"].tolist() == pytest.approx(np.nanmean(hand, axis=0).tolist())
    assert data["std"].tolist() == pytest.approx(np.nanstd(hand, axis=0).tolist())
    assert data["env_steps"].tolist() == list(STEPS) and data["seeds"].tolist() == [0, 1]
    np.testing.assert_allclose(data["diagnostics"]["measured_kl"],
                               [[kl(*point, seed, k) for k in range(3)] for seed in (0, 1)], rtol=1e-12)


def test_sweep_point_refuses_missing_unknown_and_non_positive_values(sweep):
    with pytest.raises(ValueError, match="missing eta_max"):
        sweep_point(sweep, delta=1e-3)
    with pytest.raises(ValueError, match="unknown lr"):
        sweep_point(sweep, delta=1e-3, eta_max=0.1, lr=1.0)
    with pytest.raises(ValueError, match="delta must be > 0"):
        sweep_point(sweep, delta=0.0, eta_max=0.1)


def test_sweep_grid_final_return_is_the_mean_over_seeds_of_the_last_point(sweep):
    grid = sweep_grid(sweep)
    assert (grid["x"], grid["y"], grid["metric"]) == ("delta", "eta_max", "final_return")
    assert grid["x_values"].tolist() == [1e-4, 1e-3] and grid["y_values"].tolist() == [0.1, 0.5]
    # rows: eta_max 0.1, 0.5; columns: delta 1e-4, 1e-3
    np.testing.assert_allclose(grid["values"], [[(20 + 40) / 2, (200 + 150) / 2], [(3 + 6) / 2, (7 + 13) / 2]])


def test_sweep_grid_steps_to_threshold_is_the_median_over_seeds(sweep):
    # threshold 15: (1e-4, 0.1) seed 0 reaches it at 300 (20), seed 1 at 200 (15): median 250;
    # (1e-3, 0.1): both at 100; at eta_max 0.5 no seed ever reaches 15
    grid = sweep_grid(sweep, "steps_to_threshold", threshold=15)
    assert grid["values"].tolist() == [[250.0, 100.0], [math.inf, math.inf]]
    # threshold 30: (1e-4, 0.1) only seed 1 reaches it (at 300): the median of {inf, 300} is inf
    assert sweep_grid(sweep, "steps_to_threshold", threshold=30)["values"].tolist() == [[math.inf, 100.0],
                                                                                          [math.inf, math.inf]]
    with pytest.raises(ValueError, match="needs a threshold"):
        sweep_grid(sweep, "steps_to_threshold")


def test_sweep_grid_of_a_diagnostic_is_its_mean_over_the_run(sweep):
    values = sweep_grid(sweep, "measured_kl")["values"]
    # (1e-4, 0.1): seed 0 [nan, 2e-4, 3e-4], seed 1 [2e-4, 4e-4, 6e-4] -> 17e-4 / 5; elsewhere (1+2+3+2+4+6) δ / 6 = 3δ
    np.testing.assert_allclose(values, [[17e-4 / 5, 3e-3], [3e-4, 3e-3]], rtol=1e-12)
    with pytest.raises(ValueError, match="measured_kl"):
        sweep_grid(sweep, "nope")


def test_a_partial_sweep_leaves_holes_and_picks_the_nearest_point_that_exists(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path, skip={(1e-3, 0.5)}))
    values = sweep_grid(sweep)["values"]
    assert np.isnan(values[1, 1]) and values[0].tolist() == [30.0, 175.0] and values[1, 0] == 4.5
    # squared distances (log10 for delta, in units of the eta_max range 0.4 for eta_max):
    # (9e-4, 0.45) -> (1e-4, 0.5): 0.954² + 0.125² = 0.926; (1e-3, 0.1): 0.046² + 0.875² = 0.768; (1e-4, 0.1): 1.68
    assert sweep_point(sweep, delta=9e-4, eta_max=0.45)["point"] == {"delta": 1e-3, "eta_max": 0.1}
    # (5e-4, 0.45) -> (1e-4, 0.5): 0.699² + 0.125² = 0.504; (1e-3, 0.1): 0.301² + 0.875² = 0.856
    assert sweep_point(sweep, delta=5e-4, eta_max=0.45)["point"] == {"delta": 1e-4, "eta_max": 0.5}


# ----------------------------------------------------------------------------- the sweep panel


def test_sweep_panel_sliders_select_the_nearest_point(sweep):
    from rlkit.lessons.panels import sweep_panel

    panel = sweep_panel(sweep)
    assert set(panel.controls) == {"delta", "eta_max"}
    assert type(panel.controls["delta"]).__name__ == "FloatLogSlider"
    assert panel.data["point"] == {"delta": 1e-3, "eta_max": 0.5}  # the middle (upper) value of each axis
    assert panel.data["mean"].tolist() == pytest.approx([9, 11, 10])
    np.testing.assert_array_equal(panel.data["grid"]["values"], sweep_grid(sweep)["values"])
    panel.controls["delta"].value = 1e-4
    assert panel.data["point"] == {"delta": 1e-4, "eta_max": 0.5}
    assert panel.data["mean"].tolist() == pytest.approx([1.5, 3, 4.5])
    panel.controls["eta_max"].value = 0.1
    assert panel.data["point"] == {"delta": 1e-4, "eta_max": 0.1}
    assert panel.data["mean"].tolist() == pytest.approx([5, 12.5, 30])
    panel.controls["eta_max"].value = 0.35  # nearer 0.5
    assert panel.data["point"] == {"delta": 1e-4, "eta_max": 0.5}
    assert panel.output.outputs[0]["data"]["image/png"]  # redrawn


def test_sweep_panel_trains_live_with_the_sliders_values(sweep):
    from rlkit.lessons.panels import sweep_panel

    panel = sweep_panel(sweep, delta=1e-4, eta_max=0.1)
    result = panel.train_live(steps=600)  # the classic preset: 16 envs × 16 steps, three updates
    try:
        config = json.loads((result.run_dir / "config.json").read_text())
        assert (config["algorithm"], config["env"], config["seed"]) == ("acktr", "CartPole-v1", 0)
        assert (config["agent"]["delta"], config["agent"]["eta_max"]) == (1e-4, 0.1)
        assert result.env_steps >= 600
        live = panel.live
        assert live["values"] == {"delta": 1e-4, "eta_max": 0.1} and panel.data["live"] is live
        # the live curve: after each update with an episode so far, the mean return of the last 10 episodes
        ends, returns = episodes(result.run_dir)
        done = [int(e["update"]) for e in rows(result.run_dir / "episodes.csv")[1]]
        expected_steps, expected_returns = [], []
        for update in rows(result.run_dir / "updates.csv")[1]:
            so_far = [r for r, u in zip(returns, done) if u <= int(update["update"])]
            if so_far:
                expected_steps.append(int(update["env_steps"]))
                expected_returns.append(np.mean(so_far[-10:]))
        assert len(expected_steps) > 0
        assert live["env_steps"] == expected_steps and live["returns"] == pytest.approx(expected_returns)
    finally:
        shutil.rmtree(result.run_dir)


# ----------------------------------------------------------------------------- a sweep table from a real grid

SWEEP_STEPS = 480  # 40 points of 12 env steps; ~32 updates of ≤ 16 env steps each


@pytest.fixture(scope="module")
def sweep_grid_dir(tmp_path_factory):
    """The smoke points of acktr-delta-eta-max, trained for 480 env steps each (in this process)."""
    root = tmp_path_factory.mktemp("sweep")
    runs = [dataclasses.replace(run, steps=SWEEP_STEPS) for run in experiment("acktr-delta-eta-max").runs("smoke")]
    outcomes = run_grid(runs, root, progress=False, about={"experiment": "acktr-delta-eta-max", "scale": "smoke"})
    assert [o.action for o in outcomes] == ["trained"] * len(runs)
    return root, runs


def test_write_sweep_table_recomputed_from_the_runs_csvs(sweep_grid_dir, tmp_path):
    root, runs = sweep_grid_dir
    table = write_sweep_table(root, tmp_path / "t" / "table.csv", command="a command")
    header, data = rows(table)
    assert header == ["env", "delta", "eta_max", "seed", "env_steps", "episode_return", "episodes",
                      "measured_kl", "predicted_kl", "step_size", "step_size_capped", "entropy"]
    assert len(data) == len(runs) * 40
    for run in runs:
        overrides = dict(run.overrides)
        mine = [r for r in data if float(r["delta"]) == overrides["delta"] and float(r["eta_max"]) == overrides["eta_max"]]
        assert [int(r["env_steps"]) for r in mine] == [12 * k for k in range(1, 41)]
        assert {(r["env"], r["seed"]) for r in mine} == {("CartPole-v1", "0")}
        ends, returns = episodes(root / run.name)
        updates = rows(root / run.name / "updates.csv")[1]
        assert len(returns) >= 10
        previous = 0
        for r in mine:
            point = int(r["env_steps"])
            before = returns[ends <= point]
            assert int(r["episodes"]) == len(before)
            if len(before):
                assert float(r["episode_return"]) == pytest.approx(np.mean(before[-10:]), abs=5e-4)
            else:
                assert r["episode_return"] == ""
            inside = [float(u["measured_kl"]) for u in updates if previous < int(u["env_steps"]) <= point]
            if inside:
                assert float(r["measured_kl"]) == pytest.approx(np.mean(inside), rel=1e-4)
            else:
                assert r["measured_kl"] == ""
            previous = point
    meta = json.loads(table.with_suffix(".json").read_text())
    exp = experiment("acktr-delta-eta-max")
    assert meta["axes"] == {name: list(values) for name, values in exp.axes}
    assert (meta["experiment"], meta["scale"], meta["algorithm"], meta["env"], meta["steps"], meta["seeds"],
            meta["threshold"], meta["command"]) == ("acktr-delta-eta-max", "smoke", "acktr", "CartPole-v1",
                                                    SWEEP_STEPS, [0], 475, "a command")
    assert set(meta["columns"]) == {"episode_return", "episodes", *SWEEP_DIAGNOSTICS["acktr"]}
    # what the notebooks read back
    loaded = load_sweep(table)
    first = dict(runs[0].overrides)
    data0 = sweep_point(loaded, delta=first["delta"], eta_max=first["eta_max"])
    assert data0["point"] == {"delta": first["delta"], "eta_max": first["eta_max"]}
    assert data0["env_steps"].tolist() == [12 * k for k in range(1, 41)]


def test_sweep_rows_refuse_an_unfinished_sweep_and_a_grid_that_is_no_sweep(sweep_grid_dir, tmp_path):
    root, runs = sweep_grid_dir
    shutil.copytree(root, tmp_path / "grid")
    shutil.rmtree(tmp_path / "grid" / runs[1].name)
    with pytest.raises(RunError, match="no results: the sweep is not finished"):
        sweep_rows(tmp_path / "grid")
    about = json.loads((tmp_path / "grid" / "grid.json").read_text())
    (tmp_path / "grid" / "grid.json").write_text(json.dumps({**about, "experiment": "acktr-figure5ab"}))
    with pytest.raises(RunError, match="not a sweep"):
        sweep_rows(tmp_path / "grid")
