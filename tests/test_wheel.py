"""The built wheel carries what the package reads: installed outside the checkout, it loads every
table, sweep, kept reproduction and benchmark, and runs notebook 00 and notebook 07 (a sweep panel).

The wheel is built from this checkout (``pip wheel --no-deps``; setup.py copies data/ into
rlkit/_data) and installed with ``--target`` into a fresh virtual environment made without pip,
whose other packages come from this environment's site-packages through a .pth file (nothing is
downloaded; the editable install's finder is not loaded there). Everything runs with cwd = a
temporary folder, without the repository on sys.path and without RLKIT_DATA_DIR.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # about a minute: a wheel build and two notebook runs

CHECK_DATA = r"""
import sys
from pathlib import Path
import rlkit
from rlkit.experiments.data import available_tables, data_dir, load_table
from rlkit.experiments.results import benchmark_rows, load_reproduction
from rlkit.experiments.sweeps import load_sweep

venv = Path(sys.argv[1]).resolve()
assert Path(rlkit.__file__).resolve().is_relative_to(venv), rlkit.__file__
folder = data_dir()
assert folder.resolve() == (Path(rlkit.__file__).resolve().parent / "_data"), folder
tables = available_tables()
for name in tables:
    assert load_table(name), name
sweeps = sorted(p.stem for p in (folder / "sweeps").glob("*.csv"))
for name in sweeps:
    assert len(load_sweep(name).seeds) > 0, name
reproductions = sorted(p.name for p in (folder / "reproductions").iterdir() if p.is_dir())
for name in reproductions:
    load_reproduction(name)
benchmarks = sorted(p.stem for p in (folder / "benchmarks").glob("*.csv"))
for name in benchmarks:
    assert benchmark_rows(name), name
print("tables", len(tables), "sweeps", len(sweeps), "reproductions", len(reproductions), "benchmarks", len(benchmarks))
"""

EXECUTE = r"""
import sys, nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
nb.cells.append(nbformat.v4.new_code_cell("import sys, rlkit; print(sys.executable); print(rlkit.__file__)"))
NotebookClient(nb, kernel_name="rlkit-wheel", timeout=600, resources={"metadata": {"path": "."}}).execute()
print(nb.cells[-1].outputs[0]["text"].strip())
"""


def expected_data() -> list[str]:
    """What data/ must ship: the tables, sweeps, kept reproductions and benchmark CSVs."""
    data = ROOT / "data"
    found = [*data.glob("*.csv"), *data.glob("sweeps/*.csv"), *data.glob("sweeps/*.json"),
             *data.glob("reproductions/*/*"), *data.glob("benchmarks/*.csv")]
    return sorted(str(p.relative_to(data)) for p in found)


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory):
    """(wheel, venv, its python, the environment for subprocesses)."""
    tmp = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if k not in ("RLKIT_DATA_DIR", "PYTHONPATH", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp / "dist"), str(ROOT)], check=True, env=env, cwd=tmp)
    wheel = next((tmp / "dist").glob("rlkit_natgrad-*.whl"))

    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    # this environment's packages, after the venv's own (the wheel's rlkit wins over the editable one)
    (site / "_rlkit_test_base.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile",
                    "--target", str(site), str(wheel)], check=True, env=env)
    subprocess.run([str(python), "-m", "ipykernel", "install", "--prefix", str(venv), "--name", "rlkit-wheel"],
                   check=True, capture_output=True, env=env, cwd=tmp)
    env = dict(env, JUPYTER_PATH=str(venv / "share" / "jupyter"), MPLBACKEND="Agg")
    return wheel, venv, python, env


def test_the_wheel_carries_the_data_and_is_small(wheel_env):
    wheel = wheel_env[0]
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "rlkit/py.typed" in names
    missing = [rel for rel in expected_data() if f"rlkit/_data/{rel}" not in names]
    assert not missing, f"data files not in the wheel: {missing}"
    assert wheel.stat().st_size < 5e6, f"{wheel.name}: {wheel.stat().st_size / 1e6:.1f} MB"
    assert not (ROOT / "rlkit" / "_data").exists(), "the build wrote a second copy of data/ into the source tree"


def test_installed_wheel_loads_every_table_sweep_and_reproduction(wheel_env, tmp_path):
    _, venv, python, env = wheel_env
    r = subprocess.run([str(python), "-I", "-c", CHECK_DATA, str(venv)], capture_output=True, text=True,
                       env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    data = ROOT / "data"
    counts = (len(list(data.glob("*.csv"))), len(list(data.glob("sweeps/*.csv"))),
              len([p for p in data.glob("reproductions/*") if p.is_dir()]), len(list(data.glob("benchmarks/*.csv"))))
    assert r.stdout.split() == ["tables", str(counts[0]), "sweeps", str(counts[1]), "reproductions",
                                str(counts[2]), "benchmarks", str(counts[3])]


@pytest.mark.parametrize("notebook", ["00_setup_check", "07_acktr_runs"])
def test_installed_wheel_runs_notebooks(wheel_env, tmp_path, notebook):
    _, venv, python, env = wheel_env
    r = subprocess.run([str(python), "-I", "-c", EXECUTE, str(ROOT / "notebooks" / f"{notebook}.ipynb")],
                       capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    executable, package = r.stdout.strip().splitlines()[-2:]
    assert Path(executable).parent == venv / "bin", executable  # the kernel is the fresh environment's
    assert Path(package).is_relative_to(venv) and not Path(package).is_relative_to(ROOT), package


def _bare_venv(path: Path) -> tuple[Path, Path]:
    """A venv without pip and without rlkit whose other packages (pip, torch, ...) come from this
    environment through a .pth file: (its python, its site-packages)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "_rlkit_test_base.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python, site


def test_the_notebooks_install_cell_installs_the_wheel_where_rlkit_is_missing(wheel_env, tmp_path):
    """The first cell of every notebook, run in a bare environment with only the built wheel to
    install from (RLKIT_INSTALL_FROM; pip offline): rlkit is missing, torch is present (a hosted
    kernel's), so the cell installs the kit without touching torch; rlkit then imports from that
    environment and reads its packaged data."""
    wheel, _, _, env = wheel_env
    python, site = _bare_venv(tmp_path / "bare")
    env = dict(env, RLKIT_INSTALL_FROM=str(wheel), PIP_NO_INDEX="1")
    missing = subprocess.run([str(python), "-I", "-c", "import importlib.util as u; print(u.find_spec('rlkit'))"],
                             capture_output=True, text=True, env=env, cwd=tmp_path)
    assert missing.stdout.strip() == "None", missing.stdout + missing.stderr  # the kit is not there yet
    cell = "".join(json.loads((ROOT / "notebooks" / "00_setup_check.ipynb").read_text())["cells"][0]["source"])
    assert cell.startswith("# NBVAL_SKIP")
    check = ("import rlkit, torch; from rlkit.experiments.data import data_dir, load_table; "
             "print(rlkit.__file__); print(torch.__file__); print(data_dir()); print(len(load_table('acktr_table1_atari')['gym_id']))")
    r = subprocess.run([str(python), "-I", "-c", cell + "\n" + check], capture_output=True, text=True, env=env,
                       cwd=tmp_path)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    package, torch_file, data, rows = r.stdout.strip().splitlines()[-4:]
    assert Path(package).is_relative_to(site), package  # installed by the cell into the bare environment
    assert not Path(torch_file).is_relative_to(site), torch_file  # the kernel's torch was kept
    assert Path(data) == Path(package).parent / "_data" and int(rows) > 0
