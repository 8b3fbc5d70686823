"""Colab and Binder: every notebook's install cell and links, generated from pyproject's repository URL.

tools/notebook_links.py writes two cells at the top of each notebook (ids ``rlkit-install`` and
``rlkit-links``) and binder/environment.yml; these tests check that the committed files are what it
generates, that a fork changing ``[project.urls] Repository`` changes every link, and the install
cell's logic: a no-op where rlkit imports; elsewhere the kit from the repository, with
``--no-deps`` plus its non-torch requirements where torch is already there (a hosted kernel's own
torch is kept), with the ``[all]`` extra otherwise. The install itself (pip reaching GitHub) is not
run here: the cell is executed with ``subprocess.check_call`` and ``find_spec`` replaced, a unit test
of the commands it issues (tests/test_wheel.py runs notebook 00, this cell included, in a fresh
virtual environment where the built wheel is installed: there the cell must do nothing).
Also: headless MuJoCo rendering picks a working ``MUJOCO_GL`` by itself (rlkit.envs.headless_gl).
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

import notebook_links as links  # noqa: E402

FORK = "https://github.com/someone-else/rlkit-fork"


def _source(cell: dict) -> str:
    return "".join(cell["source"])


def test_committed_files_are_what_the_generator_writes():
    stale = [str(p.relative_to(REPO)) for p, text in links.generated_files().items()
             if not p.is_file() or p.read_text() != text]
    assert not stale, f"run `.venv/bin/python tools/notebook_links.py`: stale {stale}"


@pytest.mark.parametrize("path", links.notebooks(), ids=lambda p: p.name)
def test_every_notebook_starts_with_the_install_cell_and_the_links(path):
    url = links.repository_url()
    cells = json.loads(path.read_text())["cells"]
    install, link_cell = cells[0], cells[1]
    assert install["cell_type"] == "code" and install["id"] == links.INSTALL_ID
    assert _source(install).splitlines()[0] == "# NBVAL_SKIP"
    assert f'"rlkit-natgrad @ git+{url}"' in _source(install)
    assert link_cell["cell_type"] == "markdown" and link_cell["id"] == links.LINKS_ID
    slug = url.removeprefix("https://github.com/")
    assert _source(link_cell) == (
        f"[Open in Colab](https://colab.research.google.com/github/{slug}/blob/main/notebooks/{path.name})"
        f" · [Launch on Binder](https://mybinder.org/v2/gh/{slug}/HEAD?labpath=notebooks%2F{path.name})"
        f" · [Repository]({url})")
    ids = [c.get("id") for c in cells]
    assert len(ids) == len(set(ids)), "cell ids must be unique"


def test_the_url_comes_from_pyproject():
    text = (REPO / "pyproject.toml").read_text()
    if "Repository" in text:
        assert links.repository_url() in text


def _fake_repo(tmp_path: Path, url: str | None) -> Path:
    repo = tmp_path / "fork"
    (repo / "notebooks").mkdir(parents=True)
    pyproject = (REPO / "pyproject.toml").read_text()
    if url is None:
        pyproject = "\n".join(line for line in pyproject.splitlines() if not line.startswith("Repository"))
    else:
        pyproject = "\n".join(f'Repository = "{url}"' if line.startswith("Repository") else line
                              for line in pyproject.splitlines())
    (repo / "pyproject.toml").write_text(pyproject)
    shutil.copy2(REPO / "environment.yml", repo / "environment.yml")
    for name in ("00_setup_check.ipynb", "05_trust_region.ipynb"):
        shutil.copy2(REPO / "notebooks" / name, repo / "notebooks" / name)
    return repo


def test_a_fork_changes_one_line_and_every_link_follows(tmp_path):
    repo = _fake_repo(tmp_path, FORK + ".git/")
    assert links.repository_url(repo) == FORK
    files = links.generated_files(repo)
    original = links.repository_url()
    for path, text in files.items():
        if path.suffix != ".ipynb":
            continue
        nb = json.loads(text)
        assert [c["id"] for c in nb["cells"][:2]] == [links.INSTALL_ID, links.LINKS_ID]
        # regenerating does not add a second pair of cells
        assert sum(c["id"] == links.INSTALL_ID for c in nb["cells"]) == 1
        head = _source(nb["cells"][0]) + _source(nb["cells"][1])
        assert f"git+{FORK}\"" in head
        assert f"colab.research.google.com/github/someone-else/rlkit-fork/blob/main/notebooks/{path.name}" in head
        assert f"mybinder.org/v2/gh/someone-else/rlkit-fork/HEAD?labpath=notebooks%2F{path.name}" in head
        assert original not in head
    assert "someone-else/rlkit-fork" in links.readme_line(FORK)


def test_without_a_declared_url_the_default_is_used(tmp_path):
    assert links.repository_url(_fake_repo(tmp_path, None)) == links.DEFAULT_URL


def test_a_url_that_is_not_github_is_refused():
    with pytest.raises(ValueError, match="GitHub"):
        links.colab_url("https://gitlab.com/a/b", "00_setup_check.ipynb")


def _run_install_cell(monkeypatch, present: set[str]) -> list[list[str]]:
    """Execute the install cell with ``find_spec`` answering for ``present``; returns the commands."""
    calls: list[list[str]] = []
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: (real(name, *a) if name in present else None)
                        if name in ("rlkit", "torch") else real(name, *a))
    monkeypatch.setattr(subprocess, "check_call", lambda cmd, *a, **k: calls.append(list(cmd)) or 0)
    source = _source(json.loads((REPO / "notebooks" / "00_setup_check.ipynb").read_text())["cells"][0])
    exec(compile(source, "install-cell", "exec"), {})
    return calls


def test_install_cell_does_nothing_where_rlkit_imports(monkeypatch):
    assert _run_install_cell(monkeypatch, {"rlkit", "torch"}) == []


def test_install_cell_keeps_a_hosted_torch(monkeypatch):
    calls = _run_install_cell(monkeypatch, {"torch"})
    url = links.repository_url()
    assert len(calls) == 2
    assert calls[0][:4] == [sys.executable, "-m", "pip", "install"]
    assert calls[0][-2:] == ["--no-deps", f"rlkit-natgrad @ git+{url}"]
    requirements = calls[1][5:]
    assert requirements == links.runtime_requirements()
    assert not any(r.startswith("torch") for r in requirements), "the hosted kernel's torch must stay"
    assert any(r.startswith("gymnasium") for r in requirements) and any(r.startswith("numpy") for r in requirements)
    assert not any("constraints" in part or "+cpu" in part for call in calls for part in call)


def test_install_cell_without_torch_installs_the_kit_with_its_extras(monkeypatch):
    calls = _run_install_cell(monkeypatch, set())
    assert calls == [[sys.executable, "-m", "pip", "install", "--quiet",
                      f"rlkit-natgrad[all] @ git+{links.repository_url()}"]]


def test_binder_configuration():
    env = (REPO / "binder" / "environment.yml").read_text()
    assert "- -e " not in env and "playwright" not in env
    assert "download.pytorch.org/whl/cpu" in env
    for line in (REPO / "environment.yml").read_text().splitlines():  # the runtime pins are the same
        if line.strip().startswith("- ") and any(n in line for n in ("numpy==", "torch==", "gymnasium", "matplotlib==")):
            assert line in env
    postbuild = REPO / "binder" / "postBuild"
    assert os.access(postbuild, os.X_OK) and "pip install --no-deps -e ." in postbuild.read_text()


# --- headless MuJoCo rendering ---------------------------------------------------------------

from rlkit import envs as rl_envs  # noqa: E402


def _no_display(monkeypatch):
    for name in ("MUJOCO_GL", "PYOPENGL_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)


def test_headless_gl_keeps_a_chosen_backend(monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    assert rl_envs.headless_gl() == "osmesa"


def test_headless_gl_names_what_to_install_when_nothing_works(monkeypatch):
    _no_display(monkeypatch)
    monkeypatch.setattr(rl_envs, "MUJOCO_GL_BACKENDS", ("no-such-backend",))
    with pytest.raises(rl_envs.HeadlessGLError, match="libegl1.*libosmesa6"):
        rl_envs.headless_gl()
    assert "MUJOCO_GL" not in os.environ


def test_mujoco_renders_without_a_display():
    """A fresh process without MUJOCO_GL or a display renders a MuJoCo frame (evaluate --video's path)."""
    pytest.importorskip("mujoco")
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM", "DISPLAY")}
    code = ("import os; from rlkit.envs import make_vec_env, reset_with_seed\n"
            "e = make_vec_env('InvertedPendulum-v5', 1, training=False, render_mode='rgb_array')\n"
            "reset_with_seed(e, 0); f = e.render()[0]\n"
            "print(os.environ['MUJOCO_GL'], f.shape, int(f.max()) > 0)")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300,
                            cwd=REPO)
    if result.returncode != 0 and "neither EGL nor OSMesa works" in result.stderr:
        pytest.skip("no off-screen OpenGL on this machine (the error names what to install)")
    assert result.returncode == 0, result.stderr[-2000:]
    backend, *rest = result.stdout.split()
    assert backend in rl_envs.MUJOCO_GL_BACKENDS
    assert result.stdout.strip().endswith("(480, 480, 3) True")
