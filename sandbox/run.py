"""`make run`: start the sandbox (Azurite, simulators) and the local host in the foreground.

With real settings in local.settings.json (a storage account, Graph tenant, Pega URL), the
matching stand-in is not started and the app talks to the real service instead. Prints one line
`READY <url>` when everything serves; Ctrl-C stops everything this started.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import sys
import threading
from pathlib import Path

from sandbox.host import load_local_settings
from sandbox.proc import ROOT, Service, free_port, port_open, python_module, start, start_azurite
from sandbox.settings import SandboxPorts, graph_cert_dir, sandbox_settings


def _loopback(url: str) -> bool:
    return "127.0.0.1" in url or "localhost" in url or "UseDevelopmentStorage=true" in url


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


class Stack:
    """The running sandbox: each started service, in start order."""

    def __init__(self) -> None:
        self.services: list[Service] = []

    def add(self, svc: Service) -> Service:
        self.services.append(svc)
        return svc

    def stop(self) -> None:
        for svc in reversed(self.services):
            svc.stop()
        self.services.clear()


def _busy(port: int, what: str) -> None:
    if port_open(port):
        raise SystemExit(f"port {port} for {what} is already in use: stop the other process first")


def start_stack(ports: SandboxPorts, settings: dict[str, str], *, stack: Stack) -> str:
    env = dict(settings)
    if _loopback(env.get("AzureWebJobsStorage", "")):
        for p in (ports.blob, ports.queue, ports.table):
            _busy(p, "Azurite")
        stack.add(start_azurite(blob=ports.blob, queue=ports.queue, table=ports.table))
    if _loopback(env.get("GRAPH_BASE_URL", "")) and _has_module("sandbox.graph.__main__"):
        _busy(ports.graph, "the Graph simulator")
        _busy(ports.graph_tls, "the Graph simulator's token endpoint")
        stack.add(start("graph-sim", python_module("sandbox.graph", "--port", str(ports.graph), "--tls-port",
                                                   str(ports.graph_tls), "--cert-dir", str(graph_cert_dir(ports))),
                        wait_ports=[ports.graph, ports.graph_tls], env=env))
    if _loopback(env.get("PEGA_BASE_URL", "")) and _has_module("sandbox.pega.__main__"):
        _busy(ports.pega, "the Pega simulator")
        stack.add(start("pega-sim", python_module("sandbox.pega", "--port", str(ports.pega),
                                                  "--service-url", f"http://127.0.0.1:{ports.host}/api",
                                                  "--token-url", f"http://127.0.0.1:{ports.graph}/"
                                                  f"{env.get('GRAPH_TENANT_ID', '')}/oauth2/v2.0/token"),
                        wait_ports=[ports.pega], env=env))
    if _loopback(env.get("EWS_URL", "")) and _has_module("sandbox.ews.__main__"):
        _busy(ports.ews, "the EWS simulator")
        stack.add(start("ews-sim", python_module("sandbox.ews", "--port", str(ports.ews)),
                        wait_ports=[ports.ews], env=env))
    _busy(ports.host, "the Functions host")
    stack.add(start("host", python_module("sandbox.host", "--port", str(ports.host), "--settings", "/dev/null"),
                    wait_ports=[ports.host], env=env, timeout=60))
    if _has_module("sandbox.demo"):
        from sandbox import demo  # onboard the demo users once the host serves

        demo.prepare(env)
    return f"http://127.0.0.1:{ports.host}/api"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="make run", description=__doc__.split("\n\n")[0])
    p.add_argument("--settings", default=str(ROOT / "local.settings.json"))
    p.add_argument("--host-port", type=int, default=7071)
    p.add_argument("--free-ports", action="store_true", help="use free ports instead of the defaults (tests)")
    args = p.parse_args(argv)
    if args.free_ports:
        ports = SandboxPorts(**{k: free_port() for k in ("host", "graph", "graph_tls", "pega", "ews", "blob",
                                                          "queue", "table")})
    else:
        ports = SandboxPorts(host=args.host_port)
    settings = sandbox_settings(ports)
    local = load_local_settings(Path(args.settings))
    settings.update(local)
    stack = Stack()
    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        url = start_stack(ports, settings, stack=stack)
        started = ", ".join(s.name for s in stack.services)
        print(f"sandbox: started {started}; logs in {ROOT / '.sandbox' / 'logs'}", file=sys.stderr, flush=True)
        if local:
            print(f"sandbox: local.settings.json overrides {len(local)} settings", file=sys.stderr, flush=True)
        print(f"READY {url}", flush=True)
        while not stopping.wait(0.5):
            dead = [s for s in stack.services if s.proc.poll() is not None]
            if dead:
                print(f"sandbox: {dead[0].name} exited ({dead[0].proc.returncode}):\n{dead[0].log_tail()}",
                      file=sys.stderr, flush=True)
                return 1
        return 0
    finally:
        stack.stop()
        print("sandbox: stopped", file=sys.stderr, flush=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
