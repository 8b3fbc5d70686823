"""`python3 kit.py lab` starts JupyterLab on notebooks/: start it the same way, ask its REST API, stop it."""
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

import pytest

REPO = Path(__file__).resolve().parent.parent
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


@pytest.mark.slow
def test_lab_command_serves_the_notebooks(tmp_path):
    kit = load_kit()
    port = free_port()
    command = kit.lab_command(Path(sys.executable), port=port, extra=[
        "--no-browser", "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}",
    ])
    environment = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
                       JUPYTER_DATA_DIR=str(tmp_path / "data"))
    log = open(tmp_path / "lab.log", "w")
    server = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=environment)
    try:
        base = f"http://127.0.0.1:{port}"
        status, _ = wait_for_server(base, server)
        assert status == 200
        status, listing = get_json(f"{base}/api/contents")
        assert status == 200
        served = {item["name"] for item in listing["content"] if item["type"] == "notebook"}
        on_disk = {path.name for path in (REPO / "notebooks").glob("*.ipynb")}
        assert "00_setup_check.ipynb" in served
        assert served == on_disk
        status, _ = get_json(f"{base}/lab/api/settings")  # the JupyterLab application, not just the server
        assert status == 200
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    assert server.returncode is not None
