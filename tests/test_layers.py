"""The package's layers (docs/design.md): imports only point down.

    rlkit.lessons      the notebooks' support; nothing outside it imports it
    rlkit.cli          may import everything below
    rlkit.experiments  train, runs, grids, registry, reports, sweeps, plots, data
    rlkit.agents       one file per algorithm
    rlkit.envs nets rollout                      RL plumbing
    rlkit.fisher kfac critic trust_region vmpo   the mathematics: nothing else from rlkit

Each module's imports are read from its syntax tree (every ``import`` and ``from ... import``
anywhere in the file, including those inside functions), so a lazy import cannot hide a
violation. The rules are checked on the real package and, to show that the check can fail, on
small planted packages that break each rule.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "rlkit"

MATHEMATICS = ("rlkit.fisher", "rlkit.kfac", "rlkit.critic", "rlkit.trust_region", "rlkit.vmpo")
PLUMBING = ("rlkit.envs", "rlkit.nets", "rlkit.rollout")
# what each layer may import from rlkit (prefixes); a module may always import its own layer's modules
ALLOWED = {
    "mathematics": MATHEMATICS,
    "plumbing": MATHEMATICS + PLUMBING,
    "agents": MATHEMATICS + PLUMBING + ("rlkit.agents",),
    "experiments": MATHEMATICS + PLUMBING + ("rlkit.agents", "rlkit.experiments"),
    "cli": MATHEMATICS + PLUMBING + ("rlkit.agents", "rlkit.experiments", "rlkit.cli"),
    "lessons": ("rlkit",),
}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str:
    if module in MATHEMATICS or module.startswith(tuple(m + "." for m in MATHEMATICS)):
        return "mathematics"  # a module or a package (rlkit.kfac.blocks)
    if module in PLUMBING:
        return "plumbing"
    for layer in ("agents", "experiments", "lessons"):
        if module == f"rlkit.{layer}" or module.startswith(f"rlkit.{layer}."):
            return layer
    if module in ("rlkit", "rlkit.cli", "rlkit.__main__"):
        return "cli"
    raise AssertionError(f"{module} belongs to no layer: add it to tests/test_layers.py and docs/design.md")


def imported_modules(path: Path, module: str) -> set[str]:
    """Every rlkit module ``path`` imports (absolute or relative, at any depth of the file)."""
    found = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            # `from rlkit import kfac` imports the module rlkit.kfac
            found.update(f"{base}.{alias.name}" for alias in node.names if base == "rlkit")
    return {name for name in found if name == "rlkit" or name.startswith("rlkit.")}


def violations(root: Path) -> list[str]:
    """'A imports B (layer rule)' for every import that breaks a rule, for the package at ``root``."""
    found = []
    for path in sorted(root.rglob("*.py")):
        module = module_name(path, root)
        layer = layer_of(module)
        for imported in sorted(imported_modules(path, module)):
            if imported == "rlkit" and layer != "lessons":
                continue  # the package's own __init__ holds nothing
            if imported.startswith("rlkit.lessons") and layer != "lessons":
                found.append(f"{module} imports {imported} (nothing outside rlkit.lessons imports it)")
            elif not any(imported == p or imported.startswith(p + ".") for p in ALLOWED[layer]):
                found.append(f"{module} imports {imported} (the {layer} layer may import only "
                             f"{', '.join(ALLOWED[layer])})")
    return found


def test_the_package_keeps_its_layers():
    assert violations(PACKAGE) == []


def test_every_module_belongs_to_a_layer():
    for path in PACKAGE.rglob("*.py"):
        layer_of(module_name(path, PACKAGE))


def plant(tmp_path: Path, files: dict[str, str]) -> Path:
    """A copy of the package's tree of module names (empty files) with ``files`` written into it."""
    root = tmp_path / "rlkit"
    for path in PACKAGE.rglob("*.py"):
        target = root / path.relative_to(PACKAGE)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("")
    for name, text in files.items():
        (root / name).write_text(text)
    return root


@pytest.mark.parametrize("name, text, expected", [
    ("kfac.py", "from rlkit.agents import ACKTR\n", "rlkit.kfac imports rlkit.agents (the mathematics layer"),
    ("vmpo.py", "def f():\n    import rlkit.envs\n", "rlkit.vmpo imports rlkit.envs (the mathematics layer"),
    ("kfac/blocks.py", "from ..rollout import Rollout\n", "rlkit.kfac.blocks imports rlkit.rollout (the mathematics"),
    ("nets.py", "from rlkit.agents.base import Agent\n", "rlkit.nets imports rlkit.agents.base (the plumbing"),
    ("agents/acktr.py", "from rlkit.experiments.runs import write_csv\n",
     "rlkit.agents.acktr imports rlkit.experiments.runs (the agents layer"),
    ("agents/base.py", "from ..experiments import train\n",
     "rlkit.agents.base imports rlkit.experiments (the agents layer"),
    ("experiments/report.py", "from rlkit.lessons.panels import Panel\n",
     "rlkit.experiments.report imports rlkit.lessons.panels (nothing outside rlkit.lessons"),
    ("cli.py", "from rlkit import lessons\n", "rlkit.cli imports rlkit.lessons (nothing outside rlkit.lessons"),
    ("experiments/train.py", "import rlkit.cli\n", "rlkit.experiments.train imports rlkit.cli (the experiments"),
])
def test_a_planted_violation_is_caught(tmp_path, name, text, expected):
    found = violations(plant(tmp_path, {name: text}))
    assert len(found) == 1 and found[0].startswith(expected), found


def test_lessons_may_import_everything(tmp_path):
    root = plant(tmp_path, {"lessons/panels.py": "from rlkit.experiments.sweeps import load_sweep\n"
                                                 "from rlkit.agents import ACKTR\nfrom rlkit import kfac\n"})
    assert violations(root) == []
