"""Assemble the Pega simulator's aiohttp application."""

from __future__ import annotations

import copy

from aiohttp import web

from sandbox.pega import dx_routes, sa_routes, service_routes, sim_routes
from sandbox.pega.casetypes import CaseTypeBook
from sandbox.pega.config import SimConfig
from sandbox.pega.contract_calls import CallBuilder
from sandbox.pega.faults import Faults, fault_middleware
from sandbox.pega.outbound import Outbound
from sandbox.pega.security import TokenBook, token_endpoint
from sandbox.pega.seed import seed
from sandbox.pega.store import Store
from shared.pega.mapping import PegaMapping, load_mapping

TOKEN_PATH = "/prweb/PRRestService/oauth2/v1/token"


def build_app(config: SimConfig | None = None, *, mapping: PegaMapping | None = None) -> web.Application:
    config = config or SimConfig()
    app = web.Application(middlewares=[fault_middleware], client_max_size=64 * 1024 * 1024)
    store = Store(mapping=mapping or load_mapping(None))
    outbound = Outbound(config.outbound, CallBuilder(store))
    store.listeners.append(outbound.on_change)
    app["config"] = config
    app["initial_config"] = copy.deepcopy(config)
    app["store"] = store
    app["casetypes"] = CaseTypeBook(store.mapping)
    app["dropped"] = []
    app["tokens"] = TokenBook()
    app["faults"] = Faults()
    app["outbound"] = outbound
    app["seeded"] = seed(store)
    app.router.add_post(TOKEN_PATH, token_endpoint)
    sa_routes.add_routes(app)
    dx_routes.add_routes(app)
    service_routes.add_routes(app)
    sim_routes.add_routes(app)

    async def on_startup(_: web.Application) -> None:
        await outbound.start()

    async def on_cleanup(_: web.Application) -> None:
        await outbound.stop()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app
