"""Smoke tests of the benchmark scripts: each --quick mode runs and writes its CSVs with the right columns.

Only that: the figures the benchmarks measure (sample efficiency, timesteps per second) are printed by
the scripts side by side, never asserted here (DESIGN.md, Testing).
"""
import csv
import subprocess
import sys
from pathlib import Path

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
