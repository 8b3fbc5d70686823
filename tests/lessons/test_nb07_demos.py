"""rlkit.lessons.nb07_acktr_runs.demos (notebook 07): every number checked against a hand computation on small
made-up files, and the figure of the notebook's own run drawn from a made-up log."""
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from rlkit.experiments import results
from rlkit.lessons.nb07_acktr_runs import demos
from rlkit.kfac import KFAC
from rlkit.experiments.runs import write_csv
from rlkit.experiments.sweeps import load_sweep


# ----------------------------------------------------------------------------- made-up files


def make_run(path, episodes=(), updates=(), delta=0.002):
    """A run directory with config.json (only δ), episodes.csv [(env_steps, return)] and updates.csv (dicts)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps({"rlkit_run": 1, "algorithm": "acktr", "agent": {"delta": delta}}), encoding="utf-8")
    write_csv(path / "episodes.csv", ["env_steps", "wall_time_s", "episode_return", "episode_length", "update"],
              [{"env_steps": s, "wall_time_s": 0.0, "episode_return": r, "episode_length": 1, "update": 1}
               for s, r in episodes])
    if updates:
        write_csv(path / "updates.csv", list(updates[0]), list(updates))
    return path


def make_sweep(tmp_path, curves, steps=(25, 50, 75, 100)):
    """A two-axis sweep table: ``curves[(delta, eta_max)] = [returns per seed]`` (each a list over ``steps``)."""
    rows = []
    for (delta, eta_max), per_seed in curves.items():
        for seed, returns in enumerate(per_seed):
            for s, r in zip(steps, returns):
                rows.append({"env": "CartPole-v1", "delta": delta, "eta_max": eta_max, "seed": seed, "env_steps": s,
                             "episode_return": "" if r is None else r, "episodes": 1, "measured_kl": delta,
                             "step_size_capped": 0.0})
    path = tmp_path / "toy-sweep.csv"
    write_csv(path, list(rows[0]), rows)
    axes = {"delta": sorted({d for d, _ in curves}), "eta_max": sorted({e for _, e in curves})}
    path.with_suffix(".json").write_text(json.dumps({"axes": axes, "algorithm": "acktr", "env": "CartPole-v1"}),
                                         encoding="utf-8")
    return load_sweep(path)


# ----------------------------------------------------------------------------- run directories


def test_steps_to_threshold_uses_the_papers_window_rule(tmp_path):
    """rlkit.experiments.report's threshold rule, which the notebook's own loop writes out (and the benchmark uses)."""
    from rlkit.experiments.report import run_final_return as final_return
    from rlkit.experiments.report import run_steps_to_threshold as steps_to_threshold
    from rlkit.experiments.runs import read_episodes

    # windows of 2: (10, 30) → 20, (30, 50) → 40 ≥ 35: N = 2, steps when episode N + 1 = 3 ended
    run = make_run(tmp_path / "r", episodes=[(100, 10), (200, 30), (300, 50), (400, 0)])
    assert steps_to_threshold(run, 35, window=2) == 300
    assert steps_to_threshold(run, 60, window=2) is None
    assert steps_to_threshold(run, 0, window=10) is None  # fewer episodes than a window
    assert final_return(run, window=3) == pytest.approx((30 + 50 + 0) / 3)
    steps, returns = read_episodes(run)
    assert steps.tolist() == [100, 200, 300, 400] and returns.tolist() == [10, 30, 50, 0]
    assert math.isnan(final_return(make_run(tmp_path / "empty")))


def test_rolling_median_is_a_trailing_window():
    values = np.array([5.0, 1.0, 3.0, np.nan, 10.0])
    assert demos.rolling_median(values, 3).tolist() == [5.0, 3.0, 3.0, 2.0, 6.5]
    assert demos.rolling_median(values, 1)[:3].tolist() == [5.0, 1.0, 3.0]
    with pytest.raises(ValueError):
        demos.rolling_median(values, 0)


def test_plot_training_draws_the_four_panels():
    """The figure of the notebook's own run: returns, KL, step size with the capped updates marked, entropy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rlkit.rollout import Episode

    log = {"env_steps": [256, 512, 768], "measured_kl": [0.004, 0.003, 0.001], "predicted_kl": [0.002, 0.002, 0.0005],
           "step_size": [0.1, 0.2, 0.25], "eta_max": [0.25] * 3, "entropy": [0.69, 0.6, 0.5]}
    episodes = [Episode(0, float(10 * k), 10, 30 * k) for k in range(1, 13)]
    fig = demos.plot_training(log, episodes, delta=0.002, threshold=475, title="one run")
    assert len(fig.axes) == 4
    returns_axis, kl_axis, eta_axis, _ = fig.axes
    assert len(returns_axis.lines) == 3  # every episode, the mean of the last 10, the threshold
    capped = eta_axis.lines[1]
    assert capped.get_xdata().tolist() == [768.0]  # only the update with η = η_max
    assert kl_axis.get_yscale() == "log"
    plt.close(fig)


# ----------------------------------------------------------------------------- the sweep


def test_sweep_late_returns_by_hand(tmp_path):
    sweep = make_sweep(tmp_path, {
        (0.001, 0.1): [[10, 20, 480, 500], [10, 470, 490, 300]],
        (0.01, 0.1): [[10, None, 100, 200], [10, 20, 30, 40]],
        (0.001, 1.0): [[500, 500, 500, 500], [0, 0, 0, 0]],
        # (0.01, 1.0) not swept: a partial grid
    })
    # late points: env steps > 0.5 × 100, i.e. 75 and 100
    mean = demos.sweep_late_returns(sweep, "mean")
    assert mean["x"] == "delta" and mean["y"] == "eta_max"
    assert mean["values"][0, 0] == pytest.approx(((480 + 500) / 2 + (490 + 300) / 2) / 2)
    assert mean["values"][0, 1] == pytest.approx(((100 + 200) / 2 + (30 + 40) / 2) / 2)
    assert mean["values"][1, 0] == pytest.approx(250)
    assert math.isnan(mean["values"][1, 1])
    low = demos.sweep_late_returns(sweep, "min")
    assert low["values"][0, 0] == pytest.approx((480 + 300) / 2)
    held = demos.sweep_late_returns(sweep, "held", threshold=475)
    assert held["values"][0, 0] == pytest.approx((1.0 + 0.5) / 2) and held["values"][1, 0] == pytest.approx(0.5)
    assert held["metric"] == "late_held"
    with pytest.raises(ValueError):
        demos.sweep_late_returns(sweep, "held")
    with pytest.raises(ValueError):
        demos.sweep_late_returns(sweep, "median")


def test_format_grid_marks_never_and_missing():
    grid = {"x": "delta", "y": "eta_max", "x_values": np.array([0.001, 0.01]), "y_values": np.array([0.25]),
            "values": np.array([[math.inf, math.nan]])}
    lines = demos.format_grid(grid).splitlines()
    assert lines[0].split() == ["eta_max", "/", "delta", "0.001", "0.01"]
    assert lines[1].split() == ["0.25", "never", "—"]
    grid["values"] = np.array([[12345.0, 0.5]])
    assert demos.format_grid(grid, "{:.1f}").splitlines()[1].split() == ["0.25", "12345.0", "0.5"]


# ----------------------------------------------------------------------------- K-FAC sizes


def test_kfac_layer_sizes_count_the_factors_and_the_dense_block():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2, bias=False))
    kfac = KFAC(model)
    rows = demos.kfac_layer_sizes(kfac)
    assert [(r["a_dim"], r["s_dim"]) for r in rows] == [(4, 4), (4, 2)]  # 3 inputs + bias; no bias
    for r, layer in zip(rows, kfac.layers.values()):
        assert r["a_entries"] == r["a_dim"] ** 2 and r["s_entries"] == r["s_dim"] ** 2
        n_params = sum(p.numel() for p in layer.parameters)
        assert r["block_entries"] == n_params ** 2
    conv = KFAC(nn.Sequential(nn.Conv2d(4, 32, 8, stride=4)))
    (row,) = demos.kfac_layer_sizes(conv)
    assert (row["kind"], row["a_dim"], row["s_dim"]) == ("conv2d", 8 * 8 * 4 + 1, 32)  # the Nature CNN's first layer


# ----------------------------------------------------------------------------- reproductions and benchmarks


def write_reproduction(data_dir, name, rows, runs=None, scale="laptop"):
    folder = data_dir / "reproductions" / name
    folder.mkdir(parents=True)
    write_csv(folder / "rows.csv", list(rows[0]), rows)
    runs = runs or [{"run": "x", "seed": 0}]
    write_csv(folder / "runs.csv", list(runs[0]), runs)
    (folder / "report.md").write_text(f"# Title\n\nSource: x. Scale: **{scale}**.\n", encoding="utf-8")
    (folder / "learning_curves.png").write_bytes(b"\x89PNG")
    return folder


def test_load_reproduction_reads_the_four_files(tmp_path):
    write_reproduction(tmp_path, "acktr-table2-laptop",
                       [{"env": "IP", "variant": "acktr", "seeds": 3, "reached": 2, "episodes_to_threshold_mean": ""}])
    repro = results.load_reproduction("acktr-table2-laptop", data_dir=tmp_path)
    assert repro.scale == "laptop"
    (row,) = repro.rows
    assert row["variant"] == "acktr" and row["seeds"] == 3.0 and math.isnan(row["episodes_to_threshold_mean"])
    assert repro.figure.name == "learning_curves.png" and repro.runs[0]["run"] == "x"
    (tmp_path / "reproductions" / "acktr-table2-laptop" / "runs.csv").unlink()
    with pytest.raises(FileNotFoundError, match="runs.csv"):
        results.load_reproduction("acktr-table2-laptop", data_dir=tmp_path)


BENCH = [
    {"env": "IP", "algorithm": "acktr", "episodes_to_threshold": 100.0, "env_steps_to_threshold": 1000.0},
    {"env": "IP", "algorithm": "acktr", "episodes_to_threshold": 200.0, "env_steps_to_threshold": 3000.0},
    {"env": "IP", "algorithm": "acktr", "episodes_to_threshold": 300.0, "env_steps_to_threshold": 2000.0},
    {"env": "IP", "algorithm": "a2c", "episodes_to_threshold": 500.0, "env_steps_to_threshold": 9000.0},
    {"env": "IP", "algorithm": "a2c", "episodes_to_threshold": 400.0, "env_steps_to_threshold": 8000.0},
    {"env": "IP", "algorithm": "a2c", "episodes_to_threshold": math.nan, "env_steps_to_threshold": math.nan},
    {"env": "IP", "algorithm": "trpo", "episodes_to_threshold": math.nan, "env_steps_to_threshold": math.nan},
    {"env": "IP", "algorithm": "trpo", "episodes_to_threshold": math.nan, "env_steps_to_threshold": math.nan},
    {"env": "IP", "algorithm": "trpo", "episodes_to_threshold": 50.0, "env_steps_to_threshold": 500.0},
]


def test_sample_efficiency_ratio_uses_medians_and_counts_censored_runs_as_infinite():
    # a2c episodes: 500, 400, never → median 500; acktr: median 200
    assert results.sample_efficiency_ratio(BENCH, "IP") == pytest.approx(500 / 200)
    assert results.sample_efficiency_ratio(BENCH, "IP", unit="steps") == pytest.approx(9000 / 2000)
    assert results.sample_efficiency_ratio(BENCH, "IP", numerator="trpo") == math.inf  # 2 of 3 never reached
    with pytest.raises(ValueError):
        results.sample_efficiency_ratio(BENCH, "Hopper")


def test_the_committed_benchmark_gives_the_notebooks_ratios():
    """The ratios the notebooks print, against the committed CSV read with the csv module (censored runs at
    infinity) and against the ratios the benchmark script itself printed into sample_efficiency.txt."""
    import csv
    import re
    import statistics

    from rlkit.experiments.data import data_dir

    rows = results.benchmark_rows("sample_efficiency")
    with open(data_dir() / "benchmarks" / "sample_efficiency.csv", newline="") as f:
        raw = list(csv.DictReader(f))
    printed = (data_dir() / "benchmarks" / "sample_efficiency.txt").read_text(encoding="utf-8")
    # the per-env A2C/ACKTR env-step ratio as the script prints it: one claim line per env, "CartPole-v1: ACKTR
    # needs fewer env steps than A2C: A2C/ACKTR 5.22 [...]" (or, in its earlier format, one summary line)
    printed_steps = dict(re.findall(r"^([A-Za-z]+-v\d): ACKTR needs fewer env steps than A2C: A2C/ACKTR (>?[\d.]+)",
                                    printed, flags=re.MULTILINE))
    if not printed_steps:
        summary = printed.split("A2C/ACKTR env steps:")[1].split("\n")[0]
        printed_steps = dict(re.findall(r"([A-Za-z]+-v\d) (>?[\d.]+)", summary))

    def median(env, algorithm, column):
        return statistics.median(float(r[column]) if r["status"] == "reached" else math.inf
                                 for r in raw if (r["env"], r["algorithm"]) == (env, algorithm))

    for env in ("CartPole-v1", "InvertedPendulum-v5", "Reacher-v5"):
        for unit, column in (("steps", "env_steps_to_threshold"), ("episodes", "episodes_to_threshold")):
            expected = median(env, "a2c", column) / median(env, "acktr", column)
            assert results.sample_efficiency_ratio(rows, env, unit=unit) == pytest.approx(expected)
        if not printed_steps[env].startswith(">"):
            assert results.sample_efficiency_ratio(rows, env, unit="steps") == pytest.approx(float(printed_steps[env]),
                                                                                         abs=0.005)


def test_table2_comparison(tmp_path):
    write_reproduction(tmp_path, "t2", [
        {"env": "IP", "variant": "acktr", "seeds": 3, "env_steps": 100, "reached": 3, "final_return_mean": 990,
         "final_return_std": 5, "episodes_to_threshold_mean": 210, "steps_to_threshold_mean": 2100},
        {"env": "IP", "variant": "a2c", "seeds": 3, "env_steps": 100, "reached": 0, "final_return_mean": 300,
         "final_return_std": 50, "episodes_to_threshold_mean": "", "steps_to_threshold_mean": ""},
    ])
    paper = {"gym_id": ["IP"], "acktr_episodes_to_threshold": np.array([10.0]),
             "a2c_episodes_to_threshold": np.array([20.0]), "trpo_episodes_to_threshold": np.array([40.0])}
    rows = demos.table2_comparison(results.load_reproduction("t2", tmp_path), BENCH, paper, env="IP")
    acktr, a2c, trpo = rows
    assert [r["algorithm"] for r in rows] == ["acktr", "a2c", "trpo"]
    assert (acktr["paper_ratio"], a2c["paper_ratio"], trpo["paper_ratio"]) == (1.0, 2.0, 4.0)
    assert a2c["bench_ratio"] == pytest.approx(2.5) and trpo["bench_episodes"] == math.inf
    assert acktr["repro_reached"] == 3 and acktr["repro_episodes"] == 210
    assert math.isnan(a2c["repro_episodes"]) and math.isnan(trpo["repro_final_return"])  # no TRPO row


def test_table3_comparison_is_a2c_over_acktr_steps_per_second(tmp_path):
    write_reproduction(tmp_path, "t3", [
        {"env": "Pong", "variant": "acktr-b80", "algorithm": "acktr", "batch_size": 80, "domain": "Atari",
         "seeds": 1, "steps_per_second_mean": 50.0},
        {"env": "Pong", "variant": "a2c-b80", "algorithm": "a2c", "batch_size": 80, "domain": "Atari",
         "seeds": 1, "steps_per_second_mean": 200.0},
    ])
    paper = {"algorithm": ["acktr", "a2c", "acktr", "a2c"], "domain": ["Atari", "Atari", "MuJoCo", "MuJoCo"],
             "batch_size": np.array([80.0, 80.0, 1000.0, 1000.0]),
             "timesteps_per_second": np.array([700.0, 1050.0, 500.0, 600.0])}
    bench = [{"algorithm": "acktr", "domain": "MuJoCo", "batch_size": 1000.0, "timesteps_per_second": 400.0},
             {"algorithm": "a2c", "domain": "MuJoCo", "batch_size": 1000.0, "timesteps_per_second": 440.0}]
    rows = {(r["domain"], r["batch_size"]): r
            for r in demos.table3_comparison(results.load_reproduction("t3", tmp_path), bench, paper)}
    assert set(rows) == {("Atari", 80), ("MuJoCo", 1000)}
    atari, mujoco = rows[("Atari", 80)], rows[("MuJoCo", 1000)]
    assert atari["paper_ratio"] == pytest.approx(1.5) and atari["repro_ratio"] == pytest.approx(4.0)
    assert math.isnan(atari["bench_ratio"]) and math.isnan(mujoco["repro_acktr"])
    assert mujoco["paper_ratio"] == pytest.approx(1.2) and mujoco["bench_ratio"] == pytest.approx(1.1)


def test_steps_to_threshold_table_counts_censored_runs_above_their_budget():
    from rlkit.lessons.nb07_acktr_runs.demos import steps_to_threshold_table

    def row(algorithm, steps, preset="classic", budget=100.0):
        return {"env": "E", "algorithm": algorithm, "preset": preset, "budget": budget,
                "env_steps_to_threshold": steps, "episodes_in_budget": 5.0}

    rows = [row("a", 10.0), row("a", 20.0), row("a", float("nan")), row("b", float("nan"), "zoo"),
            row("b", float("nan"), "zoo"), row("b", 30.0, "zoo"), row("a", 1.0) | {"env": "F"}]
    a, b = steps_to_threshold_table(rows, "E", ["a", "b", "c"])
    assert (a["seeds"], a["reached"], a["preset"], a["median"].value) == (3, 2, "classic", 20.0)
    assert (b["seeds"], b["reached"], b["preset"]) == (3, 1, "zoo")
    assert b["median"].value == 100.0 and b["median"].ci_high == float("inf")  # two of three censored: '>100'
