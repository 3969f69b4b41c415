"""One seed's stack: Azurite, both simulators and the local Functions host, each its own process,
started with the same commands as `make run` (sandbox/run.py), on free ports.

Two deliberate differences, both sandbox-only and both needed for the faults the harness injects:
- Azurite keeps its data on disk in a per-seed folder (not `--inMemoryPersistence`), so that an
  Azurite restart is an outage (connections refused, then the same data), as it is for Azure Storage,
  and not the loss of every table and queue;
- the simulators and the host run under libfaketime (the `libfaketime` wheel's preloaded library)
  reading one per-seed offset file, so the harness can move their wall clock at once (across 00:00
  UTC, past subscription expiry) without any seam in the product. Monotonic clocks stay real.
  Azurite keeps the real clock, as Azure Storage keeps its own (it accepts the skewed request dates;
  faking it would expire every queued message at a 7-day jump, which no real clock jump does).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.proc import ROOT, Service, azurite_binary, free_port, port_open, python_module, start
from sandbox.settings import SandboxPorts, graph_cert_dir, sandbox_settings

HOST_MESSAGE_LEASE_SECONDS = 8.0  # sandbox host flag: a killed host's messages come back after this


def harness_settings(ports: SandboxPorts) -> dict[str, str]:
    """`make run`'s settings plus the harness's shortened recovery windows (settings only)."""
    settings = sandbox_settings(ports)
    settings.update({
        "SYNC_POLL_INTERVAL_MINUTES": "1",  # the safety-net poll (timer every minute) catches missed notifications
        "GRAPH_TIMEOUT_SECONDS": "8",       # an injected Graph hang ends within a seed
        "PEGA_TIMEOUT_SECONDS": "8",
        "STORAGE_TIMEOUT_SECONDS": "5",
        "SYNC_NOTIFICATION_FREQUENCY_MINUTES": "30",
        "INSIGHTS_ENABLED": "true",
        "LOG_LEVEL": "INFO",
        # The harness's Pega faults and its "a create happens twice" sabotage target DX API v2 cases and
        # SA API v1 eTags (the sync-service adapter's upserts are atomic, so that sabotage cannot make a
        # duplicate there): the chaos seeds run the dx-v2 adapter, the acceptance scenarios both.
        "PEGA_ADAPTER": "dx-v2",
    })
    return settings


def faketime_env(clock_file: Path) -> dict[str, str]:
    """Environment that makes a child process read its wall clock offset from `clock_file`."""
    try:
        import libfaketime
    except ImportError:
        return {}
    ok, env = libfaketime.get_reload_information()
    if not ok:
        return {}
    return {
        "LD_LIBRARY_PATH": env["LD_LIBRARY_PATH"], "LD_PRELOAD": env["LD_PRELOAD"],
        "FAKETIME_TIMESTAMP_FILE": str(clock_file), "DONT_FAKE_MONOTONIC": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "FAKETIME_CACHE_DURATION": "1", "FAKETIME_DONT_RESET": "1", "FAKETIME_FORCE_MONOTONIC_FIX": "0",
    }


@dataclass
class ChaosStack:
    """The running services of one seed and the levers the harness pulls on them."""

    ports: SandboxPorts
    settings: dict[str, str]
    workdir: Path
    log_dir: Path
    clock_offset: float = 0.0
    services: dict[str, Service] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def create(cls, seed: int, *, log_root: Path, clock_offset: float = 0.0) -> ChaosStack:
        ports = SandboxPorts(**{k: free_port() for k in ("host", "graph", "graph_tls", "pega", "ews", "blob",
                                                          "queue", "table")})
        workdir = Path(tempfile.mkdtemp(prefix=f"chaos-{seed}-"))
        log_dir = log_root / f"seed-{seed}"
        shutil.rmtree(log_dir, ignore_errors=True)
        log_dir.mkdir(parents=True, exist_ok=True)
        stack = cls(ports, harness_settings(ports), workdir, log_dir, clock_offset)
        stack.write_clock(clock_offset)
        return stack

    # ------------------------------------------------------------ clock

    @property
    def clock_file(self) -> Path:
        return self.workdir / "faketime.rc"

    @property
    def clock_enabled(self) -> bool:
        return bool(faketime_env(self.clock_file))

    def write_clock(self, offset_seconds: float) -> None:
        self.clock_offset = offset_seconds
        tmp = self.clock_file.with_suffix(".tmp")
        tmp.write_text(f"{offset_seconds:+.0f}\n")
        tmp.replace(self.clock_file)

    def now(self) -> float:
        """The stack's wall clock (epoch seconds)."""
        return time.time() + self.clock_offset

    # ------------------------------------------------------------ services

    def _env(self) -> dict[str, str]:
        env = dict(self.settings)
        env.update(faketime_env(self.clock_file))
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def start_all(self) -> None:
        self.start_azurite()
        p = self.ports
        env = self._env()
        self.services["graph"] = start(
            "graph-sim", python_module("sandbox.graph", "--port", str(p.graph), "--tls-port", str(p.graph_tls),
                                       "--cert-dir", str(graph_cert_dir(p))),
            wait_ports=[p.graph, p.graph_tls], env=env, log_dir=self.log_dir)
        self.services["pega"] = start(
            "pega-sim", python_module("sandbox.pega", "--port", str(p.pega), "--service-url",
                                      f"http://127.0.0.1:{p.host}/api", "--token-url",
                                      f"http://127.0.0.1:{p.graph}/{env.get('GRAPH_TENANT_ID', '')}/oauth2/v2.0/token"),
            wait_ports=[p.pega], env=env, log_dir=self.log_dir)
        # Exchange Server on-premises (EWS): `make run` onboards its demo rep (sandbox/demo.py) too
        self.services["ews"] = start("ews-sim", python_module("sandbox.ews", "--port", str(p.ews)),
                                     wait_ports=[p.ews], env=env, log_dir=self.log_dir)
        self.start_host()

    def start_azurite(self) -> None:
        p = self.ports
        data = self.workdir / "azurite"
        data.mkdir(exist_ok=True)
        cmd = [azurite_binary(), "--location", str(data), "--silent", "--disableTelemetry", "--skipApiVersionCheck",
               "--blobHost", "127.0.0.1", "--queueHost", "127.0.0.1", "--tableHost", "127.0.0.1",
               "--blobPort", str(p.blob), "--queuePort", str(p.queue), "--tablePort", str(p.table)]
        self.services["azurite"] = start("azurite", cmd, wait_ports=[p.blob, p.queue, p.table], log_dir=self.log_dir,
                                         ports={"blob": p.blob, "queue": p.queue, "table": p.table})

    def start_host(self) -> None:
        p = self.ports
        n = self.restarts.get("host", 0)
        self.services["host"] = start(
            f"host{n}", python_module("sandbox.host", "--port", str(p.host), "--settings", "/dev/null",
                                      "--message-lease", str(HOST_MESSAGE_LEASE_SECONDS)),
            wait_ports=[p.host], env=self._env(), log_dir=self.log_dir, timeout=90)

    def kill(self, name: str) -> None:
        """SIGKILL a service's whole process group (no clean shutdown: a crash)."""
        svc = self.services[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(svc.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            svc.proc.wait(timeout=10)

    def restart_host(self, *, down_seconds: float) -> None:
        self.kill("host")
        time.sleep(down_seconds)
        self._wait_port_free(self.ports.host)
        self.restarts["host"] = self.restarts.get("host", 0) + 1
        self.start_host()

    def restart_azurite(self, *, down_seconds: float) -> None:
        """Stop Azurite cleanly (it flushes its data), keep it down, start it again on the same folder."""
        self.services["azurite"].stop(timeout=15)
        time.sleep(down_seconds)
        for port in (self.ports.blob, self.ports.queue, self.ports.table):
            self._wait_port_free(port)
        self.restarts["azurite"] = self.restarts.get("azurite", 0) + 1
        self.start_azurite()

    @staticmethod
    def _wait_port_free(port: int, within: float = 15.0) -> None:
        deadline = time.monotonic() + within
        while port_open(port) and time.monotonic() < deadline:
            time.sleep(0.1)

    def dead(self) -> list[str]:
        return [n for n, s in self.services.items() if s.proc.poll() is not None]

    def stop(self, *, keep: bool = False) -> None:
        # every service, the EWS simulator included (it was left running after each seed: ~50 MB apiece)
        for name in ("host", "pega", "graph", "ews", *[n for n in self.services if n not in ("host", "pega", "graph",
                                                                                          "ews", "azurite")],
                     "azurite"):
            svc = self.services.pop(name, None)
            if svc is not None:
                svc.stop()
        if not keep:
            shutil.rmtree(self.workdir, ignore_errors=True)
            with contextlib.suppress(OSError):
                shutil.rmtree(graph_cert_dir(self.ports), ignore_errors=True)

    @property
    def urls(self) -> dict[str, str]:
        p = self.ports
        return {"graph": f"http://127.0.0.1:{p.graph}", "pega": f"http://127.0.0.1:{p.pega}",
                "api": f"http://127.0.0.1:{p.host}/api", "ews": f"http://127.0.0.1:{p.ews}"}


ROOT_LOGS = ROOT / ".sandbox" / "chaos"
