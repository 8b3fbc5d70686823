"""The grader's side in the kernel, run in this process: verdicts recorded, the kit's checks put back."""
import json

import pytest

import rlkit.lessons.checks as checks
import rlkit.lessons.nb06_gauss_newton_critic.exercises as exercises
from rlkit.lessons.coursework import kernel

MODULE = "rlkit.lessons.nb06_gauss_newton_critic.exercises"


@pytest.fixture
def started(tmp_path):
    path = tmp_path / "verdicts.jsonl"
    kernel.start(str(path), [MODULE])
    yield path
    checks.RECORDERS.clear()


def records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_report_records_each_verdict_for_the_grader_and_prints_as_before(started, capsys):
    namespace = {}
    kernel.begin("sigma_step_ratio", {"check_sigma_step_ratio": MODULE}, namespace)
    assert namespace["check_sigma_step_ratio"] is exercises.check_sigma_step_ratio
    assert namespace["check_sigma_step_ratio"](None) is False
    kernel.end("sigma_step_ratio")
    printed = capsys.readouterr().out
    assert printed.startswith("✗ step ratio") and checks.NOT_DONE in printed
    events = records(started)
    assert [e["event"] for e in events] == ["started", "begin", "verdict", "end"]
    assert events[2] == {"event": "verdict", "exercise": "sigma_step_ratio", "ok": False,
                         "line": printed.strip()}


def test_a_report_without_a_recorder_only_prints(capsys):
    assert checks.RECORDERS == []
    assert checks.report(True, "fine") is True
    assert capsys.readouterr().out == "✓ fine\n"


def test_redefined_checks_patched_helpers_and_edited_code_are_put_back(started):
    original_check, original_close = exercises.check_sigma_step_ratio, checks.close
    original_code = exercises.check_baselines_block_scale.__code__
    # what a notebook could do: replace a check, a helper it uses, a function's code
    exercises.check_sigma_step_ratio = lambda answer: True
    checks.close = exercises.close = lambda *a, **k: (True, "")
    exercises.check_baselines_block_scale.__code__ = (lambda answer: True).__code__
    namespace = {"check_sigma_step_ratio": lambda answer: True}
    kernel.begin("sigma_step_ratio", {"check_sigma_step_ratio": MODULE}, namespace)
    assert exercises.check_sigma_step_ratio is original_check and namespace["check_sigma_step_ratio"] is original_check
    assert checks.close is original_close and exercises.close is original_close
    assert exercises.check_baselines_block_scale.__code__ is original_code
    assert namespace["check_sigma_step_ratio"](7.0) is False
    (restored,) = [e for e in records(started) if e["event"] == "restored"]
    assert restored["names"] == sorted([f"{MODULE}.check_sigma_step_ratio", f"{MODULE}.close",
                                        f"{MODULE}.check_baselines_block_scale", "rlkit.lessons.checks.close"]
                                       ) + ["check_sigma_step_ratio (redefined in the notebook)"]


def test_an_untouched_kit_restores_nothing(started):
    kernel.begin("sigma_step_ratio", {}, {})
    assert not [e for e in records(started) if e["event"] == "restored"]
