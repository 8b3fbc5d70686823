"""The "Open in Colab" / Binder links and the install cell of every notebook, generated from one URL.

    .venv/bin/python tools/notebook_links.py           # insert or update the cells in notebooks/*.ipynb
    .venv/bin/python tools/notebook_links.py --check   # exit 1 if a notebook's cells are missing or stale
    .venv/bin/python tools/notebook_links.py --readme  # print the links line for README.md

The repository's URL is declared once, in pyproject.toml (``[project.urls] Repository``); a fork
changes that line and reruns this script. Each notebook gets two cells, found again by their ids:

* ``rlkit-install`` (the first cell): ``# NBVAL_SKIP``; does nothing where ``import rlkit`` works;
  elsewhere (Colab, Binder, a bare kernel) it pip-installs the kit from the repository. A kernel
  that already has torch (Colab's GPU build) keeps it: the kit goes in with ``--no-deps`` and then
  its other requirements (read from pyproject.toml), never the CPU pin of constraints.txt;
* ``rlkit-links`` (the second cell): one markdown line with the Colab and Binder links (text links:
  no badge image to fetch from another host).

``binder/environment.yml`` (the Binder configuration) is generated here too, from environment.yml:
the same pinned packages without the editable install, which ``binder/postBuild`` does once the
repository is in place.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[1]
DEFAULT_URL = "https://github.com/rlkit-natgrad/rlkit"
BRANCH = "main"
INSTALL_ID = "rlkit-install"
LINKS_ID = "rlkit-links"


def _pyproject(repo: Path = REPO) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    path = repo / "pyproject.toml"
    return tomllib.loads(path.read_text()) if path.is_file() else {}


def repository_url(repo: Path = REPO) -> str:
    """``[project.urls] Repository`` of pyproject.toml, without a trailing slash or ``.git``."""
    url = _pyproject(repo).get("project", {}).get("urls", {}).get("Repository") or DEFAULT_URL
    return re.sub(r"(\.git)?/*$", "", url)


def github_slug(url: str) -> str:
    """``owner/name`` of a GitHub URL (Colab and Binder address GitHub repositories by it)."""
    match = re.fullmatch(r"https?://github\.com/([^/]+)/([^/]+)", url)
    if not match:
        raise ValueError(f"not a GitHub repository URL: {url!r} (Colab and Binder links need one)")
    return f"{match[1]}/{match[2]}"


def colab_url(url: str, notebook: str) -> str:
    return f"https://colab.research.google.com/github/{github_slug(url)}/blob/{BRANCH}/notebooks/{notebook}"


def binder_url(url: str, notebook: str | None = None) -> str:
    base = f"https://mybinder.org/v2/gh/{github_slug(url)}/HEAD"
    return base if notebook is None else f"{base}?labpath={quote('notebooks/' + notebook, safe='')}"


def links_markdown(url: str, notebook: str) -> str:
    return (f"[Open in Colab]({colab_url(url, notebook)}) · [Launch on Binder]({binder_url(url, notebook)})"
            f" · [Repository]({url})")


def readme_line(url: str) -> str:
    """The README's line: Binder opens the syllabus; Colab opens notebook 00."""
    return (f"[Open in Colab]({colab_url(url, '00_setup_check.ipynb')}) · "
            f"[Launch on Binder]({binder_url(url)}?labpath=notebooks%2FREADME.md)")


def runtime_requirements(repo: Path = REPO) -> list[str]:
    """The kit's requirements for the notebooks (dependencies + the rl and lab extras), torch left out."""
    project = _pyproject(repo).get("project", {})
    extras = project.get("optional-dependencies", {})
    names = list(project.get("dependencies", [])) + list(extras.get("rl", [])) + list(extras.get("lab", []))
    if not names:  # no pyproject: the kit's declared requirements at the time of writing
        names = ["numpy>=1.26", "gymnasium[mujoco,classic-control]>=1.0", "ale-py>=0.10",
                 "opencv-python-headless>=4.8", "matplotlib>=3.8", "ipywidgets>=8.0", "tqdm>=4.60"]
    # JupyterLab is the hosted kernel's own business; torch stays whatever the kernel has
    return [r for r in names if not re.match(r"(torch|jupyterlab)\b", r)]


def install_cell_source(url: str, requirements: list[str]) -> str:
    reqs = textwrap.fill(", ".join(json.dumps(r) for r in requirements), width=100,
                         initial_indent=" " * 12, subsequent_indent=" " * 12, break_on_hyphens=False,
                         break_long_words=False)
    return f'''# NBVAL_SKIP
# Installs the kit where it is missing (Colab, Binder, a bare kernel); does nothing where
# `import rlkit` works. A kernel with its own torch (Colab's GPU build) keeps that torch.
# RLKIT_INSTALL_FROM names another source (a built wheel, a fork); the default is the repository.
import importlib, importlib.util, os, subprocess, sys
if importlib.util.find_spec("rlkit") is None:
    _kit = os.environ.get("RLKIT_INSTALL_FROM") or "rlkit-natgrad @ git+{url}"
    _pip = [sys.executable, "-m", "pip", "install", "--quiet"]
    if importlib.util.find_spec("torch") is not None:
        subprocess.check_call(_pip + ["--no-deps", _kit])
        subprocess.check_call(_pip + [
{reqs}])
    else:
        subprocess.check_call(_pip + [_kit.replace(" @ ", "[all] @ ", 1) if " @ " in _kit else _kit + "[all]"])
    importlib.invalidate_caches()'''


def _cell(cell_type: str, cell_id: str, source: str) -> dict:
    cell = {"cell_type": cell_type, "id": cell_id, "metadata": {}, "source": source.splitlines(keepends=True)}
    if cell_type == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def update_notebook(nb: dict, name: str, url: str, requirements: list[str]) -> dict:
    """The notebook with the install cell first and the links cell second (other cells untouched)."""
    cells = [c for c in nb["cells"] if c.get("id") not in (INSTALL_ID, LINKS_ID)]
    install = _cell("code", INSTALL_ID, install_cell_source(url, requirements))
    previous = next((c for c in nb["cells"] if c.get("id") == INSTALL_ID), None)
    if previous is not None and previous["source"] == install["source"]:
        # the same cell, already executed with its notebook (a no-op where rlkit imports): keep that record
        install.update(execution_count=previous.get("execution_count"), outputs=previous.get("outputs", []))
    links = _cell("markdown", LINKS_ID, links_markdown(url, name))
    return {**nb, "cells": [install, links] + cells}


def notebooks(repo: Path = REPO) -> list[Path]:
    return sorted((repo / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def binder_environment(repo: Path = REPO) -> str:
    """binder/environment.yml: environment.yml's pinned runtime packages (no test tools, no editable install).

    torch comes from PyTorch's CPU index (Binder has no GPU; PyPI's Linux build pulls GBs of CUDA).
    """
    kept, skipping = [], False
    for line in (repo / "environment.yml").read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            skipping = "test" in stripped or "the kit itself" in stripped
            continue
        if skipping or stripped.startswith("- -e "):
            continue
        if re.match(r"- torch==", stripped):
            indent = line[: len(line) - len(line.lstrip())]
            kept.append(f"{indent}- --extra-index-url https://download.pytorch.org/whl/cpu")
        kept.append(line)
    header = ["# Binder's environment (generated by tools/notebook_links.py from ../environment.yml: do not edit).",
              "# binder/postBuild installs the kit itself, editable, once the repository is in place."]
    return "\n".join(header + kept) + "\n"


POSTBUILD = """#!/bin/bash
# Binder: the environment (binder/environment.yml) is built; install the kit from the checkout.
set -euo pipefail
python -m pip install --no-deps -e .
"""


def _dump(nb: dict) -> str:
    return json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def generated_files(repo: Path = REPO) -> dict[Path, str]:
    """Every file this script writes, with the text it should have."""
    url, requirements = repository_url(repo), runtime_requirements(repo)
    files = {}
    for path in notebooks(repo):
        nb = json.loads(path.read_text())
        files[path] = _dump(update_notebook(nb, path.name, url, requirements))
    files[repo / "binder" / "environment.yml"] = binder_environment(repo)
    files[repo / "binder" / "postBuild"] = POSTBUILD
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale or missing cells and files")
    parser.add_argument("--readme", action="store_true", help="print the README's links line")
    args = parser.parse_args(argv)
    if args.readme:
        print(readme_line(repository_url()))
        return 0
    stale = []
    for path, text in generated_files().items():
        if not path.is_file() or path.read_text() != text:
            stale.append(path.relative_to(REPO))
            if not args.check:
                path.parent.mkdir(exist_ok=True)
                path.write_text(text)
                if path.name == "postBuild":
                    path.chmod(0o755)
    verb = "stale" if args.check else "updated"
    print(f"{verb}: {', '.join(map(str, stale))}" if stale else "all up to date")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
