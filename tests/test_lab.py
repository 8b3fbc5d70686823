"""`python3 kit.py lab` starts JupyterLab on notebooks/: start it the same way, ask its REST API, stop it."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.lab import REPO, TOKEN, free_port, get_json, load_kit, wait_for_server


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
