"""kit.py, the set-up script: installs once, refuses a test run that tested nothing."""
import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def kit(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("kit", REPO / "kit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # A fake, already created virtual environment in a temporary folder.
    monkeypatch.setattr(module, "VENV", tmp_path / ".venv")
    monkeypatch.setattr(module, "STAMP", tmp_path / ".venv" / "stamp")
    python = module.venv_executable("python")
    python.parent.mkdir(parents=True)
    python.write_text("")
    module.commands_run = []
    monkeypatch.setattr(module, "run", lambda command: module.commands_run.append([str(c) for c in command]) or 0)
    return module


def test_first_setup_installs_the_locked_kit_with_its_test_extra(kit):
    kit.ensure_environment()
    (install,) = kit.commands_run
    assert install[1:4] == ["-m", "pip", "install"]
    assert install[install.index("-c") + 1] == str(kit.CONSTRAINTS)
    assert install[-2:] == ["-e", ".[test]"]
    assert kit.STAMP.read_text().strip() == kit.requirements_hash()


def test_a_set_up_environment_installs_nothing(kit):
    kit.STAMP.write_text(kit.requirements_hash() + "\n")
    kit.ensure_environment()
    assert kit.commands_run == []


def test_a_changed_lock_reinstalls(kit):
    kit.STAMP.write_text("hash of an older constraints.txt\n")
    kit.ensure_environment()
    assert len(kit.commands_run) == 1


def test_pytest_collecting_no_tests_is_a_failure(kit, monkeypatch):
    kit.STAMP.write_text(kit.requirements_hash() + "\n")
    monkeypatch.setattr(kit, "run", lambda command: kit.PYTEST_NO_TESTS_COLLECTED)
    assert kit.main(["test"]) == 1


def test_pytest_failures_and_passes_are_passed_through(kit, monkeypatch):
    kit.STAMP.write_text(kit.requirements_hash() + "\n")
    for code in (0, 1, 2):
        monkeypatch.setattr(kit, "run", lambda command, code=code: code)
        assert kit.main(["test"]) == code


def test_test_command_runs_unit_tests_and_notebooks(kit):
    kit.STAMP.write_text(kit.requirements_hash() + "\n")
    kit.main(["test", "-k", "fisher"])
    (command,) = kit.commands_run
    assert command[1:] == ["-m", "pytest", "tests", "notebooks", "-k", "fisher"]


def test_ci_runs_exactly_the_readme_test_command():
    ci_commands = [line for line in (REPO / ".ci" / "run").read_text().splitlines()
                   if line.strip() and not line.startswith("#") and not line.startswith(("set ", "cd "))]
    assert ci_commands == ["exec python3 kit.py test"]
    assert "python3 kit.py test" in (REPO / "README.md").read_text()
