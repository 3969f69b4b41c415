"""``python -m sandbox.graph --port 7200 [--tls-port 7201] [--cert-dir DIR]``

Serves Graph (``/v1.0``), the token endpoint and ``/_sim/`` over plain http on ``--port`` and the
same application over https on ``--tls-port`` (for azure-identity, which insists on an https
authority). The CA certificate to trust is written to ``{cert-dir}/ca.pem``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
from pathlib import Path

from aiohttp import web

from sandbox.graph import tls
from sandbox.graph.app import Sim, build_app

ROOT = Path(__file__).resolve().parents[2]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m sandbox.graph", description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=7200)
    ap.add_argument("--tls-port", type=int, default=None, help="https port (default port+1; 0 disables)")
    ap.add_argument("--cert-dir", type=Path, default=None, help="where ca.pem/server.pem are written")
    ap.add_argument("--public-url", default=None, help="base URL used in tokens and links")
    ap.add_argument("--log-level", default="INFO")
    return ap.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    tls_port = args.port + 1 if args.tls_port is None else args.tls_port
    public = (args.public_url or f"http://{args.host}:{args.port}").rstrip("/")
    sim = Sim(public_base=public)
    sim.self_base = f"http://{args.host}:{args.port}"
    ssl_ctx = None
    if tls_port:
        cert_dir = args.cert_dir or ROOT / ".sandbox" / f"graph-certs-{args.port}"
        files = tls.generate(cert_dir)
        ssl_ctx = files.server_context()
        sim.ca_path = files.ca_path
        sim.authority = f"https://{args.host}:{tls_port}"
    app = build_app(sim)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    if ssl_ctx is not None:  # https first: a client waiting for the http port then finds both serving
        await web.TCPSite(runner, args.host, tls_port, ssl_context=ssl_ctx).start()
    await web.TCPSite(runner, args.host, args.port).start()
    print(json.dumps({"graph": f"{public}/v1.0", "authority": sim.authority or None,
                      "tenantId": sim.tenant_id, "caPath": str(sim.ca_path) if sim.ca_path else None}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
