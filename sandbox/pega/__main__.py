"""`python -m sandbox.pega --port 7300`: the Pega simulator (see docs/pega-simulator.md)."""

from __future__ import annotations

import argparse
import logging
import os

from aiohttp import web

from sandbox.pega.app import build_app
from sandbox.pega.config import SimConfig
from shared.pega.mapping import load_mapping


def main(argv: list[str] | None = None) -> None:
    env = os.environ
    p = argparse.ArgumentParser(prog="python -m sandbox.pega", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=int(env.get("PEGA_SIM_PORT", "7300")))
    p.add_argument("--service-url", default=env.get("PEGA_SIM_SERVICE_URL"),
                   help="base URL of our HTTP contract (default http://127.0.0.1:7071/api; '' = do not call)")
    p.add_argument("--function-key", default=env.get("PEGA_SIM_FUNCTION_KEY", ""))
    p.add_argument("--token-url", default=env.get("PEGA_SIM_TOKEN_URL"),
                   help="Entra token endpoint for outbound calls (default: the Graph simulator's)")
    p.add_argument("--client-id", default=env.get("PEGA_SIM_CLIENT_ID"))
    p.add_argument("--client-secret", default=env.get("PEGA_SIM_CLIENT_SECRET"))
    p.add_argument("--scope", default=env.get("PEGA_SIM_SCOPE"))
    p.add_argument("--max-attempts", type=int, default=None)
    p.add_argument("--backoff", type=float, default=None, help="first retry delay in seconds (doubles)")
    p.add_argument("--no-outbound", action="store_true", help="never call the service")
    p.add_argument("--mapping", default=env.get("PEGA_MAPPING_FILE"), help="JSON mapping file (PEGA_MAPPING_FILE)")
    p.add_argument("--token-ttl", type=int, default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)

    cfg = SimConfig()
    out = cfg.outbound
    if args.service_url is not None:
        out.service_base_url = args.service_url
    for attr, value in (("function_key", args.function_key), ("token_url", args.token_url),
                        ("client_id", args.client_id), ("client_secret", args.client_secret), ("scope", args.scope),
                        ("max_attempts", args.max_attempts), ("backoff_seconds", args.backoff)):
        if value:
            setattr(out, attr, value)
    if not args.token_url and env.get("GRAPH_AUTHORITY_HOST") and env.get("GRAPH_TENANT_ID"):
        # make run hands the app settings over: the Graph simulator is the sandbox's Entra ID
        out.token_url = f"{env['GRAPH_AUTHORITY_HOST'].rstrip('/')}/{env['GRAPH_TENANT_ID']}/oauth2/v2.0/token"
    if not args.function_key and env.get("LOCAL_HOST_FUNCTION_KEY"):
        out.function_key = env["LOCAL_HOST_FUNCTION_KEY"]
    # the service's own Pega credentials (PEGA_* app settings): accepted, and excluded from outbound calls
    cfg.add_integration_client(client_id=env.get("PEGA_CLIENT_ID", ""), client_secret=env.get("PEGA_CLIENT_SECRET", ""),
                               username=env.get("PEGA_USERNAME", ""), password=env.get("PEGA_PASSWORD", ""))
    out.enabled = not args.no_outbound
    if args.token_ttl:
        cfg.token_ttl_seconds = args.token_ttl
    web.run_app(build_app(cfg, mapping=load_mapping(args.mapping)), host=args.host, port=args.port,
                print=None, access_log=None)


if __name__ == "__main__":
    main()
