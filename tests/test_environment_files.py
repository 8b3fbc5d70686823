"""The three places that name dependencies agree: pyproject.toml, constraints.txt, environment.yml."""
import re
import sys
from pathlib import Path

import pytest
import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parent.parent


def canonical(name: str) -> str:
    """PEP 503 normalized project name, extras dropped: 'Gymnasium[mujoco]' -> 'gymnasium'."""
    name = re.split(r"[\[<>=!~; ]", name.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def pyproject_dependencies() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    requirements = project["dependencies"] + extras["rl"] + extras["lab"] + extras["test"]
    return {canonical(r): r for r in requirements}


def environment_pip_pins() -> dict[str, str]:
    environment = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    pins = {}
    for line in pip_section:
        if line.startswith("-e"):
            continue
        name, version = line.split("==")
        pins[canonical(name)] = version
    return pins


def locked_versions() -> dict[str, str]:
    versions = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            requirement = line.split(";")[0].strip()
            name, version = requirement.split("==")
            versions[canonical(name)] = version
    return versions


def test_environment_yml_names_the_pyproject_dependencies():
    assert sorted(environment_pip_pins()) == sorted(pyproject_dependencies())


def test_environment_yml_pins_the_locked_versions():
    locked = locked_versions()
    for name, version in environment_pip_pins().items():
        assert locked.get(name) == version, f"{name}: environment.yml {version}, constraints.txt {locked.get(name)}"


def test_environment_yml_installs_the_kit_with_all_and_its_test_extra():
    environment = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    assert "-e .[all,test]" in pip_section  # as kit.py installs it


def test_every_dependency_is_locked_and_torch_is_pinned_for_every_python():
    locked = locked_versions()
    missing = [name for name in pyproject_dependencies() if name not in locked]
    assert not missing, f"not in constraints.txt: {missing}"
    torch_line = next(l for l in (REPO / "constraints.txt").read_text().splitlines() if l.startswith("torch=="))
    assert torch_line == "torch==2.13.0", "torch must stay pinned without a marker (CPU wheel, no CUDA download)"


def test_requires_python_and_distribution_name():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.10"
    # "RLkit" on PyPI is an unrelated project: the distribution name must differ from it.
    assert canonical(project["name"]) not in {"rlkit"}
