"""Smoke tests of the benchmark scripts: each --quick mode runs and writes its CSVs with the right columns.

Only that: the figures the benchmarks measure (sample efficiency, timesteps per second) are printed by
the scripts side by side, never asserted here (DESIGN.md, Testing).
"""
import csv
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS = REPO / "benchmarks"


def run_script(name: str, *args: str) -> str:
    result = subprocess.run([sys.executable, str(BENCHMARKS / name), *args], cwd=REPO, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, f"{name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def read(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        return list(reader.fieldnames), rows


def test_sample_efficiency_quick_writes_its_csv(tmp_path):
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import sample_efficiency as se
    finally:
        sys.path.remove(str(BENCHMARKS))
    out = tmp_path / "sample_efficiency.csv"
    stdout = run_script("sample_efficiency.py", "--quick", "--workers", "1", "--runs-root", str(tmp_path / "runs"),
                        "--out", str(out))
    header, rows = read(out)
    assert header == list(se.CSV_COLUMNS)
    assert sorted((r["env"], r["algorithm"], r["seed"]) for r in rows) == sorted(
        ("CartPole-v1", a, "0") for a in se.ALGORITHMS)
    assert {r["status"] for r in rows} <= {"reached", "censored"}
    assert (tmp_path / "sample_efficiency.txt").read_text().startswith("$ python benchmarks/sample_efficiency.py")
    assert "A2C/ACKTR" in stdout and "targets" in stdout

    # run again: every run is found finished and skipped, the CSV is the same
    stdout = run_script("sample_efficiency.py", "--quick", "--workers", "1", "--runs-root", str(tmp_path / "runs"),
                        "--out", str(out))
    assert stdout.count(": skipped,") == len(se.ALGORITHMS)
    assert read(out) == (header, rows)


def test_throughput_quick_writes_its_csvs(tmp_path):
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import throughput as tp
    finally:
        sys.path.remove(str(BENCHMARKS))
    out = tmp_path / "throughput.csv"
    stdout = run_script("throughput.py", "--quick", "--out", str(out))
    header, rows = read(out)
    assert header == list(tp.SUMMARY_COLUMNS)
    expected = {(a, c.domain, str(c.batch)) for c in tp.QUICK_CASES for a in tp.ALGORITHMS}
    assert {(r["algorithm"], r["domain"], r["batch_size"]) for r in rows} == expected
    assert all(float(r["timesteps_per_second"]) > 0 for r in rows)
    runs_header, runs = read(tmp_path / "throughput_runs.csv")
    assert runs_header == list(tp.RUN_COLUMNS) and len(runs) == len(expected)
    assert (tmp_path / "throughput.txt").read_text().startswith("$ python benchmarks/throughput.py")
    assert "A2C/ACKTR" in stdout


def test_the_stopper_stops_at_a_window_that_crosses_inside_one_update(tmp_path):
    """A window of 10 episodes reaching the threshold in the middle of an update stops the run, even when the
    last 10 episodes of that update are below it (the report's rule: rlkit.report.threshold_crossing)."""
    from types import SimpleNamespace

    from rlkit.report import threshold_crossing
    from rlkit.runs import EPISODES_FILE, write_csv

    sys.path.insert(0, str(BENCHMARKS))
    try:
        import sample_efficiency as se
    finally:
        sys.path.remove(str(BENCHMARKS))
    write_csv(tmp_path / EPISODES_FILE, ["env_steps", "episode_return"],
              [{"env_steps": i, "episode_return": 0.0} for i in range(12)])
    stopper = se._Stopper(tmp_path, threshold=100.0)
    stopper(SimpleNamespace(episodes=[]))  # first call: the CSV's 12 episodes, mean 0
    update = [100.0] * 10 + [0.0] * 5  # the window of the first ten crosses; the update's last ten do not
    assert threshold_crossing([0.0] * 12 + update, 100.0, 10) is not None
    assert sum(update[-10:]) / 10 < 100.0
    with pytest.raises(se._ThresholdReached):
        stopper(SimpleNamespace(episodes=[SimpleNamespace(episode_return=r) for r in update]))
    quiet = se._Stopper(tmp_path, threshold=100.0)
    quiet(SimpleNamespace(episodes=[]))
    quiet(SimpleNamespace(episodes=[SimpleNamespace(episode_return=r) for r in [100.0] * 9 + [0.0] * 5]))  # no window


def test_kfac_overhead_quick_times_every_side():
    stdout = run_script("kfac_overhead.py", "--quick", "--stats-subsample", "4")
    header = next(line for line in stdout.splitlines() if line.startswith("workload"))
    assert header.split()[1:] == ["first-order", "K-FAC", "ratio", "K-FAC", "1/4", "ratio", "target"]
    for name in ("MLP 64-64 tanh (MuJoCo)", "Nature CNN (Atari) b=4"):
        assert sum(line.startswith(name) for line in stdout.splitlines()) == 2  # the totals and the pieces


def test_stats_subsample_quick_prints_paired_runs(tmp_path):
    stdout = run_script("stats_subsample.py", "--quick", "--subsample", "4", "--runs-root", str(tmp_path))
    lines = stdout.splitlines()
    assert lines[0].startswith("ACKTR, K-FAC statistics on every 4th sample")
    committed = next(r for r in read(REPO / "data" / "benchmarks" / "sample_efficiency.csv")[1]
                     if (r["env"], r["algorithm"], r["seed"]) == ("CartPole-v1", "acktr", "0"))
    row = next(line for line in lines if line.startswith("CartPole-v1"))
    # 4k steps: not reached; beside it the committed full-batch run of the same seed
    assert row.split()[1:6] == ["0", ">budget", f"{int(committed['env_steps_to_threshold']):,}", ">budget",
                                f"{int(committed['episodes_to_threshold']):,}"]
    assert (tmp_path / "k4" / "CartPole-v1" / "acktr-s0" / "config.json").exists()
