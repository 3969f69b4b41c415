"""Start and stop the sandbox's child processes (Azurite, simulators, the local host).

Shared by `make run`, the test fixtures and the benchmarks so that every one of them starts
services the same way: on a chosen or free loopback port, waiting until the port answers, and
stopping the whole process group on exit so nothing is left running.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

AZURITE_ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


_HANDED_OUT: set[int] = set()
_PORTS_LOCK = threading.Lock()


def free_port() -> int:
    """A port nothing listens on now and that this process has not handed out before.

    The kernel may give the same free port to two binds in a row once the first socket is closed:
    one stack's Azurite then got the same port for its Blob and Table services and died at start
    (chaos seed 111). Remembering what was handed out makes the ports of one stack distinct.
    """
    with _PORTS_LOCK:
        for _ in range(1000):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", 0))
                port = int(s.getsockname()[1])
            if port not in _HANDED_OUT:
                _HANDED_OUT.add(port)
                return port
    raise RuntimeError("no free port that was not handed out already")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


@dataclass
class Service:
    """A started child process and the ports it serves."""

    name: str
    proc: subprocess.Popen[bytes]
    ports: dict[str, int] = field(default_factory=dict)
    log_path: Path | None = None

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=timeout)

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def start(
    name: str,
    cmd: Sequence[str],
    *,
    wait_ports: Sequence[int],
    env: Mapping[str, str] | None = None,
    log_dir: Path | None = None,
    timeout: float = 30.0,
    ports: Mapping[str, int] | None = None,
) -> Service:
    """Start `cmd` in its own process group and wait until every port in `wait_ports` accepts."""
    log_dir = log_dir or ROOT / ".sandbox" / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}-{os.getpid()}-{wait_ports[0] if wait_ports else 0}.log"
    log = open(log_path, "wb")  # noqa: SIM115 - owned by the child for its lifetime
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    proc = subprocess.Popen(
        list(cmd), stdout=log, stderr=subprocess.STDOUT, env=full_env, cwd=ROOT, start_new_session=True
    )
    svc = Service(name=name, proc=proc, ports=dict(ports or {}), log_path=log_path)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode} before serving:\n{svc.log_tail()}")
        if all(port_open(p) for p in wait_ports):
            return svc
        if time.monotonic() > deadline:
            svc.stop()
            raise TimeoutError(f"{name} did not open ports {list(wait_ports)} within {timeout}s:\n{svc.log_tail()}")
        time.sleep(0.05)


def azurite_binary() -> str:
    local = ROOT / "node_modules" / ".bin" / "azurite"
    if local.exists():
        return str(local)
    found = shutil.which("azurite")
    if not found:
        raise RuntimeError("azurite is not installed: run `make setup` (npm install azurite@3.35.0)")
    return found


def start_azurite(*, blob: int | None = None, queue: int | None = None, table: int | None = None) -> Service:
    """Azurite in memory on the given (or free) loopback ports."""
    ports = {"blob": blob or free_port(), "queue": queue or free_port(), "table": table or free_port()}
    cmd = [
        azurite_binary(), "--inMemoryPersistence", "--silent", "--disableTelemetry", "--skipApiVersionCheck",
        "--blobHost", "127.0.0.1", "--queueHost", "127.0.0.1", "--tableHost", "127.0.0.1",
        "--blobPort", str(ports["blob"]), "--queuePort", str(ports["queue"]), "--tablePort", str(ports["table"]),
    ]
    return start("azurite", cmd, wait_ports=list(ports.values()), ports=ports)


def azurite_connection_string(svc_or_ports: Service | Mapping[str, int]) -> str:
    ports = svc_or_ports.ports if isinstance(svc_or_ports, Service) else svc_or_ports
    return (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={AZURITE_ACCOUNT_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{ports['blob']}/devstoreaccount1;"
        f"QueueEndpoint=http://127.0.0.1:{ports['queue']}/devstoreaccount1;"
        f"TableEndpoint=http://127.0.0.1:{ports['table']}/devstoreaccount1;"
    )


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


@contextlib.contextmanager
def running(*services: Service) -> Iterator[tuple[Service, ...]]:
    try:
        yield services
    finally:
        for svc in reversed(services):
            svc.stop()
