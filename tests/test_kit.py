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
    # Chromium already installed: `test` set-up has nothing to install (tests below say otherwise).
    chromium = tmp_path / "chromium"
    chromium.write_text("")
    monkeypatch.setattr(module, "CHROMIUM", chromium)
    module.commands_run = []
    module.folders_run_in = []

    def run(command, cwd=module.REPO):
        module.commands_run.append([str(c) for c in command])
        module.folders_run_in.append(Path(cwd))
        return 0
    monkeypatch.setattr(module, "run", run)
    return module


def test_first_setup_installs_the_locked_kit_with_its_test_extra(kit):
    kit.ensure_environment()
    (install,) = kit.commands_run
    assert install[1:4] == ["-m", "pip", "install"]
    assert install[install.index("-c") + 1] == str(kit.CONSTRAINTS)
    assert install[-2:] == ["-e", ".[all,test]"]
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
    monkeypatch.setattr(kit, "run", lambda command, cwd=None: kit.PYTEST_NO_TESTS_COLLECTED)
    assert kit.main(["test"]) == 1


def test_pytest_failures_and_passes_are_passed_through(kit, monkeypatch):
    kit.STAMP.write_text(kit.requirements_hash() + "\n")
    for code in (0, 1, 2):
        monkeypatch.setattr(kit, "run", lambda command, cwd=None, code=code: code)
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


@pytest.fixture
def debian_root_without_chromium(kit, tmp_path, monkeypatch):
    """A Debian machine, run as root, where apt-get is there and /usr/bin/chromium is not."""
    monkeypatch.setattr(kit, "CHROMIUM", tmp_path / "usr-bin-chromium")
    debian_version = tmp_path / "debian_version"
    debian_version.write_text("12.7\n")
    monkeypatch.setattr(kit, "DEBIAN_VERSION", debian_version)
    monkeypatch.setattr(kit, "is_root", lambda: True)
    monkeypatch.setattr(kit.shutil, "which", lambda name: f"/usr/bin/{name}")
    return kit


def apt_that_installs(kit, codes=(0, 0), installs=True):
    """A mocked ``kit.run``: records each command, answers exit codes, "installs" chromium."""
    answers = iter(codes)

    def run(command, cwd=None):
        kit.commands_run.append([str(c) for c in command])
        code = next(answers)
        if installs and command[:2] == ["apt-get", "install"] and code == 0:
            kit.CHROMIUM.write_text("")
        return code
    return run


def test_test_setup_installs_missing_chromium_with_apt_as_root_on_debian(debian_root_without_chromium, monkeypatch):
    kit = debian_root_without_chromium
    monkeypatch.setattr(kit, "run", apt_that_installs(kit))
    assert kit.ensure_chromium() is True
    assert kit.commands_run == [["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]]


def test_test_command_installs_chromium_before_running_pytest(debian_root_without_chromium, monkeypatch):
    kit = debian_root_without_chromium
    kit.STAMP.write_text(kit.requirements_hash() + "\n")
    monkeypatch.setattr(kit, "run", apt_that_installs(kit, codes=(0, 0, 0)))
    assert kit.main(["test"]) == 0
    update, install, pytest_run = kit.commands_run
    assert (update, install) == (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"])
    assert pytest_run[1:4] == ["-m", "pytest", "tests"]


def test_chromium_present_installs_nothing(kit):
    assert kit.CHROMIUM.exists()
    assert kit.ensure_chromium() is True
    assert kit.commands_run == []


@pytest.mark.parametrize("machine", ["not root", "not Debian", "no apt-get"])
def test_chromium_not_installable_is_a_message_not_a_failure(debian_root_without_chromium, monkeypatch, capsys, machine):
    kit = debian_root_without_chromium
    if machine == "not root":
        monkeypatch.setattr(kit, "is_root", lambda: False)
    elif machine == "not Debian":
        monkeypatch.setattr(kit, "DEBIAN_VERSION", kit.CHROMIUM.parent / "no-such-file")
    else:
        monkeypatch.setattr(kit.shutil, "which", lambda name: None)
    assert kit.ensure_chromium() is False
    assert kit.commands_run == []
    message = capsys.readouterr().err
    assert "No Chromium" in message and "browser tests" in message and "skipped" in message


def test_failing_apt_get_is_a_message_and_the_tests_still_run(debian_root_without_chromium, monkeypatch, capsys):
    kit = debian_root_without_chromium
    kit.STAMP.write_text(kit.requirements_hash() + "\n")
    monkeypatch.setattr(kit, "run", apt_that_installs(kit, codes=(100, 0)))  # apt-get update fails, pytest passes
    assert kit.main(["test"]) == 0
    assert kit.commands_run[0] == ["apt-get", "update"]
    assert kit.commands_run[1][1:3] == ["-m", "pytest"]  # no install attempted after a failed update
    assert "apt-get failed (exit code 100)" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["student-edition", "handout"],
                                  ["grade", "submissions", "--out", "grades.csv", "--timeout", "300"]])
def test_coursework_commands_run_the_coursework_module_in_the_environment_from_the_callers_folder(
        kit, argv, tmp_path, monkeypatch):
    kit.STAMP.write_text(kit.requirements_hash() + "\n")
    monkeypatch.chdir(tmp_path)
    assert kit.main(argv) == 0
    (command,) = kit.commands_run
    assert command == [str(kit.venv_executable("python")), "-m", "rlkit.lessons.coursework", *argv]
    # relative OUT_DIR, SUBMISSIONS_DIR and --out are the caller's, not the repository's
    assert kit.folders_run_in == [tmp_path]


def test_coursework_commands_set_up_the_environment_first(kit):
    kit.main(["student-edition", "handout"])
    install, coursework = kit.commands_run
    assert install[1:4] == ["-m", "pip", "install"]
    assert coursework[1:3] == ["-m", "rlkit.lessons.coursework"]


def test_the_help_names_the_coursework_commands(kit, capsys):
    assert kit.main([]) == 2
    help_text = capsys.readouterr().out
    assert "student-edition OUT_DIR" in help_text and "grade SUBMISSIONS_DIR --out grades.csv" in help_text
