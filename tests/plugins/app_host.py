"""Run the real function_app under the local host, as a separate process, for end-to-end tests.

`start_app_host(...)` starts it on a free port against the given storage connection (and any
extra app settings, e.g. simulator URLs) and returns a handle with the URL and keys.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from sandbox.proc import ROOT, Service, free_port, python_module, start

MASTER_KEY = "test-master-key"
FUNCTION_KEY = "test-function-key"


@dataclass
class AppHost:
    url: str  # http://127.0.0.1:PORT/api
    master_key: str
    function_key: str
    service: Service

    def stop(self) -> None:
        self.service.stop()


def start_app_host(conn: str, *, settings: Mapping[str, str] | None = None, host_json: Path | None = None,
                   app: str = "function_app:app", disable: tuple[str, ...] = ()) -> AppHost:
    port = free_port()
    env = {"AzureWebJobsStorage": conn, "LOCAL_HOST_MASTER_KEY": MASTER_KEY, "LOCAL_HOST_FUNCTION_KEY": FUNCTION_KEY,
           "APP_MODE": "sandbox", "SYNC_NOTIFICATION_URL_BASE": f"http://127.0.0.1:{port}/api",
           "SYNC_NOTIFICATION_URL_KEY": FUNCTION_KEY}
    env.update(settings or {})
    args = ["--app", app, "--port", str(port), "--settings", "/dev/null",
            "--host-json", str(host_json or ROOT / "host.json")]
    for name in disable:
        args += ["--disable", name]
    svc = start("app-host", python_module("sandbox.host", *args), wait_ports=[port], env=env, timeout=60)
    return AppHost(f"http://127.0.0.1:{port}/api", MASTER_KEY, FUNCTION_KEY, svc)


def fast_host_json(tmp: Path, **queues: object) -> Path:
    """A host.json whose queue settings make retries quick in tests."""
    opts = {"maxDequeueCount": 3, "visibilityTimeout": "00:00:00", "maxPollingInterval": "00:00:00.5",
            "batchSize": 16}
    opts.update(queues)
    path = tmp / "host.json"
    path.write_text(json.dumps({"version": "2.0", "extensions": {"queues": opts}}))
    return path


@pytest.fixture
def app_host_factory() -> Iterator[object]:
    started: list[AppHost] = []

    def make(conn: str, **kw: object) -> AppHost:
        h = start_app_host(conn, **kw)  # type: ignore[arg-type]
        started.append(h)
        return h

    yield make
    for h in started:
        h.stop()
