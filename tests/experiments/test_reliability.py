"""Nothing lost, nothing silent: each test first makes the situation a user met (two processes on one run
directory, an --overwrite whose new run fails, a damaged CSV, a corrupt latest checkpoint, a sweep with a
bad cell, a read-only directory, a full disk, Ctrl-C) and then checks that the kit refuses it with a
message naming the file or the process, or recovers from it, with nothing on disk lost or half-written."""
import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from rlkit.experiments.data import TableFileError, load_table
from rlkit.experiments.runs import (
    LOCK_FILE,
    STAGING_DIR,
    RunError,
    RunLock,
    RunLockedError,
    is_timing_column,
    list_checkpoints,
    read_csv,
)
from rlkit.experiments.sweeps import load_sweep
from rlkit.experiments.train import Interrupted, resume, train

REPO = Path(__file__).resolve().parents[2]
SLOW_RUN = ["--num-envs", "1", "--num-steps", "8", "--hidden-sizes", "8", "--checkpoint-every", "1"]


SMALL = {"num_envs": 4, "num_steps": 16, "hidden_sizes": [16, 16]}


def run(tmp_path, name="run", algorithm="a2c", env="CartPole-v1", steps=300, seed=0, overrides=SMALL, **kwargs):
    return train(algorithm, env, steps=steps, seed=seed, overrides=dict(overrides), run_dir=tmp_path / name,
                 progress=False, **kwargs)


def results(run_dir):
    """episodes.csv and updates.csv without the columns that measure time."""
    return {name: [{k: v for k, v in row.items() if not is_timing_column(k)} for row in read_csv(Path(run_dir) / name)[1]]
            for name in ("episodes.csv", "updates.csv")}


def digest(path):
    """Every file and directory under ``path``, with content hash, mode and mtime."""
    return {str(item.relative_to(path)): (hashlib.sha256(item.read_bytes()).hexdigest() if item.is_file() else "dir",
                                          item.stat().st_mode, item.stat().st_mtime_ns)
            for item in sorted(Path(path).rglob("*"))}


def cli(*args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rlkit", *map(str, args)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def wait_for(condition, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


# ----------------------------------------------------------------------------- one writer per run directory


def test_a_second_process_on_a_run_directory_fails_at_once_and_a_killed_holder_blocks_nothing(tmp_path):
    run_dir = tmp_path / "run"
    first = cli("train", "a2c", "--env", "CartPole-v1", "--steps", "10000000", "--run-dir", run_dir, "--no-progress",
                *SLOW_RUN)
    try:
        wait_for(lambda: (run_dir / "checkpoints").is_dir() and list_checkpoints(run_dir))  # past its first update
        for args in (["train", "a2c", "--env", "CartPole-v1", "--steps", "1000", "--run-dir", run_dir, "--overwrite"],
                     ["train", "--resume", run_dir, "--steps", "1000"]):
            started = time.monotonic()
            second = cli(*args, "--no-progress")
            _, err = second.communicate(timeout=120)
            assert second.returncode == 2, err
            assert f"{run_dir} is in use by another rlkit process (PID {first.pid}" in err and "Traceback" not in err
            assert time.monotonic() - started < 240  # a loaded 2-core machine: imports alone take a while
        assert first.poll() is None  # the holder is untouched
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate()
    # The kill left the lock file behind; the OS lock died with the process: a resume goes ahead.
    assert (run_dir / LOCK_FILE).is_file()
    result = resume(run_dir, steps=list_checkpoints(run_dir)[-1][0] * 8 + 16, progress=False)
    assert result.updates >= 1 and not (run_dir / LOCK_FILE).exists()


def test_the_lock_refuses_a_second_holder_in_the_same_process_and_names_the_pid(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(RunLockedError, match=f"in use by another rlkit process \\(PID {os.getpid()}"):
            RunLock(tmp_path).acquire()
    with RunLock(tmp_path):  # released: free again
        pass
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- --overwrite loses nothing


@pytest.fixture
def finished_run(tmp_path):
    run(tmp_path, "done", algorithm="acktr", steps=200, checkpoint_every=1, keep_checkpoints=0)
    return tmp_path / "done"


def test_overwrite_keeps_the_files_that_are_not_the_kits(finished_run):
    (finished_run / "notes.txt").write_text("seed 0 looked odd")
    result = run(finished_run.parent, "done", algorithm="a2c", steps=100, overwrite=True)
    assert (finished_run / "notes.txt").read_text() == "seed 0 looked odd"
    assert json.loads((finished_run / "config.json").read_text())["algorithm"] == "a2c" and result.updates >= 1
    assert sorted(p.name for p in finished_run.iterdir()) == ["checkpoints", "config.json", "episodes.csv",
                                                              "notes.txt", "updates.csv"]


def test_overwrite_with_a_run_that_fails_at_its_first_update_keeps_the_old_run(finished_run, monkeypatch):
    from rlkit.agents.a2c import A2C

    before = digest(finished_run)

    def fails(self, rollout):
        raise RuntimeError("the new configuration breaks at update 1")

    monkeypatch.setattr(A2C, "update", fails)
    with pytest.raises(RuntimeError, match="breaks at update 1"):
        run(finished_run.parent, "done", algorithm="a2c", steps=100, overwrite=True)
    assert digest(finished_run) == before and not (finished_run / STAGING_DIR).exists()


def test_a_new_run_that_fails_at_its_first_update_leaves_no_directory(tmp_path, monkeypatch):
    from rlkit.agents.a2c import A2C

    monkeypatch.setattr(A2C, "update", lambda self, rollout: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        run(tmp_path, "new", steps=100)
    assert not (tmp_path / "new").exists()


def test_vmpo_eps_far_out_of_range_is_refused_before_any_directory_is_made(tmp_path):
    for overrides, message in (({"eps_eta": 1e39}, "eps_eta must be"), ({"eps_alpha": 1e5}, "eps_alpha must be a KL bound"),
                               ({"initial_alpha": 1e30}, "initial_alpha must be"),
                               ({"initial_temperature": 1e-9}, "initial_temperature must be in")):
        with pytest.raises(RunError, match=message):
            run(tmp_path, "v", algorithm="vmpo", overrides={**SMALL, **overrides}, steps=100)
        assert not (tmp_path / "v").exists()


# ----------------------------------------------------------------------------- resume validates what it reads


def damage(path: Path, how) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(how(lines)), encoding="utf-8")


@pytest.mark.parametrize("how, message", [
    (lambda lines: lines[:-1] + [lines[-1][: len(lines[-1]) // 2]], "line .*: (the row is cut short|.* cells)"),
    (lambda lines: lines[:3] + ["garbage\r\n"] + lines[3:], r"line 4: 1 cells, the header has 5 \(a row cut short or a junk row\)"),
    (lambda lines: [lines[0].replace("env_steps", "steps")] + lines[1:], "line 1: the header is not the one this run writes .*missing 'env_steps'"),
    (lambda lines: lines[:2] + [lines[2].replace(",", ",x", 1)] + lines[3:], "line 3, column wall_time_s: .* is not a number"),
    (lambda lines: lines[:2] + [lines[2].replace(lines[2].split(",")[2], "9999.0", 1)] + lines[3:],
     "is not what the run wrote before its checkpoint"),
])
def test_resume_refuses_a_damaged_episodes_csv_and_says_how_to_recover(finished_run, how, message):
    damage(finished_run / "episodes.csv", how)
    before = digest(finished_run)
    with pytest.raises(RunError, match=message) as error:
        resume(finished_run, steps=1000, progress=False)
    assert "episodes.csv" in str(error.value) and "--overwrite" in str(error.value)
    assert digest(finished_run) == before


def test_resume_drops_half_a_row_written_after_the_checkpoint(tmp_path):
    whole = run(tmp_path, "whole", steps=300)
    run(tmp_path, "cut", steps=150)
    with open(tmp_path / "cut" / "episodes.csv", "a", encoding="utf-8") as file:
        file.write("123,0.5,17.")  # a process killed in the middle of a row
    resume(tmp_path / "cut", steps=300, progress=False)
    assert results(tmp_path / "cut") == results(tmp_path / "whole") and whole.updates >= 1


def test_a_corrupt_latest_checkpoint_resumes_from_the_newest_valid_one_and_is_kept_aside(tmp_path, capsys):
    run(tmp_path, "whole", steps=300, checkpoint_every=1, keep_checkpoints=0)
    run(tmp_path, "run", steps=200, checkpoint_every=1, keep_checkpoints=0)
    checkpoints = list_checkpoints(tmp_path / "run")
    (newest_update, newest), (valid_update, _) = checkpoints[-1], checkpoints[-2]
    newest.write_bytes(newest.read_bytes()[:100])
    result = resume(tmp_path / "run", steps=300, progress=False)
    err = capsys.readouterr().err
    assert result.resumed_from_update == valid_update and f"resuming from update-{valid_update:06d}.pt" in err
    kept = newest.with_name(newest.name + ".corrupt")
    assert kept.is_file() and kept.stat().st_size == 100 and f"kept as {kept}" in err
    assert results(tmp_path / "run") == results(tmp_path / "whole")  # continued exactly


# ----------------------------------------------------------------------------- tables and sweeps name the file


def write_sweep(directory: Path, rows: list[str], axes=None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "s.csv"
    path.write_text("env,delta,seed,env_steps,episode_return\n" + "".join(r + "\n" for r in rows), encoding="utf-8")
    path.with_suffix(".json").write_text(json.dumps({"axes": axes or {"delta": [0.001, 0.01]}}), encoding="utf-8")
    return path


GOOD_ROWS = ["CartPole-v1,0.001,0,100,10.0", "CartPole-v1,0.01,0,100,20.0"]


def test_a_sweep_with_one_bad_cell_is_refused_naming_the_file_line_and_column(tmp_path):
    assert load_sweep(write_sweep(tmp_path, GOOD_ROWS)).axes["delta"].tolist() == [0.001, 0.01]
    path = write_sweep(tmp_path, [GOOD_ROWS[0], "CartPole-v1,0.01,0,100,twenty"])
    with pytest.raises(RunError, match=f"{path}, line 3, column episode_return: 'twenty' is not a number"):
        load_sweep(path)
    path = write_sweep(tmp_path, [GOOD_ROWS[0], "CartPole-v1,0.01,0"])
    with pytest.raises(RunError, match="line 3: 5 cells expected"):
        load_sweep(path)


def test_a_sweep_whose_json_axes_disagree_with_the_csv_is_refused(tmp_path):
    path = write_sweep(tmp_path, GOOD_ROWS, axes={"delta": [0.001, 0.1]})
    with pytest.raises(RunError, match=r"s.json declares the delta values \[0.001, 0.1\], but .*s.csv has 0.01 too"):
        load_sweep(path)
    path = write_sweep(tmp_path, GOOD_ROWS, axes={"eta_max": [0.1]})
    with pytest.raises(RunError, match="line 1: no column eta_max"):
        load_sweep(path)
    path.with_suffix(".json").write_text("{not json", encoding="utf-8")
    with pytest.raises(RunError, match="s.json is not readable JSON"):
        load_sweep(path)


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"domain,score\nPong,\xff\xfe\n", "line 2: not UTF-8"),
    (b"domain,score\nPong,1,2\n", "line 2 has 3 cells, the header has 2"),
    (b"domain,domain\nPong,1\n", "line 1: the header needs distinct"),
])
def test_a_damaged_paper_table_is_refused_naming_the_file(tmp_path, content, message):
    (tmp_path / "t.csv").write_bytes(content)
    with pytest.raises(TableFileError, match=message) as error:
        load_table("t", data_dir=tmp_path)
    assert str(tmp_path / "t.csv") in str(error.value)


# ----------------------------------------------------------------------------- the disk and the user's directories


def test_an_unwritable_directory_is_named_before_any_work(tmp_path):
    """CI runs as root, for whom every directory is writable: the command runs as nobody there."""
    base = Path(tempfile.mkdtemp(prefix="rlkit-ro-"))
    try:
        os.chmod(base, 0o755)
        (base / "ro").mkdir(mode=0o555)
        os.chmod(base / "ro", 0o555)
        command = [sys.executable, "-m", "rlkit", "train", "a2c", "--env", "CartPole-v1", "--steps", "100",
                   "--run-dir", str(base / "ro" / "run"), "--no-progress"]
        if os.geteuid() == 0:
            if shutil.which("setpriv") is None:
                pytest.skip("needs setpriv to drop root")
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] + command
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "HOME": str(base), "MPLCONFIGDIR": str(base)})
        assert done.returncode == 2, done.stderr
        assert f"cannot write {base / 'ro' / 'run'}: {base / 'ro'} is not writable (permission denied)" in done.stderr
        assert "Traceback" not in done.stderr and list((base / "ro").iterdir()) == []
    finally:
        os.chmod(base / "ro", 0o755)
        shutil.rmtree(base)


def test_a_full_disk_is_reported_as_such_with_nothing_half_written(tmp_path):
    """RLIMIT_FSIZE (prlimit --fsize) makes every write past 2 KB fail as a full disk would (EFBIG)."""
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))

    process = cli("train", "a2c", "--env", "CartPole-v1", "--steps", "100", "--run-dir", tmp_path / "run",
                  "--no-progress", preexec_fn=limit)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 2, err
    assert "the file size limit is reached" in err and "cannot write" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # nothing half-written


def test_csv_rows_that_do_not_fit_on_the_disk_are_cut_off_whole(tmp_path):
    from rlkit.experiments.runs import CsvLog, DiskError

    log = CsvLog(tmp_path / "e.csv", ["a", "b"])
    log.append([{"a": 1, "b": 2.5}])
    size = (tmp_path / "e.csv").stat().st_size
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 5, hard))
    try:
        with pytest.raises(DiskError, match="e.csv: the file size limit is reached"):
            log.append([{"a": 123456, "b": 7.25}])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert (tmp_path / "e.csv").stat().st_size == size and log.rows == 1


# ----------------------------------------------------------------------------- Ctrl-C


def test_ctrl_c_checkpoints_the_last_update_and_prints_the_real_resume_command(tmp_path):
    run_dir = tmp_path / "my run"
    process = cli("train", "a2c", "--env", "CartPole-v1", "--steps", "10000000", "--run-dir", run_dir, "--no-progress",
                  "--num-envs", "1", "--num-steps", "8", "--hidden-sizes", "8", "--checkpoint-every", "1000",
                  preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        wait_for(lambda: (run_dir / "updates.csv").is_file() and len(read_csv(run_dir / "updates.csv")[1]) >= 3)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    update = list_checkpoints(run_dir)[-1][0]
    assert update == len(read_csv(run_dir / "updates.csv")[1]) >= 3  # the last finished update is checkpointed
    assert f"update {update} is checkpointed; continue with python -m rlkit train --resume '{run_dir}'" in err
    assert resume(run_dir, steps=(update + 2) * 8, progress=False).resumed_from_update == update


def test_interrupted_carries_the_run_directory():
    error = Interrupted(Path("runs/x"), 7)
    assert isinstance(error, KeyboardInterrupt) and error.run_dir == Path("runs/x") and error.update == 7
