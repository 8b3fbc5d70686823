"""Install the built wheel with the NEWEST versions of its dependencies and check that the kit works.

    .venv/bin/python tools/unpinned_install.py [--out data/benchmarks/unpinned_install.txt]

What it does, in a fresh virtual environment (a temporary folder, removed afterwards):

1. builds the wheel from this checkout (``pip wheel --no-deps``);
2. ``pip install torch==<the .venv's torch>`` (on a CPU machine the CPU wheel; an unpinned torch
   from PyPI would pull several GB of CUDA packages), then ``pip install <wheel>[all,test]``
   WITHOUT constraints.txt: every other dependency at the newest version the index serves;
3. prints the versions it got next to the ones constraints.txt pins;
4. runs the unit tests (``pytest tests -m "not slow"``) with that environment's Python, the
   package imported from the installed wheel (``--import-mode=importlib``, cwd = the checkout for
   the tests' own files);
5. executes notebooks 00–06 with nbclient in a kernel of that environment, from a temporary
   folder (outputs may differ by rounding from the committed ones; nothing may raise).

It prints what it found (versions, failures) and writes the same text to ``--out``. Exit status 0
when the install, the tests and the notebooks all passed.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = [f"{n:02d}" for n in range(7)]
SHOWN = ["torch", "numpy", "gymnasium", "mujoco", "ale-py", "opencv-python-headless", "matplotlib", "ipywidgets",
         "jupyterlab", "tqdm", "pytest", "nbval", "ipykernel", "nbclient", "nbformat", "pyyaml", "playwright", "ray"]

EXECUTE = r"""
import sys, time, nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
path, kernel = sys.argv[1], sys.argv[2]
nb = nbformat.read(path, as_version=4)
t = time.perf_counter()
try:
    NotebookClient(nb, kernel_name=kernel, timeout=900, resources={"metadata": {"path": "."}}).execute()
except CellExecutionError as e:
    print("ERROR", str(e).strip().splitlines()[-1][:300])
    sys.exit(1)
print(f"ok {time.perf_counter() - t:.0f} s")
"""


def sh(cmd, log, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    log.write(f"$ {' '.join(map(str, cmd))}\n{r.stdout}{r.stderr}\n")
    return r


def pinned() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        m = re.match(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        if m:
            pins[m.group(1).lower().replace("_", "-")] = m.group(2)
    return pins


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "data" / "benchmarks" / "unpinned_install.txt")
    ap.add_argument("--keep", type=Path, help="make the environment here and keep it (default: a temporary folder)")
    ap.add_argument("--tests", default="not slow", help='pytest -m expression for the unit tests ("" = all)')
    ap.add_argument("--notebooks", nargs="*", default=NOTEBOOKS, help="notebook numbers to execute (default 00-06)")
    args = ap.parse_args(argv)

    work = args.keep or Path(tempfile.mkdtemp(prefix="rlkit-unpinned-"))
    work.mkdir(parents=True, exist_ok=True)  # an existing --keep folder is reused (pip finds its packages)
    log = open(work / "log.txt", "w")
    lines: list[str] = []

    def say(text=""):
        print(text, flush=True)
        lines.append(text)

    env = {k: v for k, v in os.environ.items() if k not in ("RLKIT_DATA_DIR", "PYTHONPATH", "VIRTUAL_ENV")}
    env["PIP_CONSTRAINT"] = ""  # no constraints.txt, no machine-wide pins: the newest versions
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    import torch

    torch_version = torch.__version__.split("+")[0]
    t0 = time.perf_counter()
    say(f"Unpinned install of the rlkit-natgrad wheel ({time.strftime('%Y-%m-%d', time.gmtime())}, "
        f"Python {sys.version.split()[0]}, {sys.platform})")
    say("command: .venv/bin/python tools/unpinned_install.py")
    say(f"torch kept at {torch_version} (the CPU wheel at hand; an unpinned torch pulls GBs of CUDA packages); "
        "every other dependency unpinned, newest")
    failures: list[str] = []

    dist = work / "dist"
    r = sh([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", dist, ROOT], log, env=env)
    if r.returncode:
        say("FAILED: building the wheel (see log)")
        return 1
    wheel = next(dist.glob("rlkit_natgrad-*.whl"))
    say(f"wheel: {wheel.name}, {wheel.stat().st_size / 1e6:.1f} MB")

    venv = work / "venv"
    py = venv / "bin" / "python"
    sh([sys.executable, "-m", "venv", venv], log, env=env)
    r = sh([py, "-m", "pip", "install", "-q", f"torch=={torch_version}"], log, env=env)
    if r.returncode == 0:
        r = sh([py, "-m", "pip", "install", "-q", f"{wheel}[all,test]"], log, env=env)
    if r.returncode:
        say(f"FAILED: pip install (see {work / 'log.txt'}):\n{r.stderr[-2000:]}")
        return 1
    say(f"install: {time.perf_counter() - t0:.0f} s")

    freeze = sh([py, "-m", "pip", "list", "--format=freeze"], log, env=env).stdout
    got = {}
    for line in freeze.splitlines():
        if "==" in line:
            name, version = line.split("==", 1)
            got[name.lower().replace("_", "-")] = version
    pins = pinned()
    newer = sorted(n for n in got if n in pins and got[n].split("+")[0] != pins[n])
    say("\nversions (installed | constraints.txt):")
    for name in SHOWN:
        say(f"  {name:24s} {got.get(name, '-'):14s} | {pins.get(name, '-')}")
    say(f"{len(newer)} of {len(got)} installed distributions differ from constraints.txt: "
        + ", ".join(f"{n} {pins[n]}→{got[n]}" for n in newer))

    # the unit tests (rlkit imported from the installed wheel), while the notebooks run
    t = time.perf_counter()
    cmd = [py, "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider", "--import-mode=importlib", "--no-header", "-rfE"]
    if args.tests:
        cmd += ["-m", args.tests]
    check = sh([py, "-c", "import rlkit, sys; print(rlkit.__file__)"], log, env=env, cwd=work).stdout.strip()
    say(f"\nrlkit imported from: {check.replace(str(work), '<tmp>')}")
    test_log = open(work / "unit_tests.txt", "w+")
    tests = subprocess.Popen([str(c) for c in cmd], stdout=test_log, stderr=subprocess.STDOUT, text=True, env=env,
                             cwd=ROOT)

    # the notebooks, in a kernel of the fresh environment, from another folder
    sh([py, "-m", "ipykernel", "install", "--prefix", venv, "--name", "rlkit-unpinned"], log, env=env)
    nb_env = dict(env, JUPYTER_PATH=str(venv / "share" / "jupyter"), MPLBACKEND="Agg")
    run_dir = work / "cwd"
    run_dir.mkdir(exist_ok=True)
    notebook_lines = []
    for number in args.notebooks:
        path = next((ROOT / "notebooks").glob(f"{number}_*.ipynb"))
        r = sh([py, "-c", EXECUTE, path, "rlkit-unpinned"], log, env=nb_env, cwd=run_dir)
        out = (r.stdout.strip().splitlines() or [r.stderr.strip()[-300:]])[-1]
        notebook_lines.append(f"  {path.name:32s} {out}")
        print(notebook_lines[-1], flush=True)
        if r.returncode:
            failures.append(path.name)

    tests.wait()
    test_log.seek(0)
    output = test_log.read()
    summary = (output.strip().splitlines() or ["(no output)"])[-1]
    say(f"unit tests (pytest tests -m {args.tests!r}, --import-mode=importlib): {summary} "
        f"[{time.perf_counter() - t:.0f} s, beside the notebooks]")
    if tests.returncode:
        failures.append("unit tests")
        for line in output.splitlines():
            if line.startswith(("FAILED", "ERROR")):
                say("  " + line[:300])
    say("\nnotebooks (nbclient, a kernel of the fresh environment, cwd outside the checkout):")
    for line in notebook_lines:
        say(line)

    say(f"\nresult: {'everything passed' if not failures else 'FAILED: ' + ', '.join(failures)} "
        f"(total {time.perf_counter() - t0:.0f} s)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
