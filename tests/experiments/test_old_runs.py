"""Run directories written by an older kit still resume, plot and evaluate.

``tests/fixtures/run_2026-12-06`` holds ACKTR and V-MPO runs on CartPole-v1 written before the
config keys ``lam`` and ``initial_eta`` and the ``updates.csv`` columns ``eta`` / ``eta_capped``
were renamed (``Config.RENAMED``, ``RENAMED_DIAGNOSTICS`` in ``rlkit.agents.base``). They are
copied, never changed. Resumed to 2048 env steps, each equals a fresh run of the same config to
2048 steps in every column but those that measure time: its first updates were computed by the
old kit, so this also holds that the renames changed no number. Resuming rewrites the old
``updates.csv`` header under today's names, so the new rows line up with it.
"""
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from support.cli import cli
from rlkit.agents.base import RENAMED_DIAGNOSTICS, Config
from rlkit.experiments.runs import is_timing_column, read_config, read_csv, read_updates

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "run_2026-12-06"
ALGORITHMS = ("acktr", "vmpo")
STEPS = 2048


def old_run(tmp_path: Path, algorithm: str) -> Path:
    """A copy of the fixture run (the fixture itself is never written)."""
    return Path(shutil.copytree(FIXTURES / f"{algorithm}-CartPole-v1-s0", tmp_path / f"old-{algorithm}"))


def snapshot(path: Path) -> dict:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture
def threads_of_the_fixture():
    """The fixture runs were trained with 2 torch threads: the fresh runs use as many, so that their first
    updates are bit-identical to the old kit's (CPU reductions depend on the thread count)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def numbers(rows: list[dict]) -> list[dict]:
    """Every cell but the timing columns, as floats (empty: NaN)."""
    return [{k: float(v) if v not in ("", None) else float("nan") for k, v in row.items() if not is_timing_column(k)}
            for row in rows]


def assert_same_numbers(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b) > 0
    for row_a, row_b in zip(numbers(a), numbers(b)):
        assert row_a.keys() == row_b.keys()
        for key in row_a:
            assert np.array_equal(row_a[key], row_b[key], equal_nan=True), (key, row_a[key], row_b[key])


def test_the_fixtures_carry_the_old_names():
    """What the other tests rely on: the fixtures are written under the names before the renames."""
    for algorithm in ALGORITHMS:
        run = FIXTURES / f"{algorithm}-CartPole-v1-s0"
        raw = (run / "config.json").read_text(encoding="utf-8")
        assert '"lam"' in raw and '"gae_lambda"' not in raw
        header, _ = read_csv(run / "updates.csv")
        assert "eta" in header and not set(RENAMED_DIAGNOSTICS[algorithm].values()) & set(header)
    assert '"initial_eta"' in (FIXTURES / "vmpo-CartPole-v1-s0" / "config.json").read_text(encoding="utf-8")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_an_old_run_reads_under_todays_names(tmp_path, algorithm):
    run = old_run(tmp_path, algorithm)
    config = read_config(run)
    assert "gae_lambda" in config["agent"] and not set(Config.RENAMED) & set(config["agent"])
    updates, (raw_header, raw_rows) = read_updates(run), read_csv(run / "updates.csv")
    for old, new in RENAMED_DIAGNOSTICS[algorithm].items():
        if old in raw_header:
            assert old not in updates and updates[new].tolist() == [float(row[old]) for row in raw_rows]
    assert snapshot(run) == snapshot(FIXTURES / f"{algorithm}-CartPole-v1-s0")  # reading wrote nothing


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_an_old_run_resumes_exactly_under_todays_names(tmp_path, capsys, threads_of_the_fixture, algorithm):
    run = old_run(tmp_path, algorithm)
    old_header, old_rows = read_csv(run / "updates.csv")
    status, out, err = cli(capsys, "train", "--resume", run, "--steps", STEPS, "--no-progress")
    assert status == 0, err

    fresh = tmp_path / f"fresh-{algorithm}"
    overrides = read_config(run)["overrides"]  # the fixture's command: --num-envs 4 --num-steps 32
    flags = [a for key, value in overrides.items() for a in ("--" + key.replace("_", "-"), value)]
    status, out, err = cli(capsys, "train", algorithm, "--env", "CartPole-v1", "--steps", STEPS, "--seed", 0,
                           "--run-dir", fresh, *flags, "--checkpoint-every", 2, "--keep-checkpoints", 1,
                           "--no-progress")
    assert status == 0, err

    for name in ("episodes.csv", "updates.csv"):
        (resumed_header, resumed), (fresh_header, fresh_rows) = read_csv(run / name), read_csv(fresh / name)
        assert resumed_header == fresh_header
        assert_same_numbers(resumed, fresh_rows)
    header, rows = read_csv(run / "updates.csv")
    assert len(rows) > len(old_rows) and int(rows[-1]["env_steps"]) >= STEPS
    renamed = RENAMED_DIAGNOSTICS[algorithm]
    assert header == [renamed.get(name, name) for name in old_header]  # renamed in place, same order
    assert not set(renamed) & set(header)
    # config.json, rewritten for the new --steps, now carries today's names
    assert read_config(run)["agent"] == read_config(fresh)["agent"]
    assert '"lam"' not in (run / "config.json").read_text(encoding="utf-8")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_an_old_run_that_has_nothing_to_train_is_left_as_it_was(tmp_path, capsys, algorithm):
    run = old_run(tmp_path, algorithm)
    before = snapshot(run)
    status, out, err = cli(capsys, "train", "--resume", run, "--no-progress")  # its own --steps: reached
    assert status == 0, err
    assert "nothing to train" in err and snapshot(run) == before


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_an_old_run_plots_and_evaluates_from_the_command_line(tmp_path, capsys, algorithm):
    run = old_run(tmp_path, algorithm)
    before = snapshot(run)
    status, out, err = cli(capsys, "plot", run, "--out", tmp_path / "curves.png")
    assert status == 0, err
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    status, out, err = cli(capsys, "evaluate", run, "--episodes", 2)
    assert status == 0, err
    last = read_csv(run / "updates.csv")[1][-1]  # the latest checkpoint's update
    assert f"(update {last['update']}, {last['env_steps']} env steps)" in out and "over 2 episodes" in out
    assert snapshot(run) == before
