"""The grader's side inside the kernel that runs a submission (imported by cells the grader adds).

:func:`start` runs before any student code: it imports the notebook's exercise modules, snapshots
every loaded ``rlkit`` module (its names, and its functions' code) and opens the file the verdicts go
to. Each check cell is wrapped in :func:`begin` / :func:`end`: ``begin`` puts back whatever the
notebook changed in those modules (a redefined check, an edited expected value) and notes it, binds
the check's names in the notebook to the kit's functions, and records every verdict that
``rlkit.lessons.checks.report`` prints; ``end`` marks the check as finished. Every record is one
JSON line, written at once, so a kernel that hangs or dies later leaves what ran.

This keeps the grade from depending on the notebook's copy of the checks; it is not a sandbox
against code written to attack the grader itself (grade untrusted code in a container).
"""
from __future__ import annotations

import importlib
import json
import sys
import types

_state: dict = {}


def _write(record: dict) -> None:
    with open(_state["path"], "a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")


def _snapshot_module(module) -> dict:
    names = dict(vars(module))
    code = {name: (value.__code__, value.__defaults__, value.__kwdefaults__)
            for name, value in names.items()
            if isinstance(value, types.FunctionType) and getattr(value, "__module__", None) == module.__name__}
    return {"names": names, "code": code}


def start(path: str, modules: list[str]) -> None:
    """Import ``modules`` (the notebook's exercise modules) and snapshot every loaded rlkit module."""
    _state.clear()
    _state["path"] = path
    _state["current"] = None
    _state["exercise_modules"] = list(modules)
    for name in ["rlkit.lessons.checks", *modules]:
        importlib.import_module(name)
    _state["snapshots"] = {name: _snapshot_module(module) for name, module in list(sys.modules.items())
                           if (name == "rlkit" or name.startswith("rlkit.")) and module is not None}
    _state["recorder"] = _record
    _write({"event": "started"})


def _record(ok: bool, line: str) -> None:
    _write({"event": "verdict", "exercise": _state.get("current"), "ok": bool(ok), "line": str(line)})


def _restore() -> list[str]:
    """Put back what the notebook changed in the snapshotted modules; the names of what was changed."""
    changed = []
    strict = {"rlkit.lessons.checks", *_state["exercise_modules"]}
    for name, snapshot in _state["snapshots"].items():
        module = sys.modules.get(name)
        if module is None:
            sys.modules[name] = module = types.ModuleType(name)
            changed.append(name)
        namespace = vars(module)
        for key, value in snapshot["names"].items():
            current = namespace.get(key, _restore)
            if current is value:
                continue
            # In the checks and the exercise modules everything counts (expected values included);
            # elsewhere only functions and classes (a module may legitimately fill a cache).
            if name in strict or callable(value) or isinstance(value, types.ModuleType):
                namespace[key] = value
                changed.append(f"{name}.{key}")
        for key, (code, defaults, kwdefaults) in snapshot["code"].items():
            function = snapshot["names"][key]
            if (function.__code__, function.__defaults__, function.__kwdefaults__) != (code, defaults, kwdefaults):
                function.__code__, function.__defaults__, function.__kwdefaults__ = code, defaults, kwdefaults
                changed.append(f"{name}.{key}")
    return sorted(set(changed))


def begin(exercise: str, names: dict, namespace: dict) -> None:
    """Before a check cell: restore the kit's modules, bind ``names`` (name → module) in ``namespace``."""
    changed = _restore()
    for name, module in names.items():
        kit = getattr(sys.modules[module], name)
        if name in namespace and namespace[name] is not kit:
            changed.append(f"{name} (redefined in the notebook)")
        namespace[name] = kit
    if changed:
        _write({"event": "restored", "exercise": exercise, "names": changed})
    checks = sys.modules["rlkit.lessons.checks"]
    checks.RECORDERS[:] = [_state["recorder"]]
    _state["current"] = exercise
    _write({"event": "begin", "exercise": exercise})


def end(exercise: str) -> None:
    """After a check cell that ran to its end."""
    _write({"event": "end", "exercise": exercise})
    _state["current"] = None
