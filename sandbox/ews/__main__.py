"""`python -m sandbox.ews --port N`: run the EWS simulator; prints one JSON line with its endpoint."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal

from aiohttp import web

from sandbox.ews.app import EWS_PATH, Sim, build_app
from sandbox.ews.seed import seed


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m sandbox.ews", description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=7400)
    ap.add_argument("--log-level", default="INFO")
    return ap.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    sim = Sim()
    seed(sim)
    app = build_app(sim)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, args.host, args.port).start()
    print(json.dumps({"ews": f"http://{args.host}:{args.port}{EWS_PATH}"}), flush=True)
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
