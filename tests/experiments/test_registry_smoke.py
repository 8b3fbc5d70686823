"""The smoke scale of every experiment on the local backend (2 workers), then its report; and the
report's rows beside the papers' tables, on summaries written by hand."""
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from support.grid import episodes, expected_names, rows, run_dirs_with_config
from rlkit.experiments.registry import EXPERIMENTS, experiment
from rlkit.experiments.grid import GridRun, run_grid
from rlkit.experiments.report import RunSummary, _markdown, _returns_rows, _throughput_rows, report

pytestmark = pytest.mark.slow  # minutes: Ray start-up, every experiment's grid (the README's test command runs them)


WORKERS = 2  # a spawned pool per grid: ~3 s of imports per worker, about half this module's CPU time


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """{name: (root, outcomes)} of every experiment's smoke grid, each run by a local pool of 2 workers."""
    base = tmp_path_factory.mktemp("smoke")

    def run(name):
        return base / name, run_grid(EXPERIMENTS[name].runs("smoke"), base / name, workers=WORKERS, progress=False,
                                     about={"experiment": name, "scale": "smoke"})

    # two grids at a time: the two slow runs (ACKTR's first K-FAC inverses of the Atari network, in
    # Tables 1 and 3) then overlap instead of each leaving a worker idle
    with ThreadPoolExecutor(2) as pool:
        return dict(zip(EXPERIMENTS, pool.map(run, EXPERIMENTS)))


def final(run_dir):
    """(env steps, wall time) of a run's last update, read from its updates.csv."""
    last = rows(run_dir / "updates.csv")[1][-1]
    return int(last["env_steps"]), float(last["wall_time_s"])


def ever_reaches(returns, threshold, window):
    """Whether some window of `window` consecutive episodes has a mean return >= threshold (a plain loop)."""
    return any(sum(returns[i:i + window]) / window >= threshold for i in range(len(returns) - window + 1))


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_smoke_grid_trains_every_run(smoke, name):
    root, outcomes = smoke[name]
    assert [o.action for o in outcomes] == ["trained"] * len(outcomes), [o.error for o in outcomes]
    assert run_dirs_with_config(root) == expected_names(EXPERIMENTS[name], "smoke")
    for outcome in outcomes:
        assert outcome.env_steps == final(root / outcome.run.name)[0] >= outcome.run.steps


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_smoke_report_covers_the_grid_with_numbers_from_the_runs(smoke, name, tmp_path):
    root, outcomes = smoke[name]
    exp = experiment(name)
    result = report(root)
    assert result.scale == "smoke" and len(result.summaries) == len(outcomes)
    keys = [(row["env"], row["variant"]) for row in result.rows]
    assert len(keys) == len(set(keys))
    assert set(keys) == {(o.run.env, o.run.name.split("/")[1]) for o in outcomes}
    assert result.markdown.startswith(f"# {exp.title}\n") and "Scale: **smoke**" in result.markdown
    for env, label in keys:
        assert f"| {env} | {label} |" in result.markdown
    for row in result.rows:
        run_dir = root / next(o.run.name for o in outcomes if (o.run.env, o.run.name.split("/")[1]) ==
                              (row["env"], row["variant"]))
        steps, wall = final(run_dir)
        assert row["seeds"] == 1
        if exp.kind == "throughput":
            assert row["batch_size"] == 2 * 8 and row["paper_steps_per_second"] is None  # the paper has no batch 16
            assert row["steps_per_second"][0] == pytest.approx(steps / wall) and row["steps_per_second"][1] == 0
        else:
            assert row["env_steps"] == steps
            _, returns = episodes(run_dir)
            if len(returns):
                assert row["final_return"][0] == pytest.approx(np.mean(returns[-exp.window:]))
            else:
                assert row["final_return"] is None
            assert row["threshold"] == exp.thresholds.get(row["env"])
            assert row["reached"] == int(ever_reaches(list(returns), row["threshold"], exp.window))
    if exp.kind == "throughput":
        for row in result.rows:
            if row["algorithm"] == "acktr":
                a2c = next(r for r in result.rows if r["algorithm"] == "a2c" and r["env"] == row["env"])
                assert row["time_ratio_to_a2c"] == pytest.approx(a2c["steps_per_second"][0] / row["steps_per_second"][0])
    written = result.save(tmp_path / "out")
    assert [path.name for path in written] == ["report.md", "learning_curves.png", "rows.csv", "runs.csv"]
    assert written[0].read_text(encoding="utf-8") == result.markdown
    assert written[1].read_bytes()[:4] == b"\x89PNG"
    table = rows(written[2])[1]
    assert [(r["env"], r["variant"]) for r in table] == keys
    statistic = "steps_per_second" if exp.kind == "throughput" else "final_return"
    for saved, row in zip(table, result.rows):
        if row[statistic] is None:
            assert saved[f"{statistic}_mean"] == saved[f"{statistic}_std"] == ""
        else:
            assert float(saved[f"{statistic}_mean"]) == row[statistic][0]
            assert float(saved[f"{statistic}_std"]) == row[statistic][1]
    per_run = rows(written[3])[1]
    assert sorted(r["run"] for r in per_run) == sorted(o.run.name for o in outcomes)
    for saved in per_run:
        assert int(saved["env_steps"]) == final(root / saved["run"])[0]


# The papers' numbers for the smoke scale's tasks (data/acktr_table1_atari.csv, acktr_table2_mujoco.csv):
# (reward, episodes to threshold) as the report prints them; TRPO has no Atari episode count ("—").
PAPER = {
    "acktr-table1": {"acktr": ("20.9", "904"), "a2c": ("19.9", "4,768"), "trpo": ("-1.2", "—")},
    "acktr-table2": {"acktr": ("1,000.0", "6,831"), "a2c": ("1,000.0", "10,982"), "trpo": ("1,000.0", "29,267")},
}


@pytest.mark.parametrize("name", list(PAPER))
def test_smoke_report_prints_the_papers_numbers_beside_ours(smoke, name):
    root, _ = smoke[name]
    markdown = report(root).markdown
    env = experiment(name).scales["smoke"].envs[0][0]
    for label, (reward, episodes_to) in PAPER[name].items():
        line = next(line for line in markdown.splitlines() if line.startswith(f"| {env} | {label} |"))
        assert line.endswith(f"| {reward} | {episodes_to} |"), line


# ----------------------------------------------------------------------------- rows from hand-made summaries


def summary(run, env_steps=0, wall=0.0, final_return=None, episodes_to=None, steps_to=None):
    return RunSummary(run, 0, env_steps, wall, final_return, episodes_to, steps_to)


def test_throughput_rows_find_the_papers_batch_and_ratio():
    exp = experiment("acktr-table3")
    pong = (("num_envs", 32), ("num_steps", 20))  # batch 640, what the laptop and paper scales run
    summaries = [
        summary(GridRun("acktr", "ALE/Pong-v5", 0, 1, "ALE_Pong-v5/acktr-b640/s0", pong), 1000, 10.0),  # 100 steps/s
        summary(GridRun("acktr", "ALE/Pong-v5", 1, 1, "ALE_Pong-v5/acktr-b640/s1", pong), 1200, 10.0),  # 120
        summary(GridRun("a2c", "ALE/Pong-v5", 0, 1, "ALE_Pong-v5/a2c-b640/s0", pong), 2000, 10.0),      # 200
        summary(GridRun("a2c", "ALE/Pong-v5", 1, 1, "ALE_Pong-v5/a2c-b640/s1", pong), 2400, 10.0),      # 240
        summary(GridRun("acktr", "InvertedPendulum-v5", 0, 1, "InvertedPendulum-v5/acktr-b2500/s0",
                        (("num_envs", 1), ("num_steps", 2500))), 5000, 20.0),                          # 250
    ]
    rows_ = {row["variant"]: row for row in _throughput_rows(exp, summaries)}
    acktr, a2c, mujoco = rows_["acktr-b640"], rows_["a2c-b640"], rows_["acktr-b2500"]
    assert (acktr["batch_size"], acktr["domain"], acktr["seeds"]) == (640, "Atari", 2)
    assert acktr["steps_per_second"] == pytest.approx((110.0, 10.0))
    assert acktr["paper_steps_per_second"] == 852.0 and a2c["paper_steps_per_second"] == 1162.0
    assert acktr["time_ratio_to_a2c"] == pytest.approx(220.0 / 110.0)
    assert acktr["paper_time_ratio_to_a2c"] == pytest.approx(1162 / 852)
    assert "time_ratio_to_a2c" not in a2c and "paper_time_ratio_to_a2c" not in a2c
    assert (mujoco["batch_size"], mujoco["domain"], mujoco["paper_steps_per_second"]) == (2500, "MuJoCo", 551.0)
    assert mujoco["steps_per_second"] == pytest.approx((250.0, 0.0))
    assert "time_ratio_to_a2c" not in mujoco  # no A2C run on InvertedPendulum at this batch
    assert mujoco["paper_time_ratio_to_a2c"] == pytest.approx(650 / 551)
    markdown = _markdown(exp, "laptop", list(rows_.values()), 0, None)
    assert "| ALE/Pong-v5 | acktr-b640 | 640 | 2 | 110.0 [100.0, 120.0] | 852 | 2.00 [1.67, 2.40] | 1.36 |" in markdown


def test_returns_rows_count_a_censored_seed_instead_of_dropping_it():
    exp = experiment("acktr-table1")
    runs = [GridRun("acktr", "ALE/Pong-v5", seed, 1, f"ALE_Pong-v5/acktr/s{seed}") for seed in (0, 1)]
    summaries = [summary(runs[0], 500, 1.0, final_return=10.0, episodes_to=100, steps_to=5000),
                 summary(runs[1], 400, 1.0, final_return=20.0)]  # censored: never reached 9.3
    trpo = summary(GridRun("trpo", "ALE/Pong-v5", 0, 1, "ALE_Pong-v5/trpo/s0"), 300, 1.0, final_return=-3.0)
    by_variant = {row["variant"]: row for row in _returns_rows(exp, summaries + [trpo])}
    row = by_variant["acktr"]
    assert (row["seeds"], row["env_steps"], row["threshold"], row["reached"]) == (2, 400, 9.3, 1)
    assert row["final_return"] == pytest.approx((15.0, 5.0))
    assert row["episodes_to_threshold"] == (100.0, 0.0) and row["steps_to_threshold"] == (5000.0, 0.0)
    assert (row["paper_return"], row["paper_episodes"]) == (20.9, 904.0)
    assert by_variant["trpo"]["reached"] == 0 and by_variant["trpo"]["episodes_to_threshold"] is None
    assert math.isnan(by_variant["trpo"]["paper_episodes"])
    markdown = _markdown(exp, "laptop", list(by_variant.values()), 1, "cmd")
    # medians with the censored seed counted (at its 400 env steps, and at +inf); no episodes ran in these summaries
    assert "| ALE/Pong-v5 | acktr | 2 | 400 | 15.0 [10.0, 20.0] | 9.3 | 1/2 | — | >2,700 [400, inf] | 20.9 | 904 |" in markdown
    assert "| ALE/Pong-v5 | trpo | 1 | 300 | -3.0 | 9.3 | 0/1 | — | >300 | -1.2 | — |" in markdown
    assert "**1 run(s) of the grid have no results yet**" in markdown and "Command: `cmd`" in markdown
