"""The report's tables with intervals (rlkit.experiments.report on hand-made run summaries, and re-made from a
kept runs.csv): every figure with its 95% interval and run count, censored runs counted, never dropped."""
import csv
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from rlkit.experiments import run_stats
from rlkit.experiments.grid import GridRun
from rlkit.experiments.registry import experiment
from rlkit.experiments.report import (RunSummary, _band, _flatten, _markdown, _returns_rows, _throughput_rows, main,
                                      report_from_runs)

REPO = Path(__file__).resolve().parents[2]


def summary(run, env_steps=0, wall=0.0, final_return=None, episodes_to=None, steps_to=None, episodes=0):
    return RunSummary(run, episodes, env_steps, wall, final_return, episodes_to, steps_to)


def pong(seed, variant="acktr", algorithm="acktr"):
    return GridRun(algorithm, "ALE/Pong-v5", seed, 1, f"ALE_Pong-v5/{variant}/s{seed}")


def test_returns_rows_give_medians_with_censored_runs_counted():
    exp = experiment("acktr-table1")
    summaries = [summary(pong(0), 500, 1.0, final_return=10.0, episodes_to=100, steps_to=5000, episodes=120),
                 summary(pong(1), 400, 1.0, final_return=20.0, episodes=90),     # censored: never reached 9.3
                 summary(pong(2), 450, 1.0, final_return=30.0, episodes_to=80, steps_to=4000, episodes=95)]
    row = _returns_rows(exp, summaries)[0]
    assert (row["seeds"], row["reached"]) == (3, 2)
    # the old columns: mean ± std over the seeds that reached (kept for older readers)
    assert row["steps_to_threshold"] == pytest.approx((4500.0, 500.0))
    # the median counts the censored seed at its 400 env steps (lower end) and at +inf (upper end): median of
    # (5000, 400, 4000) = 4000, of (5000, inf, 4000) = 5000
    steps = row["steps_to_threshold_median"]
    assert (steps.low, steps.high, steps.n, steps.censored) == (4000.0, 5000.0, 3, 1)
    assert steps.ci_low == 400.0 and steps.ci_high == math.inf  # a resample of the censored seed twice or more
    episodes = row["episodes_to_threshold_median"]
    assert (episodes.low, episodes.high) == (90.0, 100.0)  # (100, 90, 80) and (100, inf, 80)
    final = row["final_return_iqm"]
    assert final.low == pytest.approx(20.0) and (final.ci_low, final.ci_high) == (10.0, 30.0)


def test_returns_markdown_gives_intervals_and_run_counts():
    exp = experiment("acktr-table1")
    runs = [summary(pong(s), 500, 1.0, final_return=10.0 * (s + 1), episodes_to=100 + s, steps_to=5000 + s,
                    episodes=200) for s in range(3)]
    trpo = summary(pong(0, "trpo", "trpo"), 300, 1.0, final_return=-3.0, episodes=50)
    markdown = _markdown(exp, "laptop", _returns_rows(exp, runs + [trpo]), 1, "cmd")
    assert "| ALE/Pong-v5 | acktr | 3 | 500 | 20.0 [10.0, 30.0] | 9.3 | 3/3 | 101 [100, 102] | 5,001 [5,000, 5,002] " \
           "| 20.9 | 904 |" in markdown
    # one run, censored: the median is only bounded below, and one run gives no interval
    assert "| ALE/Pong-v5 | trpo | 1 | 300 | -3.0 | 9.3 | 0/1 | >50 | >300 | -1.2 | — |" in markdown
    assert "95% stratified percentile-bootstrap interval" in markdown and "censored" in markdown
    assert "**1 run(s) of the grid have no results yet**" in markdown and "Command: `cmd`" in markdown


def test_throughput_rows_give_the_time_ratio_with_its_interval():
    exp = experiment("acktr-table3")
    batch = (("num_envs", 32), ("num_steps", 20))
    run = lambda algo, seed: GridRun(algo, "ALE/Pong-v5", seed, 1, f"ALE_Pong-v5/{algo}-b640/s{seed}", batch)  # noqa: E731
    summaries = [summary(run("acktr", 0), 1000, 10.0), summary(run("acktr", 1), 1200, 10.0),
                 summary(run("a2c", 0), 2000, 10.0), summary(run("a2c", 1), 2400, 10.0)]
    rows = {r["variant"]: r for r in _throughput_rows(exp, summaries)}
    acktr = rows["acktr-b640"]
    assert acktr["time_ratio_to_a2c"] == pytest.approx(220.0 / 110.0)  # ratio of means, as before
    ratio = acktr["time_ratio_iqm"]
    # IQM of two runs is their mean; the interval's ends: the slowest A2C over the fastest ACKTR and back
    assert ratio.low == pytest.approx(2.0) and (ratio.ci_low, ratio.ci_high) == pytest.approx((200 / 120, 240 / 100))
    markdown = _markdown(exp, "laptop", list(rows.values()), 0, None)
    assert "| ALE/Pong-v5 | acktr-b640 | 640 | 2 | 110.0 [100.0, 120.0] | 852 | 2.00 [1.67, 2.40] | 1.36 |" in markdown
    flat = _flatten(acktr)
    assert flat["time_ratio_iqm_ci_low"] == pytest.approx(200 / 120) and "steps_per_second_mean" in flat


def test_learning_curve_band_is_a_bootstrap_interval_of_the_iqm():
    values = np.array([[1.0, 10.0], [2.0, 10.0], [3.0, 10.0]])  # 3 runs × 2 points
    centre, low, high = _band(values)
    np.testing.assert_allclose(centre, [2.0, 10.0])
    assert low[0] < 2.0 < high[0] and 1.0 <= low[0] and high[0] <= 3.0
    assert low[1] == high[1] == 10.0  # no spread, no band


def test_report_is_remade_from_a_kept_runs_csv(tmp_path):
    kept = tmp_path / "acktr-table2-laptop"
    shutil.copytree(REPO / "data" / "reproductions" / "acktr-table2-laptop", kept)
    markdown, rows = report_from_runs(kept, "the command")
    assert markdown.startswith("# ACKTR Table 2") and "Scale: **laptop**" in markdown
    assert "Tables re-made from runs.csv by `the command`" in markdown
    with open(kept / "runs.csv", newline="", encoding="utf-8") as f:
        runs = list(csv.DictReader(f))
    for row in rows:
        mine = [r for r in runs if r["run"].split("/")[1] == row["variant"]]
        steps = [float(r["steps_to_threshold"]) if r["steps_to_threshold"] else math.nan for r in mine]
        x, censored = run_stats.censor(steps, [float(r["env_steps"]) for r in mine])
        assert row["steps_to_threshold_median"].low == np.median(x)
        assert row["reached"] == sum(not c for c in censored)
    main(["--from-runs", str(kept)])
    written = (kept / "report.md").read_text(encoding="utf-8")
    assert "steps to threshold, median [95% CI]" in written
    with open(kept / "rows.csv", newline="", encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    assert {"steps_to_threshold_median", "steps_to_threshold_median_ci_high", "final_return_mean"} <= set(table[0])


def test_committed_reproductions_are_the_remade_tables(tmp_path):
    """data/reproductions/*/report.md is what --from-runs makes of its runs.csv today (the table is up to date)."""
    for folder in sorted((REPO / "data" / "reproductions").glob("*-laptop")):
        copy = tmp_path / folder.name
        shutil.copytree(folder, copy)
        first = (folder / "report.md").read_text(encoding="utf-8")
        command = first.split("Tables re-made from runs.csv by `")[1].split("`")[0]
        markdown, _ = report_from_runs(copy, command)
        assert markdown == first, folder.name
