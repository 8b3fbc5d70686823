"""python -m rlkit reproduce | sweep | report, through rlkit.cli.main (smoke scale, in this process)."""
import json
from pathlib import Path

import pytest

from support.cli import cli, one_line_error
from support.grid import rows, snapshot
from rlkit.experiments.registry import experiment
from rlkit.experiments.report import report

REPO = Path(__file__).resolve().parents[1]


def test_reproduce_writes_the_report_and_a_second_time_skips_every_run(tmp_path, capsys):
    out = tmp_path / "grid"
    argv = ["reproduce", "acktr-figure5ab", "--scale", "smoke", "--out", out, "--no-progress"]
    status, stdout, err = cli(capsys, *argv)
    assert status == 0, err
    assert f"{out}: 3 trained" in stdout  # the two critics and A2C, one seed
    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert markdown == report(out).markdown and markdown in stdout
    assert (out / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"
    about = json.loads((out / "grid.json").read_text())
    assert (about["experiment"], about["scale"]) == ("acktr-figure5ab", "smoke")
    assert about["command"] == "python -m rlkit reproduce acktr-figure5ab --scale smoke --out " + f"{out} --no-progress"
    assert {run["name"] for run in about["runs"]} == {run.name for run in experiment("acktr-figure5ab").runs("smoke")}
    csvs = {name: (out / name / "episodes.csv").read_bytes() for name in
            ("CartPole-v1/gauss-newton-critic/s0", "CartPole-v1/first-order-critic/s0", "CartPole-v1/a2c/s0")}

    status, stdout, err = cli(capsys, *argv)
    assert status == 0, err
    assert f"{out}: 3 skipped" in stdout
    assert csvs == {name: (out / name / "episodes.csv").read_bytes() for name in csvs}

    # report DIR --out OUTDIR: the same table, written elsewhere
    status, stdout, err = cli(capsys, "report", out, "--out", tmp_path / "copy")
    assert status == 0, err
    assert (tmp_path / "copy" / "report.md").read_text(encoding="utf-8") == markdown
    assert {p.name for p in (tmp_path / "copy").iterdir()} == {"report.md", "learning_curves.png", "rows.csv",
                                                               "runs.csv"}


def test_reproduce_with_seeds_trains_that_many_seeds(tmp_path, capsys):
    status, stdout, err = cli(capsys, "reproduce", "acktr-figure5cd", "--scale", "smoke", "--seeds", 2,
                              "--out", tmp_path, "--no-progress")
    assert status == 0, err
    assert f"{tmp_path}: 4 trained" in stdout
    assert {r["seeds"] for r in rows(tmp_path / "rows.csv")[1]} == {"2"}


@pytest.mark.parametrize("argv, fragments", [
    (["reproduce", "nope"], ["invalid choice: 'nope'"]),
    (["reproduce", "acktr-delta-eta-max"], ["invalid choice"]),  # a sweep: python -m rlkit sweep
    (["sweep", "acktr-table1"], ["invalid choice"]),
    (["reproduce", "acktr-figure5ab", "--scale", "huge"], ["invalid choice: 'huge'"]),
    (["sweep", "acktr-delta-eta-max", "--scale", "paper"], ["invalid choice: 'paper'"]),
    (["reproduce", "acktr-figure5ab", "--seeds", "0"], ["--seeds", "positive integer"]),
    (["reproduce", "acktr-figure5ab", "--workers", "0"], ["--workers", "positive integer"]),
    (["reproduce", "acktr-figure5ab", "--retries", "-1"], ["--retries", "integer >= 0"]),
    (["reproduce", "acktr-figure5ab", "--backend", "slurm"], ["invalid choice: 'slurm'"]),
    (["reproduce", "acktr-figure5ab", "--scale", "smoke", "--backend", "local", "--address", "x", "--out", "g"],
     ["--address is for --backend ray"]),
    (["report", "."], ["not a grid directory", "grid.json"]),
    (["report", "nowhere"], ["nowhere is not a grid directory", "grid.json"]),
])
def test_grid_command_errors_are_one_line_with_status_2_and_write_nothing(tmp_path, capsys, monkeypatch, argv,
                                                                          fragments):
    monkeypatch.chdir(tmp_path)
    status, out, err = cli(capsys, *argv)
    one_line_error(status, err, *fragments)
    assert list(tmp_path.iterdir()) == []


def test_report_of_a_grid_without_results_says_so(tmp_path, capsys):
    from rlkit.experiments.grid import write_grid_file

    write_grid_file(tmp_path, experiment("acktr-figure5ab").runs("smoke"), {"experiment": "acktr-figure5ab",
                                                                            "scale": "smoke"})
    status, out, err = cli(capsys, "report", tmp_path)
    one_line_error(status, err, "no run of the grid", "has results yet")


def test_sweep_smoke_writes_its_table_into_the_grid_directory_never_into_data(tmp_path, capsys):
    sweeps = REPO / "data" / "sweeps"
    before = snapshot(sweeps) if sweeps.exists() else None
    out = tmp_path / "grid"
    status, stdout, err = cli(capsys, "sweep", "acktr-delta-eta-max", "--scale", "smoke", "--out", out, "--no-progress")
    assert status == 0, err
    table = out / "acktr-delta-eta-max.csv"
    assert f"wrote {table} and {table.with_suffix('.json')}" in stdout
    header, data = rows(table)
    assert header[:3] == ["env", "delta", "eta_max"]
    assert {(float(r["delta"]), float(r["eta_max"])) for r in data} == {(1e-4, 0.05), (0.01, 1.0)}
    meta = json.loads(table.with_suffix(".json").read_text())
    assert (meta["experiment"], meta["scale"]) == ("acktr-delta-eta-max", "smoke")
    assert meta["command"].startswith("python -m rlkit sweep acktr-delta-eta-max --scale smoke")
    assert (snapshot(sweeps) if sweeps.exists() else None) == before  # data/ untouched

    # --table puts it elsewhere; the finished grid is not trained again
    status, stdout, err = cli(capsys, "sweep", "acktr-delta-eta-max", "--scale", "smoke", "--out", out,
                              "--table", tmp_path / "elsewhere" / "t.csv", "--no-progress")
    assert status == 0, err
    assert f"{out}: 2 skipped" in stdout
    assert (tmp_path / "elsewhere" / "t.csv").read_bytes() == table.read_bytes()


def test_ctrl_c_stops_the_workers_at_once_and_leaves_resumable_runs(tmp_path):
    """SIGINT to `reproduce` with a pool: exit 130 within seconds, no worker left behind, every started
    run directory resumable (it has a checkpoint), and the message says how to continue."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "grid"
    process = subprocess.Popen([sys.executable, "-m", "rlkit", "reproduce", "acktr-figure5cd", "--scale", "laptop",
                                "--workers", "2", "--out", str(out), "--no-progress"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                               # A shell without job control starts background jobs with SIGINT ignored, the
                               # ignored disposition is inherited, and Python then installs no KeyboardInterrupt
                               # (CI may run us so): give the CLI the SIGINT an interactive terminal gives it.
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while len(list(out.glob("*/*/s*/checkpoints/update-000000.pt"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)  # both workers are training
    assert process.poll() is None, process.communicate()
    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    try:  # a worker left alive would hold stderr open: this would time out
        _, err = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
        pytest.fail(f"reproduce did not stop within 120 s of Ctrl-C; stderr: {err[-2000:]}")
    assert process.returncode == 130, err
    assert time.monotonic() - started < 60
    assert "give the same command again" in err
    runs = [path.parent.parent for path in out.glob("*/*/s*/checkpoints/update-*.pt")]
    assert len(runs) >= 2 and all((run / "config.json").is_file() for run in runs)
