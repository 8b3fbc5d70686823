"""Start JupyterLab the way `python3 kit.py lab` does, for tests (test_lab.py, test_browser.py).

Not a test module: helpers only. The server runs on a free localhost port with a token, its
runtime, data, config, settings and workspace folders in a temporary folder, so a test run
neither reads nor writes the user's Jupyter state.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOKEN = "rlkit-test-token"


def load_kit():
    spec = importlib.util.spec_from_file_location("kit", REPO / "kit.py")
    kit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kit)
    return kit


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url: str):
    request = urllib.request.Request(url, headers={"Authorization": f"token {TOKEN}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, json.load(response)


def wait_for_server(base: str, server: subprocess.Popen, seconds: float = 90.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"JupyterLab exited early with code {server.returncode}")
        try:
            return get_json(f"{base}/api/status")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    raise AssertionError(f"JupyterLab did not answer on {base} within {seconds} s")


def lab_environment(folder: Path) -> dict[str, str]:
    """The process environment with every Jupyter state folder inside ``folder``."""
    return dict(
        os.environ,
        JUPYTER_RUNTIME_DIR=str(folder / "runtime"),
        JUPYTER_DATA_DIR=str(folder / "data"),
        JUPYTER_CONFIG_DIR=str(folder / "config"),
        JUPYTERLAB_SETTINGS_DIR=str(folder / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(folder / "workspaces"),
        IPYTHONDIR=str(folder / "ipython"),
    )


def stop(server: subprocess.Popen) -> None:
    """Stop a server started by :func:`running_lab` (terminate, then kill after 30 s)."""
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)


@contextlib.contextmanager
def running_lab(folder: Path, root_dir: Path | None = None, seconds: float = 90.0):
    """Start ``kit.lab_command`` (on ``root_dir`` instead of notebooks/ when given); yield its base URL.

    The log goes to ``folder / "lab.log"``; the server is stopped on leaving the block.
    """
    kit = load_kit()
    port = free_port()
    extra = ["--no-browser", "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}"]
    command = kit.lab_command(Path(sys.executable), port=port, extra=extra, root_dir=root_dir)
    with open(folder / "lab.log", "w") as log:
        server = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                  env=lab_environment(folder))
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for_server(base, server, seconds)
            yield base
        finally:
            stop(server)
