"""`make run`'s entry point: prints READY, answers /api/health, and stops everything on Ctrl-C."""

import json
import signal
import subprocess
import sys
import time
import urllib.request

from sandbox.proc import ROOT


def test_run_prints_ready_serves_health_and_stops_cleanly(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "sandbox.run", "--free-ports", "--settings", str(tmp_path / "none")],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        url = None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.startswith("READY "):
                url = line.split()[1]
                break
            if proc.poll() is not None:
                break
        assert url, f"no READY line; stderr:\n{proc.stderr.read() if proc.poll() is not None else ''}"
        with urllib.request.urlopen(f"{url}/health", timeout=10) as r:
            body = json.loads(r.read())
        assert r.status == 200
        assert body["storage"] == "reachable" and body["mode"] == "sandbox" and body["version"]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0
    stderr = proc.stderr.read()
    assert "sandbox: stopped" in stderr
    from urllib.parse import urlparse

    from sandbox.proc import port_open

    assert not port_open(urlparse(url).port), "the host must be stopped with the sandbox"
