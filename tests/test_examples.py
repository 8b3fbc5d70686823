"""Every script in examples/ runs to its end (each asserts what it shows: a falling loss, the best arm, ...)."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.py"))


def test_the_examples_cover_what_a_researcher_tries_first():
    assert {p.stem for p in EXAMPLES} >= {"kfac_classifier", "kfac_cnn", "kfac_functional", "acktr_step", "vmpo_bandit"}


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(script, capsys):
    runpy.run_path(str(script), run_name="__main__")
    assert capsys.readouterr().out.strip().endswith(f"{script.name}: ok")
