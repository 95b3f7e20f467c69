"""Smoke test of `make lab`: JupyterLab starts on loopback with a token and lists the notebooks."""
import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_make_lab_serves_the_notebooks(tmp_path):
    port, token = _free_port(), secrets.token_hex(16)
    args = (f"--no-browser --ip=127.0.0.1 --port={port} --IdentityProvider.token={token} "
            f"--ServerApp.port_retries=0")
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"), HOME=os.environ.get("HOME", str(tmp_path)))
    proc = subprocess.Popen(["make", "-s", "lab", f"LAB_ARGS={args}"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        body, deadline = None, time.time() + 120
        while time.time() < deadline and body is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents?token={token}",
                                            timeout=5) as r:
                    body = json.load(r)
            except OSError:
                if proc.poll() is not None:
                    raise AssertionError(proc.stdout.read().decode()[-2000:])
                time.sleep(0.5)
        assert body is not None, "JupyterLab did not answer within 120 s"
        names = {c["name"] for c in body["content"]}
        assert {"01-collect.ipynb", "04-report.ipynb"} <= names
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/kernelspecs?token={token}",
                                    timeout=5) as r:
            specs = json.load(r)
        assert "python3" in specs["kernelspecs"]
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents", timeout=5)
            raise AssertionError("the API answered without the token")
        except urllib.error.HTTPError as exc:
            assert exc.code == 403
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass  # already gone
        proc.wait(timeout=30)
